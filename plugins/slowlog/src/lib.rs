//! The `slowlog` plugin: ships the slow-query log to replication-manager (task `slowquery`).
//!
//! The work (rotating the log aside with `FLUSH SLOW LOGS`, sending it, keeping it when the
//! send fails) is [`dbjobs_logship::ship`]; this crate only declares the task.

use dbjobs_logship::{self as logship, SLOW_LOG};
use dbjobs_sdk::{export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo};

/// The slowlog plugin.
#[derive(Default)]
pub struct SlowLog;

impl Plugin for SlowLog {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "slowlog",
            env!("CARGO_PKG_VERSION"),
            "ships the slow query log to replication-manager without losing lines",
        )
        .task(
            "slowquery",
            Direction::Outbound,
            "send the slow query log (@@slow_query_log_file, setting slow_query_log) to server:port",
        )
        .settings(&logship::settings_for(&[&SLOW_LOG]))
    }

    fn run(&self, job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
        if job.task != "slowquery" {
            return Err(JobError::invalid_job(format!(
                "the slowlog plugin does not handle task {:?}",
                job.task
            )));
        }
        logship::ship(job, host, &SLOW_LOG)
    }
}

export_plugin!(SlowLog);
