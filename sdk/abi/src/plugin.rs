//! The safe side of the ABI: what a plugin author writes against.
//!
//! Implement [`Plugin`] for a type that is `Default`, then call [`crate::export_plugin!`] once
//! in the crate root. The macro exports the root module the host looks for and wraps every
//! entry point in `catch_unwind`, so a panic in a plugin becomes a failed job
//! ([`ErrorKind::Panic`]) with the panic message in the row's `result`, never an abort of the
//! host.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use abi_stable::prefix_type::{PrefixTypeTrait, WithMetadata};
use abi_stable::std_types::{RErr, ROk, ROption, RResult, RSlice, RStr, RString, RVec};

use crate::abi::{
    AbiJob, AbiJobError, AbiJobRef, AbiOutcome, AbiPluginInfo, AbiPluginInfoRef, AbiRecoveredJob,
    AbiSettingInfo, AbiSettingInfoRef, AbiTaskInfo, AbiTaskInfoRef, Direction, Direction_NE,
    HostRef, JobSource, JobSource_NE, LogLevel, LogLevel_NE, SettingKind_NE, TableVariant,
    TableVariant_NE,
};
use crate::error::{ErrorKind, JobError};
use crate::settings::{SettingDecl, SettingSource};

/// One task a plugin owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// The `task` column value, e.g. `mariabackup`.
    pub name: String,
    /// Which way the data flows; the host validates `server`/`port` accordingly.
    pub direction: Direction,
    /// One line for `dbjobs plugins`.
    pub description: String,
    /// Whether the task replaces the server's data (reseed, flashback): the host refuses it
    /// over a node an earlier restore left partial.
    pub replaces_data: bool,
}

/// What a plugin says about itself; build it with [`PluginInfo::new`], [`PluginInfo::task`]
/// and [`PluginInfo::settings`].
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
    /// The settings it reads (from [`crate::declare_settings!`] structs' `DECLS`).
    pub settings: Vec<SettingDecl>,
}

impl PluginInfo {
    /// A plugin with no task yet.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        PluginInfo {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            tasks: Vec::new(),
            settings: Vec::new(),
        }
    }

    /// Declare one more task this plugin owns.
    pub fn task(mut self, name: &str, direction: Direction, description: &str) -> Self {
        self.tasks.push(TaskInfo {
            name: name.to_owned(),
            direction,
            description: description.to_owned(),
            replaces_data: false,
        });
        self
    }

    /// Declare one more task that replaces the server's data (a restore).
    pub fn restore_task(mut self, name: &str, direction: Direction, description: &str) -> Self {
        self = self.task(name, direction, description);
        if let Some(t) = self.tasks.last_mut() {
            t.replaces_data = true;
        }
        self
    }

    /// Declare settings the plugin reads; a name declared twice is kept once.
    pub fn settings(mut self, decls: &[SettingDecl]) -> Self {
        for d in decls {
            if !self.settings.iter().any(|s| s.name == d.name) {
                self.settings.push(*d);
            }
        }
        self
    }

    /// The ABI form, built once and kept for the life of the process: the host reads it
    /// through `'static` references (libraries are never unloaded).
    fn leak_into_abi(self) -> AbiPluginInfoRef {
        let tasks: Vec<AbiTaskInfoRef> = self
            .tasks
            .into_iter()
            .map(|t| {
                AbiTaskInfo {
                    name: leak_str(t.name),
                    direction: Box::leak(Box::new(Direction_NE::new(t.direction))),
                    description: leak_str(t.description),
                    replaces_data: t.replaces_data,
                }
                .leak_into_prefix()
            })
            .collect();
        let settings: Vec<AbiSettingInfoRef> = self
            .settings
            .into_iter()
            .map(|s| {
                let choices: Vec<RStr<'static>> =
                    s.ty.choices.iter().map(|c| RStr::from_str(c)).collect();
                AbiSettingInfo {
                    name: RStr::from_str(s.name),
                    kind: Box::leak(Box::new(SettingKind_NE::new(s.ty.kind))),
                    choices: leak_slice(choices),
                    default: RStr::from_str(s.default),
                    doc: leak_str(s.doc_line()),
                }
                .leak_into_prefix()
            })
            .collect();
        AbiPluginInfo {
            name: leak_str(self.name),
            version: leak_str(self.version),
            description: leak_str(self.description),
            tasks: leak_slice(tasks),
            settings: leak_slice(settings),
        }
        .leak_into_prefix()
    }
}

fn leak_str(s: String) -> RStr<'static> {
    RStr::from_str(Box::leak(s.into_boxed_str()))
}

