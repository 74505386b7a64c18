//! Tests of the test harness itself: if these fail, no end-to-end result can be trusted.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dbjobs_tests::{
    free_port, mariadb_tool, plugin_dir, plugin_file, target_dir, wait_for, Dbjobs, MariaDb,
    ServerOptions,
};

/// Whether `pid` is a live process (a zombie counts as dead: it no longer runs).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// The message of a caught panic.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Runs `f`, which must panic, and returns the panic message.
fn expect_panic<R>(f: impl FnOnce() -> R) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => panic_message(payload),
    }
}

#[test]
fn two_servers_run_side_by_side_with_separate_data() {
    let a = MariaDb::start();
    let b = MariaDb::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.socket(), b.socket());
    assert_ne!(a.datadir(), b.datadir());
    assert!(a.socket().starts_with(a.base_dir()));
    assert!(a.datadir().starts_with(a.base_dir()));
    assert!(
        a.socket().as_os_str().len() < 108,
        "unix socket path too long"
    );
    let template = target_dir().parent().unwrap().join("dbjobs-test-template");
    assert!(template.join("ready").is_file(), "no template marker");

    a.exec("CREATE DATABASE t; CREATE TABLE t.v (x VARCHAR(10)); INSERT INTO t.v VALUES ('a')");
    b.exec("CREATE DATABASE t; CREATE TABLE t.v (x VARCHAR(10)); INSERT INTO t.v VALUES ('b')");
    assert_eq!(a.query_value("SELECT x FROM t.v").as_deref(), Some("a"));
    assert_eq!(b.query_value("SELECT x FROM t.v").as_deref(), Some("b"));
    // Each server really listens on its own TCP port.
    assert_eq!(a.query_value("SELECT @@port"), Some(a.port().to_string()));
    assert_eq!(b.query_value("SELECT @@port"), Some(b.port().to_string()));
    std::net::TcpStream::connect(("127.0.0.1", a.port())).expect("TCP port of server a");
    std::net::TcpStream::connect(("127.0.0.1", b.port())).expect("TCP port of server b");
    assert_eq!(
        a.query_value("SELECT @@datadir"),
        Some(format!("{}/", a.datadir().display()))
    );
}

#[test]
fn restart_keeps_data_port_and_socket() {
    let mut s = MariaDb::start();
    s.exec("CREATE DATABASE keep; CREATE TABLE keep.t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO keep.t VALUES (1),(2),(3)");
    let (port, socket, pid) = (s.port(), s.socket().to_path_buf(), s.pid().unwrap());
    s.restart();
    let new_pid = s.pid().expect("running after restart");
    assert_ne!(pid, new_pid, "restart must start a new process");
    assert!(!alive(pid), "the old mariadbd must be gone");
    assert_eq!(s.port(), port);
    assert_eq!(s.socket(), socket);
    assert_eq!(s.query_value("SELECT @@port"), Some(port.to_string()));
    assert_eq!(
        s.query_value("SELECT GROUP_CONCAT(id ORDER BY id) FROM keep.t")
            .as_deref(),
        Some("1,2,3")
    );
    // The shutdown was clean (SIGTERM), not a crash followed by recovery.
    let log = fs::read_to_string(s.error_log()).unwrap();
    assert!(log.contains("Shutdown complete"), "error log:\n{log}");
}

#[test]
fn stop_is_idempotent_and_restart_starts_a_stopped_server() {
    let mut s = MariaDb::start();
    let pid = s.pid().expect("running");
    s.stop();
    assert_eq!(s.pid(), None);
    assert!(!alive(pid));
    s.stop();
    assert!(!s.socket().exists() || std::os::unix::net::UnixStream::connect(s.socket()).is_err());
    s.restart();
    assert_eq!(s.query_value("SELECT 1").as_deref(), Some("1"));
}

