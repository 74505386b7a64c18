//! End to end: `reseedmysqldump` / `flashbackmysqldump` against real servers over real TCP.
//!
//! A source server holds data (InnoDB and MyISAM tables, a view, a trigger, a procedure, an
//! event); `mariadb-dump --gtid --master-data` of it is gzip'd here and sent, as
//! replication-manager would, to `dbjobs run` on a target server, which must restore it
//! without binlogging the replay and set `gtid_slave_pos` from the dump. Broken transfers
//! (cut short, nobody connecting) must leave the target untouched, strangers must be refused,
//! and a dump of every database must not destroy the job queue holding the running job.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use dbjobs_tests::fixtures::{
    assert_staging_empty, binlog_state, finish, gzip, gzip_dump, inbound_dbjobs, node, run_inbound,
    sql_dump, stderr, submit_job,
};
use dbjobs_tests::sender::{
    checksums, create_jobs_table, send_when_waiting, wait_job_finished, JobRow,
};
use dbjobs_tests::{free_port, plugin_dir, plugin_file, wait_for, MariaDb};

const LOCAL: [u8; 4] = [127, 0, 0, 1];
const STRANGER: [u8; 4] = [127, 0, 0, 2];
const WAIT: Duration = Duration::from_secs(120);

/// A source server with one of every kind of object the restore must carry over.
fn source() -> MariaDb {
    let s = node(1);
    s.exec(
        "SET SESSION max_recursive_iterations=100000; CREATE DATABASE app; CREATE DATABASE shop;
         CREATE TABLE app.t1 (id INT PRIMARY KEY, v VARCHAR(64), n INT) ENGINE=InnoDB;
         CREATE TABLE app.audit (id INT AUTO_INCREMENT PRIMARY KEY, t1_id INT) ENGINE=InnoDB;
         CREATE TABLE shop.m (id INT PRIMARY KEY, b BLOB) ENGINE=MyISAM;
         INSERT INTO app.t1 WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<6000)
           SELECT i, MD5(i), i*7 FROM s;
         INSERT INTO shop.m WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<500)
           SELECT i, UNHEX(SHA2(i, 256)) FROM s;
         CREATE VIEW app.v AS SELECT id, v FROM app.t1 WHERE n % 2 = 0;
         CREATE TRIGGER app.t1_ai AFTER INSERT ON app.t1 FOR EACH ROW INSERT INTO app.audit (t1_id) VALUES (NEW.id);
         CREATE PROCEDURE app.p() SELECT COUNT(*) FROM app.t1;
         CREATE EVENT app.e ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM app.audit;
         INSERT INTO app.t1 VALUES (100000, 'via trigger', 1);",
    );
    s
}

/// A target server (another server id, binlog on as on a real node).
fn target() -> MariaDb {
    node(2)
}

/// Every object of [`source`] exists on `server`, and the view shows what it shows on `src`.
fn assert_objects(server: &MariaDb, src: &MariaDb) {
    let count = |sql: &str| server.query_value(sql).unwrap_or_default();
    assert_eq!(
        count("SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA='app' AND TABLE_NAME='v'"),
        "1"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='app' AND ROUTINE_NAME='p'"),
        "1"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='app' AND TRIGGER_NAME='t1_ai'"),
        "1"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA='app' AND EVENT_NAME='e'"),
        "1"
    );
    assert_eq!(
        count("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='m'"),
        "MyISAM"
    );
    assert_eq!(
        server.query("SELECT * FROM app.v ORDER BY id"),
        src.query("SELECT * FROM app.v ORDER BY id")
    );
}

/// `dst` holds the source's data and objects, and its replication position is the dump's
/// `gtid`.
fn assert_restored(dst: &MariaDb, src: &MariaDb, gtid: &str) {
    assert_eq!(checksums(dst), checksums(src));
    assert_objects(dst, src);
    assert_eq!(
        dst.query_value("SELECT @@gtid_slave_pos")
            .unwrap_or_default(),
        gtid
    );
}

