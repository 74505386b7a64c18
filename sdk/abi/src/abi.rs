//! The stable ABI between the `dbjobs` host and a plugin library: every type that crosses it.
//!
//! Only `abi_stable` types cross this boundary (`RString`, `RStr`, `RSlice`, `ROption`,
//! `RResult`, ...), never `std` ones, whose layout may change between compiler versions.
//! How each type may evolve within 0.2.x (the rules the host relies on; `sdk/abi/README.md`
//! says the same for vendors):
//!
//! * **Enums that will grow** ([`Direction`], [`TableVariant`], [`JobSource`], [`LogLevel`],
//!   [`ErrorKind`], [`ServerState`], [`SettingKind`]) cross as abi_stable *non-exhaustive*
//!   enums (`Direction_NE`, ...): a later 0.2.x may add variants, and a side that meets a
//!   variant it does not know gets an error from `as_enum()` instead of undefined behaviour.
//! * **Structs that will grow** ([`AbiJob`], [`AbiPluginInfo`], [`AbiTaskInfo`],
//!   [`AbiSettingInfo`]) and the root module [`PluginMod`] are *prefix types*: a later 0.2.x
//!   appends fields after the `last_prefix_field`, and a reader built before they existed
//!   simply does not see them, while a reader built after gets the field's default when the
//!   other side is older (`missing_field(default)`), or `None` for a field without a
//!   default (`missing_field(option)`: a reference or a function, such as `AbiJob::source`
//!   and `PluginMod::recover`, both added in 0.2.1).
//! * **The host context** [`HostApi`] is a `sabi_trait` whose vtable is a prefix type too:
//!   methods are appended after `cancelled`, the last prefix method, each with a default body,
//!   which is what a plugin gets when it calls the method on an older host.
//! * **A job's ending** ([`AbiOutcome`], [`AbiJobError`], [`AbiRecoveredJob`]) is returned by
//!   value and is fixed for 0.2.x; what a later version wants to learn about an ending it asks
//!   through a new [`HostApi`] method the plugin calls before it returns.
//!
//! Before any code of a library runs, the host checks, in this order (the way PostgreSQL checks
//! an extension's magic block): the `abi_stable` header of the library, the root module's name
//! ([`ROOT_MODULE_NAME`]), the SDK version the plugin was built against (same major version,
//! or same minor version while the SDK is 0.x), and abi_stable's layout check of every type
//! reachable from the root module, which accepts the prefix and non-exhaustive growth above
//! when the side built against the older version is taken as the interface (abi_stable lets
//! an implementation have more fields, never fewer). Plugin authors never touch this module directly: [`crate::export_plugin!`] writes the glue.

#![allow(non_local_definitions)] // emitted by #[sabi_trait] and #[derive(StableAbi)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::{RRef, VersionStrings},
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The name every dbjobs plugin's root module carries; a library exporting another
/// `abi_stable` root module is "not a dbjobs plugin".
pub const ROOT_MODULE_NAME: &str = "dbjobs_plugin";

/// Which way the data of a task flows, as replication-manager defines it (PROTOCOL.md §2).
///
/// The host validates the job's `server` and `port` according to it before the plugin runs,
/// and delays the first write to the row of an inbound job until the plugin is listening.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [u8; 8], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum Direction {
    /// The node sends to `server:port` (backups, logs). `server` and a port in 1..=65535 are
    /// required.
    Outbound = 0,
    /// The node listens on `port` (4444 when 0 or NULL) and accepts only `server`.
    Inbound = 1,
    /// Nothing crosses the network; `server` and `port` are passed through unchecked.
    Local = 2,
}

impl Direction {
    /// The lowercase word used in logs and `dbjobs plugins --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
            Direction::Local => "local",
        }
    }
}

/// The layout of `replication_manager_schema.jobs` the host found (PROTOCOL.md §1 and §3).
///
/// Plugins need it where the protocol differs: in the `Payload` variant replication-manager
/// applies the replication position itself from the JSON payload, in the others the agent does.
/// A job from replication-manager's API (no table) is given as `Payload`, which is what it
/// means for a plugin: report the position, do not apply it.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [u8; 8], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum TableVariant {
    /// No `state` column (replication-manager 2.1 to 2.3.41).
    Legacy = 0,
    /// A `state` column (2.3.42 and later).
    State = 1,
    /// `state` and a `payload` column (newest 3.x).
    Payload = 2,
}

