//! End to end: the fault matrix of a physical reseed. `dbjobs run` is killed with SIGKILL at
//! each phase boundary of an online and of a full restore (a test-only pause point,
//! `DBJOBS_FAULT_PAUSE_AT`, holds it there), then the next `dbjobs run` recovers; and a
//! switch that cannot get the live tables' locks fails without a kill.
//!
//! Each cell asserts what an operator would check: every database of the target is
//! entirely its old content or entirely the backup's (sorted-row hashes per table, object
//! lists with trigger order, sequence state), no `#dbjobs...` database is left, no temporary
//! server runs on the staging directory, the staging directory is gone, and the dead job's
//! row failed with a result that says what the recovery did.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use dbjobs_tests::fixtures::{inbound_dbjobs, node, stderr, submit_job};

use dbjobs_tests::physical_fixtures::{xbstream_backup, ServiceScripts};
use dbjobs_tests::schema_fixture::{self, Snapshot, NODE_ONLY};
use dbjobs_tests::sender::{job_row, send_when_waiting, wait_job_finished, JobRow};
use dbjobs_tests::{free_port, plugin_dir, plugin_file, Dbjobs, MariaDb};

const WAIT: Duration = Duration::from_secs(240);

/// Which state a cell must leave every database of the backup in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The node's own content, as before the job.
    Old,
    /// The node's own content after a restart of its server (MEMORY tables empty): full
    /// mode stops it.
    OldRestarted,
    /// The backup's.
    Backup,
}

/// A source with the schema fixture, its backup, and a target holding the fixture too but
/// diverged (rows changed, a view and an event dropped, a database of its own).
struct Cell {
    src: MariaDb,
    dst: MariaDb,
    backup: Vec<u8>,
    old: Snapshot,
    want: Snapshot,
    plugins: tempfile::TempDir,
    staging: tempfile::TempDir,
}

impl Cell {
    fn new() -> Cell {
        let src = node(1);
        schema_fixture::create(&src);
        let (backup, _gtid) = xbstream_backup(&src);
        let dst = node(2);
        schema_fixture::create(&dst);
        schema_fixture::diverge(&dst);
        Cell {
            old: Snapshot::of(&dst),
            want: Snapshot::of(&src).after_restart().on_a_replica(),
            src,
            dst,
            backup,
            plugins: plugin_dir(&[plugin_file("reseed")]),
            staging: tempfile::tempdir().unwrap(),
        }
    }

    /// dbjobs for the target, with `settings`.
    fn dbjobs(&self, settings: &[(&str, &str)]) -> Dbjobs {
        let mut d = inbound_dbjobs(&self.dst, self.plugins.path(), self.staging.path());
        for (k, v) in settings {
            d = d.set(k, v);
        }
        d
    }

    /// Run an online or full reseed that pauses at `point`, kill dbjobs there with SIGKILL
    /// (its tools are left running, as after a crash), then run `dbjobs run` again. The dead
    /// job's row after the recovery, and the second run's log.
    fn kill_at(&self, point: &str, settings: &[(&str, &str)]) -> (JobRow, String) {
        let d = self.dbjobs(settings).env("DBJOBS_FAULT_PAUSE_AT", point);
        let port = free_port();
        let id = submit_job(&d, "reseedmariabackup", port);
        let mut child = d.spawn(&["run"]);
        let lines = log_lines(child.stderr.take().expect("piped stderr"));
        let local = [127, 0, 0, 1].into();
        send_when_waiting(&self.dst, id, port, local, &self.backup, WAIT).expect("send");
        let marker = format!("fault point {point} reached");
        let seen = wait_for_line(&lines, &marker, WAIT);
        assert!(
            seen.is_ok(),
            "dbjobs never reached {point}:\n{}",
            seen.unwrap_err()
        );
        // SAFETY: kill(2) of the dbjobs process this test started (not its group).
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = child.wait();
        let second = self.dbjobs(settings).run(&["run"]);
        second.assert_code(0);
        let row = job_row(&self.dst, id);
        (row, second.stderr.clone())
    }

