//! Spawning the node's client tools (`mariadb`, `mariadb-backup`, `mbstream`, ...).
//!
//! Three rules the bash agent broke and these helpers keep:
//! * credentials reach a tool only through `--defaults-file=<0600 option file>`, passed as
//!   its first argument (the host's [`crate::Host::client_option_file`]), never on argv;
//! * no shell: arguments are passed as a vector, job fields cannot be interpreted;
//! * the tail of the tool's stderr is kept, so a failed job's result says why it failed, and
//!   every line can be forwarded to the host log.
//!
//! A [`RunningTool`] that is dropped before it was waited for is killed with its whole process
//! group, so a failed job leaves no process behind.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use dbjobs_sdk::{declare_settings, Host, JobError};

declare_settings! {
    /// Where the physical backup tool is, for the backup and the restore.
    pub struct BackupToolSettings {
        /// Path of the backup tool; empty: mariadb-backup or mariabackup (MariaDB), xtrabackup (MySQL, Percona) on PATH.
        pub backup_tool: String = "",
    }
}

/// The size asked for the stdout pipe of a tool (Linux's default `pipe-max-size`, so an
/// unprivileged process gets it too).
pub const PIPE_SIZE: i32 = 1 << 20;

/// Best effort: ask for a [`PIPE_SIZE`] pipe buffer (`F_SETPIPE_SZ`); the default stays when
/// the kernel refuses.
fn enlarge_pipe(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: fcntl on a file descriptor we own; F_SETPIPE_SZ only changes the buffer size.
    unsafe {
        libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE);
    }
}

/// How many stderr lines a [`ToolExit`] keeps.
pub const STDERR_TAIL_LINES: usize = 40;