impl TableVariant {
    /// The lowercase word used in logs and machine-readable output.
    pub fn as_str(self) -> &'static str {
        match self {
            TableVariant::Legacy => "legacy",
            TableVariant::State => "state",
            TableVariant::Payload => "payload",
        }
    }
}

/// Where a job came from: a row of the node's job table, or replication-manager's API
/// (`scheduler-jobs-mode=api`, PROTOCOL.md §6.3), where there is no table at all.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [u8; 8], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum JobSource {
    /// A row of `replication_manager_schema.jobs`.
    Table = 0,
    /// A `needs/{task}` answer of replication-manager's API.
    Api = 1,
}

impl JobSource {
    /// `table` or `api`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobSource::Table => "table",
            JobSource::Api => "api",
        }
    }
}

/// Severity of a line a plugin logs through the host.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [u8; 8], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum LogLevel {
    /// Something failed.
    Error = 1,
    /// Something looks wrong but the job goes on.
    Warn = 2,
    /// A step of the job an operator wants to see.
    Info = 3,
    /// Details for debugging.
    Debug = 4,
}

/// What kind of failure ended a job: what code (the host, `dbjobs jobs --json`,
/// replication-manager) can act on, where the message is for people.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [u8; 8], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum ErrorKind {
    /// A setting or the option file is wrong: fix the configuration.
    Config = 0,
    /// The job's own fields (task, server, port) cannot be used.
    InvalidJob = 1,
    /// Connecting, accepting or a connection that broke or timed out.
    Network = 2,
    /// What was received is malformed, cut short or incomplete.
    BadInput = 3,
    /// An external tool (`mariadb-backup`, `mbstream`, `mariadb`, ...) failed.
    Tool = 4,
    /// A statement on the local server failed.
    Sql = 5,
    /// The local filesystem: a missing file, a permission.
    Io = 6,
    /// Not enough disk space.
    NoSpace = 7,
    /// A precondition was not met, checked before anything was changed.
    Refused = 8,
    /// The operator stopped the job.
    Cancelled = 9,
    /// The plugin panicked.
    Panic = 10,
    /// Versions that do not fit together (a tool and the server, a plugin and the host).
    Incompatible = 11,
    /// A bug in dbjobs or a plugin.
    Internal = 12,
}

impl ErrorKind {
    /// The lowercase word used in `dbjobs jobs --json` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::InvalidJob => "invalid_job",
            ErrorKind::Network => "network",
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Tool => "tool",
            ErrorKind::Sql => "sql",
            ErrorKind::Io => "io",
            ErrorKind::NoSpace => "no_space",
            ErrorKind::Refused => "refused",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Panic => "panic",
            ErrorKind::Incompatible => "incompatible",
            ErrorKind::Internal => "internal",
        }
    }
}

/// The state a failed job left the server's data in. This is what an operator (and the
/// host, which refuses a new restore over a `Partial` node) needs to know first.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [u8; 8], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum ServerState {
    /// Nothing on the server was changed.
    Untouched = 0,
    /// Changes were made and undone: the server has its data as before the job.
    RolledBack = 1,
    /// Some of the data was replaced and could not be put back: the node must not be
    /// trusted until an operator looked at it.
    Partial = 2,
    /// The plugin cannot say (it panicked, or it did not report a state).
    Unknown = 3,
}

impl ServerState {
    /// The lowercase word used in `dbjobs jobs --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Untouched => "untouched",
            ServerState::RolledBack => "rolled_back",
            ServerState::Partial => "partial",
            ServerState::Unknown => "unknown",
        }
    }

    /// How the host's `result` text says it: `server untouched`, ...
    pub fn describe(self) -> &'static str {
        match self {
            ServerState::Untouched => "server untouched",
            ServerState::RolledBack => "server rolled back",
            ServerState::Partial => "server left partial",
            ServerState::Unknown => "server state unknown",
        }
    }
}

/// The type of a declared setting's value, so the host can check a value before any job runs
/// and document it (`dbjobs settings`).
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [u8; 8], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum SettingKind {
    /// Any text.
    Text = 0,
    /// A file or directory path (empty: unset).
    Path = 1,
    /// A non-negative integer.
    Integer = 2,
    /// `true`/`false` (also `1`/`0`, `on`/`off`, `yes`/`no`).
    Boolean = 3,
    /// One of the declared choices.
    Choice = 4,
}

impl SettingKind {
    /// The word used in documentation.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingKind::Text => "text",
            SettingKind::Path => "path",
            SettingKind::Integer => "integer",
            SettingKind::Boolean => "boolean",
            SettingKind::Choice => "choice",
        }
    }
}

