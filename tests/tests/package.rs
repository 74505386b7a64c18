//! End-to-end tests of the Debian package and of the deployment recipes it ships.
//!
//! The package is built by `scripts/package.sh` from the debug build the suite already has
//! (`--profile dev --no-build --fast`: the same assets and metadata as a release, built in
//! seconds), its file list, owners and modes are read back with `dpkg-deb -c`, and it is
//! installed with the real `dpkg -i` into a scratch root (`--root` with an empty admin
//! directory; the maintainer scripts honour `DPKG_ROOT`, so they run chrootless, and the
//! dependencies are forced because the scratch root has no other package). From there the
//! installed binary and plugins run `dbjobs doctor` and a real backup against a throwaway
//! server, `systemd-analyze verify` checks the installed units, and `dpkg -r` / `dpkg -P`
//! must leave the conffile and then nothing.
//!
//! The recipes are run the way replication-manager runs what they replace: the SSH stub is
//! fed to `sh` on standard input after replication-manager's `export` line (no SSH needed),
//! and the container launcher gets its placeholders filled and the container's
//! `MYSQL_ROOT_PASSWORD` in its environment.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use dbjobs_tests::fake_zfs::{install_script, sh_quote};
use dbjobs_tests::repman_standin::RepmanStandin;
use dbjobs_tests::rm_listener::{ListenMode, RmListener};
use dbjobs_tests::sender::{job_row, wait_job_finished};
use dbjobs_tests::{
    dbjobs_bin, free_port, plugin_dir, plugin_file, target_dir, wait_for, Dbjobs, MariaDb,
};
use tempfile::TempDir;

/// The workspace: `scripts/`, `core/packaging/`, `plugins/`.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The plugins a node gets: every plugin crate but the example (for plugin authors) and
/// the shared engines, read from the workspace so a new plugin cannot be left out.
fn packaged_plugins() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(workspace().join("plugins"))
        .expect("read plugins/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "example")
        .collect();
    names.sort();
    names
}

/// Run a command to completion; panics with its output unless it succeeds.
fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------
// The package
// ---------------------------------------------------------------------------------------

/// A package built into a directory of its own.
struct Package {
    _dir: TempDir,
    deb: PathBuf,
}

/// `scripts/package.sh` on the build the tests run from.
fn build_package() -> Package {
    let dir = tempfile::tempdir().unwrap();
    let profile = match target_dir().file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let out = run_ok(
        Command::new(workspace().join("scripts/package.sh"))
            .args(["--profile", &profile, "--no-build", "--fast", "--out"])
            .arg(dir.path()),
    );
    let deb = PathBuf::from(text(&out.stdout).trim());
    assert_eq!(
        deb.file_name().and_then(|n| n.to_str()),
        Some(format!("dbjobs_{}_amd64.deb", env!("CARGO_PKG_VERSION")).as_str()),
        "package.sh prints the path of dbjobs_<version>_<arch>.deb"
    );
    assert!(deb.is_file(), "{} is missing", deb.display());
    Package { _dir: dir, deb }
}

/// A file of the package as `dpkg-deb -c` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    mode: String,
    owner: String,
}

/// Path (without the leading `.`) -> mode and owner, for every entry of the package.
fn contents(deb: &Path) -> BTreeMap<String, Entry> {
    let out = run_ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    text(&out.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 6, "unexpected dpkg-deb -c line {line:?}");
            let path = fields[5]
                .trim_start_matches('.')
                .trim_end_matches('/')
                .to_string();
            let path = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            (
                path,
                Entry {
                    mode: fields[0].to_string(),
                    owner: fields[1].to_string(),
                },
            )
        })
        .collect()
}

