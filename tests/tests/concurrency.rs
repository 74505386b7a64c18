//! End to end: jobs of different tasks run at the same time in one dbjobs process (`daemon`
//! and `run`), bounded by `max_parallel_jobs`, and the two-signal stop. Real servers, the real
//! binary, the real plugins (`example`, whose `port` is a wait in ms; the `panic` fixture's
//! `fail`; `xtrabackup`, `errorlog`, `optimize`).
//!
//! Overlap is asserted from the job rows (a job of one task finished while the other's row is
//! still running, its progress in `result`) and from the host's log instants (each job's
//! "started" and "succeeded"/"failed" lines), never from how long anything took.

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbjobs_tests::fixtures::submit_job;
use dbjobs_tests::rm_listener::{ListenMode, RmListener};
use dbjobs_tests::sender::{job_row, wait_job_finished, JobRow};
use dbjobs_tests::{fixture_file, plugin_dir, plugin_file, wait_for, Dbjobs, MariaDb};

const WAIT: Duration = Duration::from_secs(120);

/// The longest wait the example task accepts (ms): a job that runs until it is cancelled.
const LONG: u16 = 60_000;

/// A dbjobs started in the background whose log (stderr) is read while it runs.
struct Running {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Running {
    fn spawn(dbjobs: &Dbjobs, args: &[&str]) -> Running {
        let mut child = dbjobs.spawn(args);
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Running { child, log, reader }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log has a line containing `text`.
    fn wait_log(&self, text: &str) {
        wait_for(&format!("log line {text:?}"), WAIT, || {
            self.log().contains(text).then_some(())
        });
    }

    fn signal(&self) {
        // SAFETY: plain kill(2) of the child this test started.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// Wait for the exit (at most [`WAIT`]) and return the status and the whole log.
    fn exit(self) -> (ExitStatus, String) {
        let mut child = self.child;
        let status = wait_for("dbjobs to exit", WAIT, || child.try_wait().unwrap());
        // The reader ends with the pipe, after the last lines.
        self.reader.join().unwrap();
        (status, self.log.lock().unwrap().clone())
    }
}

/// The example plugin and the fixture with the `fail` task, dbjobs for `server`, the table.
fn example_and_fail(server: &MariaDb) -> (tempfile::TempDir, Dbjobs) {
    let dir = plugin_dir(&[plugin_file("example"), fixture_file("dbjobs_fixture_panic")]);
    let dbjobs = Dbjobs::new(server, dir.path());
    dbjobs.run(&["init"]).assert_code(0);
    (dir, dbjobs)
}

/// Wait until the example job `id` runs: its progress is in `result`.
fn wait_running(server: &MariaDb, id: u64) {
    wait_for("the example job to run", WAIT, || {
        job_row(server, id)
            .result_text()
            .starts_with("waited")
            .then_some(())
    });
}

/// The row of a job that is still running: not finished, its progress in `result`.
fn assert_still_running(row: &JobRow, what: &str) {
    assert!(
        !row.finished() && row.result_text().starts_with("waited"),
        "{what}: {row:?}"
    );
}

/// The instants of the host's "started" and end lines of job `id` in `log`, as the log's
/// own timestamps (RFC 3339 with milliseconds, so they compare as text).
fn job_span(log: &str, id: u64, task: &str) -> (String, String) {
    let stamp = |needle: &str| -> String {
        let line = log
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line {needle:?} in the log:\n{log}"));
        line.trim_start_matches('[')
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let start = stamp(&format!("job {id} ({task}) started"));
    let end = log
        .lines()
        .find(|l| {
            l.contains(&format!("job {id} ({task}) succeeded"))
                || l.contains(&format!("job {id} ({task}) failed"))
        })
        .map(|l| {
            l.trim_start_matches('[')
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        })
        .unwrap_or_else(|| panic!("job {id} has no end line in the log:\n{log}"));
    (start, end)
}

#[test]
fn jobs_of_two_tasks_overlap_in_one_daemon_and_a_second_signal_cancels() {
    let server = MariaDb::start();
    let (_dir, dbjobs) = example_and_fail(&server);
    let daemon = Running::spawn(&dbjobs, &["daemon", "--interval", "100ms"]);
    let long = submit_job(&dbjobs, "example", LONG);
    wait_running(&server, long);

    // A job of another task, submitted while the long one runs, is done while it still runs.
    let other = submit_job(&dbjobs, "fail", 0);
    let row = wait_job_finished(&server, other, WAIT);
    assert!(
        row.result_text()
            .contains(&format!("fixture failure in job {other}")),
        "{row:?}"
    );
    assert_still_running(
        &job_row(&server, long),
        "the long job after the other ended",
    );

    // First signal: nothing new, the running job goes on.
    daemon.signal();
    daemon.wait_log("stop requested; waiting for 1 running job(s) to finish");
    assert_still_running(&job_row(&server, long), "the long job after one SIGTERM");
    // Second signal: the running job is cancelled, the daemon exits (1: jobs failed).
    daemon.signal();
    let (status, log) = daemon.exit();
    assert_eq!(status.code(), Some(1), "{log}");
    let row = job_row(&server, long);
    assert!(row.finished(), "{row:?}");
    assert!(
        row.result_text().starts_with("failed") && row.result_text().contains("cancelled"),
        "{row:?}"
    );
    // The log's own instants say the same: the other job ran inside the long one's span.
    let (long_start, long_end) = job_span(&log, long, "example");
    let (other_start, other_end) = job_span(&log, other, "fail");
    assert!(long_start <= other_start && other_end <= long_end, "{log}");
}

#[test]
fn a_pass_runs_two_tasks_at_once_and_max_parallel_jobs_1_serialises_them() {
    let server = MariaDb::start();
    let (_dir, dbjobs) = example_and_fail(&server);

    // `run`: both jobs pending before the pass; the short one ends while the long one runs.
    let long = submit_job(&dbjobs, "example", LONG);
    let other = submit_job(&dbjobs, "fail", 0);
    let pass = Running::spawn(&dbjobs, &["run"]);
    wait_job_finished(&server, other, WAIT);
    assert_still_running(
        &job_row(&server, long),
        "the long job after the other ended",
    );
    pass.signal();
    pass.wait_log("stop requested; waiting for 1 running job(s) to finish");
    pass.signal();
    let (status, log) = pass.exit();
    assert_eq!(status.code(), Some(1), "a job failed: {log}");
    let row = job_row(&server, long);
    assert!(row.result_text().contains("cancelled"), "{row:?}\n{log}");

    // max_parallel_jobs=1: the same two jobs, one after the other.
    let first = submit_job(&dbjobs, "example", 300);
    let second = submit_job(&dbjobs, "fail", 0);
    let out = dbjobs.clone().set("max_parallel_jobs", "1").run(&["run"]);
    out.assert_code(1);
    assert!(job_row(&server, first).succeeded());
    assert!(job_row(&server, second).finished());
    let (a_start, a_end) = job_span(&out.stderr, first, "example");
    let (b_start, b_end) = job_span(&out.stderr, second, "fail");
    assert!(
        a_end <= b_start || b_end <= a_start,
        "the jobs overlapped with max_parallel_jobs=1:\n{}",
        out.stderr
    );
}

#[test]
fn sigterm_lets_the_running_job_finish_and_starts_nothing_new() {
    let server = MariaDb::start();
    let (_dir, dbjobs) = example_and_fail(&server);
    // One slot: a job of another task waits for it while the example job runs.
    let daemon = Running::spawn(
        &dbjobs.clone().set("max_parallel_jobs", "1"),
        &["daemon", "--interval", "100ms"],
    );
    let running = submit_job(&dbjobs, "example", 3000);
    wait_running(&server, running);
    let queued = submit_job(&dbjobs, "fail", 0);
    daemon.signal();
    let (status, log) = daemon.exit();
    assert!(status.success(), "{status:?}\n{log}");
    let row = job_row(&server, running);
    assert!(row.succeeded(), "{row:?}");
    assert_eq!(row.result_text(), format!("example job {running} done"));
    // The queued job never started: its row is as replication-manager left it.
    let row = job_row(&server, queued);
    assert_eq!(
        (row.done, row.result.as_deref()),
        (0, None),
        "{row:?}\n{log}"
    );
    assert!(
        !log.contains(&format!("job {queued} (fail) started")),
        "{log}"
    );
}

/// The case of the issue: a backup trying to reach a listener that is not there (for
/// `connect_timeout` seconds) must not hold up the error log nor an optimize.
#[test]
fn a_backup_waiting_for_its_listener_holds_up_neither_errorlog_nor_optimize() {
    let server = MariaDb::start();
    server.exec(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO app.t SELECT seq FROM app.seq_1_to_100",
    );
    let dir = plugin_dir(&[
        plugin_file("xtrabackup"),
        plugin_file("errorlog"),
        plugin_file("optimize"),
    ]);
    let dbjobs = Dbjobs::new(&server, dir.path()).set("connect_timeout", "30");
    dbjobs.run(&["init"]).assert_code(0);
    let daemon = Running::spawn(&dbjobs, &["daemon", "--interval", "100ms"]);
    let nobody = RmListener::never();
    let backup = submit_job(&dbjobs, "mariabackup", nobody);
    daemon.wait_log(&format!("job {backup} (mariabackup) started"));

    let base = server.base_dir().to_path_buf();
    let received = base.join("errorlog.received");
    let listener = RmListener::start(&received, ListenMode::Full);
    let error_log = std::fs::read(server.error_log()).unwrap();
    let shipped = submit_job(&dbjobs, "errorlog", listener.port());
    let optimized = submit_job(&dbjobs, "optimize", 0);
    for id in [shipped, optimized] {
        let row = wait_job_finished(&server, id, WAIT);
        assert!(row.succeeded(), "{row:?}\n{}", daemon.log());
    }
    // What the log held before; lines the other jobs made the server log may follow.
    let got = std::fs::read(listener.finish().unwrap().file).unwrap();
    assert!(
        !error_log.is_empty() && got.starts_with(&error_log),
        "received {} bytes, not the error log",
        got.len()
    );
    let row = job_row(&server, backup);
    assert!(
        !row.finished(),
        "the backup is still trying to connect: {row:?}"
    );

    // SIGTERM: the backup is let finish; it fails when connect_timeout is over.
    daemon.signal();
    let (status, log) = daemon.exit();
    assert_eq!(status.code(), Some(1), "{log}");
    let row = job_row(&server, backup);
    assert!(
        row.result_text()
            .contains(&format!("cannot connect to 127.0.0.1:{nobody} within 30 s")),
        "{row:?}"
    );
    assert_eq!(count_lines(&log, "started by plugin"), 3, "{log}");
}

fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}
