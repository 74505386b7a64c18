//! Every setting this dbjobs knows: the host's own declarations, the connection keys and
//! those of each loaded plugin.
//!
//! One catalogue serves both ends: it checks the configured `[dbjobs]` and `--set` names and
//! values at start-up (an unknown name is a configuration error naming the closest known
//! one, a value of the wrong type too), and it is what `dbjobs settings` documents (the
//! annotated option file, `plugins/README.md`'s table).

use crate::config::{Settings, CONNECTION_KEYS};
use crate::error::{Error, Result};
use crate::loader::{DeclaredSetting, Refused, Registry};
use crate::settings::HostSettings;

/// The name under which the host's own settings are listed as "declared by".
pub const HOST_NAME: &str = "dbjobs";

/// One declared setting and who declares it (plugins sharing a helper declare the same one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Name, type, default and documentation.
    pub setting: DeclaredSetting,
    /// [`HOST_NAME`] or the names of the plugins, in load order.
    pub declared_by: Vec<String>,
}

/// The declared settings, host first, then the plugins in load order; identical
/// declarations of one name are one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingCatalog {
    entries: Vec<CatalogEntry>,
}

/// What the start-up check found that does not stop dbjobs.
pub type Warnings = Vec<String>;

impl SettingCatalog {
    /// The host's settings and those every plugin of `registry` declares.
    pub fn of(registry: &Registry) -> Self {
        let mut catalog = SettingCatalog::default();
        for decl in HostSettings::DECLS {
            catalog.add(DeclaredSetting::from_decl(decl), HOST_NAME);
        }
        for plugin in &registry.plugins {
            for setting in &plugin.settings {
                catalog.add(setting.clone(), &plugin.name);
            }
        }
        catalog
    }

    fn add(&mut self, setting: DeclaredSetting, by: &str) {
        match self.entries.iter_mut().find(|e| e.setting == setting) {
            Some(entry) if !entry.declared_by.iter().any(|b| b == by) => {
                entry.declared_by.push(by.to_string())
            }
            Some(_) => {}
            None => self.entries.push(CatalogEntry {
                setting,
                declared_by: vec![by.to_string()],
            }),
        }
    }

    /// Every entry, in catalogue order.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// Check every configured setting: its name must be declared (or be a connection key of
    /// the option file) and its value must fit every declaration of it. An unknown name is a
    /// warning instead of an error when a plugin file was refused: it may be that plugin's.
    pub fn check(&self, settings: &Settings, refused: &[Refused]) -> Result<Warnings> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        for (name, value) in settings.iter() {
            let declared: Vec<&CatalogEntry> = self
                .entries
                .iter()
                .filter(|e| e.setting.name == name)
                .collect();
            if declared.is_empty() {
                let unknown = format!(
                    "unknown setting {name} ({}): neither dbjobs nor a loaded plugin declares it; the closest known name is {}",
                    value.origin,
                    self.closest(name)
                );
                match refused_files(refused) {
                    Some(files) => warnings.push(format!(
                        "{unknown}; it may belong to the plugin file that was refused ({files})"
                    )),
                    None => problems.push(unknown),
                }
                continue;
            }
            for entry in declared {
                if let Err(why) = entry.setting.check(&value.text) {
                    problems.push(format!(
                        "setting {name}={:?} ({}) is not valid: {why} ({})",
                        value.text, value.origin, entry.setting.doc
                    ));
                }
            }
        }
        match problems.len() {
            0 => Ok(warnings),
            1 => Err(Error::new(problems.remove(0)).help(FIX)),
            n => Err(Error::new(format!(
                "{n} settings are wrong:\n  - {}",
                problems.join("\n  - ")
            ))
            .help(FIX)),
        }
    }

    /// The known name (declared or connection key) nearest to `name` by edit distance.
    fn closest(&self, name: &str) -> String {
        let known = self
            .entries
            .iter()
            .map(|e| e.setting.name.as_str())
            .chain(CONNECTION_KEYS);
        known
            .min_by_key(|k| strsim::damerau_levenshtein(name, k))
            .unwrap_or("(none)")
            .to_string()
    }
}

/// What to do about a wrong setting.
const FIX: &str = "fix or remove it in [dbjobs] of the option file or on the command line; `dbjobs settings` lists every setting with its type and default";

/// The refused plugin files and why, or `None` when none was refused.
fn refused_files(refused: &[Refused]) -> Option<String> {
    if refused.is_empty() {
        return None;
    }
    Some(
        refused
            .iter()
            .map(|r| format!("{}: {}", r.file.display(), r.reason))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OptionFile;
    use dbjobs_sdk::SettingKind;

    fn settings(text: &str, sets: &[&str]) -> Settings {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Settings::resolve(&OptionFile::parse(text).unwrap(), &sets).unwrap()
    }

    fn catalog_with_plugin_setting() -> SettingCatalog {
        let mut c = SettingCatalog::of(&Registry::default());
        let timeout = DeclaredSetting {
            name: "connect_timeout".into(),
            kind: SettingKind::Integer,
            choices: vec![],
            default: "120".into(),
            doc: "Seconds to retry connecting.".into(),
        };
        c.add(timeout.clone(), "xtrabackup");
        c.add(timeout, "errorlog");
        c
    }

    #[test]
    fn identical_declarations_are_one_entry() {
        let c = catalog_with_plugin_setting();
        let e = c
            .entries()
            .iter()
            .find(|e| e.setting.name == "connect_timeout")
            .unwrap();
        assert_eq!(e.declared_by, vec!["xtrabackup", "errorlog"]);
        assert_eq!(c.entries()[0].declared_by, vec![HOST_NAME]);
    }

    #[test]
    fn an_unknown_name_is_an_error_naming_the_closest_and_where() {
        let c = catalog_with_plugin_setting();
        let s = settings("[dbjobs]\nconect_timeout=5\nsocket=/s\n", &["state_dir=/x"]);
        let e = c.check(&s, &[]).unwrap_err();
        assert!(
            e.message
                .starts_with("unknown setting conect_timeout (option file line 2)"),
            "{e}"
        );
        assert!(
            e.message.ends_with("closest known name is connect_timeout"),
            "{e}"
        );
        let s = settings("", &["passwrd=x"]);
        let e = c.check(&s, &[]).unwrap_err();
        assert!(e.message.contains("(--set)"), "{e}");
        assert!(e.message.ends_with("closest known name is password"), "{e}");
    }

    #[test]
    fn with_a_refused_plugin_an_unknown_name_is_a_warning() {
        let c = catalog_with_plugin_setting();
        let s = settings("", &["zfs_dataset=tank"]);
        let refused = [Refused {
            file: "/p/libzfs.so".into(),
            reason: "writable by group".into(),
        }];
        let w = c.check(&s, &refused).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("refused (/p/libzfs.so: writable by group)"),
            "{w:?}"
        );
    }

    #[test]
    fn values_are_checked_against_their_type() {
        let c = catalog_with_plugin_setting();
        let s = settings("[dbjobs]\nconnect_timeout=soon\n", &["jobs_mode=ftp"]);
        let e = c.check(&s, &[]).unwrap_err();
        assert!(e.message.starts_with("2 settings are wrong"), "{e}");
        assert!(e.message.contains("connect_timeout=\"soon\" (option file line 2) is not valid: expected a non-negative integer"), "{e}");
        assert!(
            e.message
                .contains("jobs_mode=\"ftp\" (--set) is not valid: expected one of sql, api"),
            "{e}"
        );
        assert!(c.check(&settings("", &["connect_timeout=7"]), &[]).is_ok());
    }
}