#[test]
fn a_dump_is_restored_in_the_legacy_and_state_layouts() {
    let src = source();
    let dst = target();
    let plugins = plugin_dir(&[plugin_file("reseed"), plugin_file("flashback")]);
    let backup = tempfile::tempdir().unwrap();
    let d = inbound_dbjobs(&dst, plugins.path(), backup.path());

    // 1. Legacy layout (created by the host); a stranger connects first and is refused.
    let port = free_port();
    let id = submit_job(&d, "reseedmysqldump", port);
    let before = binlog_state(&dst);
    let (dump, gtid) = gzip_dump(&src, &["--databases", "app", "shop"]);
    let child = d.spawn(&["run"]);
    let stranger = send_when_waiting(&dst, id, port, IpAddr::from(STRANGER), b"not me", WAIT);
    assert!(
        !matches!(&stranger, Err(e) if e.kind() == std::io::ErrorKind::TimedOut),
        "{stranger:?}"
    );
    let sent = send_when_waiting(&dst, id, port, IpAddr::from(LOCAL), &dump, WAIT).unwrap();
    assert_eq!(sent, dump.len());
    let out = finish(child, WAIT);
    let log = stderr(&out);
    assert!(out.status.success(), "dbjobs run failed:\n{log}");
    assert!(log.contains("refused a connection from 127.0.0.2"), "{log}");

    let row: JobRow = wait_job_finished(&dst, id, WAIT);
    assert_eq!(row.done, 1);
    assert!(row.end.is_some());
    let result = row.result.clone().unwrap_or_default();
    assert!(
        result.starts_with("reseed from a mysqldump done"),
        "{result}"
    );
    assert!(result.contains("from 127.0.0.1:"), "{result}");
    assert!(
        result.contains(&format!("gtid_slave_pos {gtid}")),
        "{result}"
    );
    assert!(!checksums(&dst).is_empty());
    assert_restored(&dst, &src, &gtid);
    assert_eq!(binlog_state(&dst), before, "the replay went to the binlog");
    assert_staging_empty(backup.path());

    // 2. State layout, flashback, with the 16 KiB of stale bytes repman's sender appends, on
    //    a node that replicates from the source: replication is stopped for the replay and
    //    started again from the dump's position.
    src.exec("CREATE USER repl@'127.0.0.1'; GRANT REPLICATION SLAVE ON *.* TO repl@'127.0.0.1'");
    dst.exec(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
         MASTER_USE_GTID=slave_pos; START SLAVE",
        src.port()
    ));
    src.exec("INSERT INTO app.t1 VALUES (200000, 'second', 2); DELETE FROM shop.m WHERE id < 100");
    dst.exec("SET SESSION sql_log_bin=0; DROP TABLE replication_manager_schema.jobs");
    create_jobs_table(&dst, "state");
    let before = binlog_state(&dst);
    let (mut dump, gtid) = gzip_dump(&src, &["--databases", "app", "shop"]);
    dump.extend((0..16383u32).map(|i| (i * 31 % 251) as u8));
    let (row, out) = run_inbound(&d, &dst, "flashbackmysqldump", &dump, WAIT);
    assert!(out.status.success(), "dbjobs run failed:\n{}", stderr(&out));
    assert_eq!((row.state, row.done), (Some(3), 1), "{row:?}");
    assert!(row.end.is_some());
    let result = row.result.unwrap_or_default();
    assert!(
        result.starts_with("flashback from a mysqldump done"),
        "{result}"
    );
    assert!(result.contains("16383 stale bytes ignored"), "{result}");
    assert_restored(&dst, &src, &gtid);
    assert_eq!(binlog_state(&dst), before, "the replay went to the binlog");
    assert_staging_empty(backup.path());
    assert!(result.contains("replication started"), "{result}");
    src.exec("INSERT INTO app.t1 VALUES (300000, 'replicated', 3)");
    wait_for("the replica to apply a new row", WAIT, || {
        dst.query_value("SELECT COUNT(*) FROM app.t1 WHERE id=300000")
            .filter(|n| n == "1")
    });
}