    /// What every cell checks after the recovery (see the module docs).
    fn assert_recovered(&self, side: Side, row: &JobRow, log: &str, context: &str) {
        let want = match side {
            Side::Old => self.old.clone(),
            Side::OldRestarted => self.old.clone().after_restart(),
            Side::Backup => self.want.clone(),
        };
        Snapshot::of(&self.dst).assert_equals(&want, context);
        let aside = self.dst.query_value(
            "SELECT GROUP_CONCAT(schema_name) FROM information_schema.schemata WHERE schema_name LIKE '#dbjobs%'",
        );
        assert_eq!(aside, None, "{context}: aside databases left");
        assert_eq!(
            self.dst
                .query_value(&format!("SELECT id FROM {NODE_ONLY}.k")),
            Some("7".into()),
            "{context}: the node's own database is kept"
        );
        assert!(
            row.finished() && !row.succeeded(),
            "{context}: the dead job's row is not failed: {row:?}"
        );
        let result = row.result_text();
        assert!(result.contains("recovery:"), "{context}: {result}\n{log}");
        assert_no_temp_server(self.staging.path(), context);
        let left: Vec<_> = std::fs::read_dir(self.staging.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{context}: staging left: {left:?}");
        let journals = self.dst.state_dir().join("restore");
        let kept: Vec<_> = std::fs::read_dir(&journals)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(kept.is_empty(), "{context}: journal files left: {kept:?}");
        schema_fixture::assert_tables_check(&self.dst);
        let _ = &self.src;
    }
}

/// The settings of a full restore that stops and starts the target with `scripts`.
fn full_mode(scripts: &ServiceScripts) -> [(&'static str, &str); 4] {
    [
        ("restore_mode", "full"),
        ("service_stop_command", scripts.stop.to_str().unwrap()),
        ("service_start_command", scripts.start.to_str().unwrap()),
        ("service_wait_timeout", "60"),
    ]
}

/// The lines of a child's stderr, as they come.
fn log_lines(stderr: std::process::ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Wait until a line containing `marker` comes; the log so far when it does not.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    marker: &str,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = String::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(marker) => return Ok(()),
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(_) => break,
        }
    }
    Err(seen)
}

/// No process runs a `mariadbd` on a datadir under `staging`.
fn assert_no_temp_server(staging: &Path, context: &str) {
    let needle = format!("--datadir={}", staging.display());
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !text.contains(&needle),
            "{context}: a temporary server still runs: {text}"
        );
    }
}

/// Killed once the backup is received, before anything is prepared: the staging is
/// removed, the node untouched.
#[test]
fn online_killed_once_received() {
    let c = Cell::new();
    let (row, log) = c.kill_at("received", &[]);
    c.assert_recovered(Side::Old, &row, &log, "received");
    assert!(
        row.result_text().contains("removed its staging directory"),
        "{row:?}"
    );
    assert!(row.result_text().contains("server untouched"), "{row:?}");
}

/// Before the first change: killed while the temporary server reads the backup. The
/// orphaned server is stopped, the staging removed, the node untouched.
#[test]
fn online_killed_with_the_temporary_server_up() {
    let c = Cell::new();
    let (row, log) = c.kill_at("temp-server-up", &[]);
    c.assert_recovered(Side::Old, &row, &log, "temporary server up");
    assert!(
        row.result_text().contains("stopped its temporary server"),
        "{row:?}"
    );
    assert!(row.result_text().contains("server untouched"), "{row:?}");
}

/// Half of the shadow tables built: rolled back, the live data untouched.
#[test]
fn online_killed_with_the_shadow_half_built() {
    let c = Cell::new();
    let (row, log) = c.kill_at("shadow-half-built", &[]);
    c.assert_recovered(Side::Old, &row, &log, "shadow half built");
    assert!(row.result_text().contains("rolled back"), "{row:?}");
}

