//! End-to-end tests of the log-shipping plugins (`errorlog`: tasks `error`, `errorlog`,
//! `auditlog`, `sqlerrorlog`; `slowlog`: task `slowquery`) against real servers, with a real
//! TCP listener standing in for replication-manager.
//!
//! What a user checks: the bytes replication-manager receives are exactly the lines the server
//! wrote, no line is lost or sent twice across sends (also when a send fails, or when the
//! server writes while a send runs), and the row says what happened.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dbjobs_tests::fixtures::submit_job;
use dbjobs_tests::sender::job_row;
use dbjobs_tests::{free_port, plugin_dir, plugin_file, wait_for, Dbjobs, MariaDb, RunOutput};
use tempfile::TempDir;

/// How long the test listener waits for dbjobs to connect.
const ACCEPT_DEADLINE: Duration = Duration::from_secs(120);

/// A stand-in for replication-manager's listener: binds 127.0.0.1:0, accepts one connection,
/// reads it to the end and closes it, like repman's `io.Copy` into a file.
struct Listener {
    port: u16,
    thread: JoinHandle<Vec<u8>>,
}

/// How the test listener ends its connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Read to the end, then close normally.
    ReadAll,
    /// Wait until `file` exists (the job has rotated the log), then reset the connection
    /// without reading: a listener that died mid-send.
    ResetWhenExists,
}

impl Listener {
    /// A listener that reads everything at once.
    fn start() -> Listener {
        Listener::start_with(None, Ending::ReadAll, None)
    }

    /// A listener that accepts, then reads nothing until `gate` receives (or is dropped):
    /// the job stays in the middle of its send meanwhile.
    fn stalled(gate: Receiver<()>) -> Listener {
        Listener::start_with(Some(gate), Ending::ReadAll, None)
    }

    /// A listener that resets the connection once `file` exists.
    fn resetting(file: PathBuf) -> Listener {
        Listener::start_with(None, Ending::ResetWhenExists, Some(file))
    }

    fn start_with(gate: Option<Receiver<()>>, ending: Ending, file: Option<PathBuf>) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut stream = accept(&listener);
            drop(listener);
            if let Some(gate) = gate {
                let _ = gate.recv();
            }
            if ending == Ending::ResetWhenExists {
                let file = file.expect("file to wait for");
                wait_for("the job to rotate the log", ACCEPT_DEADLINE, || {
                    file.exists().then_some(())
                });
                reset(stream);
                return Vec::new();
            }
            let mut got = Vec::new();
            stream.read_to_end(&mut got).expect("read the stream");
            got
        });
        Listener { port, thread }
    }

    /// The bytes received; waits for the connection to end.
    fn bytes(self) -> Vec<u8> {
        self.thread.join().expect("listener thread")
    }

    /// The bytes received, as text.
    fn text(self) -> String {
        String::from_utf8(self.bytes()).expect("logs are UTF-8")
    }
}

/// Accept one connection, or panic after [`ACCEPT_DEADLINE`] (a test must not hang).
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    start.elapsed() < ACCEPT_DEADLINE,
                    "dbjobs did not connect within {ACCEPT_DEADLINE:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept failed: {e}"),
        }
    }
}

/// Close `stream` with a reset (SO_LINGER 0) instead of a clean end.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
    drop(stream);
}

/// A plugin dir with both log plugins.
fn plugins() -> TempDir {
    plugin_dir(&[plugin_file("errorlog"), plugin_file("slowlog")])
}

/// Write one line into the server's error log: a failed login as user `marker` logs
/// `Access denied for user '<marker>'@'localhost'` (log_warnings=2, the default).
fn log_error_line(server: &MariaDb, marker: &str) {
    let opts = mysql::OptsBuilder::new()
        .socket(Some(server.socket().to_str().unwrap()))
        .user(Some(marker))
        .pass(Some("wrong"))
        .prefer_socket(true);
    assert!(
        mysql::Conn::new(opts).is_err(),
        "login as {marker} must fail"
    );
}

