//! Throwaway MariaDB servers.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, Value};
use tempfile::TempDir;

use crate::binaries::mariadb_tool;
use crate::net::free_port;
use crate::spawn::spawn_tied;
use crate::template::copy_template;

/// InnoDB buffer pool of every test server: enough for test data, small enough that a
/// dozen servers fit on a small CI machine (the default is 128 MiB).
pub(crate) const INNODB_BUFFER_POOL_SIZE: &str = "32M";
/// InnoDB redo log size of every test server (and of the template, see `template.rs`):
/// the default 96 MiB would be copied for every server.
pub(crate) const INNODB_LOG_FILE_SIZE: &str = "16M";

/// How long a server may take to accept connections, or to shut down, before the harness
/// gives up. Generous because parallel tests on 2 cores can be slow; normal is under a second.
const SERVER_DEADLINE: Duration = Duration::from_secs(60);
/// How many fresh ports [`MariaDb::start_with`] tries when another process took the port.
const PORT_ATTEMPTS: u32 = 8;
/// How many times [`MariaDb::restart`] retries its fixed port while it is taken.
const RESTART_ATTEMPTS: u32 = 20;
/// Set this environment variable to keep the temp dir of every server (datadir, logs) for
/// inspection after a test; its path is printed when the server is dropped.
const KEEP_ENV: &str = "DBJOBS_KEEP_SERVERS";

/// Whether this process runs as root, which changes how MariaDB tools must be called
/// (`mariadbd` refuses to run as root without `--user=root`).
pub(crate) fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// How a [`MariaDb`] is started.
///
/// The defaults match a replication-manager node: binary log on (backups and reseeds carry
/// a binlog position), server id 1, TCP on loopback only.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Start with `--log-bin=mariadb-bin` (files `mariadb-bin.NNNNNN` in the datadir).
    /// Default `true`.
    pub log_bin: bool,
    /// `--server-id`; give replicas distinct ids. Default 1.
    pub server_id: u32,
    /// Extra `mariadbd` arguments, appended last so they override the harness's own.
    pub extra_args: Vec<String>,
    /// `--bind-address` for the TCP port. Default `"127.0.0.1"`, so tests never listen on
    /// the machine's public interfaces.
    pub bind_address: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            log_bin: true,
            server_id: 1,
            extra_args: Vec::new(),
            bind_address: "127.0.0.1".to_string(),
        }
    }
}

/// Why one attempt to start `mariadbd` failed.
enum LaunchError {
    /// The TCP port was taken (another test won the race for it); retry with another port.
    PortInUse,
    /// Anything else; the message includes the end of the error log.
    Failed(String),
}

/// A throwaway `mariadbd`: own datadir (a copy of a template), own unix socket, own free TCP
/// port on 127.0.0.1, torn down on drop.
///
/// Each server lives in a private temp dir under `/tmp` (unix socket paths must stay under
/// 108 bytes, so not under a possibly long `TMPDIR`), started with `--no-defaults` so the
/// machine's `/etc/mysql` configuration and system server are never involved. `root` has an
/// empty password and connects over the socket.
///
/// Dropping the value shuts the server down (SIGTERM, then SIGKILL after 60 s) and deletes
/// its directory, also while a test panics; if the test process dies without unwinding, the
/// kernel kills the server (see the crate docs). Set `DBJOBS_KEEP_SERVERS=1` to keep the
/// directory for inspection.
pub struct MariaDb {
    /// Owns the base directory; `None` only once it was kept on purpose during drop.
    base: Option<TempDir>,
    base_path: PathBuf,
    datadir: PathBuf,
    socket: PathBuf,
    port: u16,
    opts: ServerOptions,
    child: Option<Child>,
    /// Numbers the option files written by [`MariaDb::defaults_file_with`].
    option_files: AtomicU32,
}

impl fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MariaDb")
            .field("base_dir", &self.base_path)
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("opts", &self.opts)
            .finish()
    }
}