#[test]
fn defaults_files_are_private_and_carry_the_dbjobs_section() {
    let s = MariaDb::start();
    let plain = s.defaults_file();
    let text = fs::read_to_string(&plain).unwrap();
    assert!(text.starts_with("[client]\n"), "{text}");
    assert!(
        text.contains(&format!("socket={}\n", s.socket().display())),
        "{text}"
    );
    assert!(text.contains("user=root\n"), "{text}");
    assert!(!text.contains("[dbjobs]"), "{text}");
    assert_eq!(
        fs::metadata(&plain).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        s.defaults_file(),
        plain,
        "defaults_file() is one stable path"
    );

    let with = s.defaults_file_with(&[("poll-interval", "1"), ("backup-dir", "/tmp/x y")]);
    let other = s.defaults_file_with(&[("poll-interval", "2")]);
    assert_ne!(with, other, "each call writes a new file");
    assert_ne!(with, plain);
    assert!(with.starts_with(s.base_dir()));
    assert_eq!(
        fs::metadata(&with).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&with).unwrap();
    let section = text.split_once("[dbjobs]\n").expect("a [dbjobs] section").1;
    assert_eq!(section, "poll-interval=1\nbackup-dir=/tmp/x y\n");
    assert!(fs::read_to_string(&other)
        .unwrap()
        .ends_with("[dbjobs]\npoll-interval=2\n"));

    // The real client accepts the file (and ignores the [dbjobs] section).
    let out = Command::new(mariadb_tool("mariadb"))
        .arg(format!("--defaults-file={}", with.display()))
        .args(["-N", "-e", "SELECT CONCAT(CURRENT_USER(), ' ', @@port)"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("root@localhost {}", s.port())
    );
}

#[test]
fn binlog_is_on_by_default_and_server_id_follows_the_options() {
    let s = MariaDb::start();
    assert_eq!(s.query_value("SELECT @@log_bin").as_deref(), Some("1"));
    assert_eq!(s.query_value("SELECT @@server_id").as_deref(), Some("1"));
    assert_eq!(
        s.query_value("SELECT @@log_bin_basename"),
        Some(format!("{}/mariadb-bin", s.datadir().display()))
    );
    assert_eq!(
        s.query_value("SELECT @@gtid_strict_mode").as_deref(),
        Some("0")
    );
    assert_eq!(
        s.query_value("SELECT @@innodb_buffer_pool_size").as_deref(),
        Some("33554432")
    );
    assert_eq!(
        s.query_value("SELECT @@log_error"),
        Some(s.error_log().display().to_string())
    );
    assert_eq!(
        s.query_value("SELECT @@slow_query_log_file"),
        Some(s.slow_log().display().to_string())
    );
    // root has an empty password over the socket; dbjobs relies on the option file only.
    assert_eq!(
        s.query_value("SELECT CURRENT_USER()").as_deref(),
        Some("root@localhost")
    );

    let custom = MariaDb::start_with(ServerOptions {
        log_bin: false,
        server_id: 7,
        extra_args: vec!["--max-connections=17".into()],
        ..ServerOptions::default()
    });
    assert_eq!(custom.query_value("SELECT @@log_bin").as_deref(), Some("0"));
    assert_eq!(
        custom.query_value("SELECT @@server_id").as_deref(),
        Some("7")
    );
    assert_eq!(
        custom.query_value("SELECT @@max_connections").as_deref(),
        Some("17")
    );
}

#[test]
fn drop_stops_the_server_and_removes_its_files() {
    let s = MariaDb::start();
    let pid = s.pid().expect("running");
    let base = s.base_dir().to_path_buf();
    assert!(alive(pid));
    drop(s);
    assert!(!alive(pid), "mariadbd {pid} still runs after drop");
    assert!(!base.exists(), "{} still exists after drop", base.display());
}

#[test]
fn drop_stops_the_server_when_the_test_panics() {
    let mut seen = None;
    let msg = expect_panic(|| {
        let s = MariaDb::start();
        seen = Some((s.pid().unwrap(), s.base_dir().to_path_buf()));
        panic!("simulated test failure");
    });
    assert_eq!(msg, "simulated test failure");
    let (pid, base) = seen.unwrap();
    assert!(!alive(pid), "mariadbd {pid} still runs after a panic");
    assert!(!base.exists());
}

/// Environment variable that turns [`helper_leaks_a_server_and_exits`] on.
const HELPER_ENV: &str = "DBJOBS_HARNESS_HELPER_OUT";

/// Not a test on its own: run by [`servers_die_with_the_test_process`] in a child process.
/// It starts a server, writes its pid and base dir to the file named by `HELPER_ENV`, and
/// exits without running any destructor, as an aborted test process or a `static` would.
#[test]
fn helper_leaks_a_server_and_exits() {
    let Some(out) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let s = MariaDb::start();
    let info = format!("{}\n{}\n", s.pid().unwrap(), s.base_dir().display());
    fs::write(out, info).unwrap();
    std::mem::forget(s);
    std::process::exit(0);
}

/// Kills a leaked server if the test below fails, so a failure does not leak it for good.
struct KillOnDrop(u32, PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGKILL) };
        }
        let _ = fs::remove_dir_all(&self.1);
    }
}