/// Queue a job for `task` toward the listener on `port`; returns its id.
fn submit(server: &MariaDb, dir: &Path, task: &str, port: u16) -> u64 {
    submit_job(&Dbjobs::new(server, dir), task, port)
}

/// The row's `done` and `result`.
fn row(server: &MariaDb, id: u64) -> (String, String) {
    let r = job_row(server, id);
    (r.done.to_string(), r.result_text().to_string())
}

/// Run one pass and check the job succeeded.
fn run_ok(server: &MariaDb, dbjobs: &Dbjobs, id: u64) -> RunOutput {
    let out = dbjobs.run(&["run"]);
    out.assert_code(0);
    let (done, result) = row(server, id);
    assert_eq!(done, "1", "job {id} not done: {result}\n{}", out.stderr);
    assert!(result.starts_with("sent "), "result: {result}");
    out
}

/// `<log>.dbjobs-sending`.
fn sending(log: &Path) -> PathBuf {
    PathBuf::from(format!("{}.dbjobs-sending", log.display()))
}

/// How many times `needle` occurs in `hay`.
fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn error_log_arrives_exactly_and_is_rotated() {
    let server = MariaDb::start();
    let dir = plugins();
    let dbjobs = Dbjobs::new(&server, dir.path());
    let log = server.error_log();
    log_error_line(&server, "first_mark");
    let before = fs::read_to_string(&log).unwrap();
    assert!(before.contains("first_mark"));

    let listener = Listener::start();
    let id = submit(&server, dir.path(), "errorlog", listener.port);
    run_ok(&server, &dbjobs, id);
    let got = listener.text();
    assert_eq!(got, before, "the bytes received are the error log");
    let (_, result) = row(&server, id);
    assert!(
        result.contains(&format!("({} bytes)", before.len())),
        "{result}"
    );
    assert!(result.contains(&log.display().to_string()), "{result}");
    assert!(!sending(&log).exists(), "the sent part is deleted");
    let after = fs::read_to_string(&log).expect("the server reopened its error log");
    assert!(!after.contains("first_mark"), "the log was rotated");

    // The server keeps logging into the new file; the legacy task name ships only that.
    log_error_line(&server, "second_mark");
    let before = fs::read_to_string(&log).unwrap();
    assert!(before.contains("second_mark"));
    let listener = Listener::start();
    let id = submit(&server, dir.path(), "error", listener.port);
    run_ok(&server, &dbjobs, id);
    let got = listener.text();
    assert_eq!(got, before);
    assert!(!got.contains("first_mark"), "nothing is sent twice");
}

#[test]
fn lines_written_during_a_send_arrive_in_the_next_send() {
    let server = MariaDb::start();
    let dir = plugins();
    let dbjobs = Dbjobs::new(&server, dir.path());
    let log = server.error_log();
    log_error_line(&server, "before_mark");
    let before = fs::read_to_string(&log).unwrap();

    let (open_gate, gate): (Sender<()>, Receiver<()>) = mpsc::channel();
    let listener = Listener::stalled(gate);
    let id = submit(&server, dir.path(), "errorlog", listener.port);
    let mut child = dbjobs.spawn(&["run"]);
    // The job has renamed the log aside and the server reopened it: the send is under way
    // (the listener reads nothing yet).
    wait_for("the log to be rotated", Duration::from_secs(60), || {
        (sending(&log).exists() && log.exists()).then_some(())
    });
    for i in 0..3 {
        log_error_line(&server, &format!("during_mark_{i}"));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job waits for the stalled listener"
    );
    open_gate.send(()).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "first job failed: {:?}", row(&server, id));
    let first = listener.text();
    assert_eq!(first, before, "the first send is the log as it was");

    let middle = fs::read_to_string(&log).unwrap();
    let listener = Listener::start();
    let id = submit(&server, dir.path(), "errorlog", listener.port);
    run_ok(&server, &dbjobs, id);
    let second = listener.text();
    assert_eq!(second, middle, "the second send is what came since");
    let all = format!("{first}{second}");
    for m in [
        "before_mark",
        "during_mark_0",
        "during_mark_1",
        "during_mark_2",
    ] {
        assert_eq!(count(&all, m), 1, "{m} exactly once in\n{all}");
    }
}