impl MariaDb {
    /// Starts a server with [`ServerOptions::default`].
    ///
    /// # Panics
    /// When the server does not come up; the message includes the end of its error log.
    pub fn start() -> MariaDb {
        MariaDb::start_with(ServerOptions::default())
    }

    /// Starts a server with the given options and waits until it accepts connections.
    ///
    /// # Panics
    /// When the server does not come up within 60 s or exits; the message includes the end
    /// of its error log.
    pub fn start_with(opts: ServerOptions) -> MariaDb {
        let base = tempfile::Builder::new()
            .prefix("dbjobs-srv-")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("cannot create a server directory under /tmp: {e}"));
        let base_path = base.path().to_path_buf();
        let datadir = base_path.join("data");
        copy_template(&datadir);
        let mut server = MariaDb {
            socket: base_path.join("mariadb.sock"),
            base: Some(base),
            base_path,
            datadir,
            port: 0,
            opts,
            child: None,
            option_files: AtomicU32::new(0),
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(LaunchError::PortInUse) => continue,
                Err(LaunchError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!("mariadbd could not bind a free TCP port in {PORT_ATTEMPTS} attempts");
    }

    /// The server's unix socket; local clients (and dbjobs, via the option file) use it.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The server's TCP port on [`ServerOptions::bind_address`]; kept across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's datadir (`<base_dir>/data`), for tests that inspect or replace files.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The server's private temp dir; the datadir, socket, logs and option files live under
    /// it, and it is deleted when the server is dropped.
    pub fn base_dir(&self) -> &Path {
        &self.base_path
    }

    /// The `state_dir` dbjobs gets for this server ([`crate::Dbjobs::new`]): under
    /// [`MariaDb::base_dir`], so it goes with the server.
    pub fn state_dir(&self) -> PathBuf {
        self.base_dir().join("dbjobs-state")
    }

    /// The error log (`--log-error`), which is what dbjobs sends for the `error` task.
    pub fn error_log(&self) -> PathBuf {
        self.base_path.join("error.log")
    }

    /// The slow-query log file (`--slow-query-log-file`; the log itself is off unless a test
    /// turns it on). Set explicitly because the default name depends on the host name.
    pub fn slow_log(&self) -> PathBuf {
        self.base_path.join("slow.log")
    }

    /// An option file for this server: `[client]` with `socket`, `port` and `user=root`.
    ///
    /// This is how dbjobs (and `mariadb`, `mariadb-dump`, `mariadb-backup`) find the server,
    /// exactly as on a node. The file is mode 0600 because on a node it holds credentials.
    /// The same path is returned (and rewritten) on every call.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn defaults_file(&self) -> PathBuf {
        let path = self.base_path.join("defaults.cnf");
        write_private(&path, &self.option_file_text(&[]));
        path
    }

