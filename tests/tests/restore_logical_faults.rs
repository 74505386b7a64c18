//! End to end: a logical reseed killed (`kill -9` of `dbjobs run`) at each phase boundary,
//! then the next `dbjobs run`; a dump with an SQL error in the middle of its tables, and one
//! with an SQL error in its objects. At no point may a database of the target be half old
//! and half new.
//!
//! The source holds the schema fixture ([`dbjobs_tests::schema_fixture`]); the target holds
//! the same fixture, diverged ([`schema_fixture::diverge`]: rows changed, a view and an
//! event dropped, a database only the node has), so that its old content and the backup's
//! differ everywhere. Each cell pauses the run at a fault point
//! (`DBJOBS_FAULT_PAUSE_AT`, the restore engine's `fault` module), checks that the live
//! databases still hold their old content while it is paused before the switch, kills it,
//! and runs `dbjobs run` again, whose start-up recovery finishes or rolls back the restore.
//! Each cell asserts: every table of the fixture's databases is entirely the old content
//! or entirely the backup's (sorted-row hashes per table), the object lists equal the same
//! side's, no `#dbjobs` database is left, the node's own database is kept, the job's row
//! failed with a result naming what the recovery did, and no staging directory or journal
//! is left behind.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use dbjobs_tests::fixtures::{gzip, gzip_dump, inbound_dbjobs, node, sql_dump, submit_job};
use dbjobs_tests::schema_fixture::{self, Snapshot, MAIN, NODE_ONLY, OTHER};
use dbjobs_tests::sender::{job_row, send_when_waiting, wait_job_finished};
use dbjobs_tests::{free_port, plugin_dir, plugin_file, wait_for, Dbjobs, MariaDb};

const WAIT: Duration = Duration::from_secs(240);

/// The environment variable that pauses a restore at a fault point (test-only hook).
const PAUSE_AT: &str = "DBJOBS_FAULT_PAUSE_AT";

/// A source with the schema fixture.
fn source() -> MariaDb {
    let s = node(1);
    schema_fixture::create(&s);
    s
}

/// A target whose fixture diverged from the source's: its old content.
fn target() -> MariaDb {
    let t = node(2);
    schema_fixture::create(&t);
    schema_fixture::diverge(&t);
    t
}

/// The dump of the source every cell sends: every database (`a-b` sorts before `a_b`, so
/// the cross-database foreign key of the fixture points forward in the dump, and `mysql`
/// is in it), with the history of the versioned table.
fn dump_of(src: &MariaDb) -> Vec<u8> {
    gzip_dump(src, &["--dump-history", "--all-databases"]).0
}

/// What the target holds, every part a test compares.
struct Target<'a> {
    dst: &'a MariaDb,
    staging: tempfile::TempDir,
    _plugins: tempfile::TempDir,
    d: Dbjobs,
}

impl<'a> Target<'a> {
    fn new(dst: &'a MariaDb, settings: &[(&str, &str)]) -> Self {
        let plugins = plugin_dir(&[plugin_file("reseed")]);
        let staging = tempfile::tempdir().unwrap();
        let mut d = inbound_dbjobs(dst, plugins.path(), staging.path());
        for (k, v) in settings {
            d = d.set(k, v);
        }
        Target {
            dst,
            staging,
            _plugins: plugins,
            d,
        }
    }

    /// Submit a reseed, start `dbjobs run` paused at `point`, send `dump`, wait until the
    /// run reached the point. The job's id and the paused run.
    fn paused_at(&self, point: &str, dump: &[u8]) -> (u64, Child) {
        let port = free_port();
        let id = submit_job(&self.d, "reseedmysqldump", port);
        let mut child = self.d.clone().env(PAUSE_AT, point).spawn(&["run"]);
        let lines = log_lines(&mut child);
        let local = IpAddr::from([127, 0, 0, 1]);
        let sent = send_when_waiting(self.dst, id, port, local, dump, WAIT);
        assert!(sent.is_ok(), "sending failed: {sent:?}");
        wait_for_point(&lines, point);
        (id, child)
    }