/// One task a plugin owns, as declared in [`AbiPluginInfo`]. Built once per library and kept
/// for the life of the process (hence `'static`).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = AbiTaskInfoRef)))]
#[sabi(missing_field(default))]
pub struct AbiTaskInfo {
    /// The value of the `task` column this plugin handles, e.g. `mariabackup`.
    pub name: RStr<'static>,
    /// Which way the data flows.
    pub direction: &'static Direction_NE,
    /// One line for `dbjobs plugins`.
    pub description: RStr<'static>,
    /// Whether the task replaces the server's data (a restore): the host refuses it over a
    /// node an earlier restore left partial.
    #[sabi(last_prefix_field)]
    pub replaces_data: bool,
}

/// One setting a plugin reads from `[dbjobs]` (or `--set`), declared so the host can refuse an
/// unknown name or a bad value before any job runs, and document every setting.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = AbiSettingInfoRef)))]
#[sabi(missing_field(default))]
pub struct AbiSettingInfo {
    /// The name in `[dbjobs]`, with `_` (the host treats `-` alike).
    pub name: RStr<'static>,
    /// The type of the value.
    pub kind: &'static SettingKind_NE,
    /// The allowed values of a [`SettingKind::Choice`] setting; empty otherwise.
    pub choices: RSlice<'static, RStr<'static>>,
    /// The default, as it would be written in the option file (empty: unset).
    pub default: RStr<'static>,
    /// One line of documentation.
    #[sabi(last_prefix_field)]
    pub doc: RStr<'static>,
}

/// What a plugin says about itself. Built once per library and kept for the life of the
/// process.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = AbiPluginInfoRef)))]
#[sabi(missing_field(default))]
pub struct AbiPluginInfo {
    /// Short name, e.g. `xtrabackup`.
    pub name: RStr<'static>,
    /// The plugin's own version.
    pub version: RStr<'static>,
    /// One line for `dbjobs plugins`.
    pub description: RStr<'static>,
    /// The tasks it owns; the host refuses a plugin claiming a task another file already owns.
    pub tasks: RSlice<'static, AbiTaskInfoRef>,
    /// The settings it reads.
    #[sabi(last_prefix_field)]
    pub settings: RSlice<'static, AbiSettingInfoRef>,
}

/// A claimed job, after the host validated its fields. It is borrowed for the duration of
/// one `run` call; the safe side ([`crate::Job`]) copies it before the plugin sees it.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = AbiJobRef)))]
#[sabi(missing_field(default))]
pub struct AbiJob<'a> {
    /// The job's id (the row's `id`; in API mode a number the host assigns).
    pub id: u64,
    /// The task, e.g. `mariabackup`.
    pub task: RStr<'a>,
    /// replication-manager's address, checked to be a host name or an IP address (no shell or
    /// SQL metacharacters); `RNone` when NULL or empty.
    pub server: ROption<RStr<'a>>,
    /// The port: replication-manager's listener (outbound) or the node's own (inbound, 4444
    /// when the row said 0).
    pub port: u16,
    /// The table variant the host found ([`TableVariant::Payload`] for API-mode jobs).
    #[sabi(last_prefix_field)]
    pub variant: &'a TableVariant_NE,
    /// Where the job came from: a row of the table or replication-manager's API (added in
    /// 0.2.1). A 0.2.0 host does not send it, and [`crate::Job::from_abi`] reads its absence
    /// as [`JobSource::Table`], the only source such a host has.
    #[sabi(missing_field(option))]
    pub source: &'a JobSource_NE,
}

/// The successful end of a job.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct AbiOutcome {
    /// Text for the row's `result` (the host truncates it to the column, keeping the end).
    pub result: RString,
    /// JSON for the row's `payload` column (payload variant) or the `restore` object of an
    /// API-mode report.
    pub payload: ROption<RString>,
}

/// The failed end of a job: what kind of failure, what it left the server in, what happened
/// and what to do.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct AbiJobError {
    /// What kind of failure.
    pub kind: ErrorKind_NE,
    /// The state the server's data was left in.
    pub state: ServerState_NE,
    /// What failed and why.
    pub message: RString,
    /// What to do about it, when the plugin knows.
    pub hint: ROption<RString>,
}

/// The final outcome of a job whose run died, as a plugin's [`PluginMod::recover`] found and
/// cleaned up after it (e.g. from a restore journal). Fixed for 0.2.x, like [`AbiJobError`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct AbiRecoveredJob {
    /// The id of the dead job (the row's `id`).
    pub id: u64,
    /// How it ended, saying what the recovery did (the state it left the server in, and
    /// what to do).
    pub error: AbiJobError,
}

