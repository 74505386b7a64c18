//! End-to-end tests of `dbjobs doctor` against throwaway servers: a healthy node passes, and
//! a node broken one way at a time (a missing privilege, a mariadb-backup of another version
//! first on PATH, the receive port taken, a group-writable plugin directory, a full
//! backup_dir file system) fails that check alone, says how to fix it, and exits 1. The
//! real binary, the real plugins and the real tools throughout; the other version of
//! mariadb-backup is a two-line wrapper that only prints another version, and the full file
//! system is a real 1 MiB tmpfs (the tests run as root, as CI does).

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use dbjobs_tests::fake_zfs::install_script;
use dbjobs_tests::repman_standin::RepmanStandin;
use dbjobs_tests::{free_port, plugin_dir, plugin_file, Dbjobs, MariaDb};
use serde_json::Value;
use tempfile::TempDir;

/// The plugins the package installs (all but the example).
const PACKAGED_PLUGINS: &[&str] = &[
    "errorlog",
    "flashback",
    "optimize",
    "reseed",
    "service",
    "slowlog",
    "xtrabackup",
    "zfssnapback",
];

fn packaged_plugins() -> TempDir {
    plugin_dir(
        &PACKAGED_PLUGINS
            .iter()
            .map(|p| plugin_file(p))
            .collect::<Vec<_>>(),
    )
}

/// dbjobs for `server` with the packaged plugins, and a receive port nothing else uses.
fn dbjobs(server: &MariaDb, plugins: &Path) -> Dbjobs {
    Dbjobs::new(server, plugins).set("receive_port", &free_port().to_string())
}

/// What `doctor --json` said, and its exit code.
struct Doctor {
    status: i32,
    checks: Vec<Value>,
    stdout: String,
}

impl Doctor {
    fn run(d: &Dbjobs) -> Doctor {
        Doctor::run_with(d, &[])
    }

    /// With more global arguments before `doctor`.
    fn run_with(d: &Dbjobs, args: &[&str]) -> Doctor {
        let args: Vec<&str> = args.iter().copied().chain(["doctor", "--json"]).collect();
        let out = d.run(&args);
        let json: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}):\n{out:?}"));
        Doctor {
            status: out.status,
            checks: json["checks"].as_array().cloned().unwrap_or_default(),
            stdout: out.stdout,
        }
    }

    /// The names of the failed checks.
    fn failed(&self) -> Vec<String> {
        self.with_status("fail")
            .iter()
            .map(|c| c["check"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn with_status(&self, status: &str) -> Vec<&Value> {
        self.checks
            .iter()
            .filter(|c| c["status"] == status)
            .collect()
    }

    /// The check named `name`.
    fn check(&self, name: &str) -> &Value {
        self.checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no check {name:?} in\n{}", self.stdout))
    }

    /// Assert that the check `name` came out as `status`.
    fn assert_status(&self, name: &str, status: &str) {
        assert_eq!(
            self.check(name)["status"],
            status,
            "{name}: {}",
            self.stdout
        );
    }

    /// Assert that exactly `name` failed, with exit 1, and return its message and fix.
    fn only_failure(&self, name: &str) -> (String, String) {
        assert_eq!(self.failed(), vec![name.to_string()], "{}", self.stdout);
        assert_eq!(self.status, 1, "a failed check exits 1\n{}", self.stdout);
        let c = self.check(name);
        let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        let fix = text("fix");
        assert!(!fix.is_empty(), "a failure says what to do: {c}");
        (text("message"), fix)
    }
}

#[test]
fn a_healthy_node_passes_every_check() {
    let server = MariaDb::start();
    let plugins = packaged_plugins();
    let d = dbjobs(&server, plugins.path());

    a_fresh_node_passes_and_is_left_as_it_was(&d, &server);

    // Once the table exists (replication-manager or the first pass creates it).
    d.run(&["init"]).assert_code(0);
    let doctor = Doctor::run(&d);
    assert_eq!(doctor.status, 0, "{}", doctor.stdout);
    for name in [
        "connection",
        "settings",
        "privileges",
        "job-table",
        "tool backup",
        "tool stream-extractor",
        "tool temporary-server",
        "tool mariadb-client",
        "dir datadir",
        "dir backup_dir",
        "dir state_dir",
        "receive-port",
        "log error_log",
    ] {
        doctor.assert_status(name, "ok");
    }
    let message = |name: &str| doctor.check(name)["message"].as_str().unwrap().to_string();
    assert!(
        message("job-table").contains("legacy layout"),
        "{}",
        doctor.stdout
    );
    assert!(
        message("tool backup").contains("of the server's 10."),
        "{}",
        doctor.stdout
    );
    let plugin_lines = doctor
        .checks
        .iter()
        .filter(|c| {
            c["check"]
                .as_str()
                .unwrap_or_default()
                .starts_with("plugin /")
        })
        .count();
    assert_eq!(plugin_lines, PACKAGED_PLUGINS.len(), "{}", doctor.stdout);

    the_text_form_is_one_line_per_check(&d, doctor.checks.len());
}

/// A fresh node: nothing fails; the missing job table is a warning, and doctor leaves it
/// missing (it writes nothing).
fn a_fresh_node_passes_and_is_left_as_it_was(d: &Dbjobs, server: &MariaDb) {
    let fresh = Doctor::run(d);
    assert_eq!(fresh.failed(), Vec::<String>::new(), "{}", fresh.stdout);
    assert_eq!(fresh.status, 0, "{}", fresh.stdout);
    fresh.assert_status("job-table", "warn");
    assert_eq!(
        server
            .query_value(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='replication_manager_schema'"
            )
            .as_deref(),
        Some("0"),
        "doctor must not create the job table"
    );
}

/// The text form: one line per check, the counts last.
fn the_text_form_is_one_line_per_check(d: &Dbjobs, checks: usize) {
    let out = d.run(&["doctor"]);
    out.assert_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), checks + 1, "{}", out.stdout);
    assert!(
        lines[..checks]
            .iter()
            .all(|l| l.starts_with("ok ") || l.starts_with("warn ")),
        "{}",
        out.stdout
    );
    assert!(lines.last().unwrap().ends_with(" 0 fail"), "{}", out.stdout);
}

