//! Controlling the local database service (`stop`, `start`, `restart`, `zfssnapback`).
//!
//! What every plugin that stops or starts the server needs, kept in one place so they behave
//! the same:
//!
//! * [`ServiceSettings`]: the commands and the wait, declared once;
//! * [`ServiceCommand`]: a command configured in a setting (`service_stop_command`, ...),
//!   split on whitespace into a program and its arguments and run **without a shell**. The
//!   setting comes from the node's own option file, but not going through `sh -c` keeps the
//!   rule "nothing reaches a shell" simple to check, and a command that needs a pipe or a
//!   redirection belongs in a script the setting names.
//! * [`wait_until_answers`]: after the service was started, poll the server with `SELECT 1`
//!   until it answers or a deadline passes. The job's queue session died with the server; the
//!   host reconnects to write the outcome but only tries for 60 s, so a plugin must not return
//!   before the server is back (a slow crash recovery can take longer than that).
//! * [`ServiceControl`]: stop, change the data, start, and put the old data back when the
//!   change or the start fails (the full restore and the ZFS rollback).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dbjobs_sdk::{declare_settings, Host, JobError, ServerState};

use crate::tool::{find_tool, ToolCommand, ToolExit};

declare_settings! {
    /// How dbjobs stops, starts and restarts the database service.
    pub struct ServiceSettings {
        /// Command that stops the database service (a program and its arguments, run without a shell).
        pub service_stop_command: String = "systemctl stop mariadb",
        /// Command that starts the database service (a program and its arguments, run without a shell).
        pub service_start_command: String = "systemctl start mariadb",
        /// Command that restarts the database service (a program and its arguments, run without a shell).
        pub service_restart_command: String = "systemctl restart mariadb",
        /// Seconds to wait for the server to answer after the service was started (an InnoDB crash recovery can take that long).
        pub service_wait_timeout: u64 = "120",
    }
}

impl ServiceSettings {
    /// The stop command, parsed.
    pub fn stop(&self) -> Result<ServiceCommand, JobError> {
        ServiceCommand::from_setting("service_stop_command", &self.service_stop_command)
    }

    /// The start command, parsed.
    pub fn start(&self) -> Result<ServiceCommand, JobError> {
        ServiceCommand::from_setting("service_start_command", &self.service_start_command)
    }

    /// The restart command, parsed.
    pub fn restart(&self) -> Result<ServiceCommand, JobError> {
        ServiceCommand::from_setting("service_restart_command", &self.service_restart_command)
    }

    /// How long to wait for the server after a start.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.service_wait_timeout)
    }
}

/// How often [`wait_until_answers`] tries `SELECT 1`.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A program and its arguments, taken from a setting and run without a shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceCommand {
    /// The program: a name looked up on `PATH` (then `/usr/bin`, `/usr/sbin`), or a path.
    pub program: String,
    /// Its arguments, in order.
    pub args: Vec<String>,
}

impl ServiceCommand {
    /// Split `text` on whitespace: the first word is the program, the rest its arguments.
    /// There is no quoting: an argument with a space needs a wrapper script.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut words = text.split_whitespace().map(str::to_owned);
        let program = words
            .next()
            .ok_or_else(|| "the command is empty".to_string())?;
        Ok(ServiceCommand {
            program,
            args: words.collect(),
        })
    }

    /// The command configured in setting `name`; an empty or blank value is a configuration
    /// error naming the setting (it would otherwise silently do nothing).
    pub fn from_setting(name: &str, text: &str) -> Result<Self, JobError> {
        ServiceCommand::parse(text).map_err(|e| {
            JobError::config(format!("setting {name}={text:?} is not usable: {e}"))
                .with_hint("give a program and its arguments, e.g. systemctl start mariadb")
                .with_state(ServerState::Untouched)
        })
    }

    /// The program's path: as given when it contains a `/`, else looked up like a tool.
    fn resolve(&self) -> Result<PathBuf, JobError> {
        if self.program.contains('/') {
            find_tool(&[], Some(&self.program))
        } else {
            find_tool(&[self.program.as_str()], None)
        }
    }

    /// Run the command to completion. `Ok` with its exit when it exited 0; otherwise an error
    /// quoting the command, its status and its last stderr lines.
    ///
    /// Its stdin and stdout are `/dev/null`, stderr is read by the kit: a start command that
    /// leaves a daemon behind must redirect the daemon's stderr (systemctl does), or this
    /// waits for the daemon to exit.
    pub fn run(&self) -> Result<ToolExit, JobError> {
        let program = self
            .resolve()
            .map_err(|e| e.context(format!("cannot run `{self}`")))?;
        let exit = ToolCommand::new(&program, None).args(&self.args).run()?;
        if exit.success() {
            Ok(exit)
        } else {
            Err(JobError::tool(format!(
                "`{self}` failed: {}",
                exit.failure()
            )))
        }
    }
}

