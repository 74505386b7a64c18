//! End-to-end tests of settings and option files: unknown names and bad values stop `run` and
//! `daemon` at start-up (exit 2, naming the closest name and where it was set), `dbjobs
//! settings` documents every declaration (the annotated option file reads back through
//! MariaDB's own parser; `plugins/README.md`'s table is its output), and a password no
//! option file in the old writer survived reaches the MariaDB tools dbjobs starts. Real
//! servers, the real binary and plugins, MariaDB's `my_print_defaults` and `mariadb`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use dbjobs_tests::rm_listener::{ListenMode, RmListener};
use dbjobs_tests::sender::job_row;
use dbjobs_tests::{mariadb_tool, plugin_dir, plugin_file, Dbjobs, MariaDb};

/// Every plugin of the workspace: what the package ships and what the docs describe.
const PLUGINS: [&str; 9] = [
    "example",
    "xtrabackup",
    "errorlog",
    "slowlog",
    "optimize",
    "zfssnapback",
    "service",
    "reseed",
    "flashback",
];

fn all_plugins() -> tempfile::TempDir {
    plugin_dir(&PLUGINS.map(plugin_file))
}

fn submit(dbjobs: &Dbjobs, args: &[&str]) -> u64 {
    let mut a = vec!["submit"];
    a.extend_from_slice(args);
    let out = dbjobs.run(&a);
    out.assert_code(0);
    out.stdout.trim().parse().expect("submit prints the id")
}

