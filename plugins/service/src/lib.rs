//! The `stop`, `start` and `restart` tasks: control the local database service.
//!
//! replication-manager 3.x (API mode) and the shipped node scripts queue these to stop,
//! start or restart the server of a node. Each runs the command configured in a setting,
//! split on whitespace and run without a shell ([`dbjobs_kit::service::ServiceCommand`]):
//!
//! | task | setting | default |
//! |---|---|---|
//! | `stop` | `service_stop_command` | `systemctl stop mariadb` |
//! | `start` | `service_start_command` | `systemctl start mariadb` |
//! | `restart` | `service_restart_command` | `systemctl restart mariadb` |
//!
//! `start` and `restart` then wait until the server answers `SELECT 1`, at most
//! `service_wait_timeout` seconds (default 120), so the job's outcome can be written: the
//! job row lives in the server that was restarted, and the host reconnects to write it.
//!
//! `stop` cannot report its outcome while the server stays down: the host tries to write the
//! row for 60 s (reconnecting every second), then gives up, logs the connection error and
//! ends the pass with a connection failure (exit status 2); the row keeps its "running"
//! state (`result` holding `running <command>`) until the server is back, when the next
//! dbjobs pass fails it as abandoned. replication-manager sees the node down through its own
//! monitoring, which is the real signal of a stop. If the server is started again within
//! those 60 s, the outcome is written normally. A failing stop command (non-zero exit) is
//! written normally too, since the server is then usually still up.

use dbjobs_kit::service::{wait_until_answers, ServiceCommand, ServiceSettings};
use dbjobs_sdk::{export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo};

/// The service-control plugin.
#[derive(Default)]
pub struct Service;

/// The configured command of a task, `None` for a task this plugin does not own.
pub fn command_for(
    task: &str,
    settings: &ServiceSettings,
) -> Option<Result<ServiceCommand, JobError>> {
    match task {
        "stop" => Some(settings.stop()),
        "start" => Some(settings.start()),
        "restart" => Some(settings.restart()),
        _ => None,
    }
}

impl Plugin for Service {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "service",
            env!("CARGO_PKG_VERSION"),
            "stop, start or restart the database service with configured commands",
        )
        .task(
            "stop",
            Direction::Local,
            "run service_stop_command (default: systemctl stop mariadb)",
        )
        .task(
            "start",
            Direction::Local,
            "run service_start_command and wait until the server answers",
        )
        .task(
            "restart",
            Direction::Local,
            "run service_restart_command and wait until the server answers",
        )
        .settings(ServiceSettings::DECLS)
    }

    fn run(&self, job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
        let settings = ServiceSettings::read(host)?;
        let command = command_for(&job.task, &settings).ok_or_else(|| {
            JobError::invalid_job(format!(
                "the service plugin does not own task {:?}",
                job.task
            ))
        })??;
        let wait = settings.wait();
        // The last row update before the server may go away.
        host.progress(&format!("running {command}"));
        host.info(&format!("running {command}"));
        command.run()?;
        if job.task == "stop" {
            host.info("service stopped; the outcome is written when the server is reachable");
            return Ok(Outcome::new(format!("service stopped with `{command}`")));
        }
        let took = wait_until_answers(host, wait)?;
        let result = format!(
            "service {} with `{command}`; the server answered after {:.1} s",
            if job.task == "start" {
                "started"
            } else {
                "restarted"
            },
            took.as_secs_f64()
        );
        host.info(&result);
        Ok(Outcome::new(result))
    }
}

export_plugin!(Service);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_has_its_setting() {
        let s = ServiceSettings::read(&|name: &str| {
            (name == "service_restart_command").then(|| "/usr/local/bin/bounce db".to_string())
        })
        .unwrap();
        let cmd = |t: &str| command_for(t, &s).unwrap().unwrap().to_string();
        assert_eq!(cmd("stop"), "systemctl stop mariadb");
        assert_eq!(cmd("start"), "systemctl start mariadb");
        assert_eq!(cmd("restart"), "/usr/local/bin/bounce db");
        assert!(command_for("optimize", &s).is_none());
    }
}
