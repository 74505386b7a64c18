//! The safe side of the ABI: what a plugin author writes against.
//!
//! Implement [`Plugin`] for a type that is `Default`, then call [`crate::export_plugin!`] once
//! in the crate root. The macro exports the root module the host looks for and wraps every
//! entry point in `catch_unwind`, so a panic in a plugin becomes a failed job with the panic
//! message in the row's `result`, never an abort of the host.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use abi_stable::std_types::{RErr, ROk, ROption, RResult, RStr, RString, RVec};

use crate::abi::{
    AbiJob, AbiOutcome, AbiPluginInfo, AbiTaskInfo, Direction, HostRef, LogLevel, TableVariant,
};

/// One task a plugin owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// The `task` column value, e.g. `mariabackup`.
    pub name: String,
    /// Which way the data flows; the host validates `server`/`port` accordingly.
    pub direction: Direction,
    /// One line for `dbjobs plugins`.
    pub description: String,
}

/// What a plugin says about itself; build it with [`PluginInfo::new`] and [`PluginInfo::task`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// Short name, e.g. `xtrabackup`.
    pub name: String,
    /// The plugin's own version (usually `env!("CARGO_PKG_VERSION")`).
    pub version: String,
    /// One line for `dbjobs plugins`.
    pub description: String,
    /// The tasks it owns.
    pub tasks: Vec<TaskInfo>,
}

impl PluginInfo {
    /// A plugin with no task yet.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        PluginInfo {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            tasks: Vec::new(),
        }
    }

    /// Declare one more task this plugin owns.
    pub fn task(mut self, name: &str, direction: Direction, description: &str) -> Self {
        self.tasks.push(TaskInfo {
            name: name.to_owned(),
            direction,
            description: description.to_owned(),
        });
        self
    }

    fn into_abi(self) -> AbiPluginInfo {
        AbiPluginInfo {
            name: self.name.into(),
            version: self.version.into(),
            description: self.description.into(),
            tasks: self
                .tasks
                .into_iter()
                .map(|t| AbiTaskInfo {
                    name: t.name.into(),
                    direction: t.direction,
                    description: t.description.into(),
                })
                .collect::<RVec<_>>(),
        }
    }
}

/// A claimed job, as the plugin sees it. The host has validated the fields already: `server`
/// is a plain host name or IP address, `port` fits in 0..=65535 (an inbound job's 0 became
/// 4444).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The row's `id`.
    pub id: u64,
    /// The row's `task`.
    pub task: String,
    /// The row's `server` (replication-manager's address); `None` when NULL or empty.
    pub server: Option<String>,
    /// The row's `port`.
    pub port: u16,
    /// The layout of the jobs table.
    pub variant: TableVariant,
}

impl Job {
    fn from_abi(job: &AbiJob) -> Self {
        Job {
            id: job.id,
            task: job.task.to_string(),
            server: job.server.as_ref().map(|s| s.to_string()).into_option(),
            port: job.port,
            variant: job.variant,
        }
    }

    /// The server, or an error text naming the job, for plugins that need one.
    pub fn require_server(&self) -> Result<&str, String> {
        self.server
            .as_deref()
            .ok_or_else(|| format!("job {} ({}) has no server address", self.id, self.task))
    }
}

/// The successful end of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Text for the row's `result`.
    pub result: String,
    /// JSON text for the row's `payload` (only written in the payload variant).
    pub payload: Option<String>,
}

impl Outcome {
    /// An outcome with a result text and no payload.
    pub fn new(result: impl Into<String>) -> Self {
        Outcome {
            result: result.into(),
            payload: None,
        }
    }

    /// Attach a JSON payload.
    pub fn with_payload(mut self, json: impl Into<String>) -> Self {
        self.payload = Some(json.into());
        self
    }
}

/// The host context, as plugins use it: a thin safe wrapper over [`crate::abi::HostApi`].
///
/// It is `Sync`: helper threads of a plugin (a copy loop, a stderr reader) may call it too.
pub struct Host<'a> {
    inner: HostRef<'a>,
}

impl<'a> Host<'a> {
    /// Wrap the host reference passed to a plugin's `run`. Used by [`crate::export_plugin!`].
    #[doc(hidden)]
    pub fn from_abi(inner: HostRef<'a>) -> Self {
        Host { inner }
    }

    /// Report progress (e.g. `"1.2 GiB sent"`); the host rate-limits writes to the row.
    ///
    /// It never blocks: the host only stores the text and writes the row from a thread of its
    /// own, so a copy loop may call it on every buffer, even while a backup lock holds up
    /// writes to the job table.
    pub fn progress(&self, text: &str) {
        self.inner.progress(RStr::from(text));
    }

    /// Tell the host the listener of an inbound job is up, so it can update the row and let
    /// replication-manager connect. Call it exactly once, after binding.
    pub fn waiting(&self) -> Result<(), String> {
        self.inner.waiting().into_result().map_err(String::from)
    }

    /// Log a line through the host (the host adds job id and task).
    pub fn log(&self, level: LogLevel, text: &str) {
        self.inner.log(level, RStr::from(text));
    }

    /// Log at [`LogLevel::Info`].
    pub fn info(&self, text: &str) {
        self.log(LogLevel::Info, text);
    }

