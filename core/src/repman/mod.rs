//! Talking to replication-manager 3.x of 2026 over its HTTPS API (PROTOCOL.md §6).
//!
//! [`crypto`] is its body encryption, [`tls`] how its certificate is trusted, [`client`] the
//! calls, [`log_sender`] the job log lines to `write-log`, which never hold up a job.

pub mod client;
pub mod crypto;
pub mod log_sender;
pub mod tls;

pub use client::{RepmanClient, RepmanConfig};
pub use log_sender::{Level, LogSender};
