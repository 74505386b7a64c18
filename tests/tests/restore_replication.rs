//! End to end: replication after a reseed on a node with several replication connections
//! (multi-source: the default one and a named one, replication-manager issue 1706), each to
//! a real throwaway server.
//!
//! In the legacy and state variants dbjobs sets the backup's position and starts every
//! configured connection, physical and logical alike; in the payload variant it leaves the
//! position and replication to replication-manager (which restarts each channel by name),
//! having stopped them for the restore.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql::prelude::Queryable;

use dbjobs_tests::fixtures::{gzip_dump, inbound_dbjobs, node, run_inbound, stderr};
use dbjobs_tests::physical_fixtures::xbstream_backup;
use dbjobs_tests::sender::{create_jobs_table, JobRow};
use dbjobs_tests::{plugin_dir, plugin_file, wait_for, Dbjobs, MariaDb, ServerOptions};

const WAIT: Duration = Duration::from_secs(240);

/// A replication source with an account for replicas; `domain` is its GTID domain, so that
/// two sources of one replica keep separate positions.
fn master(server_id: u32, domain: u32) -> MariaDb {
    let m = MariaDb::start_with(ServerOptions {
        server_id,
        extra_args: vec![format!("--gtid-domain-id={domain}")],
        ..ServerOptions::default()
    });
    // Not binlogged: the replica of two masters would replay both and fail on the second.
    m.exec(
        "SET SESSION sql_log_bin=0; CREATE USER repl@'127.0.0.1';
         GRANT REPLICATION SLAVE ON *.* TO repl@'127.0.0.1'",
    );
    m
}

/// `CHANGE MASTER '<name>' TO <master>` on `replica`, with GTID, and start it.
fn connect(replica: &MariaDb, name: &str, master: &MariaDb) {
    replica.exec(&format!(
        "CHANGE MASTER '{name}' TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
         MASTER_USE_GTID=slave_pos; START SLAVE '{name}'",
        master.port()
    ));
}

/// Each connection of `server` by name, with (`Slave_IO_Running`, `Slave_SQL_Running`),
/// read by column name.
fn connections(server: &MariaDb) -> BTreeMap<String, (String, String)> {
    let mut conn = server.conn();
    let rows: Vec<mysql::Row> = conn.query("SHOW ALL SLAVES STATUS").unwrap();
    rows.into_iter()
        .map(|r| {
            let text = |c: &str| r.get::<Option<String>, _>(c).flatten().unwrap_or_default();
            (
                text("Connection_name"),
                (text("Slave_IO_Running"), text("Slave_SQL_Running")),
            )
        })
        .collect()
}

/// Wait until every connection of `server` in `names` runs (IO and SQL threads).
fn wait_running(server: &MariaDb, names: &[&str]) {
    let what = format!(
        "connections {names:?} to run (now: {:?})",
        connections(server)
    );
    wait_for(&what, WAIT, || {
        let c = connections(server);
        names
            .iter()
            .all(|n| {
                c.get(*n)
                    .is_some_and(|(io, sql)| io == "Yes" && sql == "Yes")
            })
            .then_some(())
    });
}

/// A write on `master` reaches `replica`.
fn assert_replicated(master: &MariaDb, replica: &MariaDb, db: &str, id: u32) {
    master.exec(&format!(
        "CREATE DATABASE IF NOT EXISTS {db}; CREATE TABLE IF NOT EXISTS {db}.t (id INT PRIMARY KEY);
         INSERT INTO {db}.t VALUES ({id})"
    ));
    wait_for(
        &format!("{db}.t id {id} to reach the replica"),
        WAIT,
        || {
            replica
            .query(&format!(
                "SELECT 1 FROM information_schema.tables WHERE table_schema='{db}' AND table_name='t'"
            ))
            .first()
            .and_then(|_| replica.query_value(&format!("SELECT COUNT(*) FROM {db}.t WHERE id={id}")))
            .filter(|n| n == "1")
        },
    );
}

/// The servers of a test: the reseed source (domain 0), a second master (domain 3), the
/// replica being reseeded, connected to both, and its dbjobs.
struct Topology {
    src: MariaDb,
    other: MariaDb,
    dst: MariaDb,
    d: Dbjobs,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Topology {
    fn new() -> Topology {
        let src = master(1, 0);
        src.exec(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY) ENGINE=InnoDB;
                  INSERT INTO app.t SELECT seq FROM app.seq_1_to_100",
        );
        let other = master(3, 3);
        let dst = node(2);
        connect(&dst, "", &src);
        connect(&dst, "m2", &other);
        wait_running(&dst, &["", "m2"]);
        let dirs = (
            plugin_dir(&[plugin_file("reseed")]),
            tempfile::tempdir().unwrap(),
        );
        let d = inbound_dbjobs(&dst, dirs.0.path(), dirs.1.path());
        Topology {
            src,
            other,
            dst,
            d,
            _dirs: dirs,
        }
    }

