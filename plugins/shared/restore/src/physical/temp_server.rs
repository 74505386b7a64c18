//! A temporary, read-only `mariadbd` on the prepared backup, reachable only through its own
//! socket: the server reads the backup's definitions itself (`SHOW CREATE`), so views,
//! routines, triggers and events survive a restore exactly (the shipped scripts patched
//! `.frm` bytes and lost them).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dbjobs_kit::private::{random_hex, write_private_file};
use dbjobs_kit::tool::{RunningTool, ToolCommand};
use dbjobs_sdk::{Host, JobError};

/// How long the temporary server may take to answer.
const TEMP_SERVER_DEADLINE: Duration = Duration::from_secs(120);

/// The account the temporary server creates for this job (online mode).
const TEMP_USER: &str = "dbjobs_restore";

/// The programs a temporary server needs.
pub struct ServerTools<'t> {
    /// `mariadbd` (setting `mariadbd_tool`).
    pub mariadbd: &'t Path,
    /// The `mariadb` client (setting `mariadb_client`).
    pub client: &'t Path,
}

/// A running temporary server; stopped by [`TempServer::shutdown`], killed when dropped.
pub struct TempServer {
    server: RunningTool,
    client: PathBuf,
    option_file: PathBuf,
    error_log: PathBuf,
}

impl TempServer {
    /// Start it on `backup`, its socket, logs and option files in `staging`, and wait until
    /// it answers. With `with_account`, an init file creates a one-off account with a random
    /// password (the backup's own accounts are unknown to us); without, it runs with
    /// `--skip-grant-tables`, which leaves the backup's files untouched but hides events.
    pub fn start(
        host: &Host<'_>,
        tools: &ServerTools<'_>,
        backup: &Path,
        staging: &Path,
        with_account: bool,
    ) -> Result<TempServer, JobError> {
        let mut socket = staging.join("temp.sock");
        if socket.as_os_str().len() > 100 {
            // Unix socket paths are limited to 108 bytes.
            socket = PathBuf::from(format!("/tmp/dbjobs-{}-temp.sock", std::process::id()));
        }
        let error_log = staging.join("temp-server.err");
        let option_file = staging.join("temp-client.cnf");
        let mut cmd = server_command(tools.mariadbd, backup, staging, &socket, &error_log);
        // utf8mb4: names and definitions with non-ASCII characters come back as they are
        // (the client's default follows the locale, latin1 under a bare service).
        let mut cnf = format!(
            "[client]\nsocket={}\ndefault-character-set=utf8mb4\n",
            socket.display()
        );
        if with_account {
            let password = random_hex(16)?;
            let init = staging.join("temp-init.sql");
            write_private_file(
                &init,
                format!(
                    "CREATE OR REPLACE USER '{TEMP_USER}'@'localhost' IDENTIFIED BY '{password}';\n\
                     GRANT ALL PRIVILEGES ON *.* TO '{TEMP_USER}'@'localhost';\n"
                )
                .as_bytes(),
            )?;
            cmd = cmd.arg(format!("--init-file={}", init.display()));
            cnf.push_str(&format!("user={TEMP_USER}\npassword={password}\n"));
        } else {
            cmd = cmd.arg("--skip-grant-tables");
            cnf.push_str("user=root\n");
        }
        write_private_file(&option_file, cnf.as_bytes())?;
        let temp = TempServer {
            server: cmd.spawn(|_| {})?,
            client: tools.client.to_path_buf(),
            option_file,
            error_log,
        };
        temp.wait_until_up(host)?;
        Ok(temp)
    }