fn leak_slice<T>(v: Vec<T>) -> RSlice<'static, T> {
    RSlice::from_slice(Box::leak(v.into_boxed_slice()))
}

/// A claimed job, as the plugin sees it. The host has validated the fields already: `server`
/// is a plain host name or IP address, `port` fits in 0..=65535 (an inbound job's 0 became
/// 4444).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The job's id (the row's `id`).
    pub id: u64,
    /// The task.
    pub task: String,
    /// replication-manager's address; `None` when NULL or empty.
    pub server: Option<String>,
    /// The port.
    pub port: u16,
    /// The layout of the jobs table ([`TableVariant::Payload`] for an API-mode job).
    pub variant: TableVariant,
    /// Where the job came from.
    pub source: JobSource,
}

impl Job {
    /// Copy the host's job. A variant or source this SDK does not know (a newer host) is an
    /// [`ErrorKind::Incompatible`] error: the plugin cannot know what it expects. A job from a
    /// 0.2.0 host, which does not send the source, comes from the table (its only source).
    pub fn from_abi(job: AbiJobRef<'_>) -> Result<Self, JobError> {
        let unknown = |what: &str| {
            JobError::incompatible(format!(
                "the host reports a {what} this plugin does not know"
            ))
            .with_hint("rebuild the plugin against the host's dbjobs-sdk")
        };
        let variant = *job
            .variant()
            .as_enum()
            .map_err(|_| unknown("job-table layout"))?;
        let source = match job.source() {
            Some(source) => *source.as_enum().map_err(|_| unknown("job source"))?,
            None => JobSource::Table,
        };
        Ok(Job {
            id: job.id(),
            task: job.task().to_string(),
            server: job.server().map(|s| s.to_string()).into_option(),
            port: job.port(),
            variant,
            source,
        })
    }

    /// Lend the ABI form of this job to `f` (the host's side of a `run` call). The form lives
    /// on the stack for the duration of `f` only; the higher-ranked lifetime keeps `f` from
    /// keeping it.
    pub fn with_abi<R>(&self, f: impl for<'x> FnOnce(AbiJobRef<'x>) -> R) -> R {
        let variant = TableVariant_NE::new(self.variant);
        let source = JobSource_NE::new(self.source);
        let with_metadata = WithMetadata::new(AbiJob {
            id: self.id,
            task: RStr::from_str(&self.task),
            server: self.server.as_deref().map(RStr::from_str).into(),
            port: self.port,
            variant: &variant,
            source: &source,
        });
        // SAFETY: `with_metadata` outlives every use of the reference: `f` cannot return or
        // store it (its lifetime is higher-ranked), and the strings it borrows outlive `f`.
        let job = AbiJobRef(unsafe { with_metadata.as_prefix() });
        f(job)
    }

    /// The server, or an error naming the job, for plugins that need one.
    pub fn require_server(&self) -> Result<&str, JobError> {
        self.server.as_deref().ok_or_else(|| {
            JobError::invalid_job(format!(
                "job {} ({}) has no server address",
                self.id, self.task
            ))
        })
    }

    /// Whether replication-manager applies the replication position itself (the payload
    /// variant and API mode), so a restore only reports it.
    pub fn manager_applies_position(&self) -> bool {
        self.variant == TableVariant::Payload || self.source == JobSource::Api
    }
}

