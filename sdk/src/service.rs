//! Controlling the local database service (`stop`, `start`, `restart`, `zfssnapback`).
//!
//! Two things every plugin that stops or starts the server needs, kept in one place so they
//! behave the same:
//!
//! * [`ServiceCommand`]: a command configured in a setting (`service_stop_command`, ...),
//!   split on whitespace into a program and its arguments and run **without a shell**. The
//!   setting comes from the node's own option file, but not going through `sh -c` keeps the
//!   rule "nothing reaches a shell" simple to check, and a command that needs a pipe or a
//!   redirection belongs in a script the setting names.
//! * [`wait_until_answers`]: after the service was started, poll the server with `SELECT 1`
//!   until it answers or a deadline passes. The job's queue session died with the server; the
//!   host reconnects to write the outcome but only tries for 60 s, so a plugin must not return
//!   before the server is back (a slow crash recovery can take longer than that).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::tool::{find_tool, ToolCommand, ToolExit};
use crate::Host;

/// Default of `service_stop_command`.
pub const DEFAULT_STOP_COMMAND: &str = "systemctl stop mariadb";
/// Default of `service_start_command`.
pub const DEFAULT_START_COMMAND: &str = "systemctl start mariadb";
/// Default of `service_restart_command`.
pub const DEFAULT_RESTART_COMMAND: &str = "systemctl restart mariadb";
/// Setting naming how long to wait for the server after a start, in seconds.
pub const WAIT_TIMEOUT_SETTING: &str = "service_wait_timeout";
/// Default of [`WAIT_TIMEOUT_SETTING`]: two minutes, enough for an InnoDB crash recovery of a
/// typical node.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(120);
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

    /// The command configured in setting `name`, or `default` when it is unset. An empty or
    /// blank setting is an error naming the setting (it would otherwise silently do nothing).
    pub fn from_setting(host: &Host<'_>, name: &str, default: &str) -> Result<Self, String> {
        let text = host.setting(name).unwrap_or_else(|| default.to_string());
        ServiceCommand::parse(&text).map_err(|e| {
            format!("setting {name}={text:?} is not usable: {e}; give a program and its arguments, e.g. {default:?}")
        })
    }

    /// The program's path: as given when it contains a `/`, else looked up like a tool.
    fn resolve(&self) -> Result<PathBuf, String> {
        if self.program.contains('/') {
            find_tool(&[], Some(&self.program))
        } else {
            find_tool(&[self.program.as_str()], None)
        }
    }

    /// Run the command to completion. `Ok` with its exit when it exited 0; otherwise an error
    /// quoting the command, its status and its last stderr lines.
    ///
    /// Its stdin and stdout are `/dev/null`, stderr is read by the SDK: a start command that
    /// leaves a daemon behind must redirect the daemon's stderr (systemctl does), or this
    /// waits for the daemon to exit.
    pub fn run(&self) -> Result<ToolExit, String> {
        let program = self
            .resolve()
            .map_err(|e| format!("cannot run `{self}`: {e}"))?;
        let exit = ToolCommand::new(&program, None).args(&self.args).run()?;
        if exit.success() {
            Ok(exit)
        } else {
            Err(format!("`{self}` failed: {}", exit.failure()))
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

/// The `service_wait_timeout` setting (seconds), or [`DEFAULT_WAIT_TIMEOUT`].
pub fn wait_timeout(host: &Host<'_>) -> Result<Duration, String> {
    host.setting_or(WAIT_TIMEOUT_SETTING, DEFAULT_WAIT_TIMEOUT.as_secs())
        .map(Duration::from_secs)
}

/// Poll the local server with `SELECT 1` (through [`Host::query`]) until it answers, at most
/// `timeout`; returns how long it took.
///
/// Call it after starting the service and before returning from the job, so the host can
/// write the outcome. The error says how long it waited, the last connection error, and
/// where to look. Stops early when the operator cancels the job.
pub fn wait_until_answers(host: &Host<'_>, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let last = match host.query_value("SELECT 1", &[]) {
            Ok(Some(v)) if v == "1" => return Ok(start.elapsed()),
            Ok(other) => format!("SELECT 1 returned {other:?}"),
            Err(e) => e,
        };
        if start.elapsed() >= timeout {
            return Err(format!(
                "the server did not answer within {} s after the service was started (last error: {last}); \
                 check the service status and the server's error log, or raise {WAIT_TIMEOUT_SETTING}",
                timeout.as_secs()
            ));
        }
        if host.cancelled() {
            return Err(format!(
                "cancelled while waiting for the server to answer (last error: {last})"
            ));
        }
        std::thread::sleep(POLL_INTERVAL.min(timeout.saturating_sub(start.elapsed())));
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
        for d in [
            DEFAULT_STOP_COMMAND,
            DEFAULT_START_COMMAND,
            DEFAULT_RESTART_COMMAND,
        ] {
            assert_eq!(ServiceCommand::parse(d).unwrap().program, "systemctl");
        }
    }

    #[test]
    fn run_reports_success_and_failure() {
        assert!(ServiceCommand::parse("true").unwrap().run().is_ok());
        let err = ServiceCommand::parse("false").unwrap().run().unwrap_err();
        assert!(
            err.starts_with("`false` failed: false exited with status 1"),
            "{err}"
        );
        let err = ServiceCommand::parse("/nonexistent/stop-it now")
            .unwrap()
            .run()
            .unwrap_err();
        assert!(err.contains("/nonexistent/stop-it"), "{err}");
        let err = ServiceCommand::parse("no-such-service-tool-xyz")
            .unwrap()
            .run()
            .unwrap_err();
        assert!(err.contains("no-such-service-tool-xyz"), "{err}");
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
