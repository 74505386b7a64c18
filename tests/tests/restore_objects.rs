//! End to end: every kind of object survives a reseed, online, full and logical, into an
//! empty node and into a node whose data diverged after the backup; and replication resumes
//! from the backup's position on every configured connection where the variant says dbjobs
//! starts it, and is left alone where it does not.
//!
//! The source holds the schema fixture ([`dbjobs_tests::schema_fixture`]); its backup
//! (`mariadb-backup` xbstream, or `mariadb-dump` gzip'd) is sent to `dbjobs run` on a
//! target as replication-manager would. What is compared is what a user would check: per
//! table the sorted-row hash and definition, `AUTO_INCREMENT`, the lists of views,
//! triggers (with their order), routines, events (with their status) and sequences (with
//! their state), the queries that show the objects work, `CHECK TABLE` of every table, and
//! the writes that show the node continues where the backup was.

use std::time::Duration;

use dbjobs_tests::fixtures::{gzip_dump, inbound_dbjobs, node, run_inbound, stderr};
use dbjobs_tests::physical_fixtures::{xbstream_backup, ServiceScripts};
use dbjobs_tests::schema_fixture::{self, Snapshot, MAIN, NODE_ONLY, OTHER};
use dbjobs_tests::sender::create_jobs_table;
use dbjobs_tests::{plugin_dir, plugin_file, wait_for, Dbjobs, MariaDb};

const WAIT: Duration = Duration::from_secs(240);

/// The source: the schema fixture, and an account replicas connect with.
fn source() -> MariaDb {
    let s = node(1);
    schema_fixture::create(&s);
    s.exec("CREATE USER repl@'127.0.0.1'; GRANT REPLICATION SLAVE ON *.* TO repl@'127.0.0.1'");
    s
}

/// What the source's queries answer: the objects work ([`schema_fixture::probe`]).
type Probes = Vec<(String, Vec<Vec<Option<String>>>)>;

/// A reseed of one backup into one target, and what the target must hold afterwards.
struct Reseed<'a> {
    d: Dbjobs,
    dst: &'a MariaDb,
    task: &'static str,
    backup: Vec<u8>,
    want: Snapshot,
    probes: Probes,
}

impl Reseed<'_> {
    /// Submit the task, send the backup when the job listens; the job must succeed and the
    /// target hold [`Reseed::want`], answer [`Reseed::probes`] and pass `CHECK TABLE`.
    /// Returns the job's result.
    fn run(&self, context: &str) -> String {
        let (row, out) = run_inbound(&self.d, self.dst, self.task, &self.backup, WAIT);
        assert!(row.succeeded(), "{context}: {row:?}\n{}", stderr(&out));
        Snapshot::of(self.dst).assert_equals(&self.want, context);
        assert_eq!(
            schema_fixture::probe(self.dst),
            self.probes,
            "{context}: the objects do not work as on the source"
        );
        schema_fixture::assert_tables_check(self.dst);
        row.result_text().to_string()
    }
}

/// Make `dst` a replica of `src` (default connection, GTID), started.
fn replicate_from(dst: &MariaDb, src: &MariaDb) {
    dst.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
         MASTER_USE_GTID=slave_pos; START SLAVE",
        src.port()
    ));
}

/// Replace the job queue of `dst` (the legacy layout the host created) by `variant`'s.
fn use_layout(dst: &MariaDb, variant: &str) {
    dst.exec("SET SESSION sql_log_bin=0; DROP TABLE replication_manager_schema.jobs");
    create_jobs_table(dst, variant);
}

/// The source advances so that its backup GTID is not empty: one write the replica
/// replays once replication resumes.
fn source_write(src: &MariaDb, id: u32) {
    src.exec(&format!(
        "INSERT INTO {MAIN}.myisam_t (id, b) VALUES ({id}, 'replicated')"
    ));
}

/// Replication on `dst` runs from `gtid` on: `gtid_slave_pos` is it, and a write on `src`
/// after the backup reaches `dst`.
fn assert_replicates(dst: &MariaDb, src: &MariaDb, gtid: &str, id: u32) {
    assert_eq!(
        dst.query_value("SELECT @@gtid_slave_pos")
            .unwrap_or_default(),
        gtid
    );
    source_write(src, id);
    wait_for(
        "the replica to apply a write made after the restore",
        WAIT,
        || {
            dst.query_value(&format!(
                "SELECT COUNT(*) FROM {MAIN}.myisam_t WHERE id={id}"
            ))
            .filter(|n| n == "1")
        },
    );
}

/// The result says what happened to the MEMORY table and counts the objects it created.
fn assert_physical_result(result: &str) {
    assert!(
        result.contains("4 views, 4 triggers, 3 routines, 2 events, 1 sequence"),
        "the result does not count the objects: {result}"
    );
    assert!(
        result.contains(&format!(
            "MEMORY tables restored empty, as after a restart: {MAIN}.mem"
        )),
        "the result does not say the MEMORY table is empty: {result}"
    );
    assert!(!result.contains("START SLAVE failed"), "{result}");
}

/// `dst`'s `gtid_slave_pos` is `gtid`.
fn assert_position(dst: &MariaDb, gtid: &str) {
    let pos = dst.query_value("SELECT @@gtid_slave_pos");
    assert_eq!(pos.unwrap_or_default(), gtid);
}

