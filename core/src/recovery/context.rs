//! The host context of a plugin's `recover` (the SDK's `HostApi`, without a job).
//!
//! A recovery runs before any job is claimed, so there is no row to write progress or the
//! waiting state into: [`HostApi::progress`] only logs at debug level and
//! [`HostApi::waiting`] fails. Everything else answers as in a job: settings (with the host's
//! declared defaults), the credentials option file, and SQL on a session of the plugin's own.
//! Log lines are tagged `recovery (plugin NAME)`.

use std::sync::atomic::Ordering;

use abi_stable::std_types::{RErr, ROption, RResult, RSlice, RStr, RString};
use dbjobs_sdk::abi::{AbiRows, HostApi, LogLevel_NE};
use dbjobs_sdk::LogLevel;

use crate::context::PluginSession;
use crate::env::HostEnv;

/// What one plugin's `recover` calls back into.
pub struct RecoveryContext<'a> {
    env: &'a HostEnv,
    plugin: &'a str,
    session: PluginSession,
}

impl<'a> RecoveryContext<'a> {
    /// The context of the recovery of plugin `plugin` (its name, for the log).
    pub fn new(env: &'a HostEnv, plugin: &'a str) -> Self {
        RecoveryContext {
            env,
            plugin,
            session: PluginSession::default(),
        }
    }

    /// `recovery (plugin NAME)`, the tag of every line of this recovery.
    pub fn tag(&self) -> String {
        format!("recovery (plugin {})", self.plugin)
    }
}

impl HostApi for RecoveryContext<'_> {
    fn progress(&self, text: RStr<'_>) {
        log::debug!("{}: progress {text}", self.tag());
    }

    fn waiting(&self) -> RResult<(), RString> {
        RErr(RString::from(
            "waiting() has no job to mark during recovery: no listener may wait for a sender before jobs are claimed",
        ))
    }

    /// A level from a newer SDK than this host's is logged as information.
    fn log(&self, level: LogLevel_NE, text: RStr<'_>) {
        let level = match level.as_enum() {
            Ok(LogLevel::Error) => log::Level::Error,
            Ok(LogLevel::Warn) => log::Level::Warn,
            Ok(LogLevel::Debug) => log::Level::Debug,
            _ => log::Level::Info,
        };
        log::log!(level, "{}: {text}", self.tag());
    }

    fn setting(&self, name: RStr<'_>) -> ROption<RString> {
        self.env.plugin_setting(name)
    }

    fn client_option_file(&self) -> RString {
        self.env.option_file().map_or_else(
            |e| {
                log::error!("{}: {e}", self.tag());
                RString::new()
            },
            |p| RString::from(p.display().to_string()),
        )
    }

    fn query(&self, sql: RStr<'_>, params: RSlice<'_, RString>) -> RResult<AbiRows, RString> {
        self.session.query(&self.env.connection, sql, params)
    }

    fn cancelled(&self) -> bool {
        self.env.signals.load(Ordering::SeqCst) >= 2
    }
}