/// Find the first of `names` on `PATH` (then `/usr/bin`, `/usr/sbin`, `/usr/local/bin`), unless
/// `forced` (a setting) names a path, which is then used as is if it exists.
pub fn find_tool(names: &[&str], forced: Option<&str>) -> Result<PathBuf, JobError> {
    if let Some(p) = forced.filter(|p| !p.trim().is_empty()) {
        let p = PathBuf::from(p.trim());
        return if p.is_file() {
            Ok(p)
        } else {
            Err(JobError::config(format!(
                "the configured tool {} does not exist",
                p.display()
            ))
            .with_hint("fix the path in [dbjobs] of the option file, or leave the setting empty to look on PATH"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from));
    for name in names {
        for dir in &dirs {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(JobError::config(format!(
        "none of {} is installed (looked in PATH, /usr/bin, /usr/sbin)",
        names.join(", ")
    ))
    .with_hint("install it (e.g. apt-get install mariadb-backup) or set its path in [dbjobs]"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A tool invocation being built.
pub struct ToolCommand {
    cmd: Command,
    name: String,
    log_stderr: bool,
}

impl ToolCommand {
    /// Start building `program`, with `--defaults-file=<defaults_file>` as first argument when
    /// given (the tools only honour it there).
    pub fn new(program: &Path, defaults_file: Option<&Path>) -> Self {
        let mut cmd = Command::new(program);
        if let Some(f) = defaults_file {
            cmd.arg(format!("--defaults-file={}", f.display()));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Own process group: killing the job's tool kills whatever it started too.
        cmd.process_group(0);
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.display().to_string());
        ToolCommand {
            cmd,
            name,
            log_stderr: false,
        }
    }

    /// Queue every stderr line for the host's log (and so for replication-manager's live job
    /// log, which learns a backup's position only from the tool's position line).
    ///
    /// The lines are handed over by [`RunningTool::wait_logged`], or live by a thread of the
    /// plugin's own calling [`StderrLog::forward`] (the stderr reader cannot call the host: it
    /// outlives no `run`, but the compiler cannot know that).
    pub fn log_stderr(mut self) -> Self {
        self.log_stderr = true;
        self
    }

    /// Add one argument.
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }

    /// Add arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Give the tool a pipe on stdin (taken with [`RunningTool::take_stdin`]).
    pub fn piped_stdin(mut self) -> Self {
        self.cmd.stdin(Stdio::piped());
        self
    }

    /// Give the tool a pipe on stdout (taken with [`RunningTool::take_stdout`]).
    pub fn piped_stdout(mut self) -> Self {
        self.cmd.stdout(Stdio::piped());
        self
    }

    /// Connect stdout to a file or another process.
    pub fn stdout(mut self, out: impl Into<Stdio>) -> Self {
        self.cmd.stdout(out);
        self
    }

    /// Connect stdin to a file or another process.
    pub fn stdin(mut self, input: impl Into<Stdio>) -> Self {
        self.cmd.stdin(input);
        self
    }

    /// Run in `dir`.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Set an environment variable of the tool.
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    /// Start it. Each stderr line is kept in the tail and passed to `on_line` (e.g. to log it).
    pub fn spawn(
        mut self,
        on_line: impl Fn(&str) + Send + 'static,
    ) -> Result<RunningTool, JobError> {
        let mut child = self
            .cmd
            .spawn()
            .map_err(|e| JobError::tool(format!("cannot start {}: {e}", self.name)))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (forward, log_lines) = match self.log_stderr {
            true => {
                let (tx, rx) = mpsc::channel();
                (Some(tx), Some(StderrLog { lines: rx }))
            }
            false => (None, None),
        };
        let reader = std::thread::spawn(move || {
            let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                        on_line(&line);
                        if let Some(tx) = &forward {
                            let _ = tx.send(line.clone());
                        }
                        if tail.len() == STDERR_TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line.clone());
                    }
                }
            }
            tail.into_iter().collect::<Vec<_>>()
        });
        Ok(RunningTool {
            child: Some(child),
            stderr_reader: Some(reader),
            log_lines,
            name: self.name,
        })
    }

    /// Run to completion with no pipes and return how it ended.
    pub fn run(self) -> Result<ToolExit, JobError> {
        self.spawn(|_| {})?.wait()
    }

    /// Run to completion with every stderr line logged through `host` as it arrives.
    pub fn run_logged(self, host: &Host<'_>) -> Result<ToolExit, JobError> {
        self.log_stderr().spawn(|_| {})?.wait_logged(host)
    }
}

/// The stderr lines of a tool built with [`ToolCommand::log_stderr`], for the host's log.
pub struct StderrLog {
    lines: mpsc::Receiver<String>,
}

impl StderrLog {
    /// Log every line through `host` (at info level) as it arrives, until the tool's stderr
    /// closes (it exited or was killed). Run it on a scoped thread beside a copy loop.
    pub fn forward(self, host: &Host<'_>) {
        for line in self.lines {
            host.info(&line);
        }
    }
}

/// A started tool. Dropping it without [`RunningTool::wait`] kills its process group.
pub struct RunningTool {
    child: Option<Child>,
    stderr_reader: Option<JoinHandle<Vec<String>>>,
    log_lines: Option<StderrLog>,
    name: String,
}

impl RunningTool {
    /// The tool's stdout pipe (once), when built with [`ToolCommand::piped_stdout`].
    ///
    /// The pipe is enlarged to [`PIPE_SIZE`] where the kernel allows it: with the default
    /// 64 KiB, a tool streaming gigabytes (a backup) and the copy loop reading it wake each
    /// other up every 64 KiB.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        let out = self.child.as_mut().and_then(|c| c.stdout.take())?;
        enlarge_pipe(&out);
        Some(out)
    }

    /// The tool's stdin pipe (once), when built with [`ToolCommand::piped_stdin`].
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.as_mut().and_then(|c| c.stdin.take())
    }

    /// The tool's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The stderr lines for the host's log (once), when built with
    /// [`ToolCommand::log_stderr`].
    pub fn stderr_log(&mut self) -> Option<StderrLog> {
        self.log_lines.take()
    }

    /// Log the stderr lines not yet taken through `host` until stderr closes, then
    /// [`Self::wait`].
    pub fn wait_logged(mut self, host: &Host<'_>) -> Result<ToolExit, JobError> {
        if let Some(lines) = self.stderr_log() {
            lines.forward(host);
        }
        self.wait()
    }

    /// Wait for the tool to exit and collect the tail of its stderr.
    pub fn wait(mut self) -> Result<ToolExit, JobError> {
        let mut child = self.child.take().expect("not waited yet");
        let status = child
            .wait()
            .map_err(|e| JobError::tool(format!("waiting for {} failed: {e}", self.name)))?;
        let stderr_tail = self
            .stderr_reader
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Ok(ToolExit {
            name: self.name.clone(),
            status,
            stderr_tail,
        })
    }

    /// Kill the tool and its process group now.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let pgid = child.id() as libc::pid_t;
            // SAFETY: kill(2) with a negative pid signals the process group we created.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = child.kill();
        }
    }
}

