//! Finding and loading plugin libraries.
//!
//! Loading a shared library runs code as the user of dbjobs (often root), so before a file is
//! even opened the loader checks, like sshd does for its keys, that neither the directory nor
//! the file can be written by anyone but root or the current user. Then, like PostgreSQL's
//! magic block, it checks the library's header before calling anything in it: the
//! `abi_stable` header, the root module name, the SDK version the plugin was built against
//! (any version of the host's series: 0.2.0 and 0.2.1 plugins in a 0.2.1 host), and the
//! layout of every type of the ABI, the older side's a prefix of the newer's (see
//! `sdk/abi/README.md` for how the ABI grows). Only then is the plugin asked for its tasks.
//!
//! Each library is loaded through its own header (`lib_header_from_path` +
//! `init_root_module`), not through `RootModule::load_from_file`, which caches one module per
//! root-module type and would silently hand back the first plugin for every later file.
//!
//! `dbjobs run` and `dbjobs daemon` skip the layout check of a file that passed it before and
//! has not changed since ([`crate::layout_cache`]): it is most of an idle pass.
//!
//! A file that fails any check is *refused* with one log line naming the file and the reason;
//! the other files still load.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use abi_stable::abi_stability::abi_checking::check_layout_compatibility;
use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError, RootModule};
use abi_stable::sabi_types::{VersionNumber, VersionStrings};
use abi_stable::StableAbi;
use dbjobs_sdk::abi::{PluginModRef, ROOT_MODULE_NAME};
use dbjobs_sdk::{Direction, JobError, SettingDecl, SettingKind, SettingType, SDK_VERSION};

use crate::layout_cache::LayoutCache;

/// Where packaged plugins live.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/dbjobs/plugins";

/// One task of a loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The `task` column value.
    pub name: String,
    /// Which way the data flows.
    pub direction: Direction,
    /// One line for people.
    pub description: String,
    /// Whether it replaces the server's data (refused over a node left partial).
    pub replaces_data: bool,
}

/// A setting a plugin declared (see `dbjobs_sdk::settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredSetting {
    /// The name in `[dbjobs]`.
    pub name: String,
    /// The type, with its choices.
    pub kind: SettingKind,
    /// The allowed values of a choice.
    pub choices: Vec<String>,
    /// The default, as written in the option file.
    pub default: String,
    /// One line of documentation.
    pub doc: String,
}

impl DeclaredSetting {
    /// From a declaration of the host's own (same shape as a plugin's).
    pub fn from_decl(d: &SettingDecl) -> Self {
        DeclaredSetting {
            name: d.name.to_string(),
            kind: d.ty.kind,
            choices: d.ty.choices.iter().map(|c| c.to_string()).collect(),
            default: d.default.to_string(),
            doc: d.doc_line(),
        }
    }

    /// Check a value's text against the declared type.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let choices: Vec<&str> = self.choices.iter().map(String::as_str).collect();
        match self.kind {
            SettingKind::Choice
                if !choices.iter().any(|c| c.eq_ignore_ascii_case(value.trim())) =>
            {
                Err(format!("expected one of {}", choices.join(", ")))
            }
            SettingKind::Choice => Ok(()),
            kind => SettingType::of(kind).check(value),
        }
    }
}

/// A plugin that passed every check.
pub struct LoadedPlugin {
    /// The library file.
    pub file: PathBuf,
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The SDK version it was built against.
    pub sdk_version: String,
    /// One line for people.
    pub description: String,
    /// The tasks it owns.
    pub tasks: Vec<Task>,
    /// The settings it reads.
    pub settings: Vec<DeclaredSetting>,
    /// Its root module.
    pub module: PluginModRef,
}

/// A file that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The file (or directory).
    pub file: PathBuf,
    /// Why, in a sentence that says what to do.
    pub reason: String,
}

