//! End-to-end tests of the host: the queue protocol in every table variant, atomic claims,
//! plugin loading and refusal, bad rows, exit codes and the daemon. Real servers, the real
//! `dbjobs` binary, the real plugin libraries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use dbjobs_tests::sender::create_jobs_table;
use dbjobs_tests::*;

const JOBS: &str = "replication_manager_schema.jobs";

/// One row as a map column -> value.
fn row(server: &MariaDb, id: u64) -> BTreeMap<String, Option<String>> {
    let cols: Vec<String> = server
        .query(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='replication_manager_schema' \
             AND TABLE_NAME='jobs' ORDER BY ORDINAL_POSITION"
        )
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    let values = server
        .query(&format!("SELECT * FROM {JOBS} WHERE id={id}"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("job {id} does not exist"));
    cols.into_iter().zip(values).collect()
}

fn val(r: &BTreeMap<String, Option<String>>, k: &str) -> String {
    r.get(k).cloned().flatten().unwrap_or_else(|| "NULL".into())
}

fn insert(
    server: &MariaDb,
    task: Option<&str>,
    server_col: Option<&str>,
    port: Option<i64>,
) -> u64 {
    let q = |v: Option<String>| {
        v.map(|s| format!("'{}'", s.replace('\'', "''")))
            .unwrap_or("NULL".into())
    };
    server.exec(&format!(
        "SET SESSION sql_log_bin=0; INSERT INTO {JOBS}(task, port, server, start) VALUES ({}, {}, {}, NOW())",
        q(task.map(str::to_string)),
        port.map(|p| p.to_string()).unwrap_or("NULL".into()),
        q(server_col.map(str::to_string)),
    ));
    server
        .query_value("SELECT MAX(id) FROM replication_manager_schema.jobs")
        .unwrap()
        .parse()
        .unwrap()
}

fn submit(dbjobs: &Dbjobs, args: &[&str]) -> u64 {
    let mut a = vec!["submit"];
    a.extend_from_slice(args);
    let out = dbjobs.run(&a);
    out.assert_code(0);
    out.stdout.trim().parse().expect("submit prints the id")
}

/// `<id> <pid>` lines the example plugin wrote: id -> number of runs.
fn runs(log: &Path) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let id: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
        *m.entry(id).or_default() += 1;
    }
    m
}

fn example_dir() -> tempfile::TempDir {
    plugin_dir(&[plugin_file("example"), fixture_file("dbjobs_fixture_panic")])
}