impl std::fmt::Display for ServiceCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// Poll the local server with `SELECT 1` (through [`Host::query`]) until it answers, at most
/// `timeout`; returns how long it took.
///
/// Call it after starting the service and before returning from the job, so the host can
/// write the outcome. The error says how long it waited, the last connection error, and
/// where to look. Stops early when the operator cancels the job.
pub fn wait_until_answers(host: &Host<'_>, timeout: Duration) -> Result<Duration, JobError> {
    let start = Instant::now();
    loop {
        let last = match host.query_value("SELECT 1", &[]) {
            Ok(Some(v)) if v == "1" => return Ok(start.elapsed()),
            Ok(other) => format!("SELECT 1 returned {other:?}"),
            Err(e) => e.message,
        };
        if start.elapsed() >= timeout {
            return Err(JobError::network(format!(
                "the server did not answer within {} s after the service was started (last error: {last})",
                timeout.as_secs()
            ))
            .with_hint("check the service status and the server's error log, or raise service_wait_timeout"));
        }
        if host.cancelled() {
            return Err(JobError::cancelled(format!(
                "cancelled while waiting for the server to answer (last error: {last})"
            )));
        }
        std::thread::sleep(POLL_INTERVAL.min(timeout.saturating_sub(start.elapsed())));
    }
}

/// The one way dbjobs changes data with the server stopped: stop, change, start and wait;
/// and when the change or the start fails, put the old data back and start again.
///
/// A full restore (move the datadir aside, `--move-back`) and a ZFS rollback are both this
/// pattern. The error's state says what the node was left in: [`ServerState::Untouched`] when
/// the stop failed (nothing was changed), [`ServerState::RolledBack`] when the old data was put
/// back and the server answers on it, [`ServerState::Partial`] when putting back failed.
pub struct ServiceControl<'h, 'a> {
    host: &'h Host<'a>,
    stop: ServiceCommand,
    start: ServiceCommand,
    wait: Duration,
}

impl<'h, 'a> ServiceControl<'h, 'a> {
    /// From the service settings (the stop and start commands, the wait).
    pub fn new(host: &'h Host<'a>, settings: &ServiceSettings) -> Result<Self, JobError> {
        Ok(ServiceControl {
            host,
            stop: settings.stop()?,
            start: settings.start()?,
            wait: settings.wait(),
        })
    }

    /// Stop the service, run `change`, start the service, wait until the server answers and
    /// run `check` on it; returns what `change` returned and how long the server was down.
    ///
    /// When `change`, the start or `check` fails, `put_back` restores the old data (the
    /// service is stopped first if it had been started again) and the service is started on
    /// it; the error is the first failure, with the server's state and what the recovery did.
    /// When the stop itself fails nothing was changed: the service is started again and
    /// `put_back` is not called. When `put_back` fails, its error's state is reported: it
    /// says [`ServerState::Partial`] when the data is half replaced, [`ServerState::Unknown`]
    /// for a change that cannot be undone (a ZFS rollback that happened).
    pub fn with_server_stopped<T>(
        &self,
        change: impl FnOnce() -> Result<T, JobError>,
        check: impl FnOnce(&T) -> Result<(), JobError>,
        put_back: impl FnOnce() -> Result<(), JobError>,
    ) -> Result<(T, Duration), JobError> {
        let down = Instant::now();
        self.host
            .info(&format!("stopping the service: {}", self.stop));
        if let Err(e) = self.stop.run() {
            let restart = self.start_again();
            return Err(e
                .context("stopping the service failed, nothing was changed")
                .with_hint(restart)
                .with_state(ServerState::Untouched));
        }
        let value = match change() {
            Ok(v) => v,
            Err(e) => return Err(self.recover(e, false, put_back)),
        };
        self.host
            .info(&format!("starting the service: {}", self.start));
        let started = self
            .start
            .run()
            .and_then(|_| wait_until_answers(self.host, self.wait))
            .and_then(|_| check(&value));
        match started {
            Ok(()) => Ok((value, down.elapsed())),
            Err(e) => Err(self.recover(e, true, put_back)),
        }
    }