    /// Like [`MariaDb::defaults_file`], plus a `[dbjobs]` section with `dbjobs_settings` as
    /// `key=value` lines, in order.
    ///
    /// Each call writes a new file under [`MariaDb::base_dir`], so tests can run dbjobs with
    /// different settings against the same server without the files interfering.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn defaults_file_with(&self, dbjobs_settings: &[(&str, &str)]) -> PathBuf {
        let n = self.option_files.fetch_add(1, Ordering::Relaxed) + 1;
        let path = self.base_path.join(format!("defaults-{n}.cnf"));
        write_private(&path, &self.option_file_text(dbjobs_settings));
        path
    }

    /// The text of an option file, with a `[dbjobs]` section when there are settings.
    fn option_file_text(&self, dbjobs_settings: &[(&str, &str)]) -> String {
        let mut text = format!(
            "[client]\nsocket={}\nport={}\nuser=root\n",
            self.socket.display(),
            self.port
        );
        if !dbjobs_settings.is_empty() {
            text.push_str("\n[dbjobs]\n");
            for (k, v) in dbjobs_settings {
                text.push_str(&format!("{k}={v}\n"));
            }
        }
        text
    }

    /// Runs `sql`, which may hold several `;`-separated statements, on a new connection.
    ///
    /// Every statement's result is checked. (`mysql`'s own `query_drop` silently ignores an
    /// error in any statement after the first, which would let a broken test setup pass.)
    ///
    /// # Panics
    /// On any error, showing the SQL and the server's message.
    pub fn exec(&self, sql: &str) {
        let mut conn = self.conn();
        if let Err(e) = run_sql(&mut conn, sql) {
            panic!(
                "SQL failed on the server on port {}: {e}\nSQL: {sql}",
                self.port
            );
        }
    }

    /// Runs `sql` and returns the rows of all its result sets, every value as text
    /// (`NULL` is `None`).
    ///
    /// Text keeps assertions simple and independent of column types: compare with
    /// `Some("1".into())` whether the column is `TINYINT` or `VARCHAR`.
    ///
    /// # Panics
    /// On any error, showing the SQL and the server's message.
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut conn = self.conn();
        match run_sql(&mut conn, sql) {
            Ok(rows) => rows,
            Err(e) => panic!(
                "SQL failed on the server on port {}: {e}\nSQL: {sql}",
                self.port
            ),
        }
    }

    /// The first column of the first row of [`MariaDb::query`]; `None` when that value is
    /// `NULL` or there is no row.
    ///
    /// # Panics
    /// On any error, showing the SQL and the server's message.
    pub fn query_value(&self, sql: &str) -> Option<String> {
        self.query(sql)
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next())
            .flatten()
    }

    /// A new connection as `root` over the unix socket, for tests that need a session
    /// (temporary tables, locks, transactions held while dbjobs runs).
    ///
    /// # Panics
    /// When the server does not accept the connection.
    pub fn conn(&self) -> Conn {
        self.try_conn().unwrap_or_else(|e| {
            panic!(
                "cannot connect to the server at {}: {e}",
                self.socket.display()
            )
        })
    }

    /// Connects as `root` over the socket.
    fn try_conn(&self) -> Result<Conn, mysql::Error> {
        let socket = self.socket.to_str().expect("socket path is UTF-8");
        let opts = OptsBuilder::new()
            .socket(Some(socket))
            .user(Some("root"))
            .prefer_socket(true);
        Conn::new(opts)
    }

    /// Shuts the server down cleanly and waits for it to exit; does nothing if it is not
    /// running. The datadir stays, so [`MariaDb::restart`] can start it again; tests use this
    /// to exercise dbjobs against a stopped server.
    ///
    /// Uses SIGTERM rather than `mariadb-admin shutdown`, so it works even after a test has
    /// changed root's password or broken the socket.
    ///
    /// # Panics
    /// When the server does not exit within 60 s (it is then killed).
    pub fn stop(&mut self) {
        if let Err(e) = self.shutdown() {
            panic!("{e}");
        }
    }

    /// Stops the server (if running) and starts it again on the same datadir, socket and
    /// port, e.g. to check what survives a restart.
    ///
    /// Readiness is detected by connecting as `root` without a password over the socket, so
    /// a test that changes root's credentials must restore them before restarting.
    ///
    /// # Panics
    /// When the server does not come back; the message includes the end of its error log.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..RESTART_ATTEMPTS {
            match self.launch() {
                Ok(()) => return,
                // Someone grabbed our port while the server was down; it is usually freed
                // quickly (another harness probing it with `free_port`).
                Err(LaunchError::PortInUse) => std::thread::sleep(Duration::from_millis(250)),
                Err(LaunchError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "mariadbd could not get its port {} back after a restart",
            self.port
        );
    }

    /// The pid of the running `mariadbd`, `None` when it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The `mariadbd` command line for the current port.
    fn server_args(&self) -> Vec<String> {
        let base = &self.base_path;
        let mut args = vec![
            // Must come first: never read /etc/mysql (the system server's settings).
            "--no-defaults".to_string(),
            format!("--datadir={}", self.datadir.display()),
            format!("--socket={}", self.socket.display()),
            format!("--port={}", self.port),
            format!("--bind-address={}", self.opts.bind_address),
            format!("--pid-file={}", base.join("mariadbd.pid").display()),
            format!("--log-error={}", self.error_log().display()),
            format!("--innodb-buffer-pool-size={INNODB_BUFFER_POOL_SIZE}"),
            format!("--innodb-log-file-size={INNODB_LOG_FILE_SIZE}"),
            // The defaults for these caches (16M, 128M) and the 12M temporary
            // tablespace written at every start add ~40 MB of RSS and 12 MB of disk writes
            // per server, which adds up with a dozen servers on a small CI machine.
            "--innodb-log-buffer-size=2M".to_string(),
            "--key-buffer-size=8M".to_string(),
            "--innodb-temp-data-file-path=ibtmp1:1M:autoextend".to_string(),
            "--skip-name-resolve".to_string(),
            format!("--server-id={}", self.opts.server_id),
            "--gtid-strict-mode=0".to_string(),
            format!("--slow-query-log-file={}", self.slow_log().display()),
            // A private tmpdir: internal temporary tables (Aria files) of parallel servers
            // must not share /tmp.
            format!("--tmpdir={}", base.join("tmp").display()),
        ];
        if self.opts.log_bin {
            // Relative: the binlogs go into the datadir, as on a Debian node.
            args.push("--log-bin=mariadb-bin".to_string());
        }
        if running_as_root() {
            args.push("--user=root".to_string());
        }
        args.extend(self.opts.extra_args.iter().cloned());
        args
    }

    /// Starts `mariadbd` once on the current port and waits until it accepts connections.
    fn launch(&mut self) -> Result<(), LaunchError> {
        std::fs::create_dir_all(self.base_path.join("tmp"))
            .map_err(|e| LaunchError::Failed(format!("cannot create the server's tmpdir: {e}")))?;
        let log_path = self.error_log();
        // Only what this attempt writes counts when looking for the reason of a failure.
        let log_offset = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let out_path = self.base_path.join("mariadbd.out");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .map_err(|e| LaunchError::Failed(format!("cannot open {}: {e}", out_path.display())))?;
        let out_err = out.try_clone().expect("duplicate a file handle");
        let mut cmd = Command::new(mariadb_tool("mariadbd"));
        cmd.args(self.server_args())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(out_err);
        let mut child = spawn_tied(cmd)
            .map_err(|e| LaunchError::Failed(format!("cannot start mariadbd: {e}")))?;
        let deadline = Instant::now() + SERVER_DEADLINE;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Err(self.exited_early(status, log_offset)),
                Ok(None) => {}
                Err(e) => {
                    return Err(LaunchError::Failed(format!(
                        "cannot wait for mariadbd: {e}"
                    )))
                }
            }
            if self.try_conn().is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LaunchError::Failed(format!(
                    "mariadbd (port {}) did not accept connections on {} within {SERVER_DEADLINE:?}\n{}",
                    self.port,
                    self.socket.display(),
                    self.log_tails()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Classifies a `mariadbd` that exited while starting.
    fn exited_early(&self, status: ExitStatus, log_offset: u64) -> LaunchError {
        let new_log = read_from(&self.error_log(), log_offset);
        if new_log.contains("Address already in use") {
            return LaunchError::PortInUse;
        }
        LaunchError::Failed(format!(
            "mariadbd (port {}) exited while starting ({status})\n{}",
            self.port,
            self.log_tails()
        ))
    }

    /// The last lines of the error log and of mariadbd's own stdout/stderr, for messages.
    fn log_tails(&self) -> String {
        format!(
            "--- end of {} ---\n{}\n--- end of {} ---\n{}",
            self.error_log().display(),
            tail(&read_from(&self.error_log(), 0), 30),
            self.base_path.join("mariadbd.out").display(),
            tail(&read_from(&self.base_path.join("mariadbd.out"), 0), 10),
        )
    }

    /// Stops the server: SIGTERM (a clean shutdown), then SIGKILL after the deadline.
    fn shutdown(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(()); // it died on its own (a test killed it); nothing to stop
        }
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain syscall; the pid is our unreaped child, so it cannot be reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + SERVER_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "mariadbd (port {}, pid {pid}) did not shut down within {SERVER_DEADLINE:?}; killed it\n{}",
            self.port,
            self.log_tails()
        ))
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // Never panic here: a panic while the test is already unwinding aborts the process.
        if let Err(e) = self.shutdown() {
            eprintln!("{e}");
        }
        if std::thread::panicking() {
            let errors: Vec<String> = read_from(&self.error_log(), 0)
                .lines()
                .filter(|l| l.contains("[ERROR]"))
                .map(str::to_string)
                .collect();
            eprintln!(
                "mariadbd on port {} ({}) stopped after a panic; [ERROR] lines of its log:\n{}\n\
                 (set {KEEP_ENV}=1 to keep its files)",
                self.port,
                self.base_path.display(),
                tail(&errors.join("\n"), 20)
            );
        }
        if std::env::var_os(KEEP_ENV).is_some() {
            if let Some(base) = self.base.take() {
                eprintln!("kept mariadbd files in {}", base.keep().display());
            }
        }
    }
}