/// Every file the package must hold, with its mode as `dpkg-deb -c` prints it.
fn expected_files() -> BTreeMap<String, &'static str> {
    let mut files = BTreeMap::new();
    files.insert("/usr/bin/dbjobs".to_string(), "-rwxr-xr-x");
    for p in packaged_plugins() {
        files.insert(
            format!("/usr/lib/dbjobs/plugins/libdbjobs_plugin_{p}.so"),
            "-rw-r--r--",
        );
    }
    files.insert("/etc/dbjobs/dbjobs.cnf".to_string(), "-rw-------");
    for page in man_pages() {
        files.insert(format!("/usr/share/man/man1/{page}.1.gz"), "-rw-r--r--");
    }
    for f in [
        "/usr/share/bash-completion/completions/dbjobs",
        "/usr/share/zsh/vendor-completions/_dbjobs",
        "/usr/share/fish/vendor_completions.d/dbjobs.fish",
        "/usr/lib/systemd/system/dbjobs.service",
        "/usr/lib/systemd/system/dbjobs-run.service",
        "/usr/lib/systemd/system/dbjobs-run.timer",
        "/usr/share/dbjobs/recipes/repman-ssh-job.sh",
        "/usr/share/doc/dbjobs/README.md",
        "/usr/share/doc/dbjobs/copyright",
    ] {
        files.insert(f.to_string(), "-rw-r--r--");
    }
    files.insert(
        "/usr/share/dbjobs/recipes/container-launcher.sh".to_string(),
        "-rwxr-xr-x",
    );
    files
}

/// `dbjobs` and one page per subcommand `dbjobs --help` lists (but `help`).
fn man_pages() -> Vec<String> {
    let out = run_ok(Command::new(dbjobs_bin()).arg("--help"));
    let help = text(&out.stdout);
    let commands = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("dbjobs --help lists its commands");
    let mut pages = vec!["dbjobs".to_string()];
    pages.extend(
        commands
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .map(|c| format!("dbjobs-{c}")),
    );
    pages
}

/// A scratch root with dpkg's admin directory and nothing else.
struct Root {
    dir: TempDir,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        for d in ["info", "updates", "triggers"] {
            fs::create_dir_all(dir.path().join("var/lib/dpkg").join(d)).unwrap();
        }
        for f in ["status", "available"] {
            fs::write(dir.path().join("var/lib/dpkg").join(f), "").unwrap();
        }
        Root { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel.trim_start_matches('/'))
    }

    /// `dpkg --root=<root>` with the maintainer scripts run chrootless (they honour
    /// DPKG_ROOT) and the dependencies forced (no other package exists in the root).
    fn dpkg(&self, args: &[&str]) -> Output {
        run_ok(
            Command::new("dpkg")
                .arg(format!("--root={}", self.dir.path().display()))
                .arg(format!("--log={}", self.path("dpkg.log").display()))
                .args(["--force-script-chrootless", "--force-depends"])
                .args(args),
        )
    }

    /// Every path under the root but dpkg's own files.
    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let rel = format!("/{}", path.strip_prefix(self.dir.path()).unwrap().display());
                if rel == "/var/lib/dpkg" || rel == "/dpkg.log" {
                    continue;
                }
                if path.is_dir() && !path.is_symlink() {
                    stack.push(path);
                }
                out.push(rel);
            }
        }
        out.sort();
        out
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn the_package_installs_runs_a_job_and_removes_cleanly() {
    let package = build_package();
    let listed = contents(&package.deb);
    assert_files_owners_and_modes(&listed);
    assert_control_fields(&package.deb);

    let root = Root::new();
    root.dpkg(&["-i", package.deb.to_str().unwrap()]);
    let installed: Vec<String> = expected_files().into_keys().collect();
    for f in &installed {
        assert!(root.path(f).is_file(), "{f} is not installed");
    }
    assert_eq!(
        mode(&root.path("/var/lib/dbjobs")),
        0o700,
        "the state directory is private"
    );
    assert_eq!(mode(&root.path("/etc/dbjobs/dbjobs.cnf")), 0o600);
    assert_eq!(mode(&root.path("/usr/lib/dbjobs/plugins")), 0o755);

    assert_conffile_is_the_declarations(&root);
    verify_units(&root);
    run_through_the_installed_package(&root);

    root.dpkg(&["-r", "dbjobs"]);
    let left = root.files();
    for f in installed.iter().filter(|f| *f != "/etc/dbjobs/dbjobs.cnf") {
        assert!(!left.contains(f), "dpkg -r left {f}: {left:?}");
    }
    assert!(
        left.contains(&"/etc/dbjobs/dbjobs.cnf".to_string()),
        "remove keeps the conffile: {left:?}"
    );
    assert!(
        left.iter()
            .all(|f| f.starts_with("/etc") || f.starts_with("/var")),
        "only the conffile and the state stay after dpkg -r: {left:?}"
    );
    root.dpkg(&["-P", "dbjobs"]);
    let left: Vec<String> = root
        .files()
        .into_iter()
        .filter(|f| f != "/var" && f != "/var/lib")
        .collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "purge removes the conffile and /var/lib/dbjobs"
    );
}

