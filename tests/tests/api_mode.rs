//! End-to-end tests of API mode (`jobs_mode = api`, PROTOCOL.md §6.3): jobs come from the
//! HTTPS stand-in of replication-manager's API ([`dbjobs_tests::repman_standin`]) and there
//! is no job table on the server. Real throwaway servers, the real `dbjobs` binary and
//! plugins, real `mariadb-backup`/`mbstream`, real TCP both ways.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dbjobs_tests::fixtures::{finish, node, stderr};
use dbjobs_tests::physical_fixtures::{xbstream_backup, ServiceScripts};
use dbjobs_tests::repman_standin::RepmanStandin;
use dbjobs_tests::sender::checksums;
use dbjobs_tests::{free_port, mariadb_tool, plugin_dir, plugin_file, wait_for, Dbjobs, MariaDb};
use serde_json::json;

const CLUSTER: &str = "api-cluster";
const SECRET: &str = "api-secret";
const WAIT: Duration = Duration::from_secs(180);

fn standin(server: &MariaDb) -> RepmanStandin {
    RepmanStandin::start(CLUSTER, &format!("127.0.0.1:{}", server.port()), SECRET)
}

/// dbjobs in API mode for `server`, talking to `rm`, receiving on `receive_port`, with
/// `plugins` and the settings `extra` (all in the option file; a setting none of `plugins`
/// declares is refused, so an inbound test passes its `receive_bind` in `extra`).
fn api_dbjobs(
    server: &MariaDb,
    rm: &RepmanStandin,
    plugins: &Path,
    receive_port: u16,
    extra: &[(&str, &str)],
) -> Dbjobs {
    let port = receive_port.to_string();
    let mut settings = rm.settings();
    settings.push(("jobs_mode".into(), "api".into()));
    settings.push(("receive_port".into(), port));
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Dbjobs::new(server, plugins).defaults_file(&server.defaults_file_with(&pairs))
}

/// Whether the server has no `replication_manager_schema` at all (API mode must not create
/// or touch the job table).
fn assert_no_job_table(server: &MariaDb) {
    assert_eq!(
        server
            .query_value(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='replication_manager_schema'"
            )
            .as_deref(),
        Some("0"),
        "API mode created the job schema"
    );
}

/// `xtrabackup_binlog_info` of an xbstream: extracted with the real `mbstream`.
fn binlog_info_of(stream: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(mariadb_tool("mbstream"))
        .arg("-x")
        .arg("-C")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), stream).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "mbstream -x failed");
    let info = std::fs::read_to_string(dir.path().join("xtrabackup_binlog_info")).unwrap();
    info.trim().split('\t').map(str::to_string).collect()
}

#[test]
fn backup_logs_and_optimize_come_from_the_api_with_no_job_table() {
    let s = MariaDb::start();
    s.exec(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB; \
         INSERT INTO shop.t SELECT seq, REPEAT('y', 200) FROM shop.seq_1_to_3000;",
    );
    let rm = standin(&s);
    let plugins = plugin_dir(&[
        plugin_file("xtrabackup"),
        plugin_file("errorlog"),
        plugin_file("optimize"),
    ]);
    let d = api_dbjobs(&s, &rm, plugins.path(), free_port(), &[]);
    let error_log = std::fs::read(s.error_log()).unwrap();
    for task in ["mariabackup", "errorlog", "optimize"] {
        rm.need(task);
    }
    let out = d.run(&["run"]);
    out.assert_code(0);

    for task in ["mariabackup", "errorlog", "optimize"] {
        assert_eq!(
            rm.states_of(task),
            ["processing", "done"],
            "{task}\n{}",
            out.stderr
        );
    }
    let streams = rm.streams();
    let backup = streams
        .iter()
        .find(|s| s.task == "mariabackup")
        .expect("a backup stream");
    let bytes = std::fs::read(&backup.file).unwrap();
    assert!(
        bytes.starts_with(b"XBSTCK01") && bytes.len() > 1 << 20,
        "{backup:?}"
    );
    let shipped = streams
        .iter()
        .find(|s| s.task == "errorlog")
        .expect("an error log stream");
    assert_eq!(std::fs::read(&shipped.file).unwrap(), error_log);
    // optimize streams nothing and asked for no receiver.
    assert!(!rm
        .calls()
        .iter()
        .any(|(p, _)| p.ends_with("receive-task/optimize")));
    // The backup's position went out as a log line, and the done report says what was sent.
    assert!(rm
        .log_lines("mariabackup")
        .iter()
        .any(|l| l.contains("GTID of the last change '")));
    let done = rm
        .states()
        .into_iter()
        .find(|r| r.task == "mariabackup" && r.state == "done")
        .unwrap();
    assert!(done.body["result"]
        .as_str()
        .unwrap()
        .starts_with("backup sent to 127.0.0.1:"));
    assert_no_job_table(&s);
    // Nothing is owed after a clean pass.
    let owed = s.state_dir().join("api-reports");
    assert!(std::fs::read_dir(&owed).map_or(true, |mut d| d.next().is_none()));
}