/// Runs possibly multi-statement `sql` and collects the rows of every result set as text,
/// returning the first error of any statement.
fn run_sql(conn: &mut Conn, sql: &str) -> Result<Vec<Vec<Option<String>>>, mysql::Error> {
    let mut rows = Vec::new();
    let mut result = conn.query_iter(sql)?;
    while let Some(set) = result.iter() {
        for row in set {
            rows.push(row?.unwrap().into_iter().map(value_text).collect());
        }
    }
    Ok(rows)
}

/// A value as the text MariaDB would print for it; `NULL` is `None`.
///
/// Queries use the text protocol, so values normally arrive as `Bytes`; the other variants
/// only occur with the binary protocol and are rendered in SQL's literal format.
fn value_text(value: Value) -> Option<String> {
    Some(match value {
        Value::NULL => return None,
        Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Date(y, mo, d, 0, 0, 0, 0) => format!("{y:04}-{mo:02}-{d:02}"),
        Value::Date(y, mo, d, h, mi, s, 0) => {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
        }
        Value::Date(y, mo, d, h, mi, s, us) => {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        }
        Value::Time(neg, days, h, mi, s, us) => {
            let sign = if neg { "-" } else { "" };
            let hours = days * 24 + u32::from(h);
            if us == 0 {
                format!("{sign}{hours:02}:{mi:02}:{s:02}")
            } else {
                format!("{sign}{hours:02}:{mi:02}:{s:02}.{us:06}")
            }
        }
    })
}