    /// The recovery of [`Self::with_server_stopped`]: stop (when the service was started
    /// again), put back, start, wait.
    fn recover(
        &self,
        failure: JobError,
        stop_first: bool,
        put_back: impl FnOnce() -> Result<(), JobError>,
    ) -> JobError {
        self.host
            .warn(&format!("{failure}; putting the old data back"));
        if stop_first {
            let _ = self.stop.run();
        }
        if let Err(b) = put_back() {
            let state = match b.state {
                ServerState::Untouched => ServerState::Partial,
                s => s,
            };
            let restart = self.start_again();
            return JobError {
                message: format!(
                    "{}; putting the old data back failed: {}",
                    failure.message, b.message
                ),
                hint: Some(
                    b.hint
                        .unwrap_or_else(|| format!("{restart}; restore the data by hand")),
                ),
                ..failure
            }
            .with_state(state);
        }
        let restart = self.start_again();
        JobError {
            message: format!(
                "{}; the old data was put back and {restart}",
                failure.message
            ),
            ..failure
        }
        .with_state(ServerState::RolledBack)
    }

    /// After a failed stop: start the service and wait, and say how that went.
    fn start_again(&self) -> String {
        self.host
            .warn(&format!("starting the service again: {}", self.start));
        match self.start.run() {
            Err(e) => format!("starting the service again failed too: {e}; start it by hand"),
            Ok(_) => match wait_until_answers(self.host, self.wait) {
                Ok(_) => "the service was started again".to_string(),
                Err(e) => format!("the service was started again, but {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_on_whitespace() {
        let c = ServiceCommand::parse("  systemctl\tstop   mariadb ").unwrap();
        assert_eq!(c.program, "systemctl");
        assert_eq!(c.args, vec!["stop", "mariadb"]);
        assert_eq!(c.to_string(), "systemctl stop mariadb");
        assert!(ServiceCommand::parse(" \t ").is_err());
        // No shell: metacharacters are plain argument text.
        let c = ServiceCommand::parse("echo a;b $(x)").unwrap();
        assert_eq!(c.args, vec!["a;b", "$(x)"]);
    }

    #[test]
    fn defaults_are_valid_commands() {
        let s = ServiceSettings::read(&|_: &str| None).unwrap();
        for c in [s.stop(), s.start(), s.restart()] {
            assert_eq!(c.unwrap().program, "systemctl");
        }
        assert_eq!(s.wait(), Duration::from_secs(120));
    }

    #[test]
    fn run_reports_success_and_failure() {
        assert!(ServiceCommand::parse("true").unwrap().run().is_ok());
        let err = ServiceCommand::parse("false").unwrap().run().unwrap_err();
        assert!(
            err.message
                .starts_with("`false` failed: false exited with status 1"),
            "{err}"
        );
        let err = ServiceCommand::parse("/nonexistent/stop-it now")
            .unwrap()
            .run()
            .unwrap_err();
        assert!(err.message.contains("/nonexistent/stop-it"), "{err}");
        let err = ServiceCommand::parse("no-such-service-tool-xyz")
            .unwrap()
            .run()
            .unwrap_err();
        assert!(err.message.contains("no-such-service-tool-xyz"), "{err}");
    }

    #[test]
    fn arguments_reach_the_program_unchanged() {
        let dir = std::env::temp_dir().join(format!("dbjobs-svc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("touched;$(x)");
        let cmd = ServiceCommand::parse(&format!("touch {}", out.display())).unwrap();
        cmd.run().unwrap();
        assert!(out.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
