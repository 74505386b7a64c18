//! End-to-end tests of the outbound and local plugins: `xtrabackup`/`mariabackup` (a backup
//! streamed to a stand-in for replication-manager's listener), `optimize`, `zfssnapback`
//! (with a recording `zfs`) and the service tasks, all against throwaway servers, with the
//! real `dbjobs` binary, the real plugin libraries and the real MariaDB tools.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dbjobs_tests::fake_zfs::{install_script, sh_quote, FakeZfs};
use dbjobs_tests::rm_listener::{ListenMode, RmListener};
use dbjobs_tests::sender::{create_jobs_table, job_row, JobRow};
use dbjobs_tests::{mariadb_tool, plugin_dir, plugin_file, Dbjobs, MariaDb};

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// A private plugin directory holding only the plugin `name`.
fn plugins(name: &str) -> tempfile::TempDir {
    plugin_dir(&[plugin_file(name)])
}

/// Insert a job the way replication-manager does; returns its id.
fn submit(dbjobs: &Dbjobs, task: &str, server: Option<&str>, port: u16) -> u64 {
    let port = port.to_string();
    let mut args = vec!["submit", task, "--job-port", port.as_str()];
    if let Some(s) = server {
        args.extend(["--server", s]);
    }
    let out = dbjobs.run(&args);
    out.assert_code(0);
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("submit printed no id: {:?}", out.stdout))
}

/// `(pid, ppid, argv joined by spaces)` of every process.
fn processes() -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first().is_some_and(|s| *s == "Z" || *s == "X") {
            continue; // exited, not reaped yet
        }
        let ppid = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        out.push((pid, ppid, cmdline));
    }
    out
}

/// Whether `pid` has `ancestor` in its parent chain.
fn descends_from(pid: u32, ancestor: u32, procs: &[(u32, u32, String)]) -> bool {
    let mut cur = pid;
    for _ in 0..64 {
        if cur == ancestor {
            return true;
        }
        match procs.iter().find(|(p, _, _)| *p == cur) {
            Some((_, ppid, _)) if *ppid != 0 => cur = *ppid,
            _ => return false,
        }
    }
    false
}

/// Backup tool processes working on `datadir` (its cmdline names the datadir; the server's
/// own does too, but has no `--backup`).
fn backup_processes(datadir: &Path) -> Vec<(u32, u32, String)> {
    let needle = format!("--datadir={}", datadir.display());
    processes()
        .into_iter()
        .filter(|(_, _, c)| c.contains("--backup") && c.contains(&needle))
        .collect()
}