/// Write `text` to a new 0600 file.
fn write_private(path: &Path, text: &[u8]) {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// What MariaDB's own option-file parser reads for `group` of `file`.
fn my_print_defaults(file: &Path, group: &str) -> String {
    let out = Command::new(mariadb_tool("my_print_defaults"))
        .arg(format!("--defaults-file={}", file.display()))
        .arg(group)
        .output()
        .expect("run my_print_defaults");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn an_unknown_name_stops_run_and_daemon_naming_the_closest_and_where() {
    let server = MariaDb::start();
    let dir = plugin_dir(&[plugin_file("example")]);
    let file = server.defaults_file_with(&[("exampel_log", "/tmp/x.log")]);
    let dbjobs = Dbjobs::new(&server, dir.path()).defaults_file(&file);
    let id = submit(&dbjobs, &["example"]);
    for command in ["run", "daemon"] {
        let out = dbjobs.run(&[command]);
        out.assert_code(2);
        let expected = format!("unknown setting exampel_log ({} line ", file.display());
        assert!(out.stderr.contains(&expected), "{}", out.stderr);
        assert!(
            out.stderr.contains("the closest known name is example_log"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("dbjobs settings"), "{}", out.stderr);
    }
    // No job ran.
    assert_eq!(job_row(&server, id).result, None);

    let out = Dbjobs::new(&server, dir.path())
        .set("state_dri", "/tmp")
        .run(&["run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(
            "unknown setting state_dri (--set): neither dbjobs nor a loaded plugin declares it; the closest known name is state_dir"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(job_row(&server, id).result, None);
}

#[test]
fn with_a_refused_plugin_an_unknown_name_is_only_a_warning() {
    let server = MariaDb::start();
    let dir = plugin_dir(&[plugin_file("example"), plugin_file("zfssnapback")]);
    let refused = dir.path().join("libdbjobs_plugin_zfssnapback.so");
    fs::set_permissions(&refused, fs::Permissions::from_mode(0o775)).unwrap();
    let log = server.base_dir().join("example.log");
    let dbjobs = Dbjobs::new(&server, dir.path())
        .set("zfs_dataset", "tank/db")
        .set("example_log", log.to_str().unwrap());
    let id = submit(&dbjobs, &["example"]);
    let out = dbjobs.run(&["run"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains(
            "unknown setting zfs_dataset (--set): neither dbjobs nor a loaded plugin declares it"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "it may belong to the plugin file that was refused ({}: writable by group or others",
            refused.display()
        )),
        "{}",
        out.stderr
    );
    let row = job_row(&server, id);
    assert_eq!(
        row.result.as_deref(),
        Some(format!("example job {id} done").as_str())
    );
}

#[test]
fn values_of_the_wrong_type_stop_the_start() {
    let server = MariaDb::start();
    let dir = plugin_dir(&[plugin_file("xtrabackup")]);
    // A host setting, with where it came from.
    let file = server.defaults_file_with(&[("max_parallel_jobs", "many")]);
    let out = Dbjobs::new(&server, dir.path())
        .defaults_file(&file)
        .run(&["run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(&format!(
            "setting max_parallel_jobs=\"many\" is not valid: expected a non-negative integer ({} line ",
            file.display()
        )),
        "{}",
        out.stderr
    );
    // A plugin's setting, checked before any job of it runs.
    for command in ["run", "daemon"] {
        let out = Dbjobs::new(&server, dir.path())
            .set("connect_timeout", "soon")
            .run(&[command]);
        out.assert_code(2);
        assert!(
            out.stderr.contains(
                "setting connect_timeout=\"soon\" (--set) is not valid: expected a non-negative integer"
            ),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn settings_document_every_declaration_and_the_annotated_file_reads_back() {
    let server = MariaDb::start();
    let dir = all_plugins();
    let dbjobs = Dbjobs::new(&server, dir.path());
    let out = dbjobs.run(&["settings", "--format", "json"]);
    out.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let settings = json["settings"].as_array().unwrap();
    let declared_by = |name: &str| -> Vec<String> {
        let s = settings
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not listed"));
        assert!(!s["doc"].as_str().unwrap().is_empty(), "{name} has no doc");
        serde_json::from_value(s["declared_by"].clone()).unwrap()
    };
    assert_eq!(declared_by("state_dir"), vec!["dbjobs"]);
    assert_eq!(declared_by("example_log"), vec!["example"]);
    assert!(declared_by("connect_timeout").contains(&"xtrabackup".to_string()));
    assert!(declared_by("restore_mode").contains(&"reseed".to_string()));
    assert!(declared_by("restore_mode").contains(&"flashback".to_string()));

    let text = dbjobs.run(&["settings"]);
    text.assert_code(0);
    for s in settings {
        assert!(text.stdout.contains(s["name"].as_str().unwrap()));
    }

    // The annotated option file: MariaDB reads nothing from it as it is...
    let cnf = dbjobs.run(&["settings", "--format", "cnf"]);
    cnf.assert_code(0);
    let work = tempfile::tempdir().unwrap();
    let annotated = work.path().join("dbjobs.cnf");
    write_private(&annotated, cnf.stdout.as_bytes());
    assert_eq!(my_print_defaults(&annotated, "dbjobs"), "");
    let (client_part, _) = cnf.stdout.split_once("[dbjobs]\n").unwrap();
    for key in ["user", "password", "socket", "host", "port"] {
        assert!(
            client_part.contains(&format!("\n# {key} = ")),
            "[client] lacks {key}: {client_part}"
        );
    }
    // ...and every default once its [dbjobs] lines are uncommented.
    let (_, dbjobs_part) = cnf.stdout.split_once("[dbjobs]\n").unwrap();
    let uncommented: String = dbjobs_part
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| !k.contains(' ')) =>
            {
                format!("{rest}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    let with_client = work.path().join("uncommented.cnf");
    let client = fs::read_to_string(server.defaults_file()).unwrap();
    write_private(
        &with_client,
        format!("{client}\n[dbjobs]\n{uncommented}").as_bytes(),
    );
    let expected: String = settings
        .iter()
        .map(|s| {
            format!(
                "--{}={}\n",
                s["name"].as_str().unwrap(),
                s["default"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(my_print_defaults(&with_client, "dbjobs"), expected);
    // dbjobs accepts every name and default of it.
    dbjobs
        .clone()
        .defaults_file(&with_client)
        .run(&["run"])
        .assert_code(0);
}

/// The markers around the generated table in plugins/README.md.
const TABLE_BEGIN: &str =
    "<!-- settings table: generated by `dbjobs settings --format markdown`; do not edit -->\n";
const TABLE_END: &str = "<!-- end of settings table -->";

#[test]
fn the_settings_table_of_plugins_readme_is_current() {
    let readme = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/README.md");
    let text = fs::read_to_string(&readme).unwrap();
    let server = MariaDb::start();
    let dir = all_plugins();
    let out = Dbjobs::new(&server, dir.path()).run(&["settings", "--format", "markdown"]);
    out.assert_code(0);
    let (head, rest) = text
        .split_once(TABLE_BEGIN)
        .unwrap_or_else(|| panic!("{} lacks the marker {TABLE_BEGIN:?}", readme.display()));
    let (table, tail) = rest
        .split_once(TABLE_END)
        .unwrap_or_else(|| panic!("{} lacks the marker {TABLE_END:?}", readme.display()));
    if table == out.stdout {
        return;
    }
    if std::env::var_os("UPDATE_SETTINGS_TABLE").is_some() {
        fs::write(
            &readme,
            format!("{head}{TABLE_BEGIN}{}{TABLE_END}{tail}", out.stdout),
        )
        .unwrap();
        return;
    }
    panic!(
        "the settings table of {} is stale (the declarations changed); regenerate it with\n  \
         cargo build --workspace && UPDATE_SETTINGS_TABLE=1 cargo test -p dbjobs-tests --test settings the_settings_table\n\
         --- the table there ---\n{table}--- the declarations ---\n{}",
        readme.display(),
        out.stdout
    );
}

/// Every character that broke or could break an option file: a newline (the fuzzing find),
/// both quotes, a backslash, the comment characters, spaces at both ends, a tab, non-ASCII
/// (`à` ends in the byte 0xA0, which MariaDB trims as a space when unquoted).
const HARD_PASSWORD: &str = " pa\"ss'wo\\rd #1; tab\there\nsecond line \u{e0} \u{fc}\u{20ac} ";

/// `value` the way an operator writes it in MariaDB's syntax (independent of dbjobs' writer).
fn mariadb_quoted(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\t', "\\t");
    format!("\"{escaped}\"")
}

#[test]
fn a_password_with_every_hard_character_reaches_the_tools() {
    let server = MariaDb::start();
    let sql_literal = HARD_PASSWORD.replace('\\', "\\\\").replace('\'', "\\'");
    server.exec(&format!(
        "CREATE USER 'hard'@'localhost' IDENTIFIED BY '{sql_literal}'; \
         GRANT ALL PRIVILEGES ON *.* TO 'hard'@'localhost'"
    ));
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("hard.cnf");
    let text = format!(
        "[client]\nsocket={}\nuser=hard\npassword={}\n",
        server.socket().display(),
        mariadb_quoted(HARD_PASSWORD)
    );
    write_private(&file, text.as_bytes());
    // The test's own file says what it should, to MariaDB's parser and to the server.
    assert!(
        my_print_defaults(&file, "client").contains(&format!("--password={HARD_PASSWORD}\n")),
        "the test wrote the password wrongly"
    );
    let who = Command::new(mariadb_tool("mariadb"))
        .arg(format!("--defaults-file={}", file.display()))
        .args(["-N", "-e", "SELECT CURRENT_USER()"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&who.stdout).trim(),
        "hard@localhost",
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );

    // dbjobs connects with it, and mariadb-backup reads it from the file dbjobs wrote.
    let dir = plugin_dir(&[plugin_file("xtrabackup")]);
    let dbjobs = Dbjobs::new(&server, dir.path()).defaults_file(&file);
    let received = work.path().join("backup.xbstream");
    let listener = RmListener::start(&received, ListenMode::Full);
    let port = listener.port().to_string();
    let id = submit(
        &dbjobs,
        &["mariabackup", "--server", "127.0.0.1", "--job-port", &port],
    );
    let out = dbjobs.run(&["run"]);
    out.assert_code(0);
    let got = listener.finish().expect("the listener received the stream");
    let row = job_row(&server, id);
    assert!(
        row.result_text().starts_with("backup sent to 127.0.0.1:"),
        "{row:?}\n{}",
        out.stderr
    );
    assert!(got.bytes > 1 << 20, "a real backup is bigger: {got:?}");
    assert!(
        !out.stderr.contains("second line"),
        "the password reached the log"
    );
}

#[test]
fn values_no_option_file_can_carry_are_configuration_errors() {
    let server = MariaDb::start();
    let dir = plugin_dir(&[plugin_file("example")]);
    let dbjobs = Dbjobs::new(&server, dir.path());
    let id = submit(&dbjobs, &["example"]);
    let work = tempfile::tempdir().unwrap();

    // A password longer than a line MariaDB's tools read (from MYSQL_PWD: the file could not
    // even hold it).
    let long = "x".repeat(5000);
    let out = dbjobs.clone().env("MYSQL_PWD", &long).run(&["run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(
            "the password cannot be handed to the MariaDB tools dbjobs starts: written as password=\"...\" it takes 5011 bytes, and MariaDB's tools read at most 4094 bytes"
        ),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(&long[..100]),
        "the password reached the log"
    );

    // The file the old writer produced for a password with a newline (found by fuzzing).
    let broken = work.path().join("broken.cnf");
    write_private(
        &broken,
        b"# written by dbjobs for the tools it starts; removed when it exits\n[client]\nuser=\"u\"\npassword=\"a\nb\"\nsocket=\"/s\"\n",
    );
    let out = dbjobs.clone().defaults_file(&broken).run(&["run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(&format!(
            "{}: line 4: the value of password opens a quote it does not close",
            broken.display()
        )),
        "{}",
        out.stderr
    );

    // A NUL, which MariaDB's tools would cut the value at.
    let nul = work.path().join("nul.cnf");
    write_private(&nul, b"[client]\npassword=\"a\0b\"\n");
    let out = dbjobs.clone().defaults_file(&nul).run(&["run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("line 2: the line holds a NUL byte"),
        "{}",
        out.stderr
    );

    // Nothing ran meanwhile.
    assert_eq!(job_row(&server, id).result, None);
}
