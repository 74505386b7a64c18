//! End to end: reseed streams received over TLS and over plain TCP on the same port.
//!
//! replication-manager sends over TLS when `scheduler-db-servers-receiver-use-ssl` is on and
//! does not verify the node's certificate. The sender here is the real `openssl s_client`
//! (stdin: a real `mariadb-dump | gzip` or a real `mariadb-backup` xbstream), the receiver the
//! real `dbjobs run` with the real reseed plugin; the restored data is compared by content
//! with the source. The certificate is the one dbjobs generates in its state directory, or
//! one made with `openssl req` and configured; `s_client` shows which one was presented.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use dbjobs_tests::fixtures::{
    assert_staging_empty, binlog_state, finish, inbound_dbjobs, node, self_signed_certificate,
    stderr, submit_job,
};
use dbjobs_tests::physical_fixtures::xbstream_backup;
use dbjobs_tests::sender::{checksums, job_row, send_when_waiting, wait_job_finished};
use dbjobs_tests::{free_port, mariadb_tool, plugin_dir, plugin_file, wait_for, MariaDb};

const WAIT: Duration = Duration::from_secs(180);

/// A source with InnoDB and MyISAM data; `rows` rows in `app.t`.
fn source(rows: u32) -> MariaDb {
    let s = node(1);
    s.exec(&format!(
        "CREATE DATABASE app; \
         CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(64), n INT) ENGINE=InnoDB; \
         INSERT INTO app.t SELECT seq, MD5(seq), seq * 7 FROM app.seq_1_to_{rows}; \
         CREATE TABLE app.m (id INT PRIMARY KEY, b BLOB) ENGINE=MyISAM; \
         INSERT INTO app.m SELECT seq, UNHEX(SHA2(seq, 256)) FROM app.seq_1_to_300;"
    ));
    s
}