/// Every file, owned by root, with its mode; directories root's and 0755.
fn assert_files_owners_and_modes(listed: &BTreeMap<String, Entry>) {
    let files: BTreeMap<&String, &Entry> = listed
        .iter()
        .filter(|(_, e)| !e.mode.starts_with('d'))
        .collect();
    let expected = expected_files();
    assert_eq!(
        files.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        expected.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        "the package's files"
    );
    for (path, entry) in &files {
        assert_eq!(entry.mode, expected[*path], "mode of {path}");
    }
    for (path, entry) in listed {
        assert_eq!(entry.owner, "0/0", "owner of {path} (uid/gid; root)");
        if entry.mode.starts_with('d') {
            assert_eq!(entry.mode, "drwxr-xr-x", "mode of the directory {path}");
        }
    }
}

/// The relations to the MariaDB client and backup tools, and the conffile.
fn assert_control_fields(deb: &Path) {
    let field = |name: &str| {
        text(&run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name)).stdout)
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), "dbjobs");
    assert!(
        field("Depends").contains("mariadb-client | default-mysql-client"),
        "Depends: {}",
        field("Depends")
    );
    assert!(
        field("Recommends").starts_with("mariadb-backup | percona-xtrabackup"),
        "Recommends: {}",
        field("Recommends")
    );
    let conffiles =
        text(&run_ok(Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles")).stdout);
    assert_eq!(conffiles.trim(), "/etc/dbjobs/dbjobs.cnf");
}

/// The installed option file is what the installed dbjobs says of the installed plugins'
/// settings (`dbjobs settings --format cnf`): every setting, commented out with its default.
fn assert_conffile_is_the_declarations(root: &Root) {
    let installed = fs::read_to_string(root.path("/etc/dbjobs/dbjobs.cnf")).unwrap();
    let out = run_ok(
        Command::new(root.path("/usr/bin/dbjobs"))
            .arg("--plugin-dir")
            .arg(root.path("/usr/lib/dbjobs/plugins"))
            .args(["settings", "--format", "cnf"]),
    );
    assert_eq!(
        installed,
        text(&out.stdout),
        "the conffile is generated from the declarations"
    );
    for line in [
        "[client]",
        "[dbjobs]",
        "# state_dir = /var/lib/dbjobs",
        "# min_free_mb = 1024",
    ] {
        assert!(
            installed.lines().any(|l| l == line),
            "{line:?} missing from\n{installed}"
        );
    }
}

/// `systemd-analyze verify` on the installed units: it resolves ExecStart and the man pages
/// in a root holding the package's files and systemd's own units (which the units depend
/// on), and must say nothing at all (it reports bad directives as warnings and exits 0).
fn verify_units(root: &Root) {
    let analyzer = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("systemd-analyze is missing: apt-get install systemd (scripts/setup.sh does)")
        });
    let system_units = Path::new("/usr/lib/systemd/system");
    assert!(
        system_units.join("sysinit.target").exists(),
        "systemd's own units are missing from {}: the units cannot be verified without them (apt-get install systemd)",
        system_units.display()
    );
    let verify_root = tempfile::tempdir().unwrap();
    let units = verify_root.path().join("usr/lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    for entry in fs::read_dir(system_units).unwrap().flatten() {
        let dest = units.join(entry.file_name());
        if entry.path().is_file() && !entry.file_name().to_string_lossy().starts_with("dbjobs") {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
    for unit in ["dbjobs.service", "dbjobs-run.service", "dbjobs-run.timer"] {
        fs::copy(
            root.path("/usr/lib/systemd/system").join(unit),
            units.join(unit),
        )
        .unwrap();
    }
    fs::create_dir_all(verify_root.path().join("usr/bin")).unwrap();
    fs::copy(
        root.path("/usr/bin/dbjobs"),
        verify_root.path().join("usr/bin/dbjobs"),
    )
    .unwrap();
    let out = Command::new(analyzer)
        .arg("verify")
        .arg(format!("--root={}", verify_root.path().display()))
        .args([
            "/usr/lib/systemd/system/dbjobs.service",
            "/usr/lib/systemd/system/dbjobs-run.service",
            "/usr/lib/systemd/system/dbjobs-run.timer",
        ])
        .env("MANPATH", root.path("/usr/share/man"))
        .output()
        .expect("run systemd-analyze");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify must pass silently ({}):\n{said}",
        out.status
    );
}