/// Every shadow table built, the switch next: rolled back.
#[test]
fn online_killed_just_before_the_switch() {
    let c = Cell::new();
    let (row, log) = c.kill_at("before-switch", &[]);
    c.assert_recovered(Side::Old, &row, &log, "before the switch");
    assert!(row.result_text().contains("server untouched"), "{row:?}");
}

/// Just after the switch: rolled forward, the node holds the backup with every object.
#[test]
fn online_killed_just_after_the_switch() {
    let c = Cell::new();
    let (row, log) = c.kill_at("after-switch", &[]);
    c.assert_recovered(Side::Backup, &row, &log, "after the switch");
    assert!(row.result_text().contains("rolled forward"), "{row:?}");
}

/// Views and triggers created, routines and events not yet: rolled forward.
#[test]
fn online_killed_with_the_objects_half_created() {
    let c = Cell::new();
    let (row, log) = c.kill_at("objects-half-created", &[]);
    c.assert_recovered(Side::Backup, &row, &log, "objects half created");
}

/// Full mode, killed with the server stopped and its datadir replaced: the old datadir is
/// put back and the server started on it.
#[test]
fn full_killed_with_the_datadir_moved() {
    let c = Cell::new();
    let scripts = ServiceScripts::new(&c.dst);
    let settings = full_mode(&scripts);
    let (row, log) = c.kill_at("full-datadir-moved", &settings);
    c.assert_recovered(Side::OldRestarted, &row, &log, "full, datadir moved");
    assert!(
        row.result_text().contains("old datadir was put back"),
        "{row:?}"
    );
    assert!(row.result_text().contains("server rolled back"), "{row:?}");
}

/// Full mode, killed after the server started on the backup's datadir, before the old one
/// was removed: the server is stopped, the old datadir put back, the server started again.
#[test]
fn full_killed_after_the_server_started_on_the_backup() {
    let c = Cell::new();
    let scripts = ServiceScripts::new(&c.dst);
    let settings = full_mode(&scripts);
    let (row, log) = c.kill_at("full-server-started", &settings);
    c.assert_recovered(Side::OldRestarted, &row, &log, "full, server started");
    assert!(
        row.result_text().contains("old datadir was put back"),
        "{row:?}"
    );
}

/// A live table locked by a user session: the switch cannot get its lock within
/// `switch_lock_wait`, nothing is switched, the triggers it dropped are back, the node is
/// untouched, and the result says so.
#[test]
fn a_switch_that_cannot_lock_the_live_tables_leaves_the_node_untouched() {
    use mysql::prelude::Queryable;
    let c = Cell::new();
    let mut holder = c.dst.conn();
    holder
        .query_drop(format!(
            "LOCK TABLES {}.customers READ",
            schema_fixture::MAIN
        ))
        .unwrap();
    let d = c.dbjobs(&[("switch_lock_wait", "2")]);
    let port = free_port();
    let id = submit_job(&d, "reseedmariabackup", port);
    let child = d.spawn(&["run"]);
    send_when_waiting(&c.dst, id, port, [127, 0, 0, 1].into(), &c.backup, WAIT).expect("send");
    let out = dbjobs_tests::fixtures::finish(child, WAIT);
    let row = wait_job_finished(&c.dst, id, WAIT);
    holder.query_drop("UNLOCK TABLES").unwrap();
    drop(holder);
    assert!(!row.succeeded(), "{row:?}");
    let result = row.result_text();
    assert!(
        result.contains("server untouched"),
        "{result}\n{}",
        stderr(&out)
    );
    assert!(result.contains("Lock wait timeout"), "{result}");
    Snapshot::of(&c.dst).assert_equals(&c.old, "switch refused");
    let aside = c.dst.query_value(
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE '#dbjobs%'",
    );
    assert_eq!(aside, Some("0".into()));
}

