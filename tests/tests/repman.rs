//! End-to-end tests of the live job log to replication-manager (`write-log`, PROTOCOL.md
//! §6.2) in SQL mode: real throwaway servers, the real `dbjobs` binary and plugins, real
//! `mariadb-backup`, and the HTTPS stand-in of replication-manager's API
//! ([`dbjobs_tests::repman_standin`]), which decrypts bodies with the openssl CLI as
//! replication-manager does.

use std::path::PathBuf;

use dbjobs_tests::repman_standin::RepmanStandin;
use dbjobs_tests::rm_listener::{ListenMode, RmListener};
use dbjobs_tests::sender::job_row;
use dbjobs_tests::{plugin_dir, plugin_file, Dbjobs, MariaDb};

const CLUSTER: &str = "cluster1";
const SECRET: &str = "rm \"secret\" \\ pw";

/// The stand-in for `server`, which replication-manager monitors as `127.0.0.1:<port>`.
fn standin(server: &MariaDb) -> RepmanStandin {
    RepmanStandin::start(CLUSTER, &format!("127.0.0.1:{}", server.port()), SECRET)
}

/// An option file with the stand-in's settings (the secret in `[dbjobs]`, never on the
/// command line) and `extra`.
fn option_file(server: &MariaDb, rm: &RepmanStandin, extra: &[(&str, &str)]) -> PathBuf {
    let mut settings: Vec<(String, String)> = rm.settings();
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    server.defaults_file_with(&pairs)
}

fn submit(d: &Dbjobs, task: &str, server: Option<&str>, port: u16) -> u64 {
    let port = port.to_string();
    let mut args = vec!["submit", task, "--job-port", port.as_str()];
    if let Some(s) = server {
        args.extend(["--server", s]);
    }
    let out = d.run(&args);
    out.assert_code(0);
    out.stdout.trim().parse().expect("submit prints the id")
}

/// replication-manager's own pattern for the backup position (its `ParseLogEntries`):
/// `filename '([^']+)', position '([^']+)', GTID of the last change '([^']+)'`.
fn repman_position(line: &str) -> Option<(String, String, String)> {
    // `[^']+` after each literal: one or more non-quote characters, then the closing quote.
    fn field<'a>(s: &'a str, literal: &str) -> Option<(&'a str, &'a str)> {
        let rest = s.strip_prefix(literal)?;
        let end = rest.find('\'').filter(|e| *e > 0)?;
        Some((&rest[..end], &rest[end + 1..]))
    }
    let start = line.find("filename '")?;
    let (file, rest) = field(&line[start..], "filename '")?;
    let (pos, rest) = field(rest, ", position '")?;
    let (gtid, _) = field(rest, ", GTID of the last change '")?;
    Some((file.to_string(), pos.to_string(), gtid.to_string()))
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn the_backup_position_line_reaches_replication_manager_in_sql_mode() {
    let s = MariaDb::start();
    s.exec(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB; \
         INSERT INTO shop.t SELECT seq, REPEAT('x', 100) FROM shop.seq_1_to_2000;",
    );
    let rm = standin(&s);
    let work = tempfile::tempdir().unwrap();
    let listener = RmListener::start(&work.path().join("backup.xbstream"), ListenMode::Full);
    let plugins = plugin_dir(&[plugin_file("xtrabackup")]);
    let d = Dbjobs::new(&s, plugins.path()).defaults_file(&option_file(&s, &rm, &[]));
    let id = submit(&d, "mariabackup", Some("127.0.0.1"), listener.port());
    let out = d.run(&["run"]);
    out.assert_code(0);
    listener.finish().expect("the backup stream arrived");
    assert!(job_row(&s, id).succeeded());

    let lines = rm.log_lines("mariabackup");
    let positions: Vec<_> = lines.iter().filter_map(|l| repman_position(l)).collect();
    assert!(
        !positions.is_empty(),
        "no line replication-manager parses as a position among {} lines:\n{}",
        lines.len(),
        lines.join("\n")
    );
    // The position is the server's own (nothing was written since the backup).
    let status = s.query("SHOW MASTER STATUS");
    let (file, pos) = (status[0][0].clone().unwrap(), status[0][1].clone().unwrap());
    let gtid = s.query_value("SELECT @@gtid_binlog_pos").unwrap();
    assert!(
        positions.contains(&(file.clone(), pos.clone(), gtid.clone())),
        "positions {positions:?}, server at {file} {pos} {gtid}"
    );
    // The tool's own line, forwarded from its stderr, is among them.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("binlog position") && repman_position(l).is_some()),
        "{lines:?}"
    );
    // The lines replication-manager keys on, in order, and the tool's completion.
    let initiated = lines.iter().position(|l| l == "Job mariabackup initiated");
    let ended = lines
        .iter()
        .position(|l| l == "Job mariabackup ended with state: Finished");
    assert!(
        initiated.is_some() && ended.is_some() && initiated < ended,
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("completed OK!")));
    for call in rm.logs() {
        assert_eq!(call.server, format!("127.0.0.1:{}", s.port()));
        assert!(call.lines.len() <= 5, "{call:?}");
    }
    assert!(!out.stderr.contains(SECRET), "the secret is in the log");
}