/// `mariadb-dump --databases app` of `server` with replication-manager's options, gzip'd.
fn gzip_dump(server: &MariaDb) -> Vec<u8> {
    let out = Command::new(mariadb_tool("mariadb-dump"))
        .arg("--no-defaults")
        .arg(format!("--socket={}", server.socket().display()))
        .args(["-uroot", "--gtid", "--master-data", "--single-transaction"])
        .args(["--databases", "app"])
        .output()
        .expect("run mariadb-dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&out.stdout).unwrap();
    gz.finish().unwrap()
}

/// Wait until job `id` on `target` says the node listens (legacy layout).
fn wait_listening(target: &MariaDb, id: u64) {
    wait_for("the job to listen", WAIT, || {
        (job_row(target, id).result_text() == "Waiting backup.").then_some(())
    });
}

/// `openssl s_client` from `from` to `127.0.0.1:port`, `bytes` on its stdin, without
/// verifying the node's certificate (as replication-manager). Returns whether it succeeded
/// and its output, which shows the certificate the node presented.
fn s_client(from: &str, port: u16, bytes: &[u8]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-bind", &format!("{from}:0")])
        // Binary input: no command letters, and the end of stdin ends the connection.
        .args(["-nocommands", "-no_ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is missing: apt-get install openssl");
    let mut stdin = child.stdin.take().unwrap();
    let bytes = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The first PEM certificate block of `text`.
fn first_certificate(text: &str) -> String {
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = text
        .find(begin)
        .unwrap_or_else(|| panic!("no certificate in:\n{text}"));
    let stop = text[start..].find(end).unwrap() + start + end.len();
    text[start..stop].to_string()
}

#[test]
fn a_tls_reseed_and_a_plain_one_on_the_same_port() {
    let src = source(5000);
    let dst = node(2);
    let plugins = plugin_dir(&[plugin_file("reseed")]);
    let backup = tempfile::tempdir().unwrap();
    let d = inbound_dbjobs(&dst, plugins.path(), backup.path());
    let port = free_port();

    // 1. Over TLS, with the certificate dbjobs generates in its state directory.
    let before = binlog_state(&dst);
    let id = submit_job(&d, "reseedmysqldump", port);
    let child = d.spawn(&["run"]);
    wait_listening(&dst, id);
    let (sent, client) = s_client("127.0.0.1", port, &gzip_dump(&src));
    let out = finish(child, WAIT);
    let log = stderr(&out);
    assert!(sent, "openssl s_client failed:\n{client}\n{log}");
    assert!(out.status.success(), "{log}");
    let row = wait_job_finished(&dst, id, WAIT);
    assert!(
        row.result_text()
            .starts_with("reseed from a mysqldump done"),
        "{row:?}"
    );
    assert!(log.contains("over TLS"), "{log}");
    assert_eq!(checksums(&dst), checksums(&src));
    assert_eq!(binlog_state(&dst), before, "the replay went to the binlog");
    let generated = dst.state_dir().join("receive-tls.pem");
    let mode = std::fs::metadata(&generated).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", generated.display());
    let kept = std::fs::read_to_string(&generated).unwrap();
    assert_eq!(first_certificate(&client), first_certificate(&kept));

    // 2. Plain TCP on the same port, new data: restored the same way.
    src.exec("INSERT INTO app.t VALUES (900001, 'plain', 1); DELETE FROM app.m WHERE id <= 100");
    let id = submit_job(&d, "reseedmysqldump", port);
    let child = d.spawn(&["run"]);
    let local = IpAddr::from([127, 0, 0, 1]);
    let sent = send_when_waiting(&dst, id, port, local, &gzip_dump(&src), WAIT);
    let out = finish(child, WAIT);
    let log = stderr(&out);
    assert!(sent.is_ok() && out.status.success(), "{sent:?}\n{log}");
    assert!(log.contains("receiving from 127.0.0.1:"), "{log}");
    assert!(!log.contains("over TLS"), "{log}");
    assert_eq!(checksums(&dst), checksums(&src));
    assert_eq!(
        dst.query_value("SELECT v FROM app.t WHERE id=900001")
            .as_deref(),
        Some("plain")
    );
    // The certificate generated for the first job is kept, not made again.
    assert_eq!(std::fs::read_to_string(&generated).unwrap(), kept);
    assert_staging_empty(backup.path());
}

#[test]
fn a_physical_reseed_over_tls_with_the_configured_certificate_and_a_stranger_refused() {
    let src = source(3000);
    let dst = node(2);
    dst.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, old TEXT); INSERT INTO app.t VALUES (1, 'old')");
    let plugins = plugin_dir(&[plugin_file("reseed")]);
    let backup = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_certificate(certs.path(), "node", "node-under-test");
    let d = inbound_dbjobs(&dst, plugins.path(), backup.path())
        .set("receive_tls_cert", cert.to_str().unwrap())
        .set("receive_tls_key", key.to_str().unwrap());
    let (stream, gtid) = xbstream_backup(&src);
    let port = free_port();
    let id = submit_job(&d, "reseedmariabackup", port);
    let child = d.spawn(&["run"]);
    wait_listening(&dst, id);

    // A TLS handshake from an address the job does not name is refused before it starts.
    let (stranger_ok, stranger) = s_client("127.0.0.2", port, b"not me");
    assert!(!stranger_ok, "{stranger}");
    assert!(!stranger.contains("node-under-test"), "{stranger}");
    // The job's sender, over TLS.
    let (sent, client) = s_client("127.0.0.1", port, &stream);
    let out = finish(child, WAIT);
    let log = stderr(&out);
    assert!(sent, "openssl s_client failed:\n{client}\n{log}");
    assert!(out.status.success(), "{log}");
    assert!(client.contains("CN = node-under-test"), "{client}");
    assert!(log.contains("refused a connection from 127.0.0.2"), "{log}");
    assert!(log.contains("over TLS"), "{log}");
    let row = wait_job_finished(&dst, id, WAIT);
    assert!(
        row.result_text()
            .starts_with("reseed (online restore) done"),
        "{row:?}\n{log}"
    );
    assert_eq!(checksums(&dst), checksums(&src));
    assert_eq!(
        dst.query_value("SELECT @@gtid_slave_pos")
            .unwrap_or_default(),
        gtid
    );
    // Nothing was generated: the configured certificate was used.
    assert!(!dst.state_dir().join("receive-tls.pem").exists());
    assert_staging_empty(backup.path());
}
