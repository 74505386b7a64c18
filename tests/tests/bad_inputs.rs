//! End to end: the inputs fuzzing found mishandled (`tests/bad-inputs/`, README there), sent
//! as replication-manager would to a real `dbjobs run` with the real reseed plugin, against a
//! throwaway server that holds data of its own.
//!
//! Every damaged or cut stream must be refused before anything touches the server: the job
//! fails with a result that names the problem, and the target's data is what it was (the
//! rows of every table, compared by sorted-row hashes, and its views, triggers, routines and
//! events). A dump of several gzip members is received and applied whole; of the dumps
//! crafted to blow up the dump plan, the one without a database section is refused (a
//! logical restore builds every database aside, which needs the dump's sections) and the
//! other applied in one session, with the plan's reason in the log.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use dbjobs_tests::fixtures::{assert_staging_empty, inbound_dbjobs, node, run_inbound, stderr};
use dbjobs_tests::sender::JobRow;
use dbjobs_tests::{plugin_dir, plugin_file, Dbjobs, MariaDb};

const WAIT: Duration = Duration::from_secs(180);

/// A file of `tests/bad-inputs/`.
fn bad_input(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bad-inputs")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A target node with data of its own: InnoDB and MyISAM tables, a view, a trigger, a
/// procedure and an event, in the database names the bad inputs use (`app`, `a`).
fn target() -> MariaDb {
    let t = node(2);
    t.exec(
        "SET SESSION sql_log_bin=0; SET SESSION max_recursive_iterations=100000;
         CREATE DATABASE app; CREATE DATABASE a;
         CREATE TABLE app.c (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB;
         CREATE TABLE app.p (id INT PRIMARY KEY, c INT, FOREIGN KEY (c) REFERENCES app.c(id)) ENGINE=InnoDB;
         CREATE TABLE app.empty (id INT) ENGINE=MyISAM;
         CREATE TABLE a.t (id INT PRIMARY KEY, b BLOB) ENGINE=MyISAM;
         INSERT INTO app.c WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<2000)
           SELECT i, MD5(i) FROM s;
         INSERT INTO app.p SELECT id, id FROM app.c WHERE id % 3 = 0;
         INSERT INTO a.t VALUES (1, UNHEX('00ff10')), (2, NULL);
         CREATE VIEW app.v AS SELECT id FROM app.c WHERE id < 10;
         CREATE TRIGGER app.p_ai AFTER INSERT ON app.p FOR EACH ROW SET @x = NEW.id;
         CREATE PROCEDURE app.pr() SELECT 1;
         CREATE EVENT app.e ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM app.p;",
    );
    t
}

/// What the user checks to know the server was not touched: per table outside the system
/// schemas (and the job queue), a hash of its rows sorted (CHECKSUM TABLE is unstable with
/// some column types), and the list of its views, triggers, routines and events.
fn data_state(server: &MariaDb) -> BTreeMap<String, String> {
    let user = "NOT IN ('mysql','performance_schema','information_schema','sys','replication_manager_schema')";
    let mut out = BTreeMap::new();
    let tables = server.query(&format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_TYPE='BASE TABLE' AND TABLE_SCHEMA {user} ORDER BY 1, 2"
    ));
    for row in tables {
        let (db, table) = (row[0].clone().unwrap(), row[1].clone().unwrap());
        let q = |s: &str| s.replace('`', "``");
        let mut rows = server.query(&format!("SELECT * FROM `{}`.`{}`", q(&db), q(&table)));
        rows.sort();
        let mut h = DefaultHasher::new();
        rows.hash(&mut h);
        out.insert(
            format!("table {db}.{table}"),
            format!("{} rows, {:016x}", rows.len(), h.finish()),
        );
    }
    for (kind, sql) in [
        ("views", format!("SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA {user}")),
        ("triggers", format!("SELECT TRIGGER_SCHEMA, TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA {user}")),
        ("routines", format!("SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA {user}")),
        ("events", format!("SELECT EVENT_SCHEMA, EVENT_NAME, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA {user}")),
        ("databases", format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME {user}")),
    ] {
        let mut rows = server.query(&sql);
        rows.sort();
        out.insert(kind.to_string(), format!("{rows:?}"));
    }
    out
}

/// The harness pieces one test needs: the target, dbjobs with the reseed plugin, the staging
/// directory (kept alive with them).
struct Node {
    server: MariaDb,
    dbjobs: Dbjobs,
    staging: tempfile::TempDir,
    _plugins: tempfile::TempDir,
}

fn reseed_node() -> Node {
    let server = target();
    let plugins = plugin_dir(&[plugin_file("reseed")]);
    let staging = tempfile::tempdir().unwrap();
    let dbjobs = inbound_dbjobs(&server, plugins.path(), staging.path()).set("apply_parallel", "3");
    Node {
        server,
        dbjobs,
        staging,
        _plugins: plugins,
    }
}

impl Node {
    /// Run `task` with `bytes` sent to it; returns the row and dbjobs' log.
    fn reseed(&self, task: &str, bytes: &[u8]) -> (JobRow, String) {
        let (row, out) = run_inbound(&self.dbjobs, &self.server, task, bytes, WAIT);
        (row, stderr(&out))
    }

    /// Send `bytes` to `task`: the job must fail with a result containing `says`, before
    /// anything touched the server.
    fn assert_refused(&self, task: &str, name: &str, bytes: &[u8], says: &str) {
        let before = data_state(&self.server);
        let (row, log) = self.reseed(task, bytes);
        let result = row.result_text();
        assert!(row.finished() && !row.succeeded(), "{name}: {row:?}\n{log}");
        // The restore engine's errors are still text here (typed errors carry the state):
        // its message says the server was not touched; the data below proves it.
        let untouched = [
            "server untouched",
            "the server was not touched",
            "nothing was applied",
        ];
        assert!(
            result.starts_with("failed, ") && untouched.iter().any(|u| result.contains(u)),
            "{name}: {result}"
        );
        assert!(result.contains(says), "{name}: {result}\n{log}");
        assert!(
            log.contains(says),
            "{name}: the log does not say it:\n{log}"
        );
        assert_eq!(
            data_state(&self.server),
            before,
            "{name} touched the server"
        );
        assert_staging_empty(self.staging.path());
    }
}

#[test]
fn damaged_and_cut_backup_streams_are_refused_before_the_server_is_touched() {
    let node = reseed_node();
    for (name, says) in [
        ("cut_between_files.xb", "without xtrabackup_checkpoints and xtrabackup_info, which the backup tool sends last: it was cut between two files"),
        ("cut_9_bytes_into_next_header.xb", "the stream was cut short 9 bytes into a chunk header"),
        ("flipped_magic_of_last_file.xb", "corrupt at byte 3002 of 3380: a damaged chunk header"),
        ("duplicated_E_chunk.xb", "a second end-of-file chunk for backup-my.cnf"),
        ("empty_file_E_path_flipped.xb", "`pp/empty.CSV is an empty file in a directory that nothing else of the stream is in: its path is damaged"),
        ("deleted_P_chunk.xb", "app/c.frm is empty, which a file of its kind never is: its data chunk is missing"),
        ("stale_tail_slow.xb", "a second end-of-file chunk for a ("),
    ] {
        let bytes = bad_input(&format!("xbstream/{name}"));
        node.assert_refused("reseedmariabackup", name, &bytes, says);
    }
}

/// `bytes` gzip'd as one member.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn every_gzip_member_of_a_dump_is_applied() {
    let node = reseed_node();
    // The file fuzzing found: `SELECT 1;` in one member, `SELECT 2;` in the next: both are
    // received (60 bytes), where main staged the first only and took the second for padding.
    // It is no dump of databases (no `-- Current Database:` section), so it cannot be built
    // aside: refused after the receive, untouched.
    let (row, log) = node.reseed("reseedmysqldump", &bad_input("gzip/two_members.sql.gz"));
    assert!(!row.succeeded(), "{row:?}\n{log}");
    assert!(log.contains(": received 60 B from "), "{log}");
    assert!(
        log.contains("(20 B of SQL, 0 stale bytes after the gzip data)"),
        "{log}"
    );
    let result = row.result_text();
    assert!(
        result.contains("no `-- Current Database:` marker"),
        "{result}"
    );

    // Members that change data, a dump cut in three anywhere: every row of each arrives,
    // and stale padding after the last member is still accepted.
    let mut dump = gzip(b"-- Current Database: `members`\nCREATE DATABASE `members`;\nUSE `members`;\n-- Table structure for table `t`\nCREATE TABLE t (id INT PRIMARY KEY);\nINSERT INTO t VALUES (1);\nINSERT INTO t");
    dump.extend(gzip(b" VALUES (2);\n"));
    dump.extend(gzip(b"INSERT INTO t VALUES (3);\n"));
    dump.extend((0..9000u32).map(|i| (i * 7 % 251) as u8));
    let (row, log) = node.reseed("reseedmysqldump", &dump);
    assert!(row.succeeded(), "{row:?}\n{log}");
    assert!(
        row.result_text().contains("9000 stale bytes ignored"),
        "{row:?}"
    );
    assert_eq!(
        node.server.query("SELECT id FROM members.t ORDER BY id"),
        vec![
            vec![Some("1".into())],
            vec![Some("2".into())],
            vec![Some("3".into())]
        ]
    );

    // A damaged second member is refused, before anything is applied.
    let mut damaged = gzip(b"INSERT INTO members.t VALUES (4);\n");
    let mut second = gzip(b"INSERT INTO members.t VALUES (5);\n");
    let mid = second.len() / 2;
    second[mid] ^= 0x55;
    damaged.extend(second);
    node.assert_refused(
        "reseedmysqldump",
        "a damaged second member",
        &damaged,
        "the gzip data is corrupt",
    );
}

