//! End to end: the failure points of a full physical restore (`restore_mode=full`: the
//! service stopped, the datadir replaced by the backup, the service started) that need no
//! kill. Each must leave the node as it was, answering on its old datadir, and say so in
//! the row: the service cannot be stopped (untouched); the server does not start on the
//! restored datadir (rolled back); it starts, but the node's job queue cannot be put back
//! into it (rolled back). A kill of dbjobs while the server is stopped or after the move is
//! the fault matrix of the crash-safe restore (the journal), not here.
//!
//! The service commands are scripts that stop the throwaway server and start it again with
//! its own command line, as `systemctl` would ([`ServiceScripts`]); everything else is real:
//! `mariadb-backup`, `mariadbd`, the node's accounts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dbjobs_tests::fixtures::{assert_staging_empty, inbound_dbjobs, node, run_inbound, stderr};
use dbjobs_tests::physical_fixtures::{xbstream_backup, xbstream_backup_of, ServiceScripts};
use dbjobs_tests::sender::{checksums, JobRow};
use dbjobs_tests::{mariadb_tool, plugin_dir, plugin_file, Dbjobs, MariaDb, ServerOptions};

const WAIT: Duration = Duration::from_secs(240);

/// Data on a source, so that a restore would visibly replace the target's.
const SOURCE_DATA: &str = "CREATE DATABASE app;
     CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
     INSERT INTO app.t SELECT seq, 'from the backup' FROM app.seq_1_to_1000;";

/// A target node with data of its own; the full restore must leave it so on failure.
fn target() -> MariaDb {
    let t = node(2);
    t.exec(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
         INSERT INTO app.t VALUES (1, 'the node''s own');
         CREATE DATABASE local_only; CREATE TABLE local_only.k (id INT) ENGINE=InnoDB;
         INSERT INTO local_only.k VALUES (7);",
    );
    t
}

/// `dbjobs` for a full restore of `dst` with the service `scripts` (stop and start may be
/// replaced, e.g. by `false`).
fn full_dbjobs(dst: &MariaDb, scripts: &ServiceScripts, plugins: &Path, staging: &Path) -> Dbjobs {
    inbound_dbjobs(dst, plugins, staging)
        .set("restore_mode", "full")
        .set("service_stop_command", scripts.stop.to_str().unwrap())
        .set("service_start_command", scripts.start.to_str().unwrap())
        .set("service_wait_timeout", "20")
}

/// What a user compares on a node that must be as it was: its tables, its replication
/// position.
#[derive(Debug, PartialEq, Eq)]
struct NodeState {
    tables: BTreeMap<String, String>,
    gtid_slave_pos: Option<String>,
}

impl NodeState {
    fn of(server: &MariaDb) -> NodeState {
        NodeState {
            tables: checksums(server),
            gtid_slave_pos: server.query_value("SELECT @@gtid_slave_pos"),
        }
    }
}

/// Run the full restore of `stream` on `dst`: it must fail with `state` ("server
/// untouched", "server rolled back": then the old data was put back) and `why` in its
/// result, and leave the node answering, holding what it held before, with nothing of the
/// restore left (no datadir beside the live one, no staging directory). Returns the row.
fn assert_fails_as_before(
    d: &Dbjobs,
    dst: &MariaDb,
    stream: &[u8],
    staging: &Path,
    (state, why): (&str, &str),
) -> JobRow {
    let before = NodeState::of(dst);
    let (row, out) = run_inbound(d, dst, "reseedmariabackup", stream, WAIT);
    let (result, log) = (row.result_text(), stderr(&out));
    assert!(!row.succeeded(), "{row:?}\n{log}");
    assert!(
        result.starts_with(&format!("failed, {state}: ")),
        "{result}\n{log}"
    );
    assert!(result.contains(why), "{result}\n{log}");
    if state == "server rolled back" {
        assert!(result.contains("the old data was put back"), "{result}");
    }
    assert_eq!(NodeState::of(dst), before, "the node's data changed");
    let aside: Vec<_> = std::fs::read_dir(dst.base_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".dbjobs-"))
        .collect();
    assert!(aside.is_empty(), "left beside the datadir: {aside:?}");
    assert_staging_empty(staging);
    row
}

/// The plugin directory and the staging directory of a test.
fn dirs() -> (tempfile::TempDir, tempfile::TempDir) {
    (
        plugin_dir(&[plugin_file("reseed")]),
        tempfile::tempdir().unwrap(),
    )
}

