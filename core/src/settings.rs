//! The host's own `[dbjobs]` settings, declared once like the plugins' (see
//! `dbjobs_sdk::settings`): a typed [`HostSettings`] read at start-up, and the declarations
//! the host checks names and values against and documents (`dbjobs settings`).

use std::path::PathBuf;

use dbjobs_sdk::declare_settings;
use dbjobs_sdk::settings::{FromSetting, SettingType};

/// Where the host takes its jobs from (`jobs_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobsMode {
    /// The node's `replication_manager_schema.jobs` table (replication-manager's
    /// `scheduler-jobs-mode=sql`, the default).
    Sql,
    /// replication-manager's HTTPS API (`scheduler-jobs-mode=api`, PROTOCOL.md §6.3).
    Api,
}

impl FromSetting for JobsMode {
    const TYPE: SettingType = SettingType::choice(&["sql", "api"]);
    fn from_setting(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "sql" => Ok(JobsMode::Sql),
            "api" => Ok(JobsMode::Api),
            _ => Err("expected sql or api".into()),
        }
    }
}

declare_settings! {
    /// Settings of the dbjobs host itself.
    pub struct HostSettings {
        /// Seconds a pending row whose task no loaded plugin owns is left for another agent before it is failed; 0: never fail it.
        pub unowned_task_grace: u64 = "600",
        /// Directory for what must outlive a run: job outcomes, the restore journal, undelivered reports, pinned certificates (created 0700).
        pub state_dir: PathBuf = "/var/lib/dbjobs",
        /// Where jobs come from: sql (the node's job table) or api (replication-manager's HTTPS API).
        pub jobs_mode: JobsMode = "sql",
        /// At most this many jobs of different tasks run at the same time in one dbjobs process.
        pub max_parallel_jobs: usize = "4",
        /// Port an inbound job listens on when the job names none (replication-manager's SSTPort).
        pub receive_port: u16 = "4444",
        /// replication-manager's API, https://HOST:PORT (port 10005 by default); empty: no live job log, no API mode.
        pub repman_api: String = "",
        /// The cluster name replication-manager knows this server under.
        pub repman_cluster: String = "",
        /// This server as replication-manager monitors it, host:port.
        pub repman_server: String = "",
        /// The database password replication-manager holds for this server (the API secret); empty: the [client] password.
        pub repman_password: String = "",
        /// PEM file of the CA (or the certificate) replication-manager's API certificate must verify against.
        pub repman_ca_file: String = "",
        /// SHA-256 (hex) of replication-manager's API certificate, pinned; empty with no repman_ca_file: pin the first one seen.
        pub repman_cert_sha256: String = "",
        /// Path where dbjobs keeps the dbjobs_new script replication-manager delivered (jobs-check, jobs-upgrade); never executed.
        pub repman_script: String = "",
        /// PEM certificate the inbound listener presents to a TLS sender; empty: one generated once in state_dir.
        pub receive_tls_cert: String = "",
        /// PEM private key of receive_tls_cert.
        pub receive_tls_key: String = "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = HostSettings::read(&|_: &str| None).unwrap();
        assert_eq!(s.unowned_task_grace, 600);
        assert_eq!(s.state_dir, PathBuf::from("/var/lib/dbjobs"));
        assert_eq!(s.jobs_mode, JobsMode::Sql);
        assert_eq!(s.receive_port, 4444);
    }
}