/// Extract an xbstream with `mbstream -x`, prepare it with `mariadb-backup --prepare`, and
/// return the directory and its `xtrabackup_binlog_info` line.
fn extract_and_prepare(stream: &Path, work: &Path) -> (PathBuf, String) {
    let dir = work.join("extracted");
    fs::create_dir_all(&dir).unwrap();
    let status = Command::new(mariadb_tool("mbstream"))
        .arg("-x")
        .arg("-C")
        .arg(&dir)
        .stdin(fs::File::open(stream).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "mbstream -x failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let prep = Command::new(mariadb_tool("mariadb-backup"))
        .arg("--no-defaults")
        .arg("--prepare")
        .arg(format!("--target-dir={}", dir.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&prep.stderr);
    assert!(
        prep.status.success() && err.contains("completed OK!"),
        "mariadb-backup --prepare failed:\n{err}"
    );
    let info = fs::read_to_string(dir.join("xtrabackup_binlog_info"))
        .expect("the backup has xtrabackup_binlog_info");
    (dir, info.trim().to_string())
}

/// Some data, with a few binlogged transactions so the position is not trivial.
fn seed(s: &MariaDb) {
    s.exec(
        "CREATE DATABASE shop; \
         CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(100)) ENGINE=InnoDB; \
         INSERT INTO shop.orders (item) SELECT CONCAT('item-', seq) FROM shop.seq_1_to_5000; \
         CREATE TABLE shop.notes (n TEXT) ENGINE=Aria; INSERT INTO shop.notes VALUES ('hello');",
    );
}

/// Run a backup job to a full listener and check everything a user would.
fn backup_round_trip(task: &str, payload_variant: bool) {
    let s = MariaDb::start();
    seed(&s);
    if payload_variant {
        create_jobs_table(&s, "payload");
    }
    let work = tempfile::tempdir().unwrap();
    let received = work.path().join("backup.xbstream");
    let listener = RmListener::start(&received, ListenMode::Full);
    let plugins = plugins("xtrabackup");
    let dbjobs = Dbjobs::new(&s, plugins.path());
    let id = submit(&dbjobs, task, Some("127.0.0.1"), listener.port());
    dbjobs.run(&["run"]).assert_code(0);
    let got = listener.finish().expect("the listener received the stream");
    let r = job_row(&s, id);
    assert_eq!(r.done, 1, "{r:?}");
    assert!(r.end.is_some(), "{r:?}");
    assert!(
        r.result_text().starts_with("backup sent to 127.0.0.1:"),
        "{r:?}"
    );
    assert_eq!(
        fs::metadata(&received).unwrap().len(),
        got.bytes,
        "every byte reached the file"
    );
    assert!(got.bytes > 1 << 20, "a real backup is bigger: {got:?}");

    let (dir, info) = extract_and_prepare(&received, work.path());
    assert!(
        dir.join("shop/orders.ibd").is_file(),
        "the user table is in the backup"
    );
    let fields: Vec<&str> = info.split('\t').collect();
    assert_eq!(fields.len(), 3, "xtrabackup_binlog_info: {info:?}");
    let expected = format!(
        "filename '{}', position '{}', GTID of the last change '{}'",
        fields[0], fields[1], fields[2]
    );
    assert!(
        r.result_text().contains(&expected),
        "result {:?} lacks {expected:?}",
        r.result
    );
    // The backup is of this server's current position.
    assert_eq!(
        s.query_value("SELECT @@gtid_binlog_pos").as_deref(),
        Some(fields[2])
    );

    if payload_variant {
        assert_eq!(r.state, Some(3), "{r:?}");
        let payload = r.payload.as_deref().expect("a payload");
        let json: serde_json::Value = serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("payload {payload} is not JSON: {e}"));
        let expected = serde_json::json!({
            "binLogFile": fields[0],
            "binLogPos": fields[1],
            "gtid": fields[2],
            "vendor": "mariadb",
        });
        assert_eq!(json, expected, "payload {payload}");
    } else {
        assert_eq!(r.state, None);
        assert_eq!(r.payload, None);
    }
}

// ---------------------------------------------------------------------------------------
// xtrabackup / mariabackup
// ---------------------------------------------------------------------------------------

#[test]
fn backup_arrives_whole_and_prepares_legacy_table() {
    backup_round_trip("mariabackup", false);
}

#[test]
fn backup_arrives_whole_and_fills_the_payload() {
    backup_round_trip("xtrabackup", true);
}

#[test]
fn backup_without_a_listener_fails_after_the_connect_timeout() {
    let s = MariaDb::start();
    let plugins = plugins("xtrabackup");
    let dbjobs = Dbjobs::new(&s, plugins.path()).set("connect_timeout", "3");
    let port = RmListener::never();
    let id = submit(&dbjobs, "mariabackup", Some("127.0.0.1"), port);
    let out = dbjobs.run(&["run"]);
    out.assert_code(1);
    let r = job_row(&s, id);
    assert_eq!(r.done, 1, "{r:?}");
    assert!(r.end.is_some());
    assert!(
        r.result_text()
            .contains(&format!("cannot connect to 127.0.0.1:{port} within 3 s")),
        "{r:?}"
    );
    assert!(
        r.result_text().contains("listening"),
        "the result says what to check: {r:?}"
    );
    assert!(
        backup_processes(s.datadir()).is_empty(),
        "no backup tool may run"
    );
}

#[test]
fn backup_to_a_listener_that_closes_stops_the_tool() {
    let s = MariaDb::start();
    seed(&s);
    let work = tempfile::tempdir().unwrap();
    let received = work.path().join("partial.xbstream");
    let listener = RmListener::start(&received, ListenMode::CloseAfter(1 << 20));
    let plugins = plugins("xtrabackup");
    let dbjobs = Dbjobs::new(&s, plugins.path());
    let id = submit(&dbjobs, "mariabackup", Some("127.0.0.1"), listener.port());

    let mut child = dbjobs.spawn(&["run"]);
    let dbjobs_pid = child.id();
    let mut seen_tools = Vec::new();
    let status = loop {
        let procs = processes();
        for (pid, _, _) in backup_processes(s.datadir()) {
            if descends_from(pid, dbjobs_pid, &procs) && !seen_tools.contains(&pid) {
                seen_tools.push(pid);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "the job fails");
    let got = listener.finish().expect("the listener accepted");
    assert!(got.bytes <= 1 << 20);

    let r = job_row(&s, id);
    assert_eq!(r.done, 1, "{r:?}");
    assert!(
        r.result_text().contains("sending the backup to 127.0.0.1:")
            && r.result_text().contains("the backup tool was stopped"),
        "{r:?}"
    );
    // Nothing left behind: neither the tools seen while it ran nor any other backup of this
    // server's datadir.
    for pid in &seen_tools {
        let alive = processes().iter().any(|(p, _, _)| p == pid);
        assert!(!alive, "backup tool {pid} survived the failed job");
    }
    assert_eq!(backup_processes(s.datadir()), vec![]);
}

/// Write a private `[client]` option file for `user` (and `password`) on server `s`.
fn client_file(s: &MariaDb, path: &Path, user: &str, password: Option<&str>) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    write!(
        f,
        "[client]\nsocket={}\nport={}\nuser={user}\n",
        s.socket().display(),
        s.port()
    )
    .unwrap();
    if let Some(p) = password {
        writeln!(f, "password={p}").unwrap();
    }
}

#[test]
fn backup_tool_failure_puts_its_last_lines_in_the_result() {
    let s = MariaDb::start();
    // Enough for dbjobs (its queue, sql_log_bin=0), not for mariadb-backup (RELOAD and
    // PROCESS are missing).
    s.exec(
        "CREATE DATABASE IF NOT EXISTS replication_manager_schema; \
         CREATE USER weak@localhost; GRANT ALL ON replication_manager_schema.* TO weak@localhost; \
         GRANT SELECT, BINLOG ADMIN ON *.* TO weak@localhost",
    );
    let work = tempfile::tempdir().unwrap();
    let defaults = work.path().join("weak.cnf");
    client_file(&s, &defaults, "weak", None);
    let received = work.path().join("backup.xbstream");
    let listener = RmListener::start(&received, ListenMode::Full);
    let plugins = plugins("xtrabackup");
    let id = submit(
        &Dbjobs::new(&s, plugins.path()),
        "mariabackup",
        Some("127.0.0.1"),
        listener.port(),
    );
    let dbjobs = Dbjobs::new(&s, plugins.path()).defaults_file(&defaults);
    dbjobs.run(&["run"]).assert_code(1);
    listener.finish().expect("the job connected and closed");
    let r = job_row(&s, id);
    assert_eq!(r.done, 1, "{r:?}");
    assert!(
        r.result_text()
            .contains("mariadb-backup exited with status 1")
            && r.result_text().contains("missing required privilege"),
        "{r:?}"
    );
    assert_eq!(backup_processes(s.datadir()), vec![]);
}

#[test]
fn no_password_on_any_command_line_and_progress_reaches_the_row() {
    let s = MariaDb::start();
    seed(&s);
    let password = "Pw-9f3kQz-not-on-argv";
    s.exec(&format!(
        "CREATE USER bk@localhost IDENTIFIED BY '{password}'; GRANT ALL ON *.* TO bk@localhost"
    ));
    let work = tempfile::tempdir().unwrap();
    let defaults = work.path().join("bk.cnf");
    client_file(&s, &defaults, "bk", Some(password));
    let received = work.path().join("backup.xbstream");
    // Slow enough that the tool runs for a few seconds.
    let listener = RmListener::start(
        &received,
        ListenMode::Slow {
            chunk: 128 << 10,
            pause: Duration::from_millis(30),
        },
    );
    let plugins = plugins("xtrabackup");
    let dbjobs = Dbjobs::new(&s, plugins.path()).defaults_file(&defaults);
    let id = submit(&dbjobs, "mariabackup", Some("127.0.0.1"), listener.port());

    let mut child = dbjobs.spawn(&["run"]);
    let dbjobs_pid = child.id();
    let mut scans_during_backup = 0;
    let mut progress_seen = Vec::new();
    let status = loop {
        let procs = processes();
        for (pid, _, cmdline) in &procs {
            assert!(
                !cmdline.contains(password),
                "process {pid} has the password on its command line: {cmdline}"
            );
        }
        if backup_processes(s.datadir())
            .iter()
            .any(|(pid, _, _)| descends_from(*pid, dbjobs_pid, &procs))
        {
            scans_during_backup += 1;
        }
        let r = job_row(&s, id);
        let result = r.result.unwrap_or_default();
        if r.done == 0 && result.contains(" sent to 127.0.0.1:") && !progress_seen.contains(&result)
        {
            progress_seen.push(result);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "dbjobs log:\n{stderr}");
    assert!(
        scans_during_backup >= 1,
        "the scan never saw mariadb-backup running"
    );
    let got = listener.finish().unwrap();
    let r = job_row(&s, id);
    assert_eq!(r.done, 1, "{r:?}");
    assert!(r.result_text().starts_with("backup sent to"), "{r:?}");
    assert_eq!(fs::metadata(&received).unwrap().len(), got.bytes);
    // Progress (bytes sent so far) reached the row while the backup ran.
    assert!(
        !progress_seen.is_empty(),
        "no progress seen in the row; final result {:?}",
        r.result
    );
    assert!(
        progress_seen
            .iter()
            .all(|p| p.contains("B sent to 127.0.0.1:")),
        "{progress_seen:?}"
    );
}

// ---------------------------------------------------------------------------------------
// optimize
// ---------------------------------------------------------------------------------------

#[test]
fn optimize_every_user_table_without_binlogging() {
    let s = MariaDb::start();
    s.exec(
        "CREATE DATABASE app1; CREATE DATABASE app2; \
         CREATE TABLE app1.users (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB; \
         INSERT INTO app1.users SELECT seq, CONCAT('u', seq) FROM app1.seq_1_to_2000; \
         DELETE FROM app1.users WHERE id % 2 = 0; \
         CREATE TABLE app1.log (line TEXT) ENGINE=MyISAM; INSERT INTO app1.log VALUES ('x'); \
         CREATE VIEW app1.v AS SELECT id FROM app1.users; \
         CREATE TABLE app2.`we``ird name` (id INT) ENGINE=Aria; \
         CREATE TABLE app2.csvt (id INT NOT NULL) ENGINE=CSV; \
         CREATE TABLE mysql.dbjobs_not_mine (id INT) ENGINE=InnoDB;",
    );
    let plugins = plugins("optimize");
    let dbjobs = Dbjobs::new(&s, plugins.path());
    let id = submit(&dbjobs, "optimize", None, 0);
    let before = s.query("SHOW MASTER STATUS");
    let gtid_before = s.query_value("SELECT @@gtid_binlog_pos");

    let out = dbjobs.run(&["run"]);
    out.assert_code(0);
    let r = job_row(&s, id);
    assert_eq!(r.done, 1, "{r:?}");
    assert!(
        r.result_text()
            .starts_with("optimized 3 of 4 tables in 2 schemas"),
        "{r:?}"
    );
    assert!(
        r.result_text()
            .contains("1 not supported by their engine: app2.csvt"),
        "{r:?}"
    );
    // Progress lines `k/n schema.table`, one per table, in order, never the mysql schema.
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.split_once("optimizing ").map(|(_, rest)| rest))
        .collect();
    assert_eq!(
        lines,
        vec![
            "1/4 app1.log",
            "2/4 app1.users",
            "3/4 app2.csvt",
            "4/4 app2.we`ird name"
        ],
        "log:\n{}",
        out.stderr
    );
    // Nothing reached the binary log: same position, same GTID, no OPTIMIZE event.
    assert_eq!(s.query("SHOW MASTER STATUS"), before);
    assert_eq!(s.query_value("SELECT @@gtid_binlog_pos"), gtid_before);
    let events = s.query("SHOW BINLOG EVENTS");
    assert!(
        !events
            .iter()
            .flatten()
            .flatten()
            .any(|v| v.to_uppercase().contains("OPTIMIZE")),
        "{events:?}"
    );
    // The InnoDB table really was rebuilt: its data is still all there.
    assert_eq!(
        s.query_value("SELECT COUNT(*) FROM app1.users").as_deref(),
        Some("1000")
    );
}

#[test]
fn optimize_reports_tables_that_fail() {
    let s = MariaDb::start();
    s.exec(
        "CREATE DATABASE app; CREATE TABLE app.ok (id INT) ENGINE=InnoDB; \
         CREATE TABLE app.hist (id INT) ENGINE=InnoDB WITH SYSTEM VERSIONING;",
    );
    let plugins = plugins("optimize");
    let dbjobs = Dbjobs::new(&s, plugins.path());
    let id = submit(&dbjobs, "optimize", None, 0);
    dbjobs.run(&["run"]).assert_code(1);
    let r = job_row(&s, id);
    assert!(
        r.result_text()
            .contains("1 of 2 tables failed: app.hist: Not allowed for system-versioned"),
        "{r:?}"
    );
    assert!(r.result_text().contains("optimized 1 of 2 tables"), "{r:?}");
}

// ---------------------------------------------------------------------------------------
// Service control: scripts that really stop and start the throwaway server
// ---------------------------------------------------------------------------------------

/// Recording stop/start/restart scripts for a throwaway server, and the cleanup of the
/// server they start (it is not the harness's child, so the harness cannot stop it).
struct ServiceScripts {
    stop: PathBuf,
    start: PathBuf,
    restart: PathBuf,
    pid_file: PathBuf,
}

impl ServiceScripts {
    /// Scripts in `dir` appending `stop`/`start` to `record`. Stop runs `mariadb-admin
    /// shutdown` (which waits until the server is gone); start launches `mariadbd` in the
    /// background with the running server's own arguments.
    fn install(s: &MariaDb, dir: &Path, record: &Path) -> ServiceScripts {
        // The server the start script leaves in the background is orphaned when the script
        // exits; as a subreaper this test process inherits it and can reap it in `drop`
        // (PID 1 of a container may never reap it, leaving a zombie).
        // SAFETY: plain prctl(2) on this process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
        let pid = s.pid().expect("the server runs");
        let argv: Vec<String> = fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let pid_file = dir.join("started.pid");
        let quoted: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
        let record = sh_quote(&record.display().to_string());
        let stop_body = format!(
            "echo stop >> {record}\n{} --no-defaults --socket={} --user=root shutdown\n",
            sh_quote(&mariadb_tool("mariadb-admin").display().to_string()),
            sh_quote(&s.socket().display().to_string()),
        );
        let start_body = format!(
            "echo start >> {record}\n{} </dev/null >>{} 2>&1 &\necho $! > {}\n",
            quoted.join(" "),
            sh_quote(&s.base_dir().join("restarted.out").display().to_string()),
            sh_quote(&pid_file.display().to_string()),
        );
        ServiceScripts {
            stop: install_script(dir, "stop-db", &format!("#!/bin/sh\nset -e\n{stop_body}")),
            start: install_script(dir, "start-db", &format!("#!/bin/sh\nset -e\n{start_body}")),
            restart: install_script(
                dir,
                "restart-db",
                &format!("#!/bin/sh\nset -e\n{stop_body}{start_body}"),
            ),
            pid_file,
        }
    }

    /// The pid of the server the start script launched, if it did.
    fn started_pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }
}

impl Drop for ServiceScripts {
    /// Stop the server the scripts started (SIGTERM, a clean shutdown), before the harness
    /// deletes its directory.
    fn drop(&mut self) {
        if let Some(pid) = self.started_pid() {
            // SAFETY: plain syscall on the pid the start script recorded.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(60);
            while processes().iter().any(|(p, _, _)| *p == pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if processes().iter().any(|(p, _, _)| *p == pid) {
                // SAFETY: plain syscall on the pid the start script recorded.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            // Reap it (it is our child through the subreaper); WNOHANG in case it is not.
            let mut status = 0;
            // SAFETY: plain syscall; status is a valid out pointer.
            unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        }
    }
}

/// The recorded lines of a record file.
fn recorded(record: &Path) -> Vec<String> {
    fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn restart_task_restarts_the_server_through_the_configured_command() {
    let s = MariaDb::start();
    s.exec("CREATE DATABASE keep; CREATE TABLE keep.t (id INT) ENGINE=InnoDB; INSERT INTO keep.t VALUES (7)");
    let old_pid = s.pid().unwrap();
    let work = tempfile::tempdir().unwrap();
    let record = work.path().join("calls.txt");
    let scripts = ServiceScripts::install(&s, work.path(), &record);
    let plugins = plugins("service");
    let dbjobs = Dbjobs::new(&s, plugins.path())
        .set(
            "service_restart_command",
            &scripts.restart.display().to_string(),
        )
        .set("service_wait_timeout", "60");
    let id = submit(&dbjobs, "restart", None, 0);
    let out = dbjobs.run(&["run"]);
    out.assert_code(0);
    assert_eq!(recorded(&record), vec!["stop", "start"]);
    let new_pid = scripts.started_pid().expect("the start part ran");
    assert_ne!(new_pid, old_pid);
    // The server answers, it is the new process, and the job's outcome was written.
    assert_eq!(
        s.query_value("SELECT COUNT(*) FROM keep.t").as_deref(),
        Some("1")
    );
    let r = job_row(&s, id);
    assert_eq!(r.done, 1, "{r:?}\n{}", out.stderr);
    assert!(
        r.result_text().starts_with(&format!(
            "service restarted with `{}`; the server answered after",
            scripts.restart.display()
        )),
        "{r:?}"
    );
    let log = fs::read_to_string(s.error_log()).unwrap();
    assert!(log.contains("Shutdown complete"), "a clean shutdown");
}

// ---------------------------------------------------------------------------------------
// zfssnapback with a recording zfs
// ---------------------------------------------------------------------------------------

/// Snapshots whose names sort differently from their creation times: the newest daily one
/// by creation is `daily-10`, by name it would be `daily-9`.
const ZFS_LIST: &str = "tank/zpdb_pod01@daily-9\t1700000900\n\
                        tank/zpdb_pod01@daily-10\t1700001000\n\
                        tank/zpdb_pod01@weekly-3\t1700005000\n\
                        tank/zpdb_pod01@daily-1\t1600000000\n\
                        tank/zpother_pod02@daily-99\t1800000000\n";

const LIST_CALL: &str = "zfs list -H -p -t snapshot -o name,creation";

/// Runs a `zfssnapback` job against [`ZFS_LIST`] (the rollback failing when
/// `fail_rollback`), checks what both outcomes share: dbjobs exits with `status`, the calls
/// are the listing, stop, the rollback to the newest daily snapshot by creation and start
/// (also after a failed rollback), the server answers again and the row is done; returns
/// the row.
fn zfssnapback(fail_rollback: bool, status: i32) -> JobRow {
    let s = MariaDb::start();
    let work = tempfile::tempdir().unwrap();
    let record = work.path().join("calls.txt");
    let zfs = FakeZfs::install(work.path(), &record, ZFS_LIST, fail_rollback);
    let scripts = ServiceScripts::install(&s, work.path(), &record);
    let plugins = plugins("zfssnapback");
    let dbjobs = Dbjobs::new(&s, plugins.path())
        .env("PATH", &zfs.path_env())
        .set("zfs_dataset_filter", "zpdb_pod01")
        .set("service_stop_command", &scripts.stop.display().to_string())
        .set(
            "service_start_command",
            &scripts.start.display().to_string(),
        )
        .set("service_wait_timeout", "60");
    let id = submit(&dbjobs, "zfssnapback", None, 0);
    let out = dbjobs.run(&["run"]);
    let calls = zfs.calls();
    assert!(
        scripts.started_pid().is_some(),
        "the start script ran: {calls:?}"
    );
    // The server is back and answers.
    assert_eq!(s.query_value("SELECT 1").as_deref(), Some("1"));
    let r = job_row(&s, id);
    drop(scripts);
    assert_eq!(out.status, status, "{r:?}");
    assert_eq!(
        calls,
        vec![
            LIST_CALL,
            "stop",
            "zfs rollback -r tank/zpdb_pod01@daily-10",
            "start"
        ]
    );
    assert_eq!(r.done, 1);
    r
}

#[test]
fn zfssnapback_rolls_back_to_the_newest_daily_snapshot_by_creation() {
    let r = zfssnapback(false, 0);
    assert!(
        r.result_text().starts_with(
            "rolled back to snapshot tank/zpdb_pod01@daily-10 (created 2023-11-14 22:30:00 UTC)"
        ),
        "{r:?}"
    );
}

#[test]
fn zfssnapback_failed_rollback_starts_the_service_again_and_fails() {
    let r = zfssnapback(true, 1);
    let result = r.result_text();
    assert!(
        result.contains("zfs rollback -r tank/zpdb_pod01@daily-10 failed")
            && result.contains("fake failure")
            && result.contains("the service was started again"),
        "{r:?}"
    );
}

#[test]
fn a_failing_service_command_fails_the_job_with_its_output() {
    let s = MariaDb::start();
    let work = tempfile::tempdir().unwrap();
    let script = install_script(
        work.path(),
        "broken-start",
        "#!/bin/sh\necho \"Job for mariadb.service failed: unit not found\" >&2\nexit 5\n",
    );
    let plugins = plugins("service");
    let dbjobs = Dbjobs::new(&s, plugins.path()).set(
        "service_start_command",
        &format!("{} now", script.display()),
    );
    let id = submit(&dbjobs, "start", None, 0);
    dbjobs.run(&["run"]).assert_code(1);
    let r = job_row(&s, id);
    assert_eq!(r.done, 1, "{r:?}");
    assert!(
        r.result_text().contains(&format!(
            "`{} now` failed: broken-start exited with status 5: Job for mariadb.service failed",
            script.display()
        )),
        "{r:?}"
    );
}