#[test]
fn broken_transfers_leave_the_target_untouched() {
    let src = source();
    let dst = target();
    dst.exec(
        "SET SESSION sql_log_bin=0; CREATE DATABASE app; CREATE TABLE app.t1 (id INT PRIMARY KEY, v VARCHAR(64), n INT);
         INSERT INTO app.t1 VALUES (1, 'target', 1)",
    );
    let plugins = plugin_dir(&[plugin_file("reseed")]);
    let backup = tempfile::tempdir().unwrap();
    let d = inbound_dbjobs(&dst, plugins.path(), backup.path());
    let data_before: BTreeMap<String, String> = checksums(&dst);
    let gtid_before = dst.query_value("SELECT @@gtid_slave_pos");

    // 1. The stream is cut at 50%: the job fails, nothing was applied.
    let (dump, _) = gzip_dump(&src, &["--databases", "app", "shop"]);
    assert!(
        dump.len() > 64 * 1024,
        "the dump is too small to cut meaningfully"
    );
    let cut = &dump[..dump.len() / 2];
    let (row, out) = run_inbound(&d, &dst, "reseedmysqldump", cut, WAIT);
    assert!(!out.status.success(), "a cut stream must fail the job");
    assert_eq!(row.done, 1);
    assert!(row.end.is_some());
    let result = row.result.unwrap_or_default();
    assert!(result.starts_with("failed, server untouched: "), "{result}");
    assert!(result.contains("cut short"), "{result}");
    assert_eq!(checksums(&dst), data_before);
    assert_eq!(dst.query_value("SELECT @@gtid_slave_pos"), gtid_before);
    assert_staging_empty(backup.path());

    // 2. Nobody connects: the job fails at the deadline and the port is free again.
    let port = free_port();
    let id = submit_job(&d, "reseedmysqldump", port);
    let out = d.clone().set("receive_accept_timeout", "3").run(&["run"]);
    assert_ne!(out.status, 0, "{}", out.stderr);
    let row = wait_job_finished(&dst, id, WAIT);
    let result = row.result.unwrap_or_default();
    assert!(result.contains("nobody connected"), "{result}");
    assert!(row.end.is_some());
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
    assert_eq!(checksums(&dst), data_before);
    assert_staging_empty(backup.path());

    // 3. A complete stream that is not a dump of databases (no `-- Current Database:`
    //    section): it cannot be built aside, so it is refused before anything is applied.
    let bad = gzip(b"-- a dump\nSELECT 1;\nSELEC broken;\nSELECT 2;\n");
    let (row, out) = run_inbound(&d, &dst, "reseedmysqldump", &bad, WAIT);
    assert!(!out.status.success());
    let result = row.result.unwrap_or_default();
    assert!(result.starts_with("failed, server untouched: "), "{result}");
    assert!(
        result.contains("no `-- Current Database:` marker"),
        "{result}"
    );
    assert!(
        result.contains("--databases or --all-databases"),
        "{result}"
    );
    assert_eq!(checksums(&dst), data_before);
    assert_staging_empty(backup.path());
}

