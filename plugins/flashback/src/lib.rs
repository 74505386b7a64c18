//! The `flashback*` tasks: restore this node from its own last backup.
//!
//! replication-manager queues `flashbackmysqldump`, `flashbackxtrabackup` or `flashbackmariabackup`
//! when an old master rejoins the cluster from its own last backup. The
//! node listens on the row's port, receives the stream and restores it; all of that lives in
//! [`dbjobs_restore`], shared with the `reseed` plugin, so this crate only declares
//! the tasks.

use dbjobs_restore::{self as restore, Intent};
use dbjobs_sdk::{export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo};

/// The flashback plugin.
#[derive(Default)]
pub struct Flashback;

impl Plugin for Flashback {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "flashback",
            env!("CARGO_PKG_VERSION"),
            "restore the node from its own backup, received from replication-manager",
        )
        .restore_task(
            "flashbackmysqldump",
            Direction::Inbound,
            "receive a gzip'd SQL dump on `port` and apply it (not binlogged)",
        )
        .restore_task(
            "flashbackxtrabackup",
            Direction::Inbound,
            "receive an xbstream backup on `port` and restore it",
        )
        .restore_task(
            "flashbackmariabackup",
            Direction::Inbound,
            "receive an xbstream backup on `port` and restore it",
        )
        .settings(&restore::declared_settings())
    }

    fn run(&self, job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
        restore::run(Intent::Flashback, job, host)
    }

    /// Finish or roll back the flashback restores whose run died (journal, shadow databases,
    /// temporary server, staging directory): [`restore::recover`].
    fn recover(&self, host: &Host<'_>) -> Result<Vec<(u64, JobError)>, JobError> {
        restore::recover(Intent::Flashback, host)
    }
}

export_plugin!(Flashback);