    /// `kill -9` the paused run, then wait for the client sessions it started to end (they
    /// finish what was in their pipe).
    fn kill(&self, mut child: Child) {
        // SAFETY: kill(2) of the dbjobs process this test started.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = child.wait();
        wait_for("the killed run's client sessions to end", WAIT, || {
            self.dst
                .query_value(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
                     AND COMMAND NOT IN ('Daemon', 'Binlog Dump') AND USER <> 'system user'",
                )
                .filter(|n| n == "0")
        });
    }

    /// The next `dbjobs run`: its start-up recovery. Its log.
    fn run_again(&self) -> String {
        let out = self.d.run(&["run"]);
        format!("status {}\n{}", out.status, out.stderr)
    }

    /// The leftovers a settled restore must not leave: shadow or old databases, a staging
    /// directory, a journal or its side files.
    fn assert_nothing_left(&self, id: u64, log: &str) {
        let aside = self.dst.query_value(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '#dbjobs%'",
        );
        assert_eq!(aside, Some("0".into()), "aside databases left\n{log}");
        let staging: Vec<_> = std::fs::read_dir(self.staging.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(staging.is_empty(), "left in staging: {staging:?}\n{log}");
        let journal = self.dst.state_dir().join("restore");
        let left: Vec<_> = std::fs::read_dir(&journal)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("job-{id}.")))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "journal files left: {left:?}\n{log}");
        let kept = self
            .dst
            .query_value(&format!("SELECT id FROM {NODE_ONLY}.k"));
        assert_eq!(kept, Some("7".into()), "the node's own database is kept");
    }

    /// The job's row: failed, its result naming the recovery, containing `says`.
    fn assert_row(&self, id: u64, says: &str, log: &str) {
        let row = job_row(self.dst, id);
        assert!(row.finished() && !row.succeeded(), "{row:?}\n{log}");
        let result = row.result.unwrap_or_default();
        assert!(
            result.contains("the run died; recovery:"),
            "{result}\n{log}"
        );
        assert!(result.contains(says), "{result}\n{log}");
    }
}

/// Wait until the run logs that it reached fault point `point`.
fn wait_for_point(lines: &mpsc::Receiver<String>, point: &str) {
    let want = format!("fault point {point} reached");
    let mut log = String::new();
    while let Ok(line) = lines.recv_timeout(WAIT) {
        log.push_str(&line);
        log.push('\n');
        if line.contains(&want) {
            return;
        }
    }
    panic!("the run never reached {point}; its log:\n{log}");
}

/// The lines dbjobs logs on stderr, as they come.
fn log_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("a piped stderr");
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

/// One cell killed before the switch: while paused, the live databases hold their old
/// content; after the next run, too, the shadows dropped.
fn killed_before_switch(point: &str, settings: &[(&str, &str)]) {
    let src = source();
    let dst = target();
    let old = Snapshot::of(&dst);
    let t = Target::new(&dst, settings);
    let (id, child) = t.paused_at(point, &dump_of(&src));
    // The backup is being built aside while the live databases serve their old content.
    wait_for("tables in the shadow databases", WAIT, || {
        dst.query_value(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE '#dbjobs%\\_new%'",
        )
        .filter(|n| n != "0")
    });
    Snapshot::of(&dst).assert_equals(&old, &format!("{point}, paused: the live data"));
    t.kill(child);
    let log = t.run_again();
    Snapshot::of(&dst).assert_equals(&old, &format!("{point}, recovered"));
    t.assert_row(id, "rolled back", &log);
    t.assert_nothing_left(id, &log);
}

/// One cell killed after the switch: after the next run, every database holds the backup,
/// its objects created (events disabled, as on a replica), the old tables dropped.
fn killed_after_switch(point: &str) {
    let src = source();
    let want = Snapshot::of(&src).on_a_replica();
    let probes = schema_fixture::probe(&src);
    let dst = target();
    let t = Target::new(&dst, &[]);
    let (id, child) = t.paused_at(point, &dump_of(&src));
    t.kill(child);
    let log = t.run_again();
    Snapshot::of(&dst).assert_equals(&want, &format!("{point}, recovered"));
    assert_eq!(
        schema_fixture::probe(&dst),
        probes,
        "{point}: the objects work"
    );
    schema_fixture::assert_tables_check(&dst);
    t.assert_row(id, "rolled forward", &log);
    t.assert_nothing_left(id, &log);
    schema_fixture::assert_writes_continue(&dst);
}