#[test]
fn dumps_crafted_against_the_plan_are_refused_or_applied_in_one_session() {
    let node = reseed_node();
    let before = data_state(&node.server);
    // 48 MiB of header comment lines: no database section, so nothing to build aside:
    // refused, untouched.
    node.assert_refused(
        "reseedmysqldump",
        "plan_mem_header_lines",
        &bad_input("gzip/plan_mem_header_lines.sql.gz"),
        "no `-- Current Database:` marker",
    );
    assert_staging_empty(node.staging.path());

    // 64 MiB of table markers in one database: too big a plan, so one session, whose first
    // statement (the `x` lines between the markers) the server refuses: in the shadow
    // database, which is dropped again, so the server is untouched.
    let (row, log) = node.reseed(
        "reseedmysqldump",
        &bad_input("gzip/plan_mem_sections.sql.gz"),
    );
    assert!(log.contains("applying the dump in one session"), "{log}");
    assert!(
        log.contains("planning it would take more than 32 MiB of memory"),
        "{log}"
    );
    assert!(!row.succeeded(), "{row:?}");
    let result = row.result_text();
    assert!(result.contains("the dump failed to apply"), "{row:?}");
    assert!(result.starts_with("failed, server untouched: "), "{row:?}");
    assert_eq!(data_state(&node.server), before);
    assert_staging_empty(node.staging.path());
}
