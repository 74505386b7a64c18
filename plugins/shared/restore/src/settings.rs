//! The restore engine's settings, declared once and read once.
//!
//! [`Settings::read`] reads every setting a restore uses (its own [`RestoreSettings`], the
//! backup tool's and the service commands') when the job starts, before anything listens or
//! touches the server, so a bad value fails the job at once, server untouched, instead of
//! after a transfer of many gigabytes. The phases get the typed values passed down.

use std::path::PathBuf;

use dbjobs_kit::service::ServiceSettings;
use dbjobs_kit::tool::BackupToolSettings;
use dbjobs_sdk::declare_settings;
use dbjobs_sdk::settings::{FromSetting, SettingDecl, SettingSource, SettingType};
use dbjobs_sdk::JobError;

/// How the prepared backup reaches the live server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The server keeps running; tables are recreated and their files imported.
    Online,
    /// The server is stopped and its datadir replaced by the backup.
    Full,
}

impl Mode {
    /// `online` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Online => "online",
            Mode::Full => "full",
        }
    }
}

impl FromSetting for Mode {
    const TYPE: SettingType = SettingType::choice(&["online", "full"]);
    fn from_setting(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "" | "online" => Ok(Mode::Online),
            "full" => Ok(Mode::Full),
            _ => Err("expected online or full".into()),
        }
    }
}

declare_settings! {
    /// Settings of reseed and flashback.
    pub struct RestoreSettings {
        /// How a physical backup is restored: online (the server keeps running, tables are imported) or full (the server is stopped and its datadir replaced).
        pub restore_mode: Mode = "online",
        /// Whether a physical restore should also bring the backup's accounts (mysql schema); online mode only warns.
        pub restore_accounts: bool = "false",
        /// Where a received backup is staged; empty: <datadir>/#sql-dbjobs-staging (same file system as the datadir, a name the server ignores).
        pub backup_dir: String = "",
        /// Address the inbound listener binds (an IP literal; 0.0.0.0 or :: for all).
        pub receive_bind: String = "0.0.0.0",
        /// Seconds the inbound listener waits for replication-manager to connect.
        pub receive_accept_timeout: u64 = "600",
        /// Seconds a receive may go without a byte before the job fails.
        pub receive_idle_timeout: u64 = "300",
        /// More peers (comma-separated names or addresses) the inbound listener accepts besides the job's server.
        pub receive_allow: String = "",
        /// MiB that must stay free on the staging file system while receiving.
        pub min_free_mb: u64 = "1024",
        /// Seconds the switch of a restore (one RENAME TABLE of every restored table) waits for the live tables' locks before it gives up, the live data untouched.
        pub switch_lock_wait: u64 = "60",
        /// Client sessions that apply a dump's tables at once; 0: one per CPU.
        pub apply_parallel: usize = "0",
        /// Path of the mariadb client; empty: mariadb or mysql on PATH.
        pub mariadb_client: String = "",
        /// Path of the xbstream extractor; empty: mbstream or xbstream on PATH.
        pub mbstream_tool: String = "",
        /// Path of the server binary for the temporary server of a physical restore; empty: mariadbd or mysqld on PATH.
        pub mariadbd_tool: String = "",
    }
}

/// The address [`RestoreSettings::bind_address`] gives for an empty `receive_bind`: every IPv4
/// address, as the bash agent's `socat TCP-LISTEN`.
const ALL_IPV4: &str = "0.0.0.0";

impl RestoreSettings {
    /// The address the inbound listener binds: `receive_bind`, or every IPv4 address when it
    /// is set empty.
    pub fn bind_address(&self) -> &str {
        Some(self.receive_bind.trim())
            .filter(|b| !b.is_empty())
            .unwrap_or(ALL_IPV4)
    }

    /// `min_free_mb` in bytes: what the staging file system must keep free while receiving.
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_mb.saturating_mul(1 << 20)
    }

    /// The client sessions a dump's tables are applied in: `apply_parallel`, where 0 means one
    /// per CPU (at least one).
    pub fn apply_sessions(&self) -> usize {
        match self.apply_parallel {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Where the staging directories go when `backup_dir` says so; `None`: the default,
    /// `<datadir>/#sql-dbjobs-staging`.
    pub fn backup_dir(&self) -> Option<PathBuf> {
        Some(self.backup_dir.trim())
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
    }
}

/// Every setting a restore reads, typed: read once by [`Settings::read`] when the job starts.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Reseed and flashback's own settings.
    pub restore: RestoreSettings,
    /// Where the physical backup tool is (prepare, `--move-back`).
    pub tool: BackupToolSettings,
    /// How the service is stopped and started (full mode).
    pub service: ServiceSettings,
}

impl Settings {
    /// The declarations of every setting [`Settings::read`] reads, for the plugins' info.
    pub fn decls() -> Vec<SettingDecl> {
        [
            RestoreSettings::DECLS,
            BackupToolSettings::DECLS,
            ServiceSettings::DECLS,
        ]
        .concat()
    }

    /// Read them all; the first value that does not parse is a configuration error naming
    /// it, server untouched.
    pub fn read(source: &(impl SettingSource + ?Sized)) -> Result<Self, JobError> {
        Ok(Settings {
            restore: RestoreSettings::read(source)?,
            tool: BackupToolSettings::read(source)?,
            service: ServiceSettings::read(source)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Settings::read(&|_: &str| None).unwrap();
        assert_eq!(s.restore.restore_mode, Mode::Online);
        assert_eq!(s.restore.switch_lock_wait, 60);
        assert_eq!(s.restore.min_free_bytes(), 1024 << 20);
        assert_eq!(s.restore.bind_address(), "0.0.0.0");
        assert_eq!(s.restore.backup_dir(), None);
        assert!(s.restore.apply_sessions() >= 1);
        assert_eq!(Settings::decls().len(), 18);
    }

    #[test]
    fn values_are_read_typed() {
        let source = |name: &str| match name {
            "receive_bind" => Some(" ".to_string()),
            "apply_parallel" => Some("3".to_string()),
            "backup_dir" => Some(" /srv/staging ".to_string()),
            "restore_mode" => Some("FULL".to_string()),
            _ => None,
        };
        let s = Settings::read(&source).unwrap();
        assert_eq!(s.restore.bind_address(), "0.0.0.0");
        assert_eq!(s.restore.apply_sessions(), 3);
        assert_eq!(s.restore.backup_dir(), Some(PathBuf::from("/srv/staging")));
        assert_eq!(s.restore.restore_mode, Mode::Full);
        let bad = Settings::read(&|n: &str| (n == "min_free_mb").then(|| "lots".to_string()));
        assert!(bad.unwrap_err().message.contains("min_free_mb"));
    }
}
