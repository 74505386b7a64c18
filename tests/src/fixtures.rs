//! Helpers the job tests share: submitting a job toward a listener on loopback, running
//! dbjobs for an inbound (reseed/flashback) job and collecting its output, and the checks a
//! user makes on the target afterwards (binary log untouched, staging area empty).
//!
//! They live here rather than in each test file so that the logical and the physical reseed
//! tests (and the log-shipping tests, for [`submit_job`]) drive dbjobs the same way.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use crate::binaries::mariadb_tool;
use crate::dbjobs::Dbjobs;
use crate::net::free_port;
use crate::sender::{send_when_waiting, wait_job_finished, JobRow};
use crate::server::{MariaDb, ServerOptions};

/// A server with id `server_id` and the binary log on, as on a real node: a reseed source
/// (id 1) or its target (another id, so that it can replicate from the source).
pub fn node(server_id: u32) -> MariaDb {
    MariaDb::start_with(ServerOptions {
        server_id,
        ..Default::default()
    })
}

/// `dbjobs` for `server` with the plugins in `plugins`, receiving on loopback only (so a
/// test's stranger on 127.0.0.2 is refused by the peer filter, not by the bind) and staging
/// under `backup_dir` (so a test can check that nothing is left behind).
pub fn inbound_dbjobs(server: &MariaDb, plugins: &Path, backup_dir: &Path) -> Dbjobs {
    Dbjobs::new(server, plugins)
        .set("receive_bind", "127.0.0.1")
        .set("backup_dir", backup_dir.to_str().unwrap())
}

/// Submits `task` with `dbjobs submit` as replication-manager would, for server 127.0.0.1
/// and port `port` (the listener a test runs, or the port an inbound job listens on), and
/// returns the new row's id.
///
/// # Panics
/// When `dbjobs submit` fails or prints no id.
pub fn submit_job(d: &Dbjobs, task: &str, port: u16) -> u64 {
    let out = d.run(&[
        "submit",
        task,
        "--server",
        "127.0.0.1",
        "--job-port",
        &port.to_string(),
    ]);
    out.assert_code(0);
    out.stdout.trim().parse().expect("job id")
}

/// Plays replication-manager for one inbound job from start to end: submits `task` on
/// `target` toward a free port, runs `dbjobs run` with `d`, sends `bytes` from 127.0.0.1
/// once the job listens, and returns the finished row and dbjobs' output. Each step waits
/// at most `timeout`.
///
/// # Panics
/// When sending fails (showing dbjobs' log) or the job does not finish in time.
pub fn run_inbound(
    d: &Dbjobs,
    target: &MariaDb,
    task: &str,
    bytes: &[u8],
    timeout: Duration,
) -> (JobRow, Output) {
    let port = free_port();
    let id = submit_job(d, task, port);
    let child = d.spawn(&["run"]);
    let local = IpAddr::from([127, 0, 0, 1]);
    let sent = send_when_waiting(target, id, port, local, bytes, timeout);
    let out = finish(child, timeout);
    assert!(sent.is_ok(), "sending failed: {sent:?}\n{}", stderr(&out));
    let row = wait_job_finished(target, id, timeout);
    (row, out)
}

/// Waits for a dbjobs started with [`Dbjobs::spawn`] to exit and returns its output.
///
/// A spawned `dbjobs run` waiting for a stream that never comes would hang the test; this
/// waits at most `timeout`, then kills dbjobs' whole process group (its tools too).
///
/// # Panics
/// When dbjobs still runs after `timeout`, showing its log.
pub fn finish(child: Child, timeout: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait for dbjobs"),
        Err(_) => {
            // SAFETY: plain kill(2) of the process group Dbjobs::spawn created.
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
            let log = rx
                .recv_timeout(Duration::from_secs(10))
                .ok()
                .and_then(|o| o.ok())
                .map(|o| stderr(&o))
                .unwrap_or_default();
            panic!("dbjobs run still running after {timeout:?}; its log:\n{log}");
        }
    }
}

/// dbjobs' log (its stderr) from an [`Output`], as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The server's binary log: its GTID position and the size of each file. Equal before and
/// after a restore when the restore wrote nothing to the binary log.
pub fn binlog_state(server: &MariaDb) -> (Option<String>, Vec<Vec<Option<String>>>) {
    (
        server.query_value("SELECT @@gtid_binlog_pos"),
        server.query("SHOW BINARY LOGS"),
    )
}

/// Asserts that nothing is left in the staging area `backup_dir` once a job ended.
///
/// # Panics
/// When the directory cannot be read or is not empty, listing what is left.
pub fn assert_staging_empty(backup_dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(backup_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

/// A self-signed certificate for `cn` (and 127.0.0.1, localhost) and its key, made with the
/// real `openssl req` in `dir` as `<stem>.crt` and `<stem>.key`: for a TLS server a test runs
/// (replication-manager's stand-in) or one it configures dbjobs with.
///
/// # Panics
/// When openssl is missing or fails.
pub fn self_signed_certificate(dir: &Path, stem: &str, cn: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={cn}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// `mariadb-dump` of `server` with the options replication-manager uses, plus `extra`.
///
/// # Panics
/// When the dump fails, showing the tool's stderr.
pub fn sql_dump(server: &MariaDb, extra: &[&str]) -> Vec<u8> {
    let out = Command::new(mariadb_tool("mariadb-dump"))
        .arg("--no-defaults")
        .arg(format!("--socket={}", server.socket().display()))
        .args([
            "-uroot",
            "--gtid",
            "--master-data",
            "--single-transaction",
            "--routines",
            "--events",
            "--triggers",
        ])
        .args(extra)
        .output()
        .expect("run mariadb-dump");
    assert!(
        out.status.success(),
        "mariadb-dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `bytes` gzip'd, as replication-manager sends a dump.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// [`sql_dump`] gzip'd, and the source's `gtid_binlog_pos` at dump time.
pub fn gzip_dump(server: &MariaDb, extra: &[&str]) -> (Vec<u8>, String) {
    let gtid = server
        .query_value("SELECT @@gtid_binlog_pos")
        .unwrap_or_default();
    (gzip(&sql_dump(server, extra)), gtid)
}