/// As an operator would after installing: the credentials and state_dir into the installed
/// option file, `dbjobs doctor`, then a real backup through the installed binary and plugins.
fn run_through_the_installed_package(root: &Root) {
    let server = MariaDb::start();
    let cnf = root.path("/etc/dbjobs/dbjobs.cnf");
    let mut f = fs::OpenOptions::new().append(true).open(&cnf).unwrap();
    write!(
        f,
        "\n[client]\nsocket={}\nuser=root\n[dbjobs]\nstate_dir={}\nreceive_port={}\n",
        server.socket().display(),
        root.path("/var/lib/dbjobs").display(),
        free_port()
    )
    .unwrap();
    drop(f);
    let installed = Installed {
        bin: root.path("/usr/bin/dbjobs"),
        cnf,
        plugins: root.path("/usr/lib/dbjobs/plugins"),
    };
    installed_doctor_passes(&installed);
    installed_backup_arrives(&installed, &server);
}

/// The installed binary, option file and plugins.
struct Installed {
    bin: PathBuf,
    cnf: PathBuf,
    plugins: PathBuf,
}

impl Installed {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--defaults-file")
            .arg(&self.cnf)
            .arg("--plugin-dir")
            .arg(&self.plugins)
            .args(args)
            .env("RUST_LOG", "info")
            .output()
            .expect("run the installed dbjobs")
    }
}

fn installed_doctor_passes(installed: &Installed) {
    let doctor = installed.run(&["doctor"]);
    let report = text(&doctor.stdout);
    assert_eq!(
        doctor.status.code(),
        Some(0),
        "doctor on the installed package:\n{report}{}",
        text(&doctor.stderr)
    );
    assert!(
        report.contains(&format!(
            "ok    plugin-dir {}: owner root, mode 0755, {} library file(s)",
            installed.plugins.display(),
            packaged_plugins().len()
        )),
        "{report}"
    );
    assert!(report.contains("ok    tool backup: "), "{report}");
}