#[test]
fn servers_die_with_the_test_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("helper.out");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_leaks_a_server_and_exits", "--nocapture"])
        .env(HELPER_ENV, &out)
        .status()
        .unwrap();
    assert!(status.success(), "helper failed: {status}");
    let info = fs::read_to_string(&out).expect("the helper wrote the server's pid");
    let mut lines = info.lines();
    let pid: u32 = lines.next().unwrap().parse().unwrap();
    let guard = KillOnDrop(pid, PathBuf::from(lines.next().unwrap()));
    wait_for(
        "the leaked mariadbd to die with its test process",
        Duration::from_secs(10),
        || (!alive(pid)).then_some(()),
    );
    drop(guard);
}

#[test]
fn exec_checks_every_statement_and_query_returns_text() {
    let s = MariaDb::start();
    let msg = expect_panic(|| s.exec("SELECT 1; SELECT * FROM no_such_db.no_such_table"));
    assert!(msg.contains("no_such_table"), "{msg}");
    assert!(
        msg.contains("SELECT 1; SELECT"),
        "the message shows the SQL: {msg}"
    );
    let msg = expect_panic(|| s.query("SELEC 1"));
    assert!(msg.contains("SQL syntax"), "{msg}");

    s.exec(
        "CREATE DATABASE d; \
         CREATE TABLE d.t (i INT, u BIGINT UNSIGNED, f DOUBLE, s VARCHAR(10), n INT NULL, \
                           dt DATETIME, b VARBINARY(4)); \
         INSERT INTO d.t VALUES (-1, 18446744073709551615, 1.5, 'x', NULL, '2024-01-02 03:04:05', 'ab');",
    );
    let rows = s.query("SELECT i, u, f, s, n, dt, b FROM d.t");
    let text = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![vec![
            text("-1"),
            text("18446744073709551615"),
            text("1.5"),
            text("x"),
            None,
            text("2024-01-02 03:04:05"),
            text("ab"),
        ]]
    );
    // Rows of every result set; statements without rows add none.
    assert_eq!(
        s.query("SET @a = 5; SELECT @a; SELECT @a + 1"),
        vec![vec![text("5")], vec![text("6")]]
    );
    assert_eq!(s.query_value("SELECT NULL"), None);
    assert_eq!(s.query_value("SELECT 1 FROM DUAL WHERE 0"), None);
    // A session of our own keeps its state.
    use mysql::prelude::Queryable;
    let mut conn = s.conn();
    conn.query_drop("CREATE TEMPORARY TABLE d.tmp (x INT)")
        .unwrap();
    let n: Option<u32> = conn.query_first("SELECT COUNT(*) FROM d.tmp").unwrap();
    assert_eq!(n, Some(0));
}

#[test]
fn a_server_that_cannot_start_panics_with_its_error_log() {
    let msg = expect_panic(|| {
        MariaDb::start_with(ServerOptions {
            extra_args: vec!["--no-such-option-for-the-harness-test".into()],
            ..ServerOptions::default()
        })
    });
    assert!(msg.contains("exited while starting"), "{msg}");
    assert!(msg.contains("no-such-option-for-the-harness-test"), "{msg}");
}

#[test]
fn a_taken_port_is_detected_and_retried() {
    // The extra --port overrides the harness's own choice on every attempt, so every
    // attempt hits the taken port and start gives up after its retries.
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let msg = expect_panic(|| {
        MariaDb::start_with(ServerOptions {
            extra_args: vec![format!("--port={port}")],
            ..ServerOptions::default()
        })
    });
    assert!(msg.contains("could not bind a free TCP port"), "{msg}");
}

/// Installs an executable script without keeping a writable descriptor in this process
/// (exec of a file open for writing fails with ETXTBSY when another thread forks meanwhile).
fn install_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let src = dir.join(format!("{name}.txt"));
    let dest = dir.join(name);
    fs::write(&src, body).unwrap();
    let ok = Command::new("install")
        .args(["-m", "0755"])
        .arg(&src)
        .arg(&dest)
        .status()
        .unwrap()
        .success();
    assert!(ok, "install {name}");
    dest
}