#[test]
fn a_dump_of_every_database_keeps_the_job_queue() {
    let src = source();
    // The source has a queue of its own, with other rows: it must not replace the target's.
    create_jobs_table(&src, "payload");
    src.exec(
        "SET SESSION sql_log_bin=0; INSERT INTO replication_manager_schema.jobs (task, done, state)
         VALUES ('mariabackup', 1, 4), ('optimize', 1, 4)",
    );
    let dst = target();
    create_jobs_table(&dst, "payload");
    let plugins = plugin_dir(&[plugin_file("reseed")]);
    let backup = tempfile::tempdir().unwrap();
    let d = inbound_dbjobs(&dst, plugins.path(), backup.path());
    let (dump, gtid) = gzip_dump(&src, &["--all-databases", "--add-drop-database"]);
    let (row, out) = run_inbound(&d, &dst, "reseedmysqldump", &dump, WAIT);
    assert!(out.status.success(), "dbjobs run failed:\n{}", stderr(&out));
    assert_eq!((row.state, row.done), (Some(3), 1), "{row:?}");
    let result = row.result.unwrap_or_default();
    assert!(
        result.contains("replication_manager_schema skipped"),
        "{result}"
    );
    // The queue is the target's own: only the job row, no row of the source's queue.
    assert_eq!(
        dst.query("SELECT id, task FROM replication_manager_schema.jobs"),
        vec![vec![
            Some(row.id.to_string()),
            Some("reseedmysqldump".into())
        ]]
    );
    let payload: serde_json::Value =
        serde_json::from_str(&row.payload.expect("payload written")).unwrap();
    assert_eq!(payload["vendor"], "mariadb");
    assert_eq!(payload["gtid"], gtid.as_str());
    assert!(payload["binLogFile"]
        .as_str()
        .unwrap()
        .starts_with("mariadb-bin."));
    assert!(payload["binLogPos"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert_restored(&dst, &src, &gtid);
}

/// [`source`] plus more databases and tables, so that a dump has table sections to spread
/// over several sessions: an InnoDB parent and child linked by a foreign key, a view over
/// both, and a MyISAM log table in a third database.
fn wide_source() -> MariaDb {
    let s = source();
    s.exec(
        "SET SESSION max_recursive_iterations=100000; CREATE DATABASE crm; CREATE DATABASE logs;
         CREATE TABLE crm.customers (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB;
         CREATE TABLE crm.orders (id INT PRIMARY KEY, customer INT NOT NULL, total INT,
           FOREIGN KEY (customer) REFERENCES crm.customers(id)) ENGINE=InnoDB;
         CREATE TABLE logs.l (id INT PRIMARY KEY, msg TEXT) ENGINE=MyISAM;
         INSERT INTO crm.customers WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<800)
           SELECT i, CONCAT('customer ', i) FROM s;
         INSERT INTO crm.orders WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<4000)
           SELECT i, 1 + i % 800, i * 3 FROM s;
         INSERT INTO logs.l WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<3000)
           SELECT i, REPEAT(MD5(i), 4) FROM s;
         CREATE VIEW crm.v_orders AS SELECT c.name, SUM(o.total) AS total
           FROM crm.customers c JOIN crm.orders o ON o.customer = c.id GROUP BY c.name;",
    );
    s
}

/// The objects [`wide_source`] adds, as on `src`.
fn assert_wide_objects(server: &MariaDb, src: &MariaDb) {
    assert_eq!(
        server.query_value(
            "SELECT REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA='crm' AND TABLE_NAME='orders'"
        ),
        Some("customers".to_string())
    );
    assert_eq!(
        server.query_value(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA='logs' AND TABLE_NAME='l'"
        ),
        Some("MyISAM".to_string())
    );
    let view = "SELECT * FROM crm.v_orders ORDER BY name";
    assert_eq!(server.query(view), src.query(view));
    assert_eq!(server.query(view).len(), 800);
}

/// Drops what a restore of [`wide_source`] created, and the replication position, without
/// binlogging it, so that the next restore starts from an empty target.
fn wipe(server: &MariaDb) {
    server.exec(
        "SET SESSION sql_log_bin=0; DROP DATABASE IF EXISTS app; DROP DATABASE IF EXISTS shop;
         DROP DATABASE IF EXISTS crm; DROP DATABASE IF EXISTS logs; SET GLOBAL gtid_slave_pos=''",
    );
    assert!(checksums(server).is_empty());
}