#[test]
fn a_failed_send_keeps_every_line() {
    let server = MariaDb::start();
    let dir = plugins();
    let dbjobs = Dbjobs::new(&server, dir.path()).set("connect_timeout", "2");
    let log = server.error_log();
    log_error_line(&server, "kept_mark_a");

    // Nobody listens: the job fails, saying why, and the log is untouched.
    let closed = free_port();
    let id = submit(&server, dir.path(), "errorlog", closed);
    let out = dbjobs.run(&["run"]);
    assert_ne!(out.status, 0, "{}", out.stderr);
    let (done, result) = row(&server, id);
    assert_eq!(done, "1", "{result}");
    assert!(
        result.contains(&format!("cannot connect to 127.0.0.1:{closed}")),
        "{result}"
    );
    assert!(result.contains("nothing lost"), "{result}");
    assert!(fs::read_to_string(&log).unwrap().contains("kept_mark_a"));

    // The listener dies after the log was rotated: the job fails, the part stays aside.
    log_error_line(&server, "kept_mark_b");
    let whole = fs::read_to_string(&log).unwrap();
    let listener = Listener::resetting(sending(&log));
    let id = submit(&server, dir.path(), "errorlog", listener.port);
    let out = dbjobs.run(&["run"]);
    assert_eq!(listener.bytes(), b"");
    assert_ne!(out.status, 0, "{}", out.stderr);
    let (_, result) = row(&server, id);
    assert!(result.contains("nothing lost"), "{result}");
    assert_eq!(
        fs::read_to_string(sending(&log)).unwrap(),
        whole,
        "the unsent part is kept aside"
    );

    // The next job sends the kept part first, then what was logged since, on one connection.
    log_error_line(&server, "kept_mark_c");
    let since = fs::read_to_string(&log).unwrap();
    assert!(since.contains("kept_mark_c") && !since.contains("kept_mark_b"));
    let listener = Listener::start();
    let id = submit(&server, dir.path(), "errorlog", listener.port);
    run_ok(&server, &dbjobs, id);
    let got = listener.text();
    assert_eq!(got, format!("{whole}{since}"));
    for m in ["kept_mark_a", "kept_mark_b", "kept_mark_c"] {
        assert_eq!(count(&got, m), 1, "{m} exactly once");
    }
    assert!(!sending(&log).exists());
    let (_, result) = row(&server, id);
    assert!(result.contains("earlier failed send"), "{result}");
}