    /// Log at [`LogLevel::Warn`].
    pub fn warn(&self, text: &str) {
        self.log(LogLevel::Warn, text);
    }

    /// A setting from `[dbjobs]` or `--set`.
    pub fn setting(&self, name: &str) -> Option<String> {
        self.inner
            .setting(RStr::from(name))
            .map(String::from)
            .into_option()
    }

    /// A setting parsed as `T`, or `default` when unset; a value that does not parse is an
    /// error naming the setting.
    pub fn setting_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.setting(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("setting {name}={v:?} is not valid")),
        }
    }

    /// The 0600 option file holding the connection credentials (see
    /// [`crate::abi::HostApi::client_option_file`]).
    pub fn client_option_file(&self) -> PathBuf {
        PathBuf::from(self.inner.client_option_file().as_str())
    }

    /// Run one statement with `?` placeholders bound to `params`; rows come back as text.
    pub fn query(&self, sql: &str, params: &[&str]) -> Result<Vec<Vec<Option<String>>>, String> {
        let params: Vec<RString> = params.iter().map(|p| RString::from(*p)).collect();
        self.inner
            .query(RStr::from(sql), params.as_slice().into())
            .into_result()
            .map(|rows| {
                rows.into_iter()
                    .map(|row| {
                        row.into_iter()
                            .map(|v| v.map(String::from).into_option())
                            .collect()
                    })
                    .collect()
            })
            .map_err(String::from)
    }

    /// Run a statement and return the first column of the first row (NULL and no row give
    /// `None`).
    pub fn query_value(&self, sql: &str, params: &[&str]) -> Result<Option<String>, String> {
        Ok(self
            .query(sql, params)?
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next().flatten()))
    }

    /// True once the operator asked to stop now.
    pub fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }
}

/// A job type. Implement it for a `Default` type and export it with [`crate::export_plugin!`].
pub trait Plugin: Default + Send + Sync + 'static {
    /// Name, version, description and owned tasks. Called once when the host loads the file.
    fn info(&self) -> PluginInfo;

    /// Do the job. `Ok` marks the row succeeded with the outcome's text; `Err` marks it failed
    /// with the error text (say what failed, why, and what to do).
    fn run(&self, job: &Job, host: &Host<'_>) -> Result<Outcome, String>;
}

/// Turn a panic payload into a message.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// `info` entry point glue, used by [`crate::export_plugin!`].
#[doc(hidden)]
pub fn __info<P: Plugin>(plugin: &P) -> RResult<AbiPluginInfo, RString> {
    match catch_unwind(AssertUnwindSafe(|| plugin.info())) {
        Ok(info) => ROk(info.into_abi()),
        Err(p) => RErr(
            format!(
                "plugin panicked while describing itself: {}",
                panic_message(p)
            )
            .into(),
        ),
    }
}

/// `run` entry point glue, used by [`crate::export_plugin!`].
#[doc(hidden)]
pub fn __run<P: Plugin>(
    plugin: &P,
    job: &AbiJob,
    host: HostRef<'_>,
) -> RResult<AbiOutcome, RString> {
    let host = Host::from_abi(host);
    let result = catch_unwind(AssertUnwindSafe(|| plugin.run(&Job::from_abi(job), &host)));
    match result {
        Ok(Ok(outcome)) => ROk(AbiOutcome {
            result: outcome.result.into(),
            payload: ROption::from(outcome.payload.map(RString::from)),
        }),
        Ok(Err(e)) => RErr(e.into()),
        Err(p) => RErr(format!("plugin panicked: {}", panic_message(p)).into()),
    }
}

/// Export a [`Plugin`] type as a dbjobs plugin library.
///
/// Use it once, in the root of a `cdylib` crate: `dbjobs_sdk::export_plugin!(MyPlugin);`.
/// It exports the `abi_stable` library header under the symbol the host looks up, pointing at
/// a root module whose entry points catch panics. The plugin value is created once, with
/// `Default`, the first time the host calls in.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub mod __dbjobs_plugin_export {
            use super::*;
            use $crate::abi_stable::std_types::{RResult, RString};
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;

            fn instance() -> &'static $plugin {
                static INSTANCE: ::std::sync::OnceLock<$plugin> = ::std::sync::OnceLock::new();
                INSTANCE.get_or_init(<$plugin as ::std::default::Default>::default)
            }

            extern "C" fn info() -> RResult<$crate::abi::AbiPluginInfo, RString> {
                $crate::plugin::__info(instance())
            }

            extern "C" fn run(
                job: &$crate::abi::AbiJob,
                host: $crate::abi::HostRef<'_>,
            ) -> RResult<$crate::abi::AbiOutcome, RString> {
                $crate::plugin::__run(instance(), job, host)
            }

            fn root_module() -> $crate::abi::PluginModRef {
                $crate::abi::PluginMod { info, run }.leak_into_prefix()
            }

            extern "C" fn erased_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(root_module)
            }

            /// The library header the host reads before running anything in this file.
            #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            pub static DBJOBS_PLUGIN_HEADER: $crate::abi_stable::library::LibHeader = unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::abi::PluginModRef>(
                    erased_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            };
        }
    };
}