#[test]
fn killed_after_the_receive() {
    let src = source();
    let dst = target();
    let old = Snapshot::of(&dst);
    let t = Target::new(&dst, &[]);
    let (id, child) = t.paused_at("received", &dump_of(&src));
    t.kill(child);
    let log = t.run_again();
    Snapshot::of(&dst).assert_equals(&old, "received, recovered");
    t.assert_row(id, "the run had not changed the server", &log);
    t.assert_nothing_left(id, &log);
}

#[test]
fn killed_while_the_tables_are_built_in_one_session() {
    killed_before_switch("shadow-half-built", &[("apply_parallel", "1")]);
}

#[test]
fn killed_while_the_tables_are_built_in_several_sessions() {
    killed_before_switch("shadow-half-built", &[("apply_parallel", "3")]);
}

#[test]
fn killed_just_before_the_switch() {
    killed_before_switch("before-switch", &[]);
}

#[test]
fn killed_just_after_the_switch() {
    killed_after_switch("after-switch");
}

#[test]
fn killed_while_the_objects_are_created() {
    killed_after_switch("objects-half-created");
}

/// A dump with an SQL error in the middle of its tables: the job fails at the dump's line,
/// the shadows are dropped, the target holds its old content, nothing is left.
#[test]
fn an_sql_error_in_the_middle_of_a_dump_leaves_the_target_untouched() {
    let src = source();
    let dst = target();
    let old = Snapshot::of(&dst);
    let t = Target::new(&dst, &[("apply_parallel", "1")]);
    let dump = sql_dump(&src, &["--dump-history", "--databases", MAIN, OTHER]);
    let mut lines: Vec<&[u8]> = dump.split_inclusive(|b| *b == b'\n').collect();
    // After the data of fx_main.parts (a table without triggers), before the tables that
    // follow it and before the other database.
    let data = lines
        .iter()
        .position(|l| l.starts_with(b"-- Dumping data for table `parts`"))
        .expect("the data of fx_main.parts");
    let unlock = data
        + lines[data..]
            .iter()
            .position(|l| l.starts_with(b"UNLOCK TABLES;"))
            .unwrap();
    lines.insert(unlock + 1, b"SELEC broken;\n");
    let bad_line = unlock + 2; // 1-based
    let (row, out) = dbjobs_tests::fixtures::run_inbound(
        &t.d,
        &dst,
        "reseedmysqldump",
        &gzip(&lines.concat()),
        WAIT,
    );
    let log = dbjobs_tests::fixtures::stderr(&out);
    let result = row.result.clone().unwrap_or_default();
    assert!(!row.succeeded(), "{row:?}\n{log}");
    assert!(result.starts_with("failed, server untouched: "), "{result}");
    assert!(result.contains("ERROR 1064 (42000)"), "{result}");
    assert!(
        result.contains(&format!("(line {bad_line} of the dump)")),
        "{result}"
    );
    assert!(
        result.contains("rolled back, live data untouched"),
        "{result}"
    );
    Snapshot::of(&dst).assert_equals(&old, "an SQL error in the dump");
    t.assert_nothing_left(row.id, &log);
    // The fixture's other database, after the bad line in the dump, was not touched either.
    let café = dst.query_value(&format!("SELECT COUNT(*) FROM `{OTHER}`.`café`"));
    assert_eq!(café, Some("2".into()));
}