#[test]
fn a_reseed_from_the_api_reports_the_restore_object() {
    let src = node(1);
    src.exec(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB; \
         INSERT INTO app.t SELECT seq, MD5(seq) FROM app.seq_1_to_2000; \
         CREATE TABLE app.a (id INT PRIMARY KEY, s TEXT) ENGINE=Aria; INSERT INTO app.a VALUES (1, 'aria');",
    );
    let dst = node(2);
    let (stream, _) = xbstream_backup(&src);
    let info = binlog_info_of(&stream);
    assert_eq!(info.len(), 3, "{info:?}");
    let rm = standin(&dst);
    let plugins = plugin_dir(&[plugin_file("reseed")]);
    let backup_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = api_dbjobs(
        &dst,
        &rm,
        plugins.path(),
        port,
        &[
            ("backup_dir", backup_dir.path().to_str().unwrap()),
            ("receive_bind", "127.0.0.1"),
        ],
    )
    .timeout(WAIT);
    rm.need_inbound("reseedmariabackup", stream, port);
    let out = d.run(&["run"]);
    out.assert_code(0);
    assert_eq!(
        rm.states_of("reseedmariabackup"),
        ["processing", "waiting", "done"],
        "{}",
        out.stderr
    );
    let done = rm.states().into_iter().find(|r| r.state == "done").unwrap();
    assert_eq!(
        done.body["restore"],
        json!({"vendor": "mariadb", "binLogFile": info[0], "binLogPos": info[1], "gtid": info[2]}),
        "{:?}",
        done.body
    );
    let want = checksums(&src);
    let got: BTreeMap<String, String> = checksums(&dst)
        .into_iter()
        .filter(|(k, _)| want.contains_key(k))
        .collect();
    assert_eq!(got, want, "the target holds the source's data");
    assert_no_job_table(&dst);
}

#[test]
fn bad_answers_are_clear_errors_and_the_pass_goes_on() {
    let s = MariaDb::start();
    let rm = standin(&s);
    let plugins = plugin_dir(&[
        plugin_file("xtrabackup"),
        plugin_file("errorlog"),
        plugin_file("optimize"),
        plugin_file("example"),
    ]);
    let d = api_dbjobs(&s, &rm, plugins.path(), free_port(), &[]);
    rm.answer_next("needs/optimize", 200, "maybe");
    rm.need("mariabackup");
    rm.answer_next("actions/receive-task/mariabackup", 200, "RECEIVER_PORT=");
    rm.need("errorlog");
    rm.answer_next(
        "actions/receive-task/errorlog",
        500,
        "500 -No valid server!",
    );
    rm.need("example");
    let out = d.run(&["run"]);
    out.assert_code(1);
    let log = &out.stderr;
    assert!(
        log.contains("task optimize: replication-manager answered needs/optimize with HTTP 200 \"maybe\", expected true or false"),
        "{log}"
    );
    assert_eq!(rm.states_of("optimize"), Vec::<String>::new());
    for (task, answer) in [
        ("mariabackup", "RECEIVER_PORT="),
        ("errorlog", "500 -No valid server!"),
    ] {
        assert_eq!(rm.states_of(task), ["error"], "{task}\n{log}");
        let report = rm.states().into_iter().find(|r| r.task == task).unwrap();
        let result = report.body["result"].as_str().unwrap();
        assert!(
            result.contains(answer) && result.contains("receive-task"),
            "{result}"
        );
        assert!(
            log.contains(&format!("task {task}: replication-manager answered")),
            "{log}"
        );
    }
    // The job after them ran.
    assert_eq!(rm.states_of("example"), ["processing", "done"], "{log}");

    // A login answer that is not JSON: a configuration error, nothing runs.
    rm.answer_next("secret-login", 200, "<html>maintenance</html>");
    rm.need("example");
    let out = d.run(&["run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("secret-login with HTTP 200 \"<html>maintenance</html>\", expected a JSON object with a token"),
        "{}",
        out.stderr
    );
    assert_eq!(rm.states_of("example"), ["processing", "done"]);
}