/// Everything found in the plugin directories.
#[derive(Default)]
pub struct Registry {
    /// Loaded plugins, in load order.
    pub plugins: Vec<LoadedPlugin>,
    /// Refused files.
    pub refused: Vec<Refused>,
    /// task name -> index into `plugins`.
    tasks: BTreeMap<String, usize>,
}

impl Registry {
    /// The plugin that owns `task`, and the task.
    pub fn owner(&self, task: &str) -> Option<(&LoadedPlugin, &Task)> {
        let plugin = &self.plugins[*self.tasks.get(task)?];
        let t = plugin.tasks.iter().find(|t| t.name == task)?;
        Some((plugin, t))
    }

    /// Every owned task name, sorted.
    pub fn task_names(&self) -> impl Iterator<Item = &str> {
        self.tasks.keys().map(String::as_str)
    }

    /// Load every `*.so` of each directory, in name order. A missing `DEFAULT_PLUGIN_DIR` is
    /// fine (plugins may all come from `--plugin-dir`); a missing explicit directory is refused.
    pub fn load(dirs: &[PathBuf]) -> Registry {
        Self::load_with(dirs, &LayoutCache::none())
    }

    /// [`Registry::load`], skipping abi_stable's layout check for the files `cache` says
    /// passed it before, unchanged ([`crate::layout_cache`]); the caller saves the cache.
    pub fn load_with(dirs: &[PathBuf], cache: &LayoutCache) -> Registry {
        let mut reg = Registry::default();
        let mut files = Vec::new();
        for dir in dirs {
            if !dir.exists() && dir == Path::new(DEFAULT_PLUGIN_DIR) {
                log::debug!("default plugin directory {} does not exist", dir.display());
                continue;
            }
            if let Err(reason) = check_owner_and_mode(dir) {
                reg.refuse(dir, reason);
                continue;
            }
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut in_dir: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|e| e == "so"))
                        .collect();
                    in_dir.sort();
                    files.extend(in_dir);
                }
                Err(e) => reg.refuse(dir, format!("cannot read the directory: {e}")),
            }
        }
        // Opening a library is dominated by abi_stable's layout check (about 1.2 million
        // instructions per plugin, 80 % of an idle cron pass), so the files are opened on all
        // cores; they are registered afterwards in file order, so the first file still wins a
        // task claimed twice.
        for (file, opened) in files.iter().zip(open_all(&files, cache)) {
            if let Err(reason) = opened.and_then(|plugin| reg.register(plugin)) {
                reg.refuse(file, reason);
            }
        }
        reg
    }

    fn refuse(&mut self, file: &Path, reason: String) {
        log::warn!("plugin {} refused: {reason}", file.display());
        self.refused.push(Refused {
            file: file.to_path_buf(),
            reason,
        });
    }

    fn register(&mut self, plugin: LoadedPlugin) -> Result<(), String> {
        for task in &plugin.tasks {
            if let Some(&other) = self.tasks.get(&task.name) {
                return Err(format!(
                    "task {:?} is already owned by {} ({}); remove one of the two files",
                    task.name,
                    self.plugins[other].name,
                    self.plugins[other].file.display()
                ));
            }
        }
        let index = self.plugins.len();
        for task in &plugin.tasks {
            self.tasks.insert(task.name.clone(), index);
        }
        log::debug!(
            "loaded plugin {} {} from {} (tasks: {})",
            plugin.name,
            plugin.version,
            plugin.file.display(),
            plugin
                .tasks
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.plugins.push(plugin);
        Ok(())
    }
}

/// Check and open every file, on as many threads as there are cores (the calling one
/// included), each taking the next file when it is done with one; results in file order.
///
/// Taking files one at a time rather than in fixed halves keeps both cores busy until the
/// last file (the plugins differ in size, and the queue session connects on one core at the
/// same time). A panic while opening a file refuses that file only.
fn open_all(files: &[PathBuf], cache: &LayoutCache) -> Vec<Result<LoadedPlugin, String>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len());
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<LoadedPlugin, String>>>> =
        files.iter().map(|_| Mutex::new(None)).collect();
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(file) = files.get(i) else { break };
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_owner_and_mode(file).and_then(|()| open_plugin(file, cache))
        }))
        .unwrap_or_else(|_| Err("loading panicked".to_string()));
        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(opened);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        work();
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err("loading panicked".to_string()))
        })
        .collect()
}

