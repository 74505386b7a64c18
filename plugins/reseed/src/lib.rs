//! The `reseed*` tasks: rebuild this node from a backup replication-manager sends.
//!
//! replication-manager queues `reseedmysqldump`, `reseedxtrabackup` or `reseedmariabackup`
//! when a node must be rebuilt from the master's (or the backup server's) last backup. The
//! node listens on the row's port, receives the stream and restores it; all of that lives in
//! [`dbjobs_restore`], shared with the `flashback` plugin, so this crate only declares
//! the tasks.

use dbjobs_restore::{self as restore, Intent};
use dbjobs_sdk::{export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo};

/// The reseed plugin.
#[derive(Default)]
pub struct Reseed;

impl Plugin for Reseed {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "reseed",
            env!("CARGO_PKG_VERSION"),
            "rebuild the node from a backup received from replication-manager",
        )
        .restore_task(
            "reseedmysqldump",
            Direction::Inbound,
            "receive a gzip'd SQL dump on `port` and apply it (not binlogged)",
        )
        .restore_task(
            "reseedxtrabackup",
            Direction::Inbound,
            "receive an xbstream backup on `port` and restore it",
        )
        .restore_task(
            "reseedmariabackup",
            Direction::Inbound,
            "receive an xbstream backup on `port` and restore it",
        )
        .settings(&restore::declared_settings())
    }

    fn run(&self, job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
        restore::run(Intent::Reseed, job, host)
    }

    /// Finish or roll back the reseed restores whose run died (journal, shadow databases,
    /// temporary server, staging directory): [`restore::recover`].
    fn recover(&self, host: &Host<'_>) -> Result<Vec<(u64, JobError)>, JobError> {
        restore::recover(Intent::Reseed, host)
    }
}

export_plugin!(Reseed);