impl Drop for RunningTool {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
            if let Some(mut c) = self.child.take() {
                let _ = c.wait();
            }
        }
    }
}

/// How a tool ended.
#[derive(Debug)]
pub struct ToolExit {
    /// The tool's file name, for messages.
    pub name: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its last [`STDERR_TAIL_LINES`] stderr lines.
    pub stderr_tail: Vec<String>,
}

impl ToolExit {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Whether a kept stderr line contains `needle` (e.g. `completed OK!`).
    pub fn stderr_contains(&self, needle: &str) -> bool {
        self.stderr_tail.iter().any(|l| l.contains(needle))
    }

    /// The last `n` stderr lines joined with ` | `, for a job result.
    pub fn last_lines(&self, n: usize) -> String {
        let start = self.stderr_tail.len().saturating_sub(n);
        self.stderr_tail[start..].join(" | ")
    }

    /// The failure as a [`JobError`] of kind [`dbjobs_sdk::ErrorKind::Tool`], with
    /// `doing` in front: `mariadb-backup --prepare: mariadb-backup exited with status 1: ...`.
    pub fn error(&self, doing: &str) -> JobError {
        JobError::tool(format!("{doing}: {}", self.failure()))
    }

    /// `mariadb-backup exited with status 1: <last lines>`.
    pub fn failure(&self) -> String {
        let how = match self.status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        format!("{} {how}: {}", self.name, self.last_lines(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_and_the_status() {
        let sh = find_tool(&["sh"], None).unwrap();
        let exit = ToolCommand::new(&sh, None)
            .args([
                "-c",
                "for i in $(seq 1 100); do echo line$i >&2; done; exit 3",
            ])
            .run()
            .unwrap();
        assert!(!exit.success());
        assert_eq!(exit.stderr_tail.len(), STDERR_TAIL_LINES);
        assert_eq!(exit.stderr_tail.last().unwrap(), "line100");
        assert!(exit
            .failure()
            .starts_with("sh exited with status 3: line96 | "));
    }

    #[test]
    fn defaults_file_comes_first() {
        let echo = find_tool(&["echo"], None).unwrap();
        let mut t = ToolCommand::new(&echo, Some(Path::new("/tmp/x.cnf")))
            .arg("--backup")
            .piped_stdout()
            .spawn(|_| {})
            .unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut t.take_stdout().unwrap(), &mut out).unwrap();
        t.wait().unwrap();
        assert_eq!(out, "--defaults-file=/tmp/x.cnf --backup\n");
    }

    #[test]
    fn logged_lines_arrive_in_order_and_the_tail_is_kept() {
        let sh = find_tool(&["sh"], None).unwrap();
        let mut t = ToolCommand::new(&sh, None)
            .args(["-c", "for i in 1 2 3; do echo l$i >&2; done"])
            .log_stderr()
            .spawn(|_| {})
            .unwrap();
        let lines: Vec<String> = t.stderr_log().unwrap().lines.iter().collect();
        assert_eq!(lines, ["l1", "l2", "l3"]);
        assert_eq!(t.wait().unwrap().stderr_tail, ["l1", "l2", "l3"]);
    }

    #[test]
    fn dropping_kills_the_tool() {
        let sleep = find_tool(&["sleep"], None).unwrap();
        let t = ToolCommand::new(&sleep, None)
            .arg("30")
            .spawn(|_| {})
            .unwrap();
        let pid = t.pid().unwrap();
        drop(t);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn missing_tools_name_the_fix() {
        let err = find_tool(&["no-such-tool-xyz"], None).unwrap_err();
        assert!(err.hint.unwrap().contains("install"));
        assert!(find_tool(&["x"], Some("/nonexistent/tool")).is_err());
    }
}