/// The successful end of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Text for the row's `result`.
    pub result: String,
    /// JSON text for the row's `payload` (payload variant) or an API-mode report.
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
    pub fn waiting(&self) -> Result<(), JobError> {
        self.inner
            .waiting()
            .into_result()
            .map_err(|e| JobError::new(ErrorKind::InvalidJob, e.to_string()))
    }

    /// Log a line through the host (the host adds job id and task).
    pub fn log(&self, level: LogLevel, text: &str) {
        self.inner.log(LogLevel_NE::new(level), RStr::from(text));
    }

    /// Log at [`LogLevel::Info`].
    pub fn info(&self, text: &str) {
        self.log(LogLevel::Info, text);
    }

    /// Log at [`LogLevel::Warn`].
    pub fn warn(&self, text: &str) {
        self.log(LogLevel::Warn, text);
    }

    /// Log at [`LogLevel::Debug`].
    pub fn debug(&self, text: &str) {
        self.log(LogLevel::Debug, text);
    }

    /// The raw text of a setting from `[dbjobs]` or `--set`. Plugins read their settings
    /// through a [`crate::declare_settings!`] struct instead, which knows type and default.
    pub fn setting(&self, name: &str) -> Option<String> {
        self.inner
            .setting(RStr::from(name))
            .map(String::from)
            .into_option()
    }

    /// The 0600 option file holding the connection credentials (see
    /// [`crate::abi::HostApi::client_option_file`]).
    pub fn client_option_file(&self) -> Result<PathBuf, JobError> {
        let path = self.inner.client_option_file();
        if path.is_empty() {
            return Err(JobError::config(
                "the host could not write the client option file for the tools",
            )
            .with_hint("see the dbjobs log for why (is the temporary directory writable?)"));
        }
        Ok(PathBuf::from(path.as_str()))
    }

    /// Run one statement with `?` placeholders bound to `params`; rows come back as text.
    pub fn query(&self, sql: &str, params: &[&str]) -> Result<Vec<Vec<Option<String>>>, JobError> {
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
            .map_err(|e| JobError::sql(e.to_string()))
    }

    /// Run a statement and return the first column of the first row (NULL and no row give
    /// `None`).
    pub fn query_value(&self, sql: &str, params: &[&str]) -> Result<Option<String>, JobError> {
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

impl SettingSource for Host<'_> {
    fn raw_setting(&self, name: &str) -> Option<String> {
        self.setting(name)
    }
}

/// A job type. Implement it for a `Default` type and export it with [`crate::export_plugin!`].
pub trait Plugin: Default + Send + Sync + 'static {
    /// Name, version, description, owned tasks and settings. Called once when the host loads
    /// the file.
    fn info(&self) -> PluginInfo;

    /// Do the job. `Ok` marks the row succeeded with the outcome's text; `Err` marks it failed
    /// with the error's kind, state, message and hint (say what failed, why, and what to do).
    fn run(&self, job: &Job, host: &Host<'_>) -> Result<Outcome, JobError>;

    /// Finish or roll back what a run that died left behind (a journal, a shadow database, a
    /// temporary server), and say how each dead job ended. The default does nothing.
    ///
    /// The host calls it at every `dbjobs run` and `dbjobs daemon` start, before it claims any
    /// job. `host` is a context of its own: its log lines are tagged `recovery`, settings, the
    /// option file and [`Host::query`] work as in a job, [`Host::progress`] does nothing and
    /// [`Host::waiting`] fails (there is no job). Another dbjobs process may be running a job
    /// of the same task right now: leave alone what a live run owns (e.g. a journal whose
    /// lock is held).
    ///
    /// Each returned `(job id, error)` is the final outcome of a dead job; the host writes it
    /// to that job's row if the row is still unfinished (in place of the generic
    /// "abandoned"), so say what the recovery did and the state it left the server in
    /// ([`JobError::with_state`]): a [`crate::ServerState::Partial`] marks the node, and the
    /// host refuses restores until an operator clears it. An `Err` is logged as an error and
    /// the host goes on: one plugin's failed recovery does not stop the jobs of the others.
    fn recover(&self, host: &Host<'_>) -> Result<Vec<(u64, JobError)>, JobError> {
        let _ = host;
        Ok(Vec::new())
    }
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

/// `info` entry point glue, used by [`crate::export_plugin!`]: the ABI form is built on the
/// first call and the same one returned afterwards.
#[doc(hidden)]
pub fn __info<P: Plugin>(
    plugin: &P,
    built: &std::sync::OnceLock<AbiPluginInfoRef>,
) -> RResult<AbiPluginInfoRef, RString> {
    if let Some(info) = built.get() {
        return ROk(*info);
    }
    match catch_unwind(AssertUnwindSafe(|| plugin.info())) {
        Ok(info) => ROk(*built.get_or_init(|| info.leak_into_abi())),
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
    job: AbiJobRef<'_>,
    host: HostRef<'_>,
) -> RResult<AbiOutcome, AbiJobError> {
    let host = Host::from_abi(host);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let job = Job::from_abi(job)?;
        plugin.run(&job, &host)
    }));
    match result {
        Ok(Ok(outcome)) => ROk(AbiOutcome {
            result: outcome.result.into(),
            payload: ROption::from(outcome.payload.map(RString::from)),
        }),
        Ok(Err(e)) => RErr(e.into_abi()),
        Err(p) => RErr(
            JobError::new(
                ErrorKind::Panic,
                format!("plugin panicked: {}", panic_message(p)),
            )
            .into_abi(),
        ),
    }
}