/// A mariabackup job streams a whole backup that mbstream extracts.
fn installed_backup_arrives(installed: &Installed, server: &MariaDb) {
    let received = tempfile::tempdir().unwrap();
    let listener = RmListener::start(&received.path().join("backup.xbstream"), ListenMode::Full);
    let port = listener.port().to_string();
    let submitted = installed.run(&[
        "submit",
        "mariabackup",
        "--server",
        "127.0.0.1",
        "--job-port",
        &port,
    ]);
    assert!(submitted.status.success(), "{}", text(&submitted.stderr));
    let id: u64 = text(&submitted.stdout).trim().parse().unwrap();
    let pass = installed.run(&["run"]);
    assert_eq!(pass.status.code(), Some(0), "{}", text(&pass.stderr));
    let row = job_row(server, id);
    assert!(row.succeeded(), "the backup job failed: {row:?}");
    let stream = listener.finish().expect("the backup arrived");
    assert!(
        stream.bytes > 1 << 20,
        "a full backup is more than 1 MiB: {stream:?}"
    );
    let extracted = received.path().join("x");
    fs::create_dir(&extracted).unwrap();
    run_ok(
        Command::new(dbjobs_tests::mariadb_tool("mbstream"))
            .args(["-x", "-C"])
            .arg(&extracted)
            .stdin(fs::File::open(&stream.file).unwrap()),
    );
    let checkpoints =
        fs::read_to_string(extracted.join("xtrabackup_checkpoints")).unwrap_or_default();
    assert!(
        checkpoints.contains("backup_type = full-backuped"),
        "{checkpoints}"
    );
}

// ---------------------------------------------------------------------------------------
// The recipes
// ---------------------------------------------------------------------------------------

/// A password with every character a shell or an option file could trip on.
const NASTY_PASSWORD: &str = "s3cr'et \"pw\" $HOME \\x;`id`";

/// A plugin directory with the optimize plugin, and a job for it.
fn optimize_setup(server: &MariaDb) -> (TempDir, u64) {
    let plugins = plugin_dir(&[plugin_file("optimize")]);
    server.exec("CREATE DATABASE app; CREATE TABLE app.t (a INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO app.t VALUES (1),(2)");
    let out = Dbjobs::new(server, plugins.path()).run(&["submit", "optimize"]);
    out.assert_code(0);
    let id = out.stdout.trim().parse().unwrap();
    (plugins, id)
}

/// An account reached over TCP with [`NASTY_PASSWORD`], as replication-manager's is.
fn tcp_account(server: &MariaDb, user: &str) {
    let pw = NASTY_PASSWORD.replace('\\', "\\\\").replace('\'', "\\'");
    server.exec(&format!(
        "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{pw}'; GRANT ALL PRIVILEGES ON *.* TO '{user}'@'127.0.0.1'"
    ));
}

/// replication-manager's `export` line (ServerMonitor.GetSshEnv): single-quoted values with
/// `'` written as `'"'"'`, joined by `;`, ending with a newline.
fn ssh_env_line(vars: &[(&str, String)]) -> String {
    let exports: Vec<String> = vars
        .iter()
        .map(|(k, v)| format!("export {k}='{}'", v.replace('\'', "'\"'\"'")))
        .collect();
    format!("{}\n", exports.join(";"))
}

/// A wrapper around the real dbjobs that records its arguments and the mode of the option
/// file it is given, then runs dbjobs with them.
fn recording_dbjobs(dir: &Path) -> (PathBuf, PathBuf) {
    let record = dir.join("argv.txt");
    let body = format!(
        "#!/bin/sh\n\
         printf '%s\\n' \"$@\" > {record}\n\
         prev=\n\
         for a in \"$@\"; do [ \"$prev\" = --defaults-file ] && stat -c 'mode %a' \"$a\" >> {record}; prev=$a; done\n\
         exec {bin} \"$@\"\n",
        record = sh_quote(&record.display().to_string()),
        bin = sh_quote(&dbjobs_bin().display().to_string()),
    );
    install_script(dir, "dbjobs-recorded", &body);
    (dir.join("dbjobs-recorded"), record)
}

