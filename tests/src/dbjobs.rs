//! Running the real `dbjobs` binary.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::binaries::dbjobs_bin;
use crate::server::MariaDb;
use crate::spawn::spawn_tied;

/// How long [`Dbjobs::run`] lets dbjobs run unless [`Dbjobs::timeout`] says otherwise: a hung
/// dbjobs must fail the test, not hang the whole test run.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A builder for running the real `dbjobs` binary against a [`MariaDb`].
///
/// The end-to-end tests exercise dbjobs the way a node runs it: a separate process, an option
/// file for the connection, a plugin directory. Every command gets the global arguments
/// `--defaults-file <file> --plugin-dir <dir>` (then one `--set name=value` per
/// [`Dbjobs::set`]) before the test's own arguments, and `RUST_LOG=info` unless
/// [`Dbjobs::env`] sets it, so logs in assertions do not depend on the caller's environment.
///
/// Child processes started by [`Dbjobs::run`] and [`Dbjobs::spawn`] are killed by the kernel
/// if the test process dies.
#[derive(Clone, Debug)]
pub struct Dbjobs {
    binary: Option<PathBuf>,
    defaults_file: PathBuf,
    plugin_dir: PathBuf,
    settings: Vec<(String, String)>,
    envs: Vec<(String, String)>,
    timeout: Duration,
}

impl Dbjobs {
    /// dbjobs for `server` (its [`MariaDb::defaults_file`]) with plugins from `plugin_dir`
    /// (usually a [`plugin_dir`](crate::plugin_dir)), with the setting `state_dir` in the
    /// server's own directory ([`MariaDb::state_dir`]), so that no test writes to the node's
    /// `/var/lib/dbjobs` and each server's journal and outcomes are its own.
    ///
    /// The binary is looked up when a command is built, not here, so a test can replace it
    /// with [`Dbjobs::binary`] without dbjobs being built.
    pub fn new(server: &MariaDb, plugin_dir: &Path) -> Dbjobs {
        Dbjobs {
            binary: None,
            defaults_file: server.defaults_file(),
            plugin_dir: plugin_dir.to_path_buf(),
            settings: vec![(
                "state_dir".to_string(),
                server.state_dir().display().to_string(),
            )],
            envs: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Uses the option file `p` instead of the server's default one, e.g. one from
    /// [`MariaDb::defaults_file_with`] with a `[dbjobs]` section.
    pub fn defaults_file(mut self, p: &Path) -> Self {
        self.defaults_file = p.to_path_buf();
        self
    }

    /// Adds the global argument `--set name=value` (a setting overriding the option file).
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets an environment variable for dbjobs (`RUST_LOG` replaces the default `info`).
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.to_string(), v.to_string()));
        self
    }

    /// Runs `binary` instead of [`dbjobs_bin`]: for testing the harness itself, or a wrapper
    /// script around dbjobs.
    pub fn binary(mut self, binary: &Path) -> Self {
        self.binary = Some(binary.to_path_buf());
        self
    }

    /// How long [`Dbjobs::run`] waits before killing dbjobs and failing (default 300 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command: binary, global arguments, then `args`, with the environment applied.
    ///
    /// For tests that need full control (stdin, their own spawning); note that a child
    /// spawned from it is not tied to the test process like [`Dbjobs::spawn`]'s.
    ///
    /// # Panics
    /// When the dbjobs binary is missing (see [`dbjobs_bin`]).
    pub fn command(&self, args: &[&str]) -> Command {
        let binary = self.binary.clone().unwrap_or_else(dbjobs_bin);
        let mut cmd = Command::new(binary);
        cmd.arg("--defaults-file")
            .arg(&self.defaults_file)
            .arg("--plugin-dir")
            .arg(&self.plugin_dir);
        for (name, value) in &self.settings {
            cmd.arg("--set").arg(format!("{name}={value}"));
        }
        cmd.args(args);
        if !self.envs.iter().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs dbjobs with `args` to completion and returns its exit code and output.
    ///
    /// A non-zero exit is a result, not a failure: tests assert on it with
    /// [`RunOutput::assert_code`]. Stdin is empty.
    ///
    /// # Panics
    /// When dbjobs cannot be started, or is still running after the timeout (it is then
    /// killed; the message shows its output so far).
    pub fn run(&self, args: &[&str]) -> RunOutput {
        let mut child = self.spawn(args);
        let stdout = Drain::start(child.stdout.take());
        let stderr = Drain::start(child.stderr.take());
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    // The whole process group: dbjobs' own children (mariadb-backup, a
                    // temporary mariadbd) would otherwise hold the pipes open.
                    // SAFETY: plain syscall on the group spawn() created for this child.
                    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                    let _ = child.wait();
                    let out = RunOutput {
                        status: -1,
                        stdout: stdout.finish(),
                        stderr: stderr.finish(),
                    };
                    panic!(
                        "dbjobs {args:?} still running after {:?}; killed it\n{}",
                        self.timeout,
                        out.describe()
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("cannot wait for dbjobs: {e}"),
            }
        };
        RunOutput {
            status: exit_code(status),
            stdout: stdout.finish(),
            stderr: stderr.finish(),
        }
    }

    /// Starts dbjobs with `args` in the background, stdout and stderr piped, stdin empty,
    /// in a process group of its own (so signals to the test's terminal group miss it).
    ///
    /// For long-running modes (a daemon loop, a listener waiting for a stream) that a test
    /// interacts with before stopping it. The caller must read the pipes (or drop them)
    /// and wait for the child.
    ///
    /// # Panics
    /// When dbjobs cannot be started.
    pub fn spawn(&self, args: &[&str]) -> Child {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout can kill dbjobs and everything it started.
            .process_group(0);
        spawn_tied(cmd).unwrap_or_else(|e| {
            panic!(
                "cannot start {:?}: {e}",
                self.binary.clone().unwrap_or_else(dbjobs_bin)
            )
        })
    }
}

/// Reads a child's pipe on a thread, so a child that writes a lot cannot block on a full
/// pipe while the caller waits for it to exit.
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl Drain {
    /// How long [`Drain::finish`] waits for the end of the pipe after the child exited: a
    /// grandchild that inherited the pipe may keep it open much longer.
    const GRACE: Duration = Duration::from_secs(5);

    fn start<R: Read + Send + 'static>(pipe: Option<R>) -> Drain {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let thread = pipe.map(|mut p| {
            let buf = Arc::clone(&buf);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                loop {
                    match p.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => buf
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            })
        });
        Drain { buf, thread }
    }

    /// The text read so far, after waiting a little for the end of the pipe.
    fn finish(mut self) -> String {
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + Self::GRACE;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        let buf = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// The exit code, or -1 when the process was killed by a signal.
fn exit_code(status: ExitStatus) -> i32 {
    status.code().unwrap_or(-1)
}

/// What a finished dbjobs run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutput {
    /// The exit code; -1 when dbjobs was killed by a signal (a crash shows up here).
    pub status: i32,
    /// Everything dbjobs wrote to stdout.
    pub stdout: String,
    /// Everything dbjobs wrote to stderr (its log).
    pub stderr: String,
}

impl RunOutput {
    /// Asserts that dbjobs exited with `code`; returns `self` for further checks.
    ///
    /// # Panics
    /// When the code differs, showing stdout and stderr: the log is what explains why.
    pub fn assert_code(&self, code: i32) -> &Self {
        if self.status != code {
            panic!(
                "dbjobs exited with {} instead of {code}\n{}",
                self.status,
                self.describe()
            );
        }
        self
    }

    /// The exit code and both outputs, for failure messages.
    fn describe(&self) -> String {
        format!(
            "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}