#[test]
fn a_missing_privilege_is_named_with_its_grant() {
    let server = MariaDb::start();
    server.exec(
        "CREATE USER 'dbj'@'localhost' IDENTIFIED BY 'doctor-pw';
         GRANT ALL PRIVILEGES ON *.* TO 'dbj'@'localhost';
         REVOKE RELOAD ON *.* FROM 'dbj'@'localhost'",
    );
    let cnf = server.base_dir().join("dbj.cnf");
    fs::write(
        &cnf,
        format!(
            "[client]\nsocket={}\nuser=dbj\npassword=doctor-pw\n",
            server.socket().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&cnf, fs::Permissions::from_mode(0o600)).unwrap();
    let plugins = packaged_plugins();
    let d = dbjobs(&server, plugins.path()).defaults_file(&cnf);
    let doctor = Doctor::run(&d);
    let (message, fix) = doctor.only_failure("privileges");
    assert!(
        message.contains("dbj@localhost lacks RELOAD ("),
        "{message}"
    );
    assert!(
        message.contains("mariabackup") && message.contains("errorlog"),
        "{message}"
    );
    assert_eq!(fix, "GRANT RELOAD ON *.* TO 'dbj'@'localhost'");

    // The fix is the statement to run, and it is enough.
    server.exec(&fix);
    let doctor = Doctor::run(&d);
    assert_eq!(doctor.failed(), Vec::<String>::new(), "{}", doctor.stdout);
    assert_eq!(doctor.status, 0);
}

#[test]
fn a_backup_tool_of_another_version_fails_the_tool_check() {
    let server = MariaDb::start();
    let plugins = packaged_plugins();
    let wrapper = tempfile::tempdir().unwrap();
    install_script(
        wrapper.path(),
        "mariadb-backup",
        "#!/bin/sh\necho 'mariadb-backup based on MariaDB server 10.6.12-MariaDB debian-linux-gnu (x86_64)' >&2\n",
    );
    let path = format!(
        "{}:{}",
        wrapper.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let doctor = Doctor::run(&dbjobs(&server, plugins.path()).env("PATH", &path));
    let (message, fix) = doctor.only_failure("tool backup");
    assert!(
        message.contains(&format!("{}/mariadb-backup", wrapper.path().display())),
        "the tool first on PATH is the one a job would run: {message}"
    );
    assert!(
        message.contains("10.6.12") && message.contains("but the server is 10.11"),
        "{message}"
    );
    assert!(
        fix.contains("10.11") && fix.contains("backup_tool"),
        "{fix}"
    );
}

#[test]
fn a_receive_port_taken_by_another_process_fails() {
    let server = MariaDb::start();
    let plugins = packaged_plugins();
    let taken = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let d = Dbjobs::new(&server, plugins.path()).set("receive_port", &port.to_string());
    let doctor = Doctor::run(&d);
    let (message, fix) = doctor.only_failure("receive-port");
    assert!(
        message.contains(&format!("0.0.0.0:{port} is taken")),
        "{message}"
    );
    assert!(fix.contains("receive_port"), "{fix}");
    drop(taken);
    assert_eq!(Doctor::run(&d).status, 0, "free again, the check passes");
}

#[test]
fn a_group_writable_plugin_directory_is_refused() {
    let server = MariaDb::start();
    let plugins = packaged_plugins();
    let extra = plugin_dir(&[plugin_file("example")]);
    fs::set_permissions(extra.path(), fs::Permissions::from_mode(0o775)).unwrap();
    // A second --plugin-dir, as an operator adds one for a vendor's plugin.
    let extra_dir = extra.path().display().to_string();
    let doctor = Doctor::run_with(
        &dbjobs(&server, plugins.path()),
        &["--plugin-dir", &extra_dir],
    );
    let name = format!("plugin-dir {}", extra.path().display());
    let (message, fix) = doctor.only_failure(&name);
    assert!(message.contains("mode 0775"), "{message}");
    assert!(
        fix.contains("writable by group or others")
            && fix.contains(&format!("chmod go-w {}", extra.path().display())),
        "{fix}"
    );
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// A `size` tmpfs on a fresh directory, filled up until it has no byte left.
    fn full(size: &str) -> Tmpfs {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test mounts a tmpfs and needs root (CI and scripts/test.sh run as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}",
            dir.path().display()
        );
        let fs = Tmpfs { dir };
        let filler = fs.path().join("filler");
        let mut f = fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        fs
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_backup_dir_file_system_fails_the_floor() {
    let server = MariaDb::start();
    let plugins = packaged_plugins();
    let full = Tmpfs::full("1m");
    let d = dbjobs(&server, plugins.path())
        .set("backup_dir", &full.path().display().to_string())
        .set("min_free_mb", "1");
    let doctor = Doctor::run(&d);
    let (message, fix) = doctor.only_failure("dir backup_dir");
    assert!(
        message.starts_with(&format!("{}: only 0 B free", full.path().display())),
        "{message}"
    );
    assert!(
        message.contains("under the floor min_free_mb (1.0 MiB)"),
        "{message}"
    );
    assert!(fix.contains("backup_dir"), "{fix}");
}

/// The secret replication-manager holds for the test server.
const REPMAN_SECRET: &str = "rm \"doctor\" secret";

/// A stand-in of replication-manager's API that monitors `server` as `127.0.0.1:<port>`, and
/// dbjobs configured for it (the secret in the option file, never on the command line).
fn with_standin(server: &MariaDb, plugins: &Path, secret: &str) -> (RepmanStandin, Dbjobs) {
    let rm = RepmanStandin::start(
        "cluster1",
        &format!("127.0.0.1:{}", server.port()),
        REPMAN_SECRET,
    );
    let mut settings = rm.settings();
    settings.retain(|(k, _)| k != "repman_password");
    settings.push(("repman_password".into(), secret.into()));
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let cnf = server.defaults_file_with(&pairs);
    let d = dbjobs(server, plugins).defaults_file(&cnf);
    (rm, d)
}

/// The pin files in the server's state_dir.
fn pins(server: &MariaDb) -> Vec<String> {
    fs::read_dir(server.state_dir())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("repman-cert-"))
                .collect()
        })
        .unwrap_or_default()
}

