//! Man pages and shell completions, generated from the CLI definition and the settings
//! declarations, so that what `--help` says, what the man page says and what the option
//! file accepts cannot drift apart (the package build writes them; `dbjobs generate`).
//!
//! `dbjobs.1` is clap_mangen's page of the command with three sections of our own:
//! SETTINGS (every `[dbjobs]` setting of the host and of the plugins loaded while
//! generating, with its type, default and documentation line), FILES and EXIT STATUS. Each
//! subcommand gets its own page (`dbjobs-run.1`, ...).

use std::path::{Path, PathBuf};

use clap_complete::Shell;
use roff::{bold, italic, roman, Roff};

use crate::error::{Error, Result};
use crate::loader::{Registry, DEFAULT_PLUGIN_DIR};
use crate::setting_catalog::SettingCatalog;
use crate::settings_doc::type_text;

/// The shells completions are written for, with the file name each expects.
pub const COMPLETION_SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Write `dbjobs.1` and one page per visible subcommand into `dir`; returns the files.
pub fn write_man_pages(
    cli: clap::Command,
    registry: &Registry,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let io = |e: std::io::Error| {
        Error::new(format!(
            "cannot write man pages into {}: {e}",
            dir.display()
        ))
    };
    clap_mangen::generate_to(cli.clone(), dir).map_err(io)?;
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    let main_page = dir.join("dbjobs.1");
    let mut text = Vec::new();
    clap_mangen::Man::new(cli).render(&mut text).map_err(io)?;
    text.extend_from_slice(extra_sections(registry).as_bytes());
    std::fs::write(&main_page, text).map_err(io)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}

/// Write the bash, zsh and fish completions into `dir`; returns the files.
pub fn write_completions(mut cli: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    COMPLETION_SHELLS
        .iter()
        .map(|shell| {
            clap_complete::generate_to(*shell, &mut cli, "dbjobs", dir).map_err(|e| {
                Error::new(format!(
                    "cannot write the {shell} completion into {}: {e}",
                    dir.display()
                ))
            })
        })
        .collect()
}

/// SETTINGS, FILES and EXIT STATUS, in roff.
fn extra_sections(registry: &Registry) -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["SETTINGS"]);
    roff.text([roman(
        "Settings live in the [dbjobs] section of the option file given to --defaults-file \
         (the package installs an annotated /etc/dbjobs/dbjobs.cnf) and can be overridden \
         with --set name=value. Credentials live in [client]: user, password, socket or \
         host and port; there is no password flag.",
    )]);
    settings_list(&mut roff, &SettingCatalog::of(registry));
    roff.control("SH", ["FILES"]);
    for (file, what) in [
        ("/etc/dbjobs/dbjobs.cnf", "the option file of the packaged units (mode 0600)."),
        (DEFAULT_PLUGIN_DIR, "plugin libraries, always read; a directory or file others can write is refused."),
        ("/var/lib/dbjobs", "the default state_dir (mode 0700)."),
        ("dbjobs.service, dbjobs-run.timer", "the daemon, and the cron mode (a pass every minute)."),
        ("/usr/share/dbjobs/recipes", "stand-ins for replication-manager's job script (SSH mode) and the jobs container launcher."),
    ] {
        roff.control("TP", [] as [&str; 0]);
        roff.text([bold(file)]);
        roff.text([roman(what)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "0 when every job succeeded or none was pending (doctor: no check failed); 1 when a \
         job failed (doctor: a check failed); 2 on a configuration or connection error.",
    )]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "dbjobs doctor checks a node before replication-manager's first job on it.",
    )]);
    roff.to_roff()
}

/// One `.TP` entry per declared setting: `name` (type, default; who declares it) and its
/// documentation line, as `dbjobs settings` lists them.
fn settings_list(roff: &mut Roff, catalog: &SettingCatalog) {
    for entry in catalog.entries() {
        let s = &entry.setting;
        let default = if s.default.is_empty() {
            "empty".to_string()
        } else {
            s.default.clone()
        };
        roff.control("TP", [] as [&str; 0]);
        roff.text([
            bold(s.name.as_str()),
            roman(" ("),
            italic(type_text(s)),
            roman(format!(
                ", default {default}; declared by {})",
                entry.declared_by.join(", ")
            )),
        ]);
        roff.text([roman(s.doc.as_str())]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::HostSettings;

    #[test]
    fn the_extra_sections_document_every_host_setting() {
        let text = extra_sections(&Registry::default());
        for decl in HostSettings::DECLS {
            assert!(text.contains(decl.name), "{} missing", decl.name);
        }
        assert!(
            text.contains(".SH SETTINGS") && text.contains(".SH \"EXIT STATUS\""),
            "{text}"
        );
    }
}