#[test]
fn init_creates_the_legacy_table_and_detects_every_variant() {
    let server = MariaDb::start();
    let dir = example_dir();
    let dbjobs = Dbjobs::new(&server, dir.path());
    let out = dbjobs.run(&["init"]);
    out.assert_code(0);
    assert!(out.stdout.contains("legacy layout"), "{}", out.stdout);
    let cols = server.query(
        "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA='replication_manager_schema' AND TABLE_NAME='jobs'",
    );
    assert_eq!(
        cols[0][0].as_deref(),
        Some("id,task,port,server,done,result,start,end")
    );
    for variant in ["state", "payload"] {
        server.exec("DROP DATABASE replication_manager_schema");
        create_jobs_table(&server, variant);
        let out = dbjobs.run(&["init"]);
        out.assert_code(0);
        assert!(
            out.stdout.contains(&format!("{variant} layout")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn legacy_variant_claims_the_newest_row_supersedes_older_and_writes_outcomes() {
    let server = MariaDb::start();
    let dir = example_dir();
    let log = server.base_dir().join("example.log");
    let dbjobs = Dbjobs::new(&server, dir.path()).set("example_log", log.to_str().unwrap());
    dbjobs.run(&["init"]).assert_code(0);
    let binlog_before = server.query_value("SELECT @@gtid_binlog_pos");
    let old = submit(&dbjobs, &["example", "--job-port", "10"]);
    let new = submit(&dbjobs, &["example", "--job-port", "10"]);
    let fail = submit(&dbjobs, &["fail"]);
    let foreign = insert(&server, Some("someoneelse"), Some("10.0.0.1"), Some(4444));
    let out = dbjobs.run(&["run"]);
    out.assert_code(1); // the `fail` job failed
    assert!(
        out.stderr.contains(&format!("job {new} (example) started")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("job {new} (example) succeeded")),
        "{}",
        out.stderr
    );

    let r = row(&server, new);
    assert_eq!(val(&r, "done"), "1");
    assert_eq!(val(&r, "result"), format!("example job {new} done"));
    assert_ne!(val(&r, "end"), "NULL");
    let r = row(&server, old);
    assert_eq!(val(&r, "done"), "1");
    assert_eq!(
        val(&r, "result"),
        format!("failed, server untouched: superseded by job {new}")
    );
    let r = row(&server, fail);
    assert_eq!(val(&r, "done"), "1");
    assert_eq!(
        val(&r, "result"),
        format!("failed, server state unknown: fixture failure in job {fail}")
    );
    // A task no plugin owns is not touched.
    let r = row(&server, foreign);
    assert_eq!(
        (val(&r, "done"), val(&r, "result"), val(&r, "end")),
        ("0".into(), "NULL".into(), "NULL".into())
    );
    assert_eq!(runs(&log), BTreeMap::from([(new, 1)]));
    // Neither the submits nor the pass wrote to the binary log.
    assert_eq!(
        server.query_value("SELECT @@gtid_binlog_pos"),
        binlog_before
    );
    // A second pass finds nothing to do.
    dbjobs.run(&["run"]).assert_code(0);
    assert_eq!(runs(&log).len(), 1);
}

#[test]
fn state_and_payload_variants_write_state_and_payload() {
    for variant in ["state", "payload"] {
        let server = MariaDb::start();
        create_jobs_table(&server, variant);
        let dir = example_dir();
        let dbjobs = Dbjobs::new(&server, dir.path()).set("example_payload", r#"{"gtid":"0-1-5"}"#);
        let ok = submit(&dbjobs, &["example"]);
        let fail = submit(&dbjobs, &["fail"]);
        // replication-manager refuses a second row of a task while one is pending.
        let dup = dbjobs.run(&["submit", "example"]);
        dup.assert_code(2);
        assert!(dup.stderr.contains("still pending"), "{}", dup.stderr);
        dbjobs.run(&["run"]).assert_code(1);

        let r = row(&server, ok);
        assert_eq!(
            (val(&r, "state"), val(&r, "done")),
            ("3".into(), "1".into()),
            "{variant}: {r:?}"
        );
        assert_eq!(val(&r, "result"), format!("example job {ok} done"));
        assert_ne!(val(&r, "end"), "NULL");
        if variant == "payload" {
            assert_eq!(val(&r, "payload"), r#"{"gtid":"0-1-5"}"#);
        }
        // Failure: state 5, done stays 0 for replication-manager to acknowledge.
        let r = row(&server, fail);
        assert_eq!(
            (val(&r, "state"), val(&r, "done")),
            ("5".into(), "0".into()),
            "{variant}: {r:?}"
        );
        assert_eq!(
            val(&r, "result"),
            format!("failed, server state unknown: fixture failure in job {fail}")
        );
        assert_ne!(val(&r, "end"), "NULL");
        // A finished row can be replaced, as replication-manager does.
        let again = submit(&dbjobs, &["example"]);
        assert_eq!(
            server
                .query_value(&format!("SELECT COUNT(*) FROM {JOBS} WHERE task='example'"))
                .as_deref(),
            Some("1")
        );
        dbjobs.run(&["run"]).assert_code(0);
        assert_eq!(val(&row(&server, again), "state"), "3");
    }
}

#[test]
fn eight_racing_runs_execute_each_job_exactly_once() {
    let server = MariaDb::start();
    let dir = example_dir();
    let log = server.base_dir().join("example.log");
    let dbjobs = Dbjobs::new(&server, dir.path()).set("example_log", log.to_str().unwrap());
    dbjobs.run(&["init"]).assert_code(0);
    // Burst: one pending job, eight cron runs started together.
    for _ in 0..5 {
        let id = submit(&dbjobs, &["example", "--job-port", "50"]);
        let children: Vec<Child> = (0..8).map(|_| dbjobs.spawn(&["run"])).collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        assert_eq!(
            runs(&log).get(&id),
            Some(&1),
            "job {id} must run exactly once"
        );
    }
    // Stream: eight daemons while jobs keep arriving.
    let daemons: Vec<Child> = (0..8)
        .map(|_| dbjobs.spawn(&["daemon", "--interval", "5ms"]))
        .collect();
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(submit(
            &dbjobs,
            &["example", "--job-port", &(i % 3 * 10).to_string()],
        ));
        std::thread::sleep(Duration::from_millis(30));
    }
    wait_for("every job finished", Duration::from_secs(60), || {
        (server
            .query_value(&format!("SELECT COUNT(*) FROM {JOBS} WHERE done=0"))
            .as_deref()
            == Some("0"))
        .then_some(())
    });
    for d in &daemons {
        unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    }
    for mut d in daemons {
        let status = d.wait().unwrap();
        assert!(status.success(), "daemon exit {status:?}");
    }
    let counts = runs(&log);
    let mut executed = 0;
    for id in ids {
        let r = row(&server, id);
        let result = val(&r, "result");
        if result == format!("example job {id} done") {
            assert_eq!(
                counts.get(&id),
                Some(&1),
                "job {id} ran {:?} times",
                counts.get(&id)
            );
            executed += 1;
        } else {
            assert!(
                result.starts_with("failed, server untouched: superseded by job"),
                "job {id}: {result}"
            );
            assert_eq!(counts.get(&id), None, "superseded job {id} must not run");
        }
    }
    assert!(executed >= 10, "only {executed} of 40 jobs ran");
}

#[test]
fn plugins_load_side_by_side_and_bad_files_are_refused_with_reasons() {
    let server = MariaDb::start();
    let example = plugin_file("example");
    let dir = plugin_dir(&[
        example.clone(),
        fixture_file("dbjobs_fixture_panic"),
        fixture_file("dbjobs_fixture_newer_sdk"),
        fixture_file("dbjobs_fixture_other_layout"),
    ]);
    // The same plugin under a second name: its task is already owned.
    std::fs::copy(&example, dir.path().join("zz_copy_of_example.so")).unwrap();
    // A shared library that is not a plugin, and a file that is no library at all.
    let libz = [
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("libz is installed");
    std::fs::copy(libz, dir.path().join("libz.so")).unwrap();
    std::fs::write(dir.path().join("notes.so"), b"not an ELF file").unwrap();

    let out = Dbjobs::new(&server, dir.path()).run(&["plugins", "--json"]);
    out.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["panicky", "example"], "files load in name order");
    let refused: BTreeMap<String, String> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f = PathBuf::from(r["file"].as_str().unwrap());
            (
                f.file_name().unwrap().to_string_lossy().into_owned(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let newer = &refused["libdbjobs_fixture_newer_sdk.so"];
    assert!(
        newer.contains("0.99.0") && newer.contains(dbjobs_sdk_version()),
        "{newer}"
    );
    let fork = &refused["libdbjobs_fixture_other_layout.so"];
    assert!(
        fork.contains("ABI layout does not match")
            && fork.contains(&format!(
                "the host expects `PluginMod` (dbjobs-sdk {})",
                dbjobs_sdk_version()
            ))
            && fork.contains("ForkMod"),
        "{fork}"
    );
    assert!(
        refused["zz_copy_of_example.so"].contains("already owned by example"),
        "{refused:?}"
    );
    assert!(
        refused["libz.so"].contains("not a dbjobs plugin"),
        "{refused:?}"
    );
    assert!(
        refused["notes.so"].contains("not a loadable shared library"),
        "{refused:?}"
    );
    // Each refusal is one log line naming the file.
    for file in refused.keys() {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains(file.as_str()) && l.contains("refused")),
            "{file}: {}",
            out.stderr
        );
    }
}

fn dbjobs_sdk_version() -> &'static str {
    dbjobs_sdk::SDK_VERSION
}

#[test]
fn a_panicking_plugin_fails_its_job_and_the_pass_goes_on() {
    let server = MariaDb::start();
    let dir = example_dir();
    let dbjobs = Dbjobs::new(&server, dir.path());
    dbjobs.run(&["init"]).assert_code(0);
    let panic = submit(&dbjobs, &["panic"]);
    let example = submit(&dbjobs, &["example"]);
    let out = dbjobs.run(&["run"]);
    out.assert_code(1);
    assert_eq!(
        val(&row(&server, panic), "result"),
        format!("failed, server state unknown: plugin panicked: fixture panic in job {panic}")
    );
    assert_eq!(
        val(&row(&server, example), "result"),
        format!("example job {example} done")
    );
}

#[test]
fn bad_rows_fail_clearly_and_never_reach_a_shell() {
    let server = MariaDb::start();
    let dir = example_dir();
    let log = server.base_dir().join("example.log");
    let dbjobs = Dbjobs::new(&server, dir.path()).set("example_log", log.to_str().unwrap());
    dbjobs.run(&["init"]).assert_code(0);
    let pwned = server.base_dir().join("pwned");
    let cases: Vec<(u64, &str)> = vec![
        (
            insert(&server, Some("example"), None, Some(70000)),
            "port 70000 is out of range",
        ),
        (
            insert(&server, Some("panic"), None, Some(-1)),
            "port -1 is out of range",
        ),
        (
            insert(
                &server,
                Some("fail"),
                Some(&format!("$(touch {})", pwned.display())),
                Some(1),
            ),
            "is not a host name or IP address",
        ),
    ];
    let null_task = insert(&server, None, Some("10.0.0.1"), Some(1));
    // A task no plugin owns: left alone while it is fresh (another agent may own it), failed
    // with the fix once it waited longer than unowned_task_grace (600 s by default).
    let fresh_unknown = insert(&server, Some("nosuchtask"), None, Some(0));
    let old_unknown = insert(&server, Some("nosuchtask2"), None, Some(0));
    server.exec(&format!(
        "SET SESSION sql_log_bin=0; UPDATE {JOBS} SET start=NOW() - INTERVAL 1 HOUR WHERE id={old_unknown}"
    ));
    let out = dbjobs.run(&["run"]);
    out.assert_code(1);
    for (id, expected) in cases {
        let r = row(&server, id);
        assert_eq!(val(&r, "done"), "1");
        assert!(val(&r, "result").contains(expected), "job {id}: {r:?}");
        assert!(out.stderr.contains(expected), "{}", out.stderr);
    }
    assert!(!pwned.exists(), "a job field reached a shell");
    let r = row(&server, null_task);
    assert_eq!(val(&r, "done"), "1");
    assert_eq!(
        val(&r, "result"),
        "failed, server untouched: the task is NULL or empty; nothing can run this row"
    );
    let r = row(&server, fresh_unknown);
    assert_eq!(
        (val(&r, "done"), val(&r, "result")),
        ("0".into(), "NULL".into())
    );
    assert!(
        out.stderr.contains(&format!(
            "job {fresh_unknown} has task \"nosuchtask\", which no loaded plugin owns"
        )),
        "{}",
        out.stderr
    );
    let r = row(&server, old_unknown);
    assert_eq!(val(&r, "done"), "1");
    assert!(
        val(&r, "result").starts_with("failed, server untouched: no dbjobs plugin on this node owns the task \"nosuchtask2\" (loaded: example, fail, fakerestore, panic, partial)"),
        "{r:?}"
    );
    assert!(runs(&log).is_empty());
    // A valid row of the same task is served afterwards.
    let ok = submit(&dbjobs, &["example", "--job-port", "60000"]);
    server.exec(&format!("UPDATE {JOBS} SET port=5 WHERE id={ok}"));
    dbjobs.run(&["run"]).assert_code(0);
    assert_eq!(runs(&log), BTreeMap::from([(ok, 1)]));
}

#[test]
fn plugin_directories_writable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let server = MariaDb::start();
    let dir = example_dir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
    let dbjobs = Dbjobs::new(&server, dir.path());
    let out = dbjobs.run(&["run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("writable by group or others"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("no plugin loaded"), "{}", out.stderr);
    // A group-writable file in a private directory is refused too.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let so = dir.path().join("libdbjobs_plugin_example.so");
    std::fs::set_permissions(&so, std::fs::Permissions::from_mode(0o775)).unwrap();
    let out = dbjobs.run(&["plugins"]);
    assert!(
        out.stdout.contains("refused") && out.stdout.contains("libdbjobs_plugin_example.so"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("example 0.1.0"), "{}", out.stdout);
}

#[test]
fn configuration_errors_exit_2_with_a_fix() {
    let server = MariaDb::start();
    let dir = example_dir();
    let missing = server.base_dir().join("no-such.sock");
    let out = Dbjobs::new(&server, dir.path()).run(&["run", "--socket", missing.to_str().unwrap()]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("cannot connect to MariaDB") && out.stderr.contains("help:"),
        "{}",
        out.stderr
    );
    let out = Dbjobs::new(&server, dir.path()).run(&["run", "--set", "novalue"]);
    out.assert_code(2);
    assert!(out.stderr.contains("name=value"), "{}", out.stderr);
}

#[test]
fn settings_come_from_the_option_file_and_set_overrides_them() {
    let server = MariaDb::start();
    let dir = example_dir();
    let from_file = server.base_dir().join("from-file.log");
    let from_flag = server.base_dir().join("from-flag.log");
    let cnf = server.defaults_file_with(&[("example-log", from_file.to_str().unwrap())]);
    let dbjobs = Dbjobs::new(&server, dir.path()).defaults_file(&cnf);
    let a = submit(&dbjobs, &["example"]);
    dbjobs.run(&["run"]).assert_code(0);
    assert_eq!(runs(&from_file), BTreeMap::from([(a, 1)]));
    let b = submit(&dbjobs, &["example"]);
    dbjobs
        .clone()
        .set("example_log", from_flag.to_str().unwrap())
        .run(&["run"])
        .assert_code(0);
    assert_eq!(runs(&from_flag), BTreeMap::from([(b, 1)]));
}

#[test]
fn a_killed_run_leaves_an_abandoned_row_that_the_next_run_fails() {
    let server = MariaDb::start();
    let dir = example_dir();
    let dbjobs = Dbjobs::new(&server, dir.path());
    dbjobs.run(&["init"]).assert_code(0);
    let slow = submit(&dbjobs, &["example", "--job-port", "30000"]);
    let mut child = dbjobs.spawn(&["run"]);
    wait_for("job running", Duration::from_secs(30), || {
        (val(&row(&server, slow), "result").starts_with("waited")).then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let next = submit(&dbjobs, &["example"]);
    dbjobs.run(&["run"]).assert_code(0);
    let r = row(&server, slow);
    assert_eq!(val(&r, "done"), "1");
    assert!(
        val(&r, "result").starts_with(
            "failed, server state unknown: abandoned: the dbjobs run that claimed this job ended"
        ),
        "{r:?}"
    );
    assert_eq!(
        val(&row(&server, next), "result"),
        format!("example job {next} done")
    );
}

#[test]
fn the_daemon_finishes_the_running_job_on_sigterm() {
    let server = MariaDb::start();
    let dir = example_dir();
    let dbjobs = Dbjobs::new(&server, dir.path());
    dbjobs.run(&["init"]).assert_code(0);
    let mut daemon = dbjobs.spawn(&["daemon", "--interval", "50ms"]);
    let id = submit(&dbjobs, &["example", "--job-port", "1500"]);
    wait_for("job picked up", Duration::from_secs(30), || {
        (val(&row(&server, id), "result") != "NULL").then_some(())
    });
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let r = row(&server, id);
    assert_eq!(
        (val(&r, "done"), val(&r, "result")),
        ("1".into(), format!("example job {id} done"))
    );
    // Nothing is picked up after the stop.
    let later = submit(&dbjobs, &["example"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(val(&row(&server, later), "done"), "0");
}

#[test]
fn jobs_lists_recent_rows_as_json() {
    let server = MariaDb::start();
    let dir = example_dir();
    let dbjobs = Dbjobs::new(&server, dir.path());
    let id = submit(
        &dbjobs,
        &["example", "--server", "10.1.2.3", "--job-port", "7"],
    );
    let out = dbjobs.run(&["jobs", "--json", "--limit", "5"]);
    out.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], serde_json::json!(id));
    assert_eq!(v[0]["task"], "example");
    assert_eq!(v[0]["server"], "10.1.2.3");
    assert_eq!(v[0]["port"], 7);
    assert_eq!(v[0]["done"], 0);
}

/// A progress write that waits for a lock must not stop the job: `mariadb-backup` holds the
/// backup lock while it streams, and a plugin blocked in `progress()` would stop draining the
/// tool's output, so the tool would never release the lock (a deadlock seen in the demo).
#[test]
fn progress_writes_never_block_the_job() {
    use mysql::prelude::Queryable;
    let server = MariaDb::start();
    let dir = example_dir();
    let log = server.base_dir().join("example.log");
    let dbjobs = Dbjobs::new(&server, dir.path()).set("example_log", log.to_str().unwrap());
    dbjobs.run(&["init"]).assert_code(0);
    let id = submit(&dbjobs, &["example", "--job-port", "3000"]);
    let mut child = dbjobs.spawn(&["run"]);
    wait_for("job running", Duration::from_secs(30), || {
        val(&row(&server, id), "result")
            .starts_with("waited")
            .then_some(())
    });
    // What mariadb-backup does at the end of a backup: commits wait until it is done.
    let mut backup = server.conn();
    backup.query_drop("BACKUP STAGE START").unwrap();
    backup.query_drop("BACKUP STAGE BLOCK_COMMIT").unwrap();
    // The plugin finishes its work while the lock is held...
    wait_for(
        "the plugin to finish while commits are blocked",
        Duration::from_secs(20),
        || runs(&log).contains_key(&id).then_some(()),
    );
    assert_ne!(
        val(&row(&server, id), "done"),
        "1",
        "the outcome cannot be written yet"
    );
    // ...and the outcome is written once the lock is gone.
    backup.query_drop("BACKUP STAGE END").unwrap();
    assert!(child.wait().unwrap().success());
    let r = row(&server, id);
    assert_eq!(
        (val(&r, "done"), val(&r, "result")),
        ("1".into(), format!("example job {id} done"))
    );
}

/// `dbjobs jobs --json`, as rows.
fn jobs_json(dbjobs: &Dbjobs) -> Vec<serde_json::Value> {
    let out = dbjobs.run(&["jobs", "--json", "--limit", "50"]);
    out.assert_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn json_row(rows: &[serde_json::Value], id: u64) -> serde_json::Value {
    rows.iter()
        .find(|r| r["id"] == serde_json::json!(id))
        .unwrap_or_else(|| panic!("job {id} not listed: {rows:?}"))
        .clone()
}

#[test]
fn jobs_json_shows_the_kind_and_server_state_of_failed_jobs() {
    let server = MariaDb::start();
    let dir = example_dir();
    let dbjobs = Dbjobs::new(&server, dir.path());
    let ok = submit(&dbjobs, &["example"]);
    let fail = submit(&dbjobs, &["fail"]);
    let panic = submit(&dbjobs, &["panic"]);
    dbjobs.run(&["run"]).assert_code(1);
    let rows = jobs_json(&dbjobs);
    let r = json_row(&rows, fail);
    assert_eq!(
        (&r["kind"], &r["server_state"]),
        (&"tool".into(), &"unknown".into()),
        "{r}"
    );
    let r = json_row(&rows, panic);
    assert_eq!(r["kind"], "panic", "{r}");
    let r = json_row(&rows, ok);
    assert!(
        r.get("kind").is_none() && r.get("server_state").is_none(),
        "{r}"
    );
    // The outcomes are kept privately in state_dir.
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&server.state_dir()), 0o700);
    assert_eq!(mode(&server.state_dir().join("outcomes.jsonl")), 0o600);

    // replication-manager deletes rows and inserts new ones that may reuse an id: the outcome
    // of the old job must not be shown for the new row.
    server.exec(&format!(
        "SET SESSION sql_log_bin=0; DELETE FROM {JOBS} WHERE id={fail}; \
         INSERT INTO {JOBS}(id, task, port, start) VALUES ({fail}, 'fail', 0, NOW() - INTERVAL 1 DAY)"
    ));
    let r = json_row(&jobs_json(&dbjobs), fail);
    assert!(r.get("kind").is_none(), "{r}");
}

#[test]
fn a_node_left_partial_refuses_restores_until_cleared() {
    let server = MariaDb::start();
    let dir = example_dir();
    let log = server.base_dir().join("example.log");
    let dbjobs = Dbjobs::new(&server, dir.path()).set("example_log", log.to_str().unwrap());

    let partial = submit(&dbjobs, &["partial"]);
    dbjobs.run(&["run"]).assert_code(1);
    let r = row(&server, partial);
    assert_eq!(
        val(&r, "result"),
        format!("failed, server left partial: fixture restore of job {partial} stopped half-way - hint: check the tables, then restore again")
    );
    let j = json_row(&jobs_json(&dbjobs), partial);
    assert_eq!(
        (&j["kind"], &j["server_state"]),
        (&"bad_input".into(), &"partial".into()),
        "{j}"
    );
    let listing = dbjobs.run(&["jobs"]);
    listing.assert_code(0);
    assert!(
        listing
            .stdout
            .starts_with(&format!("NODE LEFT PARTIAL by job {partial} (partial, ")),
        "{}",
        listing.stdout
    );

    // A restore is refused before its plugin runs; other tasks still run.
    let refused = submit(&dbjobs, &["fakerestore"]);
    let other = submit(&dbjobs, &["example"]);
    let out = dbjobs.run(&["run"]);
    out.assert_code(1);
    let result = val(&row(&server, refused), "result");
    let expected_start =
        format!("failed, server untouched: this node was left partial by job {partial} (partial, ");
    assert!(result.starts_with(&expected_start), "{result}");
    assert!(
        result.ends_with(&format!(
            ": fixture restore of job {partial} stopped half-way) - hint: check the data, then run dbjobs clear-partial"
        )),
        "{result}"
    );
    assert!(
        !out.stderr
            .contains(&format!("job {refused} (fakerestore) started")),
        "{}",
        out.stderr
    );
    let j = json_row(&jobs_json(&dbjobs), refused);
    assert_eq!(
        (&j["kind"], &j["server_state"]),
        (&"refused".into(), &"untouched".into()),
        "{j}"
    );
    assert_eq!(runs(&log), BTreeMap::from([(other, 1)]));

    // clear-partial says what it removed; then the restore runs.
    let out = dbjobs.run(&["clear-partial"]);
    out.assert_code(0);
    assert!(
        out.stdout.starts_with(&format!(
            "removed the partial mark of job {partial} (partial, "
        )),
        "{}",
        out.stdout
    );
    assert!(!server.state_dir().join("partial.json").exists());
    let out = dbjobs.run(&["clear-partial"]);
    out.assert_code(0);
    assert!(
        out.stdout.starts_with("no partial mark in "),
        "{}",
        out.stdout
    );
    assert!(!dbjobs.run(&["jobs"]).stdout.contains("NODE LEFT PARTIAL"));
    let again = submit(&dbjobs, &["fakerestore"]);
    dbjobs.run(&["run"]).assert_code(0);
    assert_eq!(
        val(&row(&server, again), "result"),
        format!("fake restore of job {again} done")
    );
}

/// `dbjobs run` remembers the plugin files whose layout passed the check (in the state
/// directory), and a file rewritten since is checked again: the example plugin passes and is
/// remembered; overwritten in place by a library that claims the same SDK with another ABI
/// layout, the next run refuses it.
#[test]
fn a_remembered_plugin_rewritten_in_place_is_checked_again() {
    let server = MariaDb::start();
    let dir = plugin_dir(&[plugin_file("example")]);
    let lib = dir.path().join("libdbjobs_plugin_example.so");
    let d = Dbjobs::new(&server, dir.path());
    d.run(&["run"]).assert_code(0);
    let cache = server.state_dir().join("checked-plugins.json");
    let remembered = std::fs::read_to_string(&cache).expect("the run remembers the checked files");
    assert!(
        remembered.contains("libdbjobs_plugin_example.so"),
        "{remembered}"
    );
    d.run(&["run"]).assert_code(0);

    // Same path, same inode, other content: what an upgrade in place (or an attacker with
    // root) would do.
    std::fs::write(
        &lib,
        std::fs::read(fixture_file("dbjobs_fixture_other_layout")).unwrap(),
    )
    .unwrap();
    let out = d.run(&["run"]);
    assert!(
        out.stderr.contains("ABI layout does not match"),
        "a rewritten library was not checked again:\n{}",
        out.stderr
    );
}