/// A dump whose objects fail after the switch (an SQL error after a trigger): the job fails
/// with the server partial, its result names the line of objects.sql; the tables are the
/// backup's and the old ones are dropped (no rollback brings them back after the switch),
/// nothing is left aside.
#[test]
fn an_sql_error_in_the_objects_leaves_the_backup_tables_and_nothing_aside() {
    let src = source();
    let want = Snapshot::of(&src);
    let dst = target();
    let t = Target::new(&dst, &[]);
    let dump = sql_dump(&src, &["--dump-history", "--databases", MAIN, OTHER]);
    let mut lines: Vec<&[u8]> = dump.split_inclusive(|b| *b == b'\n').collect();
    // Right after the trigger part of fx_main.orders: the next section starts there.
    let orders = lines
        .iter()
        .position(|l| l.starts_with(b"-- Table structure for table `orders`"))
        .expect("the section of fx_main.orders");
    let next = orders
        + 1
        + lines[orders + 1..]
            .iter()
            .position(|l| l.starts_with(b"-- Table structure for table "))
            .unwrap();
    lines.insert(next - 1, b"SELEC broken;\n");
    let (row, out) = dbjobs_tests::fixtures::run_inbound(
        &t.d,
        &dst,
        "reseedmysqldump",
        &gzip(&lines.concat()),
        WAIT,
    );
    let log = dbjobs_tests::fixtures::stderr(&out);
    let result = row.result.clone().unwrap_or_default();
    assert!(
        result.starts_with("failed, server left partial: "),
        "{result}\n{log}"
    );
    assert!(
        result.contains("after the switch (the tables are the backup's, the old ones were dropped): creating the objects"),
        "{result}"
    );
    assert!(result.contains("of objects.sql)"), "{result}");
    assert!(result.contains("ERROR 1064 (42000)"), "{result}");
    let got = Snapshot::of(&dst);
    assert_eq!(got.tables, want.tables, "the tables are the backup's");
    assert_eq!(
        got.sequences, want.sequences,
        "the sequences are the backup's"
    );
    t.assert_nothing_left(row.id, &log);
}

/// The server restarts while the shadow databases are half built (a timed pause, then the
/// run goes on): the client's session is gone, so the build fails and the shadows are
/// dropped, and the target holds its old content (its MEMORY table empty, as after any
/// restart); or, had the build been done, the backup's. Never a mix, nothing left aside.
#[test]
fn a_server_restart_during_the_build_leaves_one_side_whole() {
    let src = source();
    let want = Snapshot::of(&src).on_a_replica();
    let mut dst = target();
    let old = Snapshot::of(&dst).after_restart();
    let plugins = plugin_dir(&[plugin_file("reseed")]);
    let staging = tempfile::tempdir().unwrap();
    let d = inbound_dbjobs(&dst, plugins.path(), staging.path())
        .set("apply_parallel", "1")
        .env(PAUSE_AT, "shadow-half-built")
        .env("DBJOBS_FAULT_PAUSE_SECS", "6");
    let port = free_port();
    let id = submit_job(&d, "reseedmysqldump", port);
    let mut child = d.spawn(&["run"]);
    let lines = log_lines(&mut child);
    let local = IpAddr::from([127, 0, 0, 1]);
    send_when_waiting(&dst, id, port, local, &dump_of(&src), WAIT).expect("send");
    wait_for_point(&lines, "shadow-half-built");
    dst.restart();
    let status = child.wait().expect("wait for dbjobs");
    let log: Vec<String> = lines.try_iter().collect();
    let row = wait_job_finished(&dst, id, WAIT);
    let result = row.result_text().to_string();
    let context = format!(
        "restart during the build ({status}): {result}\n{}",
        log.join("\n")
    );
    if row.succeeded() {
        Snapshot::of(&dst).assert_equals(&want, &context);
    } else {
        assert!(
            result.starts_with("failed, server untouched: "),
            "{context}"
        );
        Snapshot::of(&dst).assert_equals(&old, &context);
    }
    let aside = dst.query_value(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '#dbjobs%'",
    );
    assert_eq!(aside, Some("0".into()), "{context}");
    let kept = dst.query_value(&format!("SELECT id FROM {NODE_ONLY}.k"));
    assert_eq!(kept, Some("7".into()), "{context}");
}