/// Refuse a path that an unprivileged user could have written: owned by someone other than
/// root or us, or writable by group or others.
pub fn check_owner_and_mode(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "owned by uid {}, not by root or the user running dbjobs (uid {me}); chown it",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o}); anyone who can write there could run code as this user: chmod go-w {}",
            mode & 0o7777,
            path.display()
        ));
    }
    Ok(())
}

/// Open one library and run the checks of the module docs.
fn open_plugin(file: &Path, cache: &LayoutCache) -> Result<LoadedPlugin, String> {
    let header = lib_header_from_path(file).map_err(|e| match e {
        LibraryError::OpenError { err, .. } => format!("not a loadable shared library: {err}"),
        LibraryError::GetSymbolError { .. } => {
            "not a dbjobs plugin: it exports no abi_stable root module (build it with dbjobs_sdk::export_plugin!)".to_string()
        }
        LibraryError::InvalidAbiHeader(found) => format!(
            "built with an incompatible abi_stable ({found:?}); rebuild it against dbjobs-sdk {SDK_VERSION}"
        ),
        other => first_line(&other.to_string()),
    })?;
    let name = header.root_mod_consts().name();
    if name.as_str() != ROOT_MODULE_NAME {
        return Err(format!(
            "not a dbjobs plugin: its abi_stable root module is {:?}, not {ROOT_MODULE_NAME:?}",
            name.as_str()
        ));
    }
    let plugin_sdk = header.version_strings().version.as_str().to_string();
    let age = sdk_age(header.version_strings()).map_err(refusal)?;
    if !cache.passed_before(file) {
        check_layout(header, age, &plugin_sdk).map_err(refusal)?;
        cache.record(file);
    }
    // SAFETY: the layout of the library's root module and of every type reachable from it was
    // checked against this host's by abi_stable's checker (`check_layout`), now or, for this
    // very file unchanged, by an earlier pass of this very dbjobs binary (`LayoutCache`).
    let module = unsafe { header.init_root_module_with_unchecked_layout::<PluginModRef>() }
        .map_err(|e| match e {
            LibraryError::IncompatibleVersionNumber { .. } => refusal(version_refusal(&plugin_sdk)),
            other => first_line(&other.to_string()),
        })?;
    let info = (module.info())()
        .into_result()
        .map_err(|e| format!("plugin refused to describe itself: {e}"))?;
    let tasks = declared_tasks(&info)?;
    let settings = info
        .settings()
        .iter()
        .map(|s| DeclaredSetting {
            name: s.name().to_string(),
            kind: s.kind().as_enum().copied().unwrap_or(SettingKind::Text),
            choices: s.choices().iter().map(|c| c.to_string()).collect(),
            default: s.default().to_string(),
            doc: s.doc().to_string(),
        })
        .collect();
    Ok(LoadedPlugin {
        file: file.to_path_buf(),
        name: info.name().to_string(),
        version: info.version().to_string(),
        sdk_version: plugin_sdk,
        description: info.description().to_string(),
        tasks,
        settings,
        module,
    })
}

/// Where a plugin's SDK stands relative to the host's, within one compatible series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SdkAge {
    /// Built against this host's SDK version or an earlier one of the series (0.2.0 in a
    /// 0.2.1 host): its layouts must be a prefix of the host's.
    NotNewer,
    /// Built against a later version of the series (0.2.2 in a 0.2.1 host): the host's
    /// layouts must be a prefix of the plugin's.
    Newer,
}

/// The host's own SDK version.
fn host_sdk() -> VersionNumber {
    VersionNumber::new(<PluginModRef as RootModule>::VERSION_STRINGS)
        .expect("the SDK's own version parses")
}