#[test]
fn the_ssh_stub_runs_a_pass_with_replication_managers_variables() {
    let server = MariaDb::start();
    tcp_account(&server, "repman");
    let (plugins, id) = optimize_setup(&server);
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("dbjobs.cnf");
    fs::write(
        &base,
        format!("[dbjobs]\nstate_dir={}\n", server.state_dir().display()),
    )
    .unwrap();
    let (bin, record) = recording_dbjobs(work.path());
    let monitored = format!("127.0.0.1:{}", server.port());
    let rm = RepmanStandin::start("cluster1", &monitored, NASTY_PASSWORD);

    let env = ssh_env_line(&[
        ("REPLICATION_MANAGER_HOST_USER", "repman".into()),
        ("REPLICATION_MANAGER_HOST_PASSWORD", NASTY_PASSWORD.into()),
        ("MYSQL_ROOT_PASSWORD", NASTY_PASSWORD.into()),
        ("REPLICATION_MANAGER_URL", rm.api()),
        ("REPLICATION_MANAGER_URL_HOST", "127.0.0.1".into()),
        ("REPLICATION_MANAGER_USER", "admin".into()),
        ("REPLICATION_MANAGER_PASSWORD", "repman".into()),
        ("REPLICATION_MANAGER_HOST_NAME", "127.0.0.1".into()),
        ("REPLICATION_MANAGER_HOST_PORT", server.port().to_string()),
        ("REPLICATION_MANAGER_CLUSTER_NAME", "cluster1".into()),
        ("REPLICATION_MANAGER_JOBS_MODE", "sql".into()),
    ]);
    let out = ssh_session(
        &env,
        &[
            ("DBJOBS_BIN", bin.as_os_str()),
            ("DBJOBS_CONFIG", base.as_os_str()),
            ("DBJOBS_PLUGIN_DIR", plugins.path().as_os_str()),
            ("TMPDIR", work.path().as_os_str()),
        ],
    );
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "the stub's pass failed:\n{log}");

    let row = job_row(&server, id);
    assert!(
        row.succeeded(),
        "the optimize job did not succeed: {row:?}\n{log}"
    );
    // The live log reached replication-manager under the name, cluster and secret it
    // exported (it drops lines of a server it does not know).
    let lines = rm.log_lines("optimize");
    assert!(
        lines.iter().any(|l| l == "Job optimize initiated"),
        "{lines:?}\n{log}"
    );
    assert_no_secret_left(&record, work.path(), &log);
}

/// What replication-manager does over SSH, without SSH: its export line, then the stub, on
/// the standard input of the node's shell (with the node's own environment `node_env`).
fn ssh_session(exports: &str, node_env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let stub =
        fs::read_to_string(workspace().join("core/packaging/recipes/repman-ssh-job.sh")).unwrap();
    let mut shell = Command::new("sh")
        .envs(node_env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sh");
    let mut stdin = shell.stdin.take().unwrap();
    stdin.write_all(exports.as_bytes()).unwrap();
    stdin.write_all(stub.as_bytes()).unwrap();
    drop(stdin);
    shell.wait_with_output().unwrap()
}

/// The secrets reached neither dbjobs' command line nor the log; the option file was 0600
/// and is gone with its private directory.
fn assert_no_secret_left(record: &Path, work: &Path, log: &str) {
    let argv = fs::read_to_string(record).unwrap();
    assert!(
        !argv.contains("s3cr"),
        "a secret reached dbjobs' command line:\n{argv}"
    );
    assert!(!log.contains("s3cr"), "a secret reached the log:\n{log}");
    assert!(
        argv.lines().any(|l| l == "mode 600"),
        "the option file is 0600:\n{argv}"
    );
    assert!(argv.lines().any(|l| l == "run"), "one pass:\n{argv}");
    let cnf = argv
        .lines()
        .skip_while(|l| *l != "--defaults-file")
        .nth(1)
        .expect("--defaults-file given");
    assert!(
        !Path::new(cnf).exists(),
        "the option file {cnf} is removed after the pass"
    );
    let left = fs::read_dir(work)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("dbjobs-ssh."))
        .count();
    assert_eq!(left, 0, "the private directory is removed after the pass");
}

/// Kills a spawned process group when dropped (the launcher's daemon, on a failed test).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: plain syscall on the process group the child leads.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