    /// Poll with `SELECT 1` until it answers, it died, the deadline passed or the job was
    /// cancelled.
    fn wait_until_up(&self, host: &Host<'_>) -> Result<(), JobError> {
        let deadline = Instant::now() + TEMP_SERVER_DEADLINE;
        loop {
            if self.query("SELECT 1").is_ok() {
                host.info("temporary server on the backup is up");
                return Ok(());
            }
            if !self.alive() || Instant::now() >= deadline {
                return Err(JobError::tool(format!(
                    "the temporary server on the prepared backup did not start: {}",
                    self.log_tail()
                ))
                .with_hint("check that mariadbd is the server's version (setting mariadbd_tool)"));
            }
            if host.cancelled() {
                return Err(JobError::cancelled(
                    "cancelled while the temporary server started",
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the server process still runs (not a zombie).
    fn alive(&self) -> bool {
        let Some(pid) = self.server.pid() else {
            return false;
        };
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    /// The `[ERROR]` lines (or the last lines) of its error log.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.error_log).unwrap_or_default();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("[ERROR]")).collect();
        let lines: Vec<&str> = if errors.is_empty() {
            text.lines().collect()
        } else {
            errors
        };
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// Run one statement with the `mariadb` client in batch mode; values unescaped
    /// (`NULL` comes back as the text `NULL`).
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, JobError> {
        let mut tool = ToolCommand::new(&self.client, Some(&self.option_file))
            .args(["--batch", "--skip-column-names", "-e", sql])
            .piped_stdout()
            .spawn(|_| {})?;
        let mut out = Vec::new();
        if let Some(mut stdout) = tool.take_stdout() {
            stdout
                .read_to_end(&mut out)
                .map_err(|e| JobError::tool(format!("reading the client's output failed: {e}")))?;
        }
        let exit = tool.wait()?;
        if !exit.success() {
            return Err(JobError::tool(format!(
                "{sql} on the temporary server: {}",
                exit.last_lines(3)
            )));
        }
        Ok(parse_batch(&out))
    }

    /// Stop it (SIGTERM: a clean shutdown) and wait.
    pub fn shutdown(self) {
        if let Some(pid) = self.server.pid() {
            // SAFETY: plain syscall on our own child.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        let _ = self.server.wait();
    }
}

/// The `mariadbd` command line of a temporary server: read-only, no network, no binlog,
/// no replica, no events, a small buffer pool, everything it writes in `staging`.
fn server_command(
    mariadbd: &Path,
    backup: &Path,
    staging: &Path,
    socket: &Path,
    error_log: &Path,
) -> ToolCommand {
    let config = backup.join("backup-my.cnf");
    let cmd = if config.is_file() {
        // What the backup tool wrote for this backup: page size, log size, undo layout.
        ToolCommand::new(mariadbd, Some(&config))
    } else {
        ToolCommand::new(mariadbd, None).arg("--no-defaults")
    };
    let cmd = cmd.args([
        format!("--datadir={}", backup.display()),
        format!("--socket={}", socket.display()),
        format!("--pid-file={}", staging.join("temp.pid").display()),
        format!("--log-error={}", error_log.display()),
        format!("--tmpdir={}", staging.display()),
        "--skip-networking".into(),
        "--innodb-read-only".into(),
        "--skip-log-bin".into(),
        "--skip-slave-start".into(),
        "--event-scheduler=OFF".into(),
        "--innodb-buffer-pool-size=64M".into(),
        "--innodb-buffer-pool-load-at-startup=0".into(),
        "--innodb-buffer-pool-dump-at-shutdown=0".into(),
    ]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg("--user=root")
    } else {
        cmd
    }
}

/// Parse `mariadb --batch` output: rows by newline, fields by tab, `\n \t \\ \0` unescaped.
fn parse_batch(out: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(out);
    text.lines()
        .map(|line| line.split('\t').map(unescape).collect())
        .collect()
}

/// One field of `mariadb --batch` output, unescaped.
fn unescape(field: &str) -> String {
    let mut s = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            s.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => s.push('\n'),
            Some('t') => s.push('\t'),
            Some('0') => s.push('\0'),
            Some(other) => s.push(other),
            None => s.push('\\'),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_output_is_unescaped() {
        let rows = parse_batch(b"t1\tCREATE TABLE `t1` (\\n  `a` int\\n)\nx\ta\\\\b\\tc\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1], "CREATE TABLE `t1` (\n  `a` int\n)");
        assert_eq!(rows[1][1], "a\\b\tc");
    }
}