#[test]
fn dbjobs_runner_passes_global_arguments_and_reports_the_outcome() {
    let s = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let fake = install_script(
        dir.path(),
        "fake-dbjobs",
        "#!/bin/sh\nprintf '%s\\n' \"$@\"\necho \"RUST_LOG=$RUST_LOG EXTRA=$EXTRA\" >&2\n\
         case \"$*\" in *die*) kill -9 $$;; *hang*) sleep 30;; esac\nexit 3\n",
    );
    let plugins = plugin_dir(&[]);
    let runner = Dbjobs::new(&s, plugins.path()).binary(&fake);

    let out = runner
        .clone()
        .set("a", "1")
        .set("b", "x=y")
        .run(&["run-once", "--task", "optimize"]);
    out.assert_code(3);
    let expected = format!(
        "--defaults-file\n{}\n--plugin-dir\n{}\n--set\nstate_dir={}\n--set\na=1\n--set\nb=x=y\nrun-once\n--task\noptimize\n",
        s.defaults_file().display(),
        plugins.path().display(),
        s.state_dir().display()
    );
    assert_eq!(out.stdout, expected);
    assert_eq!(out.stderr, "RUST_LOG=info EXTRA=\n");

    let custom = s.defaults_file_with(&[("k", "v")]);
    let out = runner
        .clone()
        .defaults_file(&custom)
        .env("RUST_LOG", "debug")
        .env("EXTRA", "1")
        .run(&[]);
    assert!(out
        .stdout
        .starts_with(&format!("--defaults-file\n{}\n", custom.display())));
    assert_eq!(out.stderr, "RUST_LOG=debug EXTRA=1\n");

    let msg = expect_panic(|| out.assert_code(0));
    assert!(msg.contains("exited with 3 instead of 0"), "{msg}");
    assert!(
        msg.contains("RUST_LOG=debug"),
        "assert_code shows stderr: {msg}"
    );

    assert_eq!(runner.run(&["die"]).status, -1, "killed by a signal");

    let started = std::time::Instant::now();
    let msg = expect_panic(|| {
        runner
            .clone()
            .timeout(Duration::from_millis(300))
            .run(&["hang"])
    });
    assert!(msg.contains("still running"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "timeout not enforced"
    );

    let mut child = runner.spawn(&["spawned"]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(stdout.ends_with("spawned\n"), "{stdout}");

    let args: Vec<_> = runner
        .command(&["x"])
        .get_args()
        .map(|a| a.to_owned())
        .collect();
    assert_eq!(args.len(), 7, "{args:?}"); // defaults, plugin dir, --set state_dir, x
}

#[test]
fn plugin_dir_holds_private_copies() {
    let src = tempfile::tempdir().unwrap();
    let a = src.path().join("libdbjobs_plugin_a.so");
    fs::write(&a, b"not really a library").unwrap();
    fs::set_permissions(&a, fs::Permissions::from_mode(0o666)).unwrap();
    let dir = plugin_dir(std::slice::from_ref(&a));
    let meta = fs::metadata(dir.path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), unsafe {
        libc::geteuid()
    });
    let copy = dir.path().join("libdbjobs_plugin_a.so");
    assert_eq!(fs::read(&copy).unwrap(), b"not really a library");
    assert_eq!(
        fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    let path = dir.path().to_path_buf();
    drop(dir);
    assert!(!path.exists());
}

#[test]
fn binaries_are_found_in_the_target_dir_or_explained() {
    let target = target_dir();
    assert!(target.join("deps").is_dir(), "{}", target.display());
    let exe = std::env::current_exe().unwrap();
    assert!(exe.starts_with(&target));
    let msg = expect_panic(|| plugin_file("no-such-plugin"));
    assert!(msg.contains("libdbjobs_plugin_no_such_plugin.so"), "{msg}");
    assert!(msg.contains("cargo build --workspace"), "{msg}");
}

#[test]
fn wait_for_polls_until_some_or_panics_with_what() {
    let mut calls = 0;
    let v = wait_for("the third call", Duration::from_secs(5), || {
        calls += 1;
        (calls == 3).then_some(calls)
    });
    assert_eq!(v, 3);
    let msg = expect_panic(|| wait_for("godot", Duration::from_millis(100), || None::<()>));
    assert!(msg.contains("waiting for godot"), "{msg}");

    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the free port can be bound");
}
