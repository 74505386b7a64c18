//! The `errorlog` plugin: ships the server's error log and the audit and SQL-error logs to
//! replication-manager (tasks `error`, `errorlog`, `auditlog`, `sqlerrorlog`).
//!
//! `error` is the task's name up to replication-manager 2.3.48, `errorlog` from 2.3.49 on;
//! both do the same. The work (rotating the log aside, sending it, keeping it when the send
//! fails) is [`dbjobs_logship::ship`]; this crate only declares the tasks.

use dbjobs_logship::{self as logship, AUDIT_LOG, ERROR_LOG, SQL_ERROR_LOG};
use dbjobs_sdk::{export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo};

/// The errorlog plugin.
#[derive(Default)]
pub struct ErrorLog;

impl Plugin for ErrorLog {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "errorlog",
            env!("CARGO_PKG_VERSION"),
            "ships the error, audit and SQL error logs to replication-manager without losing lines",
        )
        .task(
            "error",
            Direction::Outbound,
            "send the error log (@@log_error, setting error_log) to server:port (name before 2.3.49)",
        )
        .task(
            "errorlog",
            Direction::Outbound,
            "send the error log (@@log_error, setting error_log) to server:port",
        )
        .task(
            "auditlog",
            Direction::Outbound,
            "send the server_audit log (@@server_audit_file_path, setting audit_log) to server:port",
        )
        .task(
            "sqlerrorlog",
            Direction::Outbound,
            "send the sql_errlog log (@@sql_error_log_filename, setting sql_error_log) to server:port",
        )
        .settings(&logship::settings_for(&[&ERROR_LOG, &AUDIT_LOG, &SQL_ERROR_LOG]))
    }

    fn run(&self, job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
        let spec = match job.task.as_str() {
            "error" | "errorlog" => &ERROR_LOG,
            "auditlog" => &AUDIT_LOG,
            "sqlerrorlog" => &SQL_ERROR_LOG,
            other => {
                return Err(JobError::invalid_job(format!(
                    "the errorlog plugin does not handle task {other:?}"
                )))
            }
        };
        logship::ship(job, host, spec)
    }
}

export_plugin!(ErrorLog);