/// The plugin directory and staging directory of a reseed test.
fn setup() -> (tempfile::TempDir, tempfile::TempDir) {
    (
        plugin_dir(&[plugin_file("reseed")]),
        tempfile::tempdir().unwrap(),
    )
}

/// Online physical reseed (a) into an empty node, legacy layout; (b) into the same node
/// after it diverged, replicating from the source, state layout.
#[test]
fn online_reseed_restores_every_object() {
    let src = source();
    let (backup, gtid) = xbstream_backup(&src);
    let dst = node(2);
    let (plugins, staging) = setup();
    let r = Reseed {
        d: inbound_dbjobs(&dst, plugins.path(), staging.path()),
        dst: &dst,
        task: "reseedmariabackup",
        backup,
        want: Snapshot::of(&src).after_restart().on_a_replica(),
        probes: schema_fixture::probe(&src),
    };

    // (a) An empty node without replication: nothing to start, and the result says so.
    let result = r.run("online, empty node");
    assert_physical_result(&result);
    assert!(result.contains("no replication configured"), "{result}");
    assert_position(&dst, &gtid);

    // (b) The node replicates from the source, then diverges; the reseed replaces the
    //     fixture's databases, keeps the node's own, and resumes replication.
    replicate_from(&dst, &src);
    schema_fixture::diverge(&dst);
    use_layout(&dst, "state");
    let result = r.run("online, diverged node");
    assert_physical_result(&result);
    let started = format!("gtid_slave_pos={gtid}, replication started");
    assert!(result.contains(&started), "{result}");
    let kept = dst.query_value(&format!("SELECT id FROM {NODE_ONLY}.k"));
    assert_eq!(kept, Some("7".into()), "the node's own database is kept");
    assert_replicates(&dst, &src, &gtid, 100_001);
    schema_fixture::assert_writes_continue(&dst);
}

/// Full physical reseed: the same two cases; the datadir is the backup's, so the node's own
/// database is carried over into the backup's datadir.
#[test]
fn full_reseed_restores_every_object() {
    let src = source();
    let (backup, gtid) = xbstream_backup(&src);
    let dst = node(2);
    let scripts = ServiceScripts::new(&dst); // after dst: dropped first
    let (plugins, staging) = setup();
    let r = Reseed {
        d: inbound_dbjobs(&dst, plugins.path(), staging.path())
            .set("restore_mode", "full")
            .set("service_stop_command", scripts.stop.to_str().unwrap())
            .set("service_start_command", scripts.start.to_str().unwrap())
            .set("service_wait_timeout", "60"),
        dst: &dst,
        task: "reseedmariabackup",
        backup,
        want: Snapshot::of(&src).after_restart().on_a_replica(),
        probes: schema_fixture::probe(&src),
    };

    let result = r.run("full, empty node");
    assert!(result.starts_with("reseed (full restore) done"), "{result}");
    assert_physical_result(&result);
    assert!(result.contains("no replication configured"), "{result}");
    assert_position(&dst, &gtid);

    // (b) The node replicates from the source, then diverges. A full restore replaces the
    //     datadir, master.info with it: the result says the connection must be set up again.
    replicate_from(&dst, &src);
    schema_fixture::diverge(&dst);
    use_layout(&dst, "state");
    let result = r.run("full, diverged node");
    assert_physical_result(&result);
    let lost = "the node's replication connections ('') are not in the restored datadir";
    assert!(result.contains(lost), "{result}");
    let kept = dst.query_value(&format!("SELECT id FROM {NODE_ONLY}.k"));
    assert_eq!(
        kept,
        Some("7".into()),
        "the node's own database is carried over into the restored datadir"
    );
    assert_position(&dst, &gtid);
    schema_fixture::assert_writes_continue(&dst);
    drop(scripts);
}

/// Logical reseed of a dump of the fixture: the same two cases. A dump carries the MEMORY
/// table's rows, so they come back.
#[test]
fn logical_reseed_restores_every_object() {
    let src = source();
    // --dump-history: without it a dump holds only the current rows of a versioned table.
    let (backup, gtid) = gzip_dump(&src, &["--dump-history", "--databases", MAIN, OTHER]);
    let dst = node(2);
    let (plugins, staging) = setup();
    let r = Reseed {
        d: inbound_dbjobs(&dst, plugins.path(), staging.path()),
        dst: &dst,
        task: "reseedmysqldump",
        backup,
        want: Snapshot::of(&src).on_a_replica(),
        probes: schema_fixture::probe(&src),
    };

    let result = r.run("logical, empty node");
    assert!(result.contains("no replication configured"), "{result}");
    assert!(!result.contains("START SLAVE failed"), "{result}");
    assert_position(&dst, &gtid);

    replicate_from(&dst, &src);
    schema_fixture::diverge(&dst);
    use_layout(&dst, "state");
    let result = r.run("logical, diverged node");
    assert!(result.contains("replication started"), "{result}");
    let kept = dst.query_value(&format!("SELECT id FROM {NODE_ONLY}.k"));
    assert_eq!(kept, Some("7".into()), "the node's own database is kept");
    assert_replicates(&dst, &src, &gtid, 100_002);
    schema_fixture::assert_writes_continue(&dst);
}