#[test]
fn a_long_job_log_arrives_whole_and_in_order() {
    let s = MariaDb::start();
    let rm = standin(&s);
    rm.know_task("example");
    let plugins = plugin_dir(&[plugin_file("example")]);
    let file = option_file(&s, &rm, &[("example_log_lines", "2000")]);
    let d = Dbjobs::new(&s, plugins.path()).defaults_file(&file);
    let id = submit(&d, "example", None, 0);
    d.run(&["run"]).assert_code(0);
    assert!(job_row(&s, id).succeeded());

    let lines: Vec<String> = rm
        .log_lines("example")
        .into_iter()
        .filter(|l| l.starts_with("example line "))
        .collect();
    let expected: Vec<String> = (1..=2000)
        .map(|n| format!("example line {n} of 2000 \"quoted\" back\\slash\ttab"))
        .collect();
    assert_eq!(lines.len(), 2000, "lines arrived: {}", lines.len());
    assert_eq!(lines, expected);
    assert!(rm.logs().iter().all(|c| c.lines.len() <= 5));
}

#[test]
fn a_job_succeeds_when_its_log_endpoint_is_down() {
    let s = MariaDb::start();
    let rm = standin(&s);
    rm.know_task("example");
    rm.write_log_down(true);
    let plugins = plugin_dir(&[plugin_file("example")]);
    let file = option_file(&s, &rm, &[("example_log_lines", "300")]);
    let d = Dbjobs::new(&s, plugins.path()).defaults_file(&file);
    let id = submit(&d, "example", None, 0);
    let out = d.run(&["run"]);
    out.assert_code(0);
    let row = job_row(&s, id);
    assert!(row.succeeded(), "{row:?}");
    assert_eq!(row.result_text(), format!("example job {id} done"));
    assert!(rm.logs().is_empty());
    assert_eq!(
        count(&out.stderr, "replication-manager did not get"),
        1,
        "one warning saying how many lines were lost:\n{}",
        out.stderr
    );
    // 300 lines, the start and end lines of the host and the plugin's own.
    let warning = out
        .stderr
        .lines()
        .find(|l| l.contains("replication-manager did not get"))
        .unwrap();
    assert!(
        warning.contains(&format!("job {id} (example)")),
        "{warning}"
    );
    let missed: u64 = warning
        .split("did not get ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {warning}"));
    assert!(missed >= 300, "{warning}");

    // With nothing listening at all, the same.
    let nobody = format!("https://127.0.0.1:{}", dbjobs_tests::free_port());
    let file = option_file(&s, &rm, &[("repman_api", &nobody)]);
    let d = Dbjobs::new(&s, plugins.path()).defaults_file(&file);
    let id = submit(&d, "example", None, 0);
    let out = d.run(&["run"]);
    out.assert_code(0);
    assert!(job_row(&s, id).succeeded());
    assert_eq!(
        count(&out.stderr, "replication-manager did not get"),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn a_wrong_password_gives_a_clear_error() {
    let s = MariaDb::start();
    let rm = standin(&s);
    let plugins = plugin_dir(&[plugin_file("optimize")]);
    let file = option_file(&s, &rm, &[("repman_password", "not-the-secret")]);
    let d = Dbjobs::new(&s, plugins.path()).defaults_file(&file);
    let id = submit(&d, "optimize", None, 0);
    let out = d.run(&["run"]);
    out.assert_code(0);
    assert!(
        job_row(&s, id).succeeded(),
        "the job does not depend on the log"
    );
    assert!(
        out.stderr
            .contains("replication-manager refused the secret of 127.0.0.1:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("set repman_password"), "{}", out.stderr);
    assert!(!out.stderr.contains("not-the-secret"));
    assert!(rm.logs().is_empty());
    // replication-manager cannot even decrypt a body sealed with another password.
    assert!(rm.calls().contains(&("secret-login".to_string(), 500)));
    assert!(!rm.calls().iter().any(|(_, status)| *status == 200));
}

#[test]
fn a_changed_certificate_is_refused_with_how_to_re_pin() {
    let s = MariaDb::start();
    let mut rm = standin(&s);
    let plugins = plugin_dir(&[plugin_file("optimize")]);
    let d = Dbjobs::new(&s, plugins.path()).defaults_file(&option_file(&s, &rm, &[]));
    submit(&d, "optimize", None, 0);
    let first = d.run(&["run"]);
    first.assert_code(0);
    assert!(
        first.stderr.contains("pinned on first contact"),
        "{}",
        first.stderr
    );
    let delivered = rm.logs().len();
    assert!(delivered > 0);
    let pin = std::fs::read_dir(s.state_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("repman-cert-"))
        .expect("a pin file in state_dir");

    rm.rotate_certificate();
    let id = submit(&d, "optimize", None, 0);
    let second = d.run(&["run"]);
    second.assert_code(0);
    assert!(job_row(&s, id).succeeded());
    let err = &second.stderr;
    assert!(
        err.contains("replication-manager's certificate changed"),
        "{err}"
    );
    assert!(err.contains(&format!("delete {}", pin.display())), "{err}");
    assert!(err.contains("repman_cert_sha256="), "{err}");
    assert_eq!(
        rm.logs().len(),
        delivered,
        "nothing was sent to the new certificate"
    );

    // Pinning the new one by its fingerprint (what the message offers) works again; so does
    // verifying against the certificate file.
    let fingerprint = openssl_fingerprint(&rm.cert_file());
    let d = Dbjobs::new(&s, plugins.path()).defaults_file(&option_file(
        &s,
        &rm,
        &[("repman_cert_sha256", &fingerprint)],
    ));
    submit(&d, "optimize", None, 0);
    d.run(&["run"]).assert_code(0);
    assert!(rm.logs().len() > delivered);
    let delivered = rm.logs().len();
    let ca = rm.cert_file().display().to_string();
    let d = Dbjobs::new(&s, plugins.path()).defaults_file(&option_file(
        &s,
        &rm,
        &[("repman_ca_file", &ca)],
    ));
    submit(&d, "optimize", None, 0);
    d.run(&["run"]).assert_code(0);
    assert!(rm.logs().len() > delivered);
}

/// `openssl x509 -fingerprint -sha256` of a PEM file, as an operator would get it.
fn openssl_fingerprint(pem: &std::path::Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .rsplit('=')
        .next()
        .expect("a fingerprint")
        .to_string()
}
