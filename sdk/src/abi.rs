//! The stable ABI between the `dbjobs` host and a plugin library.
//!
//! Only `abi_stable` types cross this boundary (`RString`, `RVec`, `ROption`, `RResult`, ...),
//! never `std` ones, whose layout may change between compiler versions. The root module
//! [`PluginMod`] is a *prefix type*: later minor versions of the SDK may append fields after
//! the last prefix field, and a host still loads plugins built before they existed (and the
//! other way round, where the host treats a missing field as absent).
//!
//! Before any code of a library runs, the host checks, in this order (the way PostgreSQL checks
//! an extension's magic block): the `abi_stable` header of the library, the root module's name
//! ([`ROOT_MODULE_NAME`]), the SDK version the plugin was built against (same major version,
//! or same minor version while the SDK is 0.x), and the layout of every type reachable from
//! the root module. Plugin authors never touch this module directly: [`crate::export_plugin!`]
//! writes the glue.

#![allow(non_local_definitions)] // emitted by #[sabi_trait]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::{RRef, VersionStrings},
    std_types::{RNone, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The name every dbjobs plugin's root module carries; a library exporting another
/// `abi_stable` root module is "not a dbjobs plugin".
pub const ROOT_MODULE_NAME: &str = "dbjobs_plugin";

/// Which way the data of a task flows, as replication-manager defines it (PROTOCOL.md §2).
///
/// The host validates the row's `server` and `port` according to it before the plugin runs,
/// and delays the first write to the row of an inbound job until the plugin is listening.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
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
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
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

/// Severity of a line a plugin logs through the host.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
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

/// One task a plugin owns, as declared in [`AbiPluginInfo`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct AbiTaskInfo {
    /// The value of the `task` column this plugin handles, e.g. `mariabackup`.
    pub name: RString,
    /// Which way the data flows.
    pub direction: Direction,
    /// One line for `dbjobs plugins`.
    pub description: RString,
}

/// What a plugin says about itself.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct AbiPluginInfo {
    /// Short name, e.g. `xtrabackup`.
    pub name: RString,
    /// The plugin's own version.
    pub version: RString,
    /// One line for `dbjobs plugins`.
    pub description: RString,
    /// The tasks it owns; the host refuses a plugin claiming a task another file already owns.
    pub tasks: RVec<AbiTaskInfo>,
}

/// A claimed job, after the host validated its fields.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct AbiJob {
    /// The row's `id`.
    pub id: u64,
    /// The row's `task`.
    pub task: RString,
    /// The row's `server`, checked to be a host name or an IP address (no shell or SQL
    /// metacharacters); `RNone` when NULL or empty.
    pub server: ROption<RString>,
    /// The row's `port`, 0 when NULL. For inbound tasks the host already replaced 0 by 4444.
    pub port: u16,
    /// The table variant the host found.
    pub variant: TableVariant,
}

/// The successful end of a job.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct AbiOutcome {
    /// Text for the row's `result` (the host truncates it to the column, keeping the end).
    pub result: RString,
    /// JSON for the row's `payload` column, written only in the [`TableVariant::Payload`]
    /// variant.
    pub payload: ROption<RString>,
}

impl AbiOutcome {
    /// An outcome with a result text and no payload.
    pub fn text(result: impl Into<RString>) -> Self {
        AbiOutcome {
            result: result.into(),
            payload: RNone,
        }
    }
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
    /// variant expects (legacy: `result='Waiting backup.'`; state: `state=2`), which is what
    /// makes replication-manager connect.
    fn waiting(&self) -> RResult<(), RString>;

    /// Write a line to the host's log, tagged with the job id and task.
    fn log(&self, level: LogLevel, text: RStr<'_>);

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
    /// What the plugin is and which tasks it owns. An `RErr` (or a caught panic) refuses the
    /// library.
    pub info: extern "C" fn() -> RResult<AbiPluginInfo, RString>,

    /// Run one job. Panics inside are caught and returned as `RErr`.
    #[sabi(last_prefix_field)]
    pub run: for<'a> extern "C" fn(
        &AbiJob,
        HostApi_TO<'a, RRef<'a, ()>>,
    ) -> RResult<AbiOutcome, RString>,
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
}