    /// Reseed `dst` with `task` from `backup`; the job must succeed.
    fn reseed(&self, task: &str, backup: &[u8]) -> JobRow {
        let (row, out) = run_inbound(&self.d, &self.dst, task, backup, WAIT);
        assert!(row.succeeded(), "{row:?}\n{}", stderr(&out));
        row
    }
}

/// Physical (legacy layout) then logical (state layout): after each, `gtid_slave_pos` is the
/// backup's and both connections run, and new writes on both masters reach the node.
#[test]
fn every_configured_connection_resumes_after_a_reseed() {
    let t = Topology::new();
    // The node has a place in the second master's domain: a reseed must keep it (the
    // backup knows nothing of that domain), or the connection would replay this and fail.
    assert_replicated(&t.other, &t.dst, "other_before", 0);
    let (stream, gtid) = xbstream_backup(&t.src);
    let other_domain = || {
        let pos = t
            .dst
            .query_value("SELECT @@gtid_slave_pos")
            .unwrap_or_default();
        pos.split(',')
            .find(|g| g.starts_with("3-"))
            .map(str::to_string)
    };
    let kept = other_domain().expect("the node replicated from domain 3");

    let row = t.reseed("reseedmariabackup", &stream);
    let result = row.result_text();
    let position = format!("{gtid},{kept}");
    let started = format!("gtid_slave_pos={position}, replication started on connections '', 'm2'");
    assert!(result.contains(&started), "{result}");
    assert!(!result.contains("START SLAVE failed"), "{result}");
    wait_running(&t.dst, &["", "m2"]);
    let pos = t.dst.query_value("SELECT @@gtid_slave_pos");
    assert_eq!(pos.unwrap_or_default(), position);
    assert_replicated(&t.src, &t.dst, "after_physical", 1);
    assert_replicated(&t.other, &t.dst, "other_after_physical", 1);

    t.dst
        .exec("SET SESSION sql_log_bin=0; DROP TABLE replication_manager_schema.jobs");
    create_jobs_table(&t.dst, "state");
    let (dump, gtid) = gzip_dump(&t.src, &["--databases", "app", "after_physical"]);
    let kept = other_domain().expect("the node replicated from domain 3");
    let row = t.reseed("reseedmysqldump", &dump);
    assert!(row.result_text().contains("replication started"), "{row:?}");
    wait_running(&t.dst, &["", "m2"]);
    let pos = t.dst.query_value("SELECT @@gtid_slave_pos");
    assert_eq!(pos.unwrap_or_default(), format!("{gtid},{kept}"));
    assert_replicated(&t.src, &t.dst, "after_logical", 2);
    assert_replicated(&t.other, &t.dst, "other_after_logical", 2);
}

/// Payload layout: the position goes into the payload, `gtid_slave_pos` is left as it was,
/// and the connections, stopped for the restore, are left to replication-manager; the same
/// for a logical reseed.
#[test]
fn the_payload_variant_leaves_replication_to_replication_manager() {
    let t = Topology::new();
    let (stream, gtid) = xbstream_backup(&t.src);
    create_jobs_table(&t.dst, "payload");
    let pos_before = t.dst.query_value("SELECT @@gtid_slave_pos");
    let stopped = |server: &MariaDb| {
        connections(server)
            .values()
            .all(|(io, sql)| io == "No" && sql == "No")
    };

    let row = t.reseed("reseedmariabackup", &stream);
    let result = row.result_text();
    assert!(
        result.contains(&format!("GTID {gtid} (left to replication-manager)")),
        "{result}"
    );
    assert!(
        result.contains("replication stopped for the restore, left to replication-manager"),
        "{result}"
    );
    let payload: serde_json::Value = serde_json::from_str(row.payload.as_deref().unwrap()).unwrap();
    assert_eq!(payload["gtid"], gtid.as_str());
    assert_eq!(t.dst.query_value("SELECT @@gtid_slave_pos"), pos_before);
    assert_eq!(connections(&t.dst).len(), 2);
    assert!(stopped(&t.dst), "{:?}", connections(&t.dst));

    connect(&t.dst, "", &t.src);
    connect(&t.dst, "m2", &t.other);
    wait_running(&t.dst, &["", "m2"]);
    let (dump, _) = gzip_dump(&t.src, &["--databases", "app"]);
    let row = t.reseed("reseedmysqldump", &dump);
    let result = row.result_text();
    assert!(
        result.contains("replication left stopped for replication-manager"),
        "{result}"
    );
    assert!(stopped(&t.dst), "{:?}", connections(&t.dst));
}