/// First contact: the certificate is shown, not pinned (doctor writes nothing), and the
/// login goes through trusting exactly that certificate; returns its SHA-256.
fn a_first_contact_shows_the_certificate_and_pins_nothing(
    d: &Dbjobs,
    server: &MariaDb,
    rm: &RepmanStandin,
) -> String {
    let doctor = Doctor::run(d);
    assert_eq!(doctor.failed(), Vec::<String>::new(), "{}", doctor.stdout);
    assert_eq!(doctor.status, 0);
    doctor.assert_status("repman reachable", "ok");
    doctor.assert_status("repman login", "ok");
    let cert = doctor.check("repman certificate");
    assert_eq!(cert["status"], "warn", "{}", doctor.stdout);
    let message = cert["message"].as_str().unwrap();
    assert!(message.contains("not pinned yet"), "{message}");
    let seen = message
        .strip_prefix("SHA-256 ")
        .and_then(|m| m.split(',').next())
        .expect("the certificate's SHA-256 is shown")
        .to_string();
    assert_eq!(seen.len(), 64, "{message}");
    assert_eq!(pins(server), Vec::<String>::new(), "doctor pinned nothing");
    assert!(
        rm.calls()
            .iter()
            .any(|(path, status)| path.ends_with("secret-login") && *status == 200),
        "{:?}",
        rm.calls()
    );
    seen
}