/// The stop command fails: nothing was changed, the server was never down.
#[test]
fn a_service_that_does_not_stop_leaves_the_node_untouched() {
    let src = node(1);
    src.exec(SOURCE_DATA);
    let (stream, _) = xbstream_backup(&src);
    let dst = target();
    let scripts = ServiceScripts::new(&dst);
    let (plugins, staging) = dirs();
    let d = full_dbjobs(&dst, &scripts, plugins.path(), staging.path())
        .set("service_stop_command", "false")
        .set("service_start_command", "true");
    let why = "stopping the service failed, nothing was changed";
    assert_fails_as_before(&d, &dst, &stream, staging.path(), ("server untouched", why));
}

/// A backup of a server with 8 KiB InnoDB pages, restored into a node configured for
/// 16 KiB: the temporary server (started with the backup's own settings) reads it, but the
/// node's server does not start on it. The old datadir is put back and the server answers
/// on it.
#[test]
fn a_datadir_the_server_cannot_start_on_is_put_back() {
    let small_pages = tempfile::tempdir().unwrap();
    let datadir = small_pages.path().join("data");
    install_datadir(&datadir, &["--innodb-page-size=8k"]);
    let src = MariaDb::start_with(ServerOptions {
        extra_args: vec![
            format!("--datadir={}", datadir.display()),
            "--innodb-page-size=8k".into(),
        ],
        ..ServerOptions::default()
    });
    src.exec(SOURCE_DATA);
    let (stream, _) = xbstream_backup_of(&src, &datadir);
    let dst = target();
    let scripts = ServiceScripts::new(&dst);
    let (plugins, staging) = dirs();
    let d = full_dbjobs(&dst, &scripts, plugins.path(), staging.path());
    let why = "the server did not answer within 20 s after the service was started";
    assert_fails_as_before(
        &d,
        &dst,
        &stream,
        staging.path(),
        ("server rolled back", why),
    );
    let server_log = std::fs::read_to_string(dst.error_log()).unwrap_or_default();
    assert!(
        server_log.contains("page size 8192") || server_log.contains("innodb_page_size"),
        "the restored datadir failed for another reason than its page size:\n{server_log}"
    );
}

/// The restored server starts, but the backup's copy of the node's account (`dbjobs`) may
/// only read: the node's job queue cannot be put back into it, so the old datadir is.
#[test]
fn a_restored_server_that_cannot_take_the_queue_back_is_rolled_back() {
    let src = node(1);
    src.exec(SOURCE_DATA);
    src.exec(
        "CREATE USER dbjobs@localhost IDENTIFIED BY 'node-pw-1';
         GRANT SELECT, PROCESS, RELOAD, BINLOG ADMIN ON *.* TO dbjobs@localhost",
    );
    let (stream, _) = xbstream_backup(&src);
    let dst = target();
    dst.exec(
        "CREATE USER dbjobs@localhost IDENTIFIED BY 'node-pw-1';
         GRANT ALL PRIVILEGES ON *.* TO dbjobs@localhost WITH GRANT OPTION",
    );
    let scripts = ServiceScripts::new(&dst);
    let (plugins, staging) = dirs();
    let account = account_file(&dst, "dbjobs", "node-pw-1");
    let d = full_dbjobs(&dst, &scripts, plugins.path(), staging.path()).defaults_file(&account);
    let why =
        "Access denied for user 'dbjobs'@'localhost' to database 'replication_manager_schema'";
    assert_fails_as_before(
        &d,
        &dst,
        &stream,
        staging.path(),
        ("server rolled back", why),
    );
}

/// `mariadb-install-db` into `datadir` with `extra` options (the harness's template is for
/// the default page size).
fn install_datadir(datadir: &Path, extra: &[&str]) {
    let mut cmd = Command::new(mariadb_tool("mariadb-install-db"));
    cmd.args([
        "--no-defaults",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        "--innodb-log-file-size=16M",
    ])
    .arg(format!("--datadir={}", datadir.display()))
    .args(extra);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg("--user=root");
    }
    let out = cmd.output().expect("run mariadb-install-db");
    assert!(
        out.status.success(),
        "mariadb-install-db failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An option file for `server` with account `user` / `password` (mode 0600), as a node's
/// dbjobs with its own account has.
fn account_file(server: &MariaDb, user: &str, password: &str) -> std::path::PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let path = server.base_dir().join(format!("account-{user}.cnf"));
    let text = format!(
        "[client]\nsocket={}\nport={}\nuser={user}\npassword={password}\n",
        server.socket().display(),
        server.port()
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    path
}