/// Whether a plugin built against dbjobs-sdk `plugin_sdk` can load into this host at all:
/// the same major version, or the same minor version while the SDK is 0.x (semver's rule,
/// which the ABI's growth rules follow). Not string equality: 0.2.0 and 0.2.1 plugins both
/// load into a 0.2.1 host, when their layouts pass [`check_layout`].
fn sdk_age(plugin_sdk: VersionStrings) -> Result<SdkAge, JobError> {
    let theirs =
        VersionNumber::new(plugin_sdk).map_err(|_| version_refusal(plugin_sdk.version.as_str()))?;
    let plugin_sdk = plugin_sdk.version.as_str();
    let ours = host_sdk();
    let compatible = if ours.major == 0 {
        theirs.major == 0 && theirs.minor == ours.minor
    } else {
        theirs.major == ours.major
    };
    if !compatible {
        return Err(version_refusal(plugin_sdk));
    }
    let theirs = (theirs.minor, theirs.patch);
    Ok(if theirs > (ours.minor, ours.patch) {
        SdkAge::Newer
    } else {
        SdkAge::NotNewer
    })
}

/// The refusal of a plugin built against an SDK of another series.
fn version_refusal(plugin_sdk: &str) -> JobError {
    JobError::incompatible(format!(
        "built against dbjobs-sdk {plugin_sdk}, but this dbjobs host uses dbjobs-sdk {SDK_VERSION}"
    ))
    .with_hint(format!(
        "rebuild the plugin against dbjobs-sdk {} (or use a dbjobs host for {plugin_sdk})",
        compatible_range()
    ))
}

/// abi_stable's layout check of the library's root module and of every type reachable from
/// it (the job, the host context, the infos), with the older side as the interface.
///
/// abi_stable lets the *implementation* have more fields in a prefix type, more variants in
/// a non-exhaustive enum and more methods in a `sabi_trait` vtable than the *interface*,
/// never fewer. Within a series the ABI only grows (`sdk/abi/README.md`), so whichever side
/// was built against the older version must see a prefix of the other: a 0.2.0 plugin in a
/// 0.2.1 host is checked as the interface of the host's layout (the host then finds its
/// `recover` missing and the plugin never sees `AbiJob::source`); a 0.2.2 plugin in a 0.2.1
/// host the other way round, which is how abi_stable itself checks a library.
fn check_layout(header: &LibHeader, age: SdkAge, plugin_sdk: &str) -> Result<(), JobError> {
    let Some(theirs) = header.layout() else {
        return Err(JobError::incompatible(
            "it exports no type layout to check (abi_stable's unsafe_no_layout_constant)",
        )
        .with_hint("build it with dbjobs_sdk::export_plugin!"));
    };
    let ours = <PluginModRef as StableAbi>::LAYOUT;
    let (interface, implementation) = match age {
        SdkAge::NotNewer => (theirs, ours),
        SdkAge::Newer => (ours, theirs),
    };
    check_layout_compatibility(interface, implementation).map_err(|report| {
        let report = report.to_string();
        log::debug!("abi_stable's layout report: {report}");
        JobError::incompatible(format!(
            "its ABI layout does not match dbjobs-sdk {SDK_VERSION} although it claims version {plugin_sdk}: {}",
            layout_difference(&report, age)
        ))
        .with_hint(format!(
            "rebuild it against an unmodified dbjobs-sdk {}",
            compatible_range()
        ))
    })
}

/// A refusal as the registry records it: what and, after ` - hint: `, what to do.
fn refusal(e: JobError) -> String {
    e.to_string()
}

