//! The restore engine's settings, declared once.

use dbjobs_sdk::declare_settings;
use dbjobs_sdk::settings::{FromSetting, SettingType};

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
        /// Where a received backup is staged; empty: <datadir>/.system/backup.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = RestoreSettings::read(&|_: &str| None).unwrap();
        assert_eq!(s.restore_mode, Mode::Online);
        assert_eq!(s.min_free_mb, 1024);
    }
}