/// Writes `text` to `path` with mode 0600, replacing any previous content atomically.
fn write_private(path: &Path, text: &str) {
    // Unique per call, so two threads rewriting the same file cannot collide.
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{seq}"));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// The content of a (log) file from byte `offset`, lossily decoded; empty if unreadable.
fn read_from(path: &Path, offset: u64) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut buf);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_sql_text() {
        assert_eq!(value_text(Value::NULL), None);
        assert_eq!(
            value_text(Value::Bytes(b"abc".to_vec())),
            Some("abc".into())
        );
        assert_eq!(value_text(Value::Int(-3)), Some("-3".into()));
        assert_eq!(value_text(Value::UInt(7)), Some("7".into()));
        assert_eq!(value_text(Value::Double(1.5)), Some("1.5".into()));
        assert_eq!(
            value_text(Value::Date(2024, 1, 2, 0, 0, 0, 0)),
            Some("2024-01-02".into())
        );
        assert_eq!(
            value_text(Value::Date(2024, 1, 2, 3, 4, 5, 0)),
            Some("2024-01-02 03:04:05".into())
        );
        assert_eq!(
            value_text(Value::Date(2024, 1, 2, 3, 4, 5, 60)),
            Some("2024-01-02 03:04:05.000060".into())
        );
        assert_eq!(
            value_text(Value::Time(true, 1, 2, 3, 4, 0)),
            Some("-26:03:04".into())
        );
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