#[test]
fn table_sections_are_applied_in_one_or_several_sessions() {
    let src = wide_source();
    let dst = target();
    let plugins = plugin_dir(&[plugin_file("reseed")]);
    let backup = tempfile::tempdir().unwrap();
    let d = inbound_dbjobs(&dst, plugins.path(), backup.path());
    let (dump, gtid) = gzip_dump(&src, &["--databases", "app", "shop", "crm", "logs"]);
    for (parallel, says) in [
        ("1", "applied in 1 session"),
        ("3", "applied in 3 sessions"),
    ] {
        wipe(&dst);
        let before = binlog_state(&dst);
        let (row, out) = run_inbound(
            &d.clone().set("apply_parallel", parallel),
            &dst,
            "reseedmysqldump",
            &dump,
            WAIT,
        );
        let log = stderr(&out);
        assert!(out.status.success(), "apply_parallel={parallel}:\n{log}");
        assert_eq!(row.done, 1, "{row:?}");
        let result = row.result.unwrap_or_default();
        assert!(
            result.starts_with("reseed from a mysqldump done"),
            "{result}"
        );
        assert!(result.contains(says), "{result}");
        assert!(
            result.contains(&format!("gtid_slave_pos {gtid}")),
            "{result}"
        );
        if parallel != "1" {
            assert!(log.contains("applying the dump in 3 sessions"), "{log}");
        }
        assert_restored(&dst, &src, &gtid);
        assert_wide_objects(&dst, &src);
        assert_eq!(
            checksums(&dst).len(),
            6,
            "app.t1, app.audit, shop.m, crm.customers, crm.orders, logs.l"
        );
        assert_eq!(binlog_state(&dst), before, "the replay went to the binlog");
        assert_staging_empty(backup.path());
    }
}

#[test]
fn a_bad_statement_in_a_table_section_fails_with_its_dump_line() {
    let src = wide_source();
    let dst = target();
    let plugins = plugin_dir(&[plugin_file("reseed")]);
    let backup = tempfile::tempdir().unwrap();
    let d = inbound_dbjobs(&dst, plugins.path(), backup.path()).set("apply_parallel", "3");
    // The plain dump, with a broken statement after the data of logs.l.
    let dump = sql_dump(&src, &["--databases", "app", "shop", "crm", "logs"]);
    // Split by bytes: the BLOB of shop.m is dumped as raw bytes, not UTF-8.
    let mut lines: Vec<&[u8]> = dump.split_inclusive(|b| *b == b'\n').collect();
    let marker = lines
        .iter()
        .position(|l| l.starts_with(b"-- Dumping data for table `l`"))
        .expect("the data section of logs.l");
    let unlock = marker
        + lines[marker..]
            .iter()
            .position(|l| l.starts_with(b"UNLOCK TABLES;"))
            .unwrap();
    lines.insert(unlock + 1, b"SELEC broken;\n");
    let bad_line = unlock + 2; // 1-based
    let bad = gzip(&lines.concat());
    let gtid_before = dst.query_value("SELECT @@gtid_slave_pos");
    let data_before = checksums(&dst);

    let (row, out) = run_inbound(&d, &dst, "reseedmysqldump", &bad, WAIT);
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("applying the dump in 3 sessions"), "{log}");
    assert_eq!(checksums(&dst), data_before);
    assert_eq!(row.done, 1);
    let result = row.result.unwrap_or_default();
    assert!(result.starts_with("failed, "), "{result}");
    assert!(result.contains("ERROR 1064 (42000)"), "{result}");
    assert!(
        result.contains(&format!("(line {bad_line} of the dump)")),
        "{result}"
    );
    // Built aside: the error rolled the shadows back, the live data was never touched.
    assert!(result.starts_with("failed, server untouched: "), "{result}");
    assert!(
        result.contains("rolled back, live data untouched"),
        "{result}"
    );
    assert_eq!(
        dst.query_value(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '#dbjobs%'"
        ),
        Some("0".to_string())
    );
    // The objects never ran: no position was set, no view created.
    assert_eq!(dst.query_value("SELECT @@gtid_slave_pos"), gtid_before);
    assert_eq!(
        dst.query_value("SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA='crm'"),
        Some("0".to_string())
    );
    // No client is left running: the other sessions were stopped.
    wait_for("the restore's sessions to end", WAIT, || {
        dst.query_value(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
             AND COMMAND NOT IN ('Daemon', 'Binlog Dump') AND USER <> 'system user'",
        )
        .filter(|n| n == "0")
    });
    assert_staging_empty(backup.path());
}