/// `recover` entry point glue, used by [`crate::export_plugin!`]: a panic becomes an
/// [`ErrorKind::Panic`] error.
#[doc(hidden)]
pub fn __recover<P: Plugin>(
    plugin: &P,
    host: HostRef<'_>,
) -> RResult<RVec<AbiRecoveredJob>, AbiJobError> {
    let host = Host::from_abi(host);
    match catch_unwind(AssertUnwindSafe(|| plugin.recover(&host))) {
        Ok(Ok(dead)) => ROk(dead
            .into_iter()
            .map(|(id, error)| AbiRecoveredJob {
                id,
                error: error.into_abi(),
            })
            .collect()),
        Ok(Err(e)) => RErr(e.into_abi()),
        Err(p) => RErr(
            JobError::new(
                ErrorKind::Panic,
                format!("plugin panicked while recovering: {}", panic_message(p)),
            )
            .into_abi(),
        ),
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
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;
            use $crate::abi_stable::std_types::{RResult, RString};

            fn instance() -> &'static $plugin {
                static INSTANCE: ::std::sync::OnceLock<$plugin> = ::std::sync::OnceLock::new();
                INSTANCE.get_or_init(<$plugin as ::std::default::Default>::default)
            }

            extern "C" fn info() -> RResult<$crate::abi::AbiPluginInfoRef, RString> {
                static BUILT: ::std::sync::OnceLock<$crate::abi::AbiPluginInfoRef> =
                    ::std::sync::OnceLock::new();
                $crate::plugin::__info(instance(), &BUILT)
            }

            extern "C" fn run<'a>(
                job: $crate::abi::AbiJobRef<'a>,
                host: $crate::abi::HostRef<'a>,
            ) -> RResult<$crate::abi::AbiOutcome, $crate::abi::AbiJobError> {
                $crate::plugin::__run(instance(), job, host)
            }

            extern "C" fn recover(
                host: $crate::abi::HostRef<'_>,
            ) -> RResult<
                $crate::abi_stable::std_types::RVec<$crate::abi::AbiRecoveredJob>,
                $crate::abi::AbiJobError,
            > {
                $crate::plugin::__recover(instance(), host)
            }

            fn root_module() -> $crate::abi::PluginModRef {
                $crate::abi::PluginMod { info, run, recover }.leak_into_prefix()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_survives_the_abi() {
        let job = Job {
            id: 7,
            task: "reseedmariabackup".into(),
            server: Some("10.0.0.5".into()),
            port: 4444,
            variant: TableVariant::State,
            source: JobSource::Api,
        };
        let back = job.with_abi(|abi| Job::from_abi(abi).unwrap());
        assert_eq!(back, job);
        assert!(
            back.manager_applies_position(),
            "an API job reports the position"
        );
        let table = Job {
            source: JobSource::Table,
            ..job
        };
        let back = table.with_abi(|abi| Job::from_abi(abi).unwrap());
        assert_eq!(back, table);
        assert!(!back.manager_applies_position());
    }

    #[test]
    fn plugin_info_reaches_the_abi_whole() {
        crate::declare_settings! {
            struct S {
                /// A doc.
                s_one: u64 = "3",
            }
        }
        let info = PluginInfo::new("p", "1.0", "d")
            .task("a", Direction::Outbound, "ta")
            .restore_task("b", Direction::Inbound, "tb")
            .settings(S::DECLS)
            .settings(S::DECLS)
            .leak_into_abi();
        assert_eq!(S::read(&|_: &str| None).unwrap().s_one, 3);
        assert_eq!(info.name().as_str(), "p");
        let tasks = info.tasks();
        assert_eq!(tasks.len(), 2);
        assert!(!tasks[0].replaces_data());
        assert!(tasks[1].replaces_data());
        assert_eq!(
            tasks[1].direction().as_enum().ok(),
            Some(&Direction::Inbound)
        );
        let settings = info.settings();
        assert_eq!(settings.len(), 1);
        assert_eq!(settings[0].name().as_str(), "s_one");
        assert_eq!(settings[0].default().as_str(), "3");
        assert_eq!(settings[0].doc().as_str(), "A doc.");
    }

    /// What a 0.2.0 host lends a plugin: `AbiJob` as it was, without `source`. Only its
    /// layout matters (it is read as an `AbiJob`), hence the unused accessors.
    #[allow(dead_code)]
    mod sdk020 {
        use super::*;

        #[repr(C)]
        #[derive(abi_stable::StableAbi)]
        #[sabi(kind(Prefix(prefix_ref = AbiJob020Ref)))]
        pub struct AbiJob020<'a> {
            pub id: u64,
            pub task: RStr<'a>,
            pub server: ROption<RStr<'a>>,
            pub port: u16,
            #[sabi(last_prefix_field)]
            pub variant: &'a TableVariant_NE,
        }
    }
    use sdk020::{AbiJob020, AbiJob020Ref};

    #[test]
    fn a_job_from_a_host_without_the_source_field_comes_from_the_table() {
        let variant = TableVariant_NE::new(TableVariant::Legacy);
        let old = WithMetadata::new(AbiJob020 {
            id: 3,
            task: RStr::from_str("sdk020"),
            server: ROption::RNone,
            port: 0,
            variant: &variant,
        });
        // SAFETY: `old` lives to the end of the test; the prefix of `AbiJob` is `AbiJob020`'s
        // layout, and the metadata says the later field is missing, as across the ABI.
        let job: AbiJobRef<'_> = unsafe { std::mem::transmute(AbiJob020Ref(old.as_prefix())) };
        assert!(job.source().is_none());
        let job = Job::from_abi(job).unwrap();
        assert_eq!((job.id, job.source), (3, JobSource::Table));
    }

    /// A host context that answers nothing, for the entry-point glue.
    struct NoHost;

    impl crate::abi::HostApi for NoHost {
        fn progress(&self, _: RStr<'_>) {}
        fn waiting(&self) -> RResult<(), RString> {
            RErr("no job".into())
        }
        fn log(&self, _: LogLevel_NE, _: RStr<'_>) {}
        fn setting(&self, _: RStr<'_>) -> ROption<RString> {
            ROption::RNone
        }
        fn client_option_file(&self) -> RString {
            RString::new()
        }
        fn query(
            &self,
            _: RStr<'_>,
            _: RSlice<'_, RString>,
        ) -> RResult<crate::abi::AbiRows, RString> {
            RErr("no server".into())
        }
        fn cancelled(&self) -> bool {
            false
        }
    }

    fn recover_through_the_abi<P: Plugin>() -> Result<Vec<(u64, JobError)>, JobError> {
        use abi_stable::{sabi_trait::TD_Opaque, sabi_types::RRef};
        let host = crate::abi::HostApi_TO::from_ptr(RRef::new(&NoHost), TD_Opaque);
        __recover(&P::default(), host)
            .into_result()
            .map(|dead| {
                dead.into_iter()
                    .map(|d| (d.id, JobError::from_abi(&d.error)))
                    .collect()
            })
            .map_err(|e| JobError::from_abi(&e))
    }

    #[derive(Default)]
    struct Quiet;

    impl Plugin for Quiet {
        fn info(&self) -> PluginInfo {
            PluginInfo::new("quiet", "1", "d")
        }
        fn run(&self, _: &Job, _: &Host<'_>) -> Result<Outcome, JobError> {
            Ok(Outcome::new("ok"))
        }
    }

    #[derive(Default)]
    struct Journaled;

    impl Plugin for Journaled {
        fn info(&self) -> PluginInfo {
            PluginInfo::new("journaled", "1", "d")
        }
        fn run(&self, _: &Job, _: &Host<'_>) -> Result<Outcome, JobError> {
            Ok(Outcome::new("ok"))
        }
        fn recover(&self, host: &Host<'_>) -> Result<Vec<(u64, JobError)>, JobError> {
            if host.waiting().is_ok() {
                panic!("waiting during recovery");
            }
            Ok(vec![(
                12,
                JobError::internal("killed during the shadow build; shadow dropped")
                    .with_state(crate::ServerState::Untouched),
            )])
        }
    }

    #[derive(Default)]
    struct Broken;

    impl Plugin for Broken {
        fn info(&self) -> PluginInfo {
            PluginInfo::new("broken", "1", "d")
        }
        fn run(&self, _: &Job, _: &Host<'_>) -> Result<Outcome, JobError> {
            Ok(Outcome::new("ok"))
        }
        fn recover(&self, _: &Host<'_>) -> Result<Vec<(u64, JobError)>, JobError> {
            panic!("journal unreadable")
        }
    }

    #[test]
    fn recover_crosses_the_abi_and_a_panic_becomes_an_error() {
        assert_eq!(recover_through_the_abi::<Quiet>(), Ok(Vec::new()));
        let dead = recover_through_the_abi::<Journaled>().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].0, 12);
        assert_eq!(
            dead[0].1.result_text(),
            "failed, server untouched: killed during the shadow build; shadow dropped"
        );
        let e = recover_through_the_abi::<Broken>().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Panic);
        assert!(e.message.contains("journal unreadable"), "{e}");
    }
}