#[test]
fn the_container_launcher_runs_the_daemon_with_the_containers_password() {
    let server = MariaDb::start();
    tcp_account(&server, "ctr");
    let (plugins, id) = optimize_setup(&server);
    let work = tempfile::tempdir().unwrap();
    let jobs_datadir = work.path().join("jobs");
    let rm = RepmanStandin::start(
        "cluster1",
        &format!("127.0.0.1:{}", server.port()),
        NASTY_PASSWORD,
    );
    let repman_addr = rm.api().trim_start_matches("https://").to_string();
    let launcher = filled_launcher(
        work.path(),
        &[
            ("SVC_CONF_ENV_MYSQL_ROOT_USER", "ctr".into()),
            ("SERVER_HOST", "127.0.0.1".into()),
            ("SERVER_PORT", server.port().to_string()),
            ("SVC_NAMESPACE", "cluster1".into()),
            ("SVC_CONF_ENV_REPLICATION_MANAGER_URL", repman_addr),
            (
                "SVC_CONF_ENV_JOBS_DATADIR",
                jobs_datadir.display().to_string(),
            ),
            ("SVC_CONF_ENV_SST_RECEIVER_PORT", free_port().to_string()),
        ],
    );

    let mut cmd = Command::new("bash");
    cmd.arg(&launcher)
        .env("MYSQL_ROOT_PASSWORD", NASTY_PASSWORD)
        .env("DBJOBS_BIN", dbjobs_bin())
        .env("DBJOBS_PLUGIN_DIR", plugins.path())
        .env("DBJOBS_INTERVAL", "200ms")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut daemon = Group(cmd.spawn().expect("start the launcher"));
    let row = wait_job_finished(&server, id, Duration::from_secs(60));
    assert!(row.succeeded(), "the daemon's job did not succeed: {row:?}");
    // The container's password is also the secret replication-manager knows it by.
    wait_for(
        "the job's log at replication-manager",
        Duration::from_secs(30),
        || {
            rm.log_lines("optimize")
                .iter()
                .any(|l| l == "Job optimize initiated")
                .then_some(())
        },
    );

    assert_password_only_in_the_option_file(daemon.0.id(), &jobs_datadir.join("dbjobs"));

    // The container's SIGTERM reaches dbjobs, which stops cleanly.
    // SAFETY: plain syscall on our child.
    unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) };
    let status = wait_for(
        "the daemon to stop after SIGTERM",
        Duration::from_secs(60),
        || daemon.0.try_wait().ok().flatten(),
    );
    let mut stderr = String::new();
    if let Some(mut e) = daemon.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("s3cr"), "{stderr}");
}

/// The launcher as replication-manager ships it: the placeholders `%%ENV:<name>%%` of `filled`
/// replaced (the others, the log paths and the tools directory, left as they are, so the
/// launcher must ignore them), written into `dir`.
fn filled_launcher(dir: &Path, filled: &[(&str, String)]) -> PathBuf {
    let mut text =
        fs::read_to_string(workspace().join("core/packaging/recipes/container-launcher.sh"))
            .unwrap();
    for (name, value) in filled {
        text = text.replace(&format!("%%ENV:{name}%%"), value);
    }
    let launcher = dir.join("dbjobs_launcher");
    fs::write(&launcher, text).unwrap();
    launcher
}

/// The launcher became the daemon `pid`; neither its command line nor its environment holds
/// the password, which is only in the 0600 option file of the 0700 state directory.
fn assert_password_only_in_the_option_file(pid: u32, state: &Path) {
    let cmdline = text(&fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ");
    assert!(cmdline.contains(" daemon --interval 200ms"), "{cmdline}");
    assert!(!cmdline.contains("s3cr"), "{cmdline}");
    let environ = text(&fs::read(format!("/proc/{pid}/environ")).unwrap());
    assert!(
        !environ.contains("MYSQL_ROOT_PASSWORD") && !environ.contains("s3cr"),
        "the password stays out of dbjobs' environment"
    );
    assert_eq!(mode(state), 0o700);
    let cnf = state.join("container-launcher.cnf");
    assert_eq!(mode(&cnf), 0o600);
    let options = fs::read_to_string(&cnf).unwrap();
    assert!(options.contains("repman_cluster=\"cluster1\""), "{options}");
    assert!(
        options.contains("s3cr"),
        "the password is in the option file"
    );
}