/// Rows returned by [`HostApi::query`]: each value is the text form MariaDB gives, `RNone` for
/// NULL.
pub type AbiRows = RVec<RVec<ROption<RString>>>;

/// What the host offers a running plugin. Plugins use it through [`crate::Host`].
///
/// Methods may be called from any thread of the plugin; the host serialises them.
#[sabi_trait]
pub trait HostApi: Send + Sync {
    /// Report progress; the host writes it into the row's `result`, at most about once a
    /// second, and never before an inbound plugin called [`HostApi::waiting`]. Never blocks:
    /// the write happens on a thread of the host.
    fn progress(&self, text: RStr<'_>);

    /// Say that the plugin's listener is up. The host then updates the row the way the table
    /// variant expects (legacy: `result='Waiting backup.'`; state: `state=2`), or reports
    /// `waiting` to replication-manager's API, which is what makes replication-manager connect.
    fn waiting(&self) -> RResult<(), RString>;

    /// Write a line to the host's log, tagged with the job id and task.
    fn log(&self, level: LogLevel_NE, text: RStr<'_>);

    /// A setting from the `[dbjobs]` section of the option file or `--set name=value`.
    fn setting(&self, name: RStr<'_>) -> ROption<RString>;

    /// Path of a 0600 MySQL option file with a `[client]` section holding the connection
    /// credentials. Pass it as the *first* argument, `--defaults-file=PATH`, to `mariadb`,
    /// `mariadb-backup` and friends, so the password never appears on a command line.
    fn client_option_file(&self) -> RString;

    /// Run one SQL statement on the node, with `?` placeholders bound to `params`, on a
    /// session of its own that has `sql_log_bin=0`. Returns all rows as text.
    fn query(&self, sql: RStr<'_>, params: RSlice<'_, RString>) -> RResult<AbiRows, RString>;

    /// True once the operator asked the host to stop now (a second SIGTERM or SIGINT): long
    /// jobs should stop at the next safe point and return an error.
    #[sabi(last_prefix_field)]
    fn cancelled(&self) -> bool;
}

/// The host context as a plugin receives it: a borrowed trait object.
pub type HostRef<'a> = HostApi_TO<'a, RRef<'a, ()>>;

/// The root module every plugin library exports (through [`crate::export_plugin!`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// What the plugin is and which tasks and settings it has. An `RErr` (or a caught panic)
    /// refuses the library.
    pub info: extern "C" fn() -> RResult<AbiPluginInfoRef, RString>,

    /// Run one job. Panics inside are caught and returned as an [`ErrorKind::Panic`] error.
    #[sabi(last_prefix_field)]
    pub run: for<'a> extern "C" fn(AbiJobRef<'a>, HostRef<'a>) -> RResult<AbiOutcome, AbiJobError>,

    /// Finish or roll back what runs that died left (added in 0.2.1; a 0.2.0 plugin has none
    /// and the host skips it). The host calls it at every `dbjobs run`/`daemon` start, before
    /// it claims anything, with a host context of its own (no job: `progress` does nothing,
    /// `waiting` fails). Each returned [`AbiRecoveredJob`] is the final outcome of a dead job,
    /// which the host writes to that job's row if the row is still unfinished. An `RErr` (or
    /// a caught panic) is logged as an error and the host goes on with its pass.
    #[sabi(missing_field(option))]
    pub recover: extern "C" fn(HostRef<'_>) -> RResult<RVec<AbiRecoveredJob>, AbiJobError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = ROOT_MODULE_NAME;
    const NAME: &'static str = ROOT_MODULE_NAME;
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The symbol name under which `abi_stable` looks for a library's header. It is fixed for
/// `abi_stable` 0.11; [`crate::export_plugin!`] exports its header under this name so that
/// plugin crates need no direct `abi_stable` dependency (a unit test keeps the two equal).
pub const ROOT_MODULE_LOADER_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_symbol_matches_abi_stable() {
        assert_eq!(
            ROOT_MODULE_LOADER_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }

    #[test]
    fn an_unknown_variant_is_an_error_not_undefined_behaviour() {
        // What an older plugin sees when a newer host sends a variant it does not know.
        let known = ErrorKind_NE::new(ErrorKind::Tool);
        assert_eq!(known.as_enum().ok(), Some(&ErrorKind::Tool));
    }
}