#[test]
fn a_killed_api_job_is_reported_error_by_the_next_run() {
    let s = MariaDb::start();
    let rm = standin(&s);
    let plugins = plugin_dir(&[plugin_file("reseed")]);
    let backup_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = api_dbjobs(
        &s,
        &rm,
        plugins.path(),
        port,
        &[
            ("backup_dir", backup_dir.path().to_str().unwrap()),
            ("receive_bind", "127.0.0.1"),
        ],
    );
    rm.need("reseedmariabackup"); // nobody will send: the job waits until killed
    let child = d.spawn(&["run"]);
    wait_for("the reseed to listen", WAIT, || {
        (rm.states_of("reseedmariabackup") == ["processing", "waiting"]).then_some(())
    });
    // SAFETY: kill(2) on the process group the harness gave dbjobs.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    let out = finish(child, WAIT);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));

    let next = d.run(&["run"]);
    next.assert_code(0);
    assert_eq!(
        rm.states_of("reseedmariabackup"),
        ["processing", "waiting", "error"],
        "{}",
        next.stderr
    );
    let report = rm.states().into_iter().last().unwrap();
    assert!(
        report.body["result"]
            .as_str()
            .unwrap()
            .contains("ended before the job did"),
        "{:?}",
        report.body
    );
    assert!(next
        .stderr
        .contains("delivered the error report an earlier run owed"));
    // Delivered once: a third run owes nothing.
    d.run(&["run"]).assert_code(0);
    assert_eq!(rm.states_of("reseedmariabackup").len(), 3);
}

#[test]
fn an_undelivered_report_is_delivered_by_the_next_run() {
    let s = MariaDb::start();
    let rm = standin(&s);
    let plugins = plugin_dir(&[plugin_file("optimize")]);
    let d = api_dbjobs(&s, &rm, plugins.path(), free_port(), &[]);
    rm.need("optimize");
    for _ in 0..3 {
        rm.answer_next("actions/job-state/optimize/done", 500, "database is locked");
    }
    let out = d.run(&["run"]);
    out.assert_code(0);
    assert_eq!(rm.states_of("optimize"), ["processing"]);
    assert!(out.stderr.contains("kept in"), "{}", out.stderr);
    let next = d.run(&["run"]);
    next.assert_code(0);
    assert_eq!(
        rm.states_of("optimize"),
        ["processing", "done"],
        "{}",
        next.stderr
    );
    let done = rm.states().into_iter().last().unwrap();
    assert!(done.body["result"]
        .as_str()
        .unwrap()
        .starts_with("optimized "));
}

#[test]
fn jobs_check_and_upgrade_keep_the_script_byte_for_byte_and_never_run_it() {
    let s = MariaDb::start();
    let rm = standin(&s);
    let work = tempfile::tempdir().unwrap();
    let script: PathBuf = work.path().join("dbjobs_new");
    let original: Vec<u8> =
        b"#!/bin/bash\n# %%ENV:GENLINE%% \xff\xfe binary-safe\ntouch ran\n# EOF\n".to_vec();
    std::fs::write(&script, &original).unwrap();
    let plugins = plugin_dir(&[plugin_file("optimize")]);
    let port = free_port();
    let d = api_dbjobs(
        &s,
        &rm,
        plugins.path(),
        port,
        &[("repman_script", script.to_str().unwrap())],
    );

    rm.need("jobs-check");
    d.run(&["run"]).assert_code(0);
    wait_for("the checked script", Duration::from_secs(10), || {
        rm.checked_script()
    });
    assert_eq!(rm.checked_script().unwrap(), original);

    let upgraded = b"#!/bin/bash\necho v2\ntouch ran\n# EOF\n".to_vec();
    rm.need_upgrade(upgraded.clone(), port);
    let out = d.run(&["run"]);
    out.assert_code(0);
    rm.join_senders(Duration::from_secs(10));
    assert_eq!(std::fs::read(&script).unwrap(), upgraded, "{}", out.stderr);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&script).unwrap().permissions().mode() & 0o111,
        0
    );
    assert!(
        !work.path().join("ran").exists() && !Path::new("ran").exists(),
        "the script was run"
    );

    // A cut file (no "# EOF" line) is refused and the kept script stays.
    rm.need_upgrade(b"#!/bin/bash\necho v3\n".to_vec(), port);
    let out = d.run(&["run"]);
    out.assert_code(1);
    rm.join_senders(Duration::from_secs(10));
    assert!(out.stderr.contains("no '# EOF' line"), "{}", out.stderr);
    assert_eq!(std::fs::read(&script).unwrap(), upgraded);
}

#[test]
fn start_runs_while_the_database_is_down() {
    let mut s = MariaDb::start();
    let scripts = ServiceScripts::new(&s);
    let rm = standin(&s);
    let plugins = plugin_dir(&[plugin_file("service")]);
    let d = api_dbjobs(
        &s,
        &rm,
        plugins.path(),
        free_port(),
        &[
            ("service_start_command", scripts.start.to_str().unwrap()),
            ("service_wait_timeout", "60"),
        ],
    );
    s.stop();
    rm.need("start");
    let out = d.run(&["run"]);
    out.assert_code(0);
    assert_eq!(
        rm.states_of("start"),
        ["processing", "done"],
        "{}",
        out.stderr
    );
    assert_eq!(
        s.query_value("SELECT 1").as_deref(),
        Some("1"),
        "the server answers again"
    );
    assert_no_job_table(&s);
}