#[test]
fn slow_query_log_is_shipped_and_rotated() {
    let server = MariaDb::start();
    let dir = plugins();
    let dbjobs = Dbjobs::new(&server, dir.path());
    let log = server.slow_log();

    // Never enabled: no file yet. The listener still sees a connection, which ends empty.
    assert!(!log.exists());
    let listener = Listener::start();
    let id = submit(&server, dir.path(), "slowquery", listener.port);
    run_ok(&server, &dbjobs, id);
    assert_eq!(listener.bytes(), b"", "an empty log sends 0 bytes");
    let (_, result) = row(&server, id);
    assert!(result.starts_with("sent 0 B (0 bytes)"), "{result}");

    server.exec("SET GLOBAL slow_query_log=1, long_query_time=0");
    // New sessions pick the global long_query_time up.
    server.exec("SELECT 'slow_mark_1'; SELECT 'slow_mark_2'");
    // The server writes the slow log after answering the client: wait for the line.
    let before = wait_for(
        "slow_mark_2 in the slow log",
        Duration::from_secs(30),
        || {
            fs::read_to_string(&log)
                .ok()
                .filter(|t| t.contains("slow_mark_2"))
        },
    );
    let listener = Listener::start();
    let id = submit(&server, dir.path(), "slowquery", listener.port);
    run_ok(&server, &dbjobs, id);
    let got = listener.text();
    // dbjobs' own queries are slow queries too (long_query_time=0) and may follow.
    assert!(got.starts_with(&before), "received:\n{got}");
    assert_eq!(count(&got, "slow_mark_1"), 1);
    assert!(!sending(&log).exists());
    let fresh = fs::read_to_string(&log).expect("the server reopened its slow log");
    assert!(!fresh.contains("slow_mark_1"), "rotated:\n{fresh}");
    assert!(fresh.len() < got.len(), "the new file is fresh");

    // The next send starts where the last one ended.
    server.exec("SELECT 'slow_mark_3'");
    wait_for(
        "slow_mark_3 in the slow log",
        Duration::from_secs(30),
        || {
            fs::read_to_string(&log)
                .ok()
                .filter(|t| t.contains("slow_mark_3"))
        },
    );
    let listener = Listener::start();
    let id = submit(&server, dir.path(), "slowquery", listener.port);
    run_ok(&server, &dbjobs, id);
    let got = listener.text();
    assert!(got.contains("slow_mark_3"));
    assert!(!got.contains("slow_mark_1"), "nothing sent twice");
}

#[test]
fn audit_and_sql_error_logs_are_shipped() {
    let server = MariaDb::start();
    let dir = plugins();
    let dbjobs = Dbjobs::new(&server, dir.path()).set("connect_timeout", "2");

    // Without the plugin the variable does not exist: a clear failure, no connection needed.
    let id = submit(&server, dir.path(), "sqlerrorlog", free_port());
    let out = dbjobs.run(&["run"]);
    assert_ne!(out.status, 0);
    let (_, result) = row(&server, id);
    assert!(result.contains("sql_error_log_filename"), "{result}");
    assert!(result.contains("INSTALL SONAME 'sql_errlog'"), "{result}");

    server.exec("INSTALL SONAME 'server_audit'; INSTALL SONAME 'sql_errlog'");
    server.exec("SET GLOBAL server_audit_logging=1");
    let mut conn = server.conn();
    use mysql::prelude::Queryable;
    conn.query_drop("SELECT 'audit_mark'").unwrap();
    assert!(conn.query_drop("SELECT no_such_column_mark").is_err());
    drop(conn);

    // Both default to a file in the datadir.
    let audit = server.datadir().join("server_audit.log");
    let listener = Listener::start();
    let id = submit(&server, dir.path(), "auditlog", listener.port);
    run_ok(&server, &dbjobs, id);
    let got = listener.text();
    assert_eq!(count(&got, "audit_mark"), 1, "{got}");
    assert!(!sending(&audit).exists());
    let fresh = fs::read_to_string(&audit).expect("the audit plugin reopened its file");
    assert!(!fresh.contains("audit_mark"), "rotated:\n{fresh}");

    let sqlerr = server.datadir().join("sql_errors.log");
    let before = fs::read_to_string(&sqlerr).unwrap();
    assert!(before.contains("no_such_column_mark"));
    let listener = Listener::start();
    let id = submit(&server, dir.path(), "sqlerrorlog", listener.port);
    run_ok(&server, &dbjobs, id);
    assert_eq!(listener.text(), before);
    assert!(!sending(&sqlerr).exists());
    // The plugin writes into a new file.
    server.conn().query_drop("SELECT again_mark").unwrap_err();
    let fresh = fs::read_to_string(&sqlerr).unwrap();
    assert!(fresh.contains("again_mark") && !fresh.contains("no_such_column_mark"));
}
