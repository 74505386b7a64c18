//! Talking to replication-manager 3.x of 2026 over its HTTPS API (PROTOCOL.md §6).
//!
//! [`crypto`] is its body encryption, [`tls`] how its certificate is trusted, [`client`] the
//! calls, [`log_sender`] the job log lines to `write-log`, which never hold up a job, and
//! [`scripts`] the `jobs-check`/`jobs-upgrade` of replication-manager's script.

pub mod client;
pub mod crypto;
pub mod log_sender;
pub mod scripts;
pub mod tls;

pub use client::{RepmanClient, RepmanConfig};
pub use log_sender::{Level, LogSender};

use std::sync::Arc;

use crate::error::Result;
use crate::settings::HostSettings;

/// What a process keeps of replication-manager when `repman_api` is set: the API client
/// (shared with the API job source) and the log sender.
pub struct RepmanLink {
    /// The API client.
    pub client: Arc<RepmanClient>,
    /// The job log lines to `write-log`.
    pub log: LogSender,
}

impl RepmanLink {
    /// The link the settings ask for; `None` without `repman_api`. Nothing is sent yet.
    pub fn from_settings(
        settings: &HostSettings,
        client_password: Option<&str>,
    ) -> Result<Option<Self>> {
        let Some(config) = RepmanConfig::from_settings(settings, client_password)? else {
            return Ok(None);
        };
        let client = Arc::new(RepmanClient::new(config, settings)?);
        Ok(Some(RepmanLink {
            log: LogSender::start(client.clone()),
            client,
        }))
    }
}