/// Run one reseed of the cell's backup with `settings` that must fail before the first
/// change: the row failed with `server untouched` and a result containing `says`, the node
/// as it was.
fn assert_refused_before_touching(c: &Cell, settings: &[(&str, &str)], says: &str) {
    let d = c.dbjobs(settings);
    let (row, out) =
        dbjobs_tests::fixtures::run_inbound(&d, &c.dst, "reseedmariabackup", &c.backup, WAIT);
    let result = row.result_text();
    assert!(!row.succeeded(), "{row:?}");
    assert!(
        result.contains("server untouched"),
        "{result}\n{}",
        stderr(&out)
    );
    assert!(result.contains(says), "{result}");
    assert!(
        !stderr(&out).contains("first change to the live server"),
        "{}",
        stderr(&out)
    );
    Snapshot::of(&c.dst).assert_equals(&c.old, says);
}

/// A backup tool of another version than the server is refused before anything changes.
#[test]
fn a_backup_tool_of_another_version_is_refused_before_touching() {
    let c = Cell::new();
    let dir = tempfile::tempdir().unwrap();
    let tool = dir.path().join("mariadb-backup");
    std::fs::write(
        &tool,
        "#!/bin/sh\necho \"mariadb-backup based on MariaDB server 10.6.21-MariaDB Linux (x86_64)\" >&2\nexit 0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_refused_before_touching(
        &c,
        &[("backup_tool", tool.to_str().unwrap())],
        "is version 10.6, the server 10.11",
    );
}

/// A foreign key from a database the backup does not have into one it replaces would
/// follow the old table at the switch: refused before anything changes.
#[test]
fn a_foreign_key_from_outside_is_refused_before_touching() {
    let c = Cell::new();
    c.dst.exec(&format!(
        "SET SESSION sql_log_bin=0; CREATE DATABASE outside; \
         CREATE TABLE outside.ref (id INT PRIMARY KEY, c INT, \
         FOREIGN KEY (c) REFERENCES {}.customers (id)) ENGINE=InnoDB",
        schema_fixture::MAIN
    ));
    assert_refused_before_touching(&c, &[], "`ref` has a foreign key to `fx_main`.`customers`");
}

/// The server restarts while the shadow databases are half built (the job's session is
/// replaced by a new one without the restore's session settings): the job either finishes
/// with the backup in place or fails with the node untouched; never anything in between.
#[test]
fn a_server_restart_during_the_shadow_build_leaves_one_side_whole() {
    let mut c = Cell::new();
    let d = c
        .dbjobs(&[])
        .env("DBJOBS_FAULT_PAUSE_AT", "shadow-half-built")
        .env("DBJOBS_FAULT_PAUSE_SECS", "6");
    let port = free_port();
    let id = submit_job(&d, "reseedmariabackup", port);
    let mut child = d.spawn(&["run"]);
    let lines = log_lines(child.stderr.take().expect("piped stderr"));
    send_when_waiting(&c.dst, id, port, [127, 0, 0, 1].into(), &c.backup, WAIT).expect("send");
    let seen = wait_for_line(&lines, "fault point shadow-half-built reached", WAIT);
    assert!(
        seen.is_ok(),
        "never reached the point:\n{}",
        seen.unwrap_err()
    );
    c.dst.restart();
    let status = child.wait().expect("wait for dbjobs");
    let log: Vec<String> = lines.try_iter().collect();
    let row = wait_job_finished(&c.dst, id, WAIT);
    let result = row.result_text().to_string();
    let context = format!(
        "restart during the build ({status}): {result}\n{}",
        log.join("\n")
    );
    if row.succeeded() {
        Snapshot::of(&c.dst).assert_equals(&c.want, &context);
    } else {
        assert!(result.contains("server untouched"), "{context}");
        Snapshot::of(&c.dst).assert_equals(&c.old.clone().after_restart(), &context);
    }
    let aside = c.dst.query_value(
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE '#dbjobs%'",
    );
    assert_eq!(aside, Some("0".into()), "{context}");
}