/// The tasks a plugin declares, each checked to be a usable task name with a direction this
/// host knows.
fn declared_tasks(info: &dbjobs_sdk::abi::AbiPluginInfoRef) -> Result<Vec<Task>, String> {
    let mut tasks = Vec::new();
    for t in info.tasks().iter() {
        let name = t.name().to_string();
        if name.is_empty()
            || name.len() > 20
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "declares the task {name:?}, which cannot be a task name (1 to 20 letters, digits or _)"
            ));
        }
        if tasks.iter().any(|x: &Task| x.name == name) {
            return Err(format!("declares the task {name:?} twice"));
        }
        let direction = *t.direction().as_enum().map_err(|_| {
            format!(
                "declares the task {name:?} with a direction this host (dbjobs-sdk {SDK_VERSION}) does not know; use a newer dbjobs host"
            )
        })?;
        tasks.push(Task {
            name,
            direction,
            description: t.description().to_string(),
            replaces_data: t.replaces_data(),
        });
    }
    if tasks.is_empty() {
        return Err("declares no task".into());
    }
    Ok(tasks)
}

/// `0.1.x` for SDK 0.1.0; `1.x` for 1.2.3.
fn compatible_range() -> String {
    let v = host_sdk();
    if v.major == 0 {
        format!("0.{}.x", v.minor)
    } else {
        format!("{}.x", v.major)
    }
}

/// The innermost type that differs in abi_stable's layout report ("Compared <this>: ... To
/// <other>: ...", the interface first, see [`check_layout`]), with the crate each side comes
/// from: the report itself is a page long.
fn layout_difference(report: &str, age: SdkAge) -> String {
    let Some((interface, implementation)) = report.split_once("To <other>:") else {
        return first_line(report);
    };
    let (ours, theirs) = match age {
        SdkAge::NotNewer => (implementation, interface),
        SdkAge::Newer => (interface, implementation),
    };
    let facts = |half: &str, key: &str| -> Vec<String> {
        half.lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix(key))
            .map(|v| {
                v.split("Tag:")
                    .next()
                    .unwrap_or(v)
                    .replace("' version:'", " ")
                    .replace('\'', "")
                    .trim()
                    .to_string()
            })
            .collect()
    };
    let (our_types, their_types) = (facts(ours, "type:"), facts(theirs, "type:"));
    let (our_pkgs, their_pkgs) = (facts(ours, "package:"), facts(theirs, "package:"));
    let differs = our_types
        .iter()
        .zip(&their_types)
        .rposition(|(a, b)| a != b)
        .unwrap_or(0);
    match (our_types.get(differs), their_types.get(differs)) {
        (Some(a), Some(b)) => format!(
            "the host expects `{a}` ({}), the library has `{b}` ({})",
            our_pkgs.get(differs).map(String::as_str).unwrap_or("?"),
            their_pkgs.get(differs).map(String::as_str).unwrap_or("?")
        ),
        _ => first_line(report),
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_owner_and_mode(dir.path()).is_ok());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
        let err = check_owner_and_mode(dir.path()).unwrap_err();
        assert!(err.contains("writable by group or others"), "{err}");
    }

    #[test]
    fn range_names_the_minor_series() {
        assert!(compatible_range().starts_with("0."));
    }

    #[test]
    fn every_version_of_the_series_loads_and_no_other() {
        let ours = host_sdk();
        assert_eq!(ours.major, 0, "update this test for SDK 1.x");
        let v = |s: &'static str| sdk_age(VersionStrings::new(s));
        assert_eq!(v(SDK_VERSION), Ok(SdkAge::NotNewer));
        let series = Box::leak(format!("0.{}.0", ours.minor).into_boxed_str());
        assert_eq!(v(series), Ok(SdkAge::NotNewer));
        let later = Box::leak(format!("0.{}.{}", ours.minor, ours.patch + 1).into_boxed_str());
        assert_eq!(v(later), Ok(SdkAge::Newer));
        for other in ["0.1.0", "0.99.0", "1.0.0", "not a version"] {
            let e = v(other).unwrap_err();
            assert!(
                e.message.contains(other) && e.message.contains(SDK_VERSION),
                "{e}"
            );
            assert!(e.hint.unwrap().contains(&compatible_range()));
        }
    }
}