#[test]
fn replication_manager_is_reachable_trusted_and_accepts_the_login() {
    let server = MariaDb::start();
    let plugins = packaged_plugins();
    let (mut rm, d) = with_standin(&server, plugins.path(), REPMAN_SECRET);

    let seen = a_first_contact_shows_the_certificate_and_pins_nothing(&d, &server, &rm);

    // Pinned as doctor suggested: verified.
    let pinned = d.clone().set("repman_cert_sha256", &seen);
    let doctor = Doctor::run(&pinned);
    assert_eq!(doctor.status, 0, "{}", doctor.stdout);
    doctor.assert_status("repman certificate", "ok");

    // In API mode there is no job table to look at.
    let api_mode = Doctor::run(&pinned.clone().set("jobs_mode", "api"));
    assert_eq!(api_mode.status, 0, "{}", api_mode.stdout);
    let table = api_mode.check("job-table")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(table.starts_with("not used"), "{table}");

    // Another certificate than the pinned one: that check alone fails, and no login is tried
    // over a connection that is not trusted.
    rm.rotate_certificate();
    let logins = rm.calls().len();
    let doctor = Doctor::run(&pinned);
    let (message, fix) = doctor.only_failure("repman certificate");
    assert!(
        message.contains("not the pinned repman_cert_sha256"),
        "{message}"
    );
    assert!(fix.contains("re-pin"), "{fix}");
    assert!(
        doctor.checks.iter().all(|c| c["check"] != "repman login"),
        "{}",
        doctor.stdout
    );
    assert_eq!(
        rm.calls().len(),
        logins,
        "nothing was sent to the other certificate"
    );
}

#[test]
fn a_wrong_secret_fails_the_login_alone() {
    let server = MariaDb::start();
    let plugins = packaged_plugins();
    let (_rm, d) = with_standin(&server, plugins.path(), "not the secret");
    let doctor = Doctor::run(&d);
    let (message, fix) = doctor.only_failure("repman login");
    assert!(message.contains("refused the secret"), "{message}");
    assert!(fix.contains("repman_password"), "{fix}");
}

#[test]
fn an_unreachable_replication_manager_fails_reachable_alone() {
    let server = MariaDb::start();
    let plugins = packaged_plugins();
    let api = format!("https://127.0.0.1:{}", free_port());
    let monitored = format!("127.0.0.1:{}", server.port());
    let cnf = server.defaults_file_with(&[
        ("repman_api", &api),
        ("repman_cluster", "cluster1"),
        ("repman_server", &monitored),
        ("repman_password", REPMAN_SECRET),
    ]);
    let d = dbjobs(&server, plugins.path()).defaults_file(&cnf);
    let doctor = Doctor::run(&d);
    let (message, fix) = doctor.only_failure("repman reachable");
    assert!(
        message.contains("cannot reach replication-manager"),
        "{message}"
    );
    assert!(fix.contains("repman_api"), "{fix}");
}
