//! A database set with every kind of object a restore must carry over, and the comparisons
//! a user makes between the server a backup was taken on and the node it was restored to.
//!
//! [`create`] builds two databases on a server: [`MAIN`] and [`OTHER`] (a name with a dash,
//! a space and non-ASCII characters). Between them: InnoDB, Aria, MyISAM and MEMORY tables,
//! a table with invisible, stored and virtual generated columns (an index on the virtual
//! one) and an `AUTO_INCREMENT` left above its highest row, FULLTEXT and SPATIAL indexes, a
//! system-versioned table with history, partitioned and subpartitioned tables, a sequence
//! (start 100, increment 5, next value 5100), a view of a view, a cross-database view and
//! foreign key, a view and routines whose result depends on the collation or `sql_mode` they
//! were defined with, triggers ordered with `FOLLOWS` (created in another order than they
//! fire), an enabled and a disabled event, and tables whose names hold a space and non-ASCII
//! characters.
//!
//! [`Snapshot::of`] reads what a user would compare: per table its definition and a hash of
//! its sorted rows (every column, invisible and history ones included; `CHECKSUM TABLE` is
//! unstable with stored generated columns), `AUTO_INCREMENT` values, and the lists of views,
//! triggers (with their firing order), routines, events (with their status) and sequences
//! (with their state), each with the session it was defined in. A backup taken while the
//! source runs is compared with [`Snapshot::after_restart`] (MEMORY tables have no data
//! file) and [`Snapshot::on_a_replica`] (a reseeded node runs no events).
//! [`probe`] runs the queries that show the objects work (a full-text and a spatial search,
//! the views, the functions), [`assert_writes_continue`] the writes that show a restored
//! node continues where the backup was.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::server::MariaDb;

/// The first database of the fixture.
pub const MAIN: &str = "fx_main";
/// The second database: a dash, a space and non-ASCII characters in its name.
pub const OTHER: &str = "fx-ünï cödé";
/// The databases of the fixture.
pub const DATABASES: [&str; 2] = [MAIN, OTHER];

/// What `NEXTVAL(fx_main.seq)` returns first on a server started on a backup of the fixture.
pub const SEQUENCE_NEXT: &str = "5100";
/// The id the next row of `fx_main.customers` gets: rows above 180 were deleted.
pub const CUSTOMERS_NEXT_ID: &str = "201";

/// Quote an identifier for the fixture's SQL.
fn q(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Build the fixture on `server` (not binlogged, like data a node got by replication).
///
/// Rows of tables with an `AUTO_INCREMENT` get explicit ids: a bulk `INSERT .. SELECT`
/// reserves values in memory that a restart, and so a backup, does not keep, and the
/// running source would then show a counter no backup of it has.
///
/// # Panics
/// On any SQL error.
pub fn create(server: &MariaDb) {
    let other = q(OTHER);
    server.exec(&format!(
        "SET SESSION sql_log_bin=0, max_recursive_iterations=100000;
         CREATE DATABASE {MAIN} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
         CREATE DATABASE {other} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
         USE {MAIN};
         CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL,
           secret INT INVISIBLE DEFAULT 42,
           name_len INT AS (CHAR_LENGTH(name)) STORED,
           name_upper VARCHAR(64) AS (UPPER(name)) VIRTUAL, KEY (name_upper)) ENGINE=InnoDB;
         INSERT INTO customers (id, name) SELECT seq, CONCAT('name-', seq) FROM seq_1_to_200;
         DELETE FROM customers WHERE id > 180;
         UPDATE customers SET secret = id WHERE id % 10 = 0;
         CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL,
           amount DECIMAL(10,2), note VARCHAR(32),
           FOREIGN KEY (customer_id) REFERENCES customers (id)) ENGINE=InnoDB;
         INSERT INTO orders (id, customer_id, amount, note) SELECT seq, seq % 180 + 1, seq / 7, 'seed'
           FROM seq_1_to_500;
         CREATE TRIGGER orders_1 BEFORE INSERT ON orders FOR EACH ROW
           SET NEW.note = CONCAT(IFNULL(NEW.note, ''), '1');
         CREATE TRIGGER orders_3 BEFORE INSERT ON orders FOR EACH ROW FOLLOWS orders_1
           SET NEW.note = CONCAT(NEW.note, '3');
         CREATE TRIGGER orders_2 BEFORE INSERT ON orders FOR EACH ROW FOLLOWS orders_1
           SET NEW.note = CONCAT(NEW.note, '2');
         CREATE TABLE docs (id INT PRIMARY KEY, title VARCHAR(200), body TEXT,
           FULLTEXT KEY ft (title, body)) ENGINE=InnoDB;
         INSERT INTO docs SELECT seq, CONCAT('title ', seq),
           CONCAT_WS(' ', IF(seq % 3 = 0, 'quick', 'slow'), 'brown fox', MD5(seq)) FROM seq_1_to_300;
         CREATE TABLE places (id INT PRIMARY KEY, pt POINT NOT NULL, SPATIAL INDEX (pt)) ENGINE=InnoDB;
         INSERT INTO places SELECT seq, POINT(seq % 100, seq DIV 100) FROM seq_1_to_2000;
         CREATE TABLE versioned (id INT PRIMARY KEY, v INT) ENGINE=InnoDB WITH SYSTEM VERSIONING;
         INSERT INTO versioned SELECT seq, seq FROM seq_1_to_50;
         UPDATE versioned SET v = v * 10 WHERE id <= 20;
         DELETE FROM versioned WHERE id > 45;
         CREATE TABLE aria_t (id INT PRIMARY KEY, s VARCHAR(200)) ENGINE=Aria;
         INSERT INTO aria_t SELECT seq, MD5(seq) FROM seq_1_to_3000;
         UPDATE aria_t SET s = CONCAT(s, REPEAT('x', 100));
         CREATE TABLE myisam_t (id INT AUTO_INCREMENT PRIMARY KEY, b BLOB) ENGINE=MyISAM;
         INSERT INTO myisam_t (b) SELECT UNHEX(SHA2(seq, 256)) FROM seq_1_to_400;
         CREATE TABLE mem (id INT PRIMARY KEY, s VARCHAR(20)) ENGINE=MEMORY;
         INSERT INTO mem SELECT seq, CONCAT('m', seq) FROM seq_1_to_25;
         CREATE SEQUENCE seq START WITH 100 INCREMENT BY 5;
         DO NEXTVAL(seq);
         CREATE TABLE parts (id INT PRIMARY KEY, x INT) ENGINE=InnoDB
           PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100),
             PARTITION p1 VALUES LESS THAN (1000), PARTITION pmax VALUES LESS THAN MAXVALUE);
         INSERT INTO parts SELECT seq, seq * 3 FROM seq_1_to_1500;
         CREATE TABLE subparts (id INT NOT NULL, d DATE NOT NULL, PRIMARY KEY (id, d)) ENGINE=InnoDB
           PARTITION BY RANGE (YEAR(d)) SUBPARTITION BY HASH (id) SUBPARTITIONS 2
           (PARTITION y2023 VALUES LESS THAN (2024), PARTITION ymax VALUES LESS THAN MAXVALUE);
         INSERT INTO subparts SELECT seq, '2023-06-01' + INTERVAL seq DAY FROM seq_1_to_800;
         CREATE VIEW v_customers AS SELECT id, name FROM customers WHERE id % 2 = 0;
         CREATE VIEW v_of_v AS SELECT COUNT(*) AS n, MAX(id) AS top FROM v_customers;
         SET NAMES utf8mb4 COLLATE utf8mb4_bin;
         CREATE VIEW v_bin AS SELECT 'a' = 'A' AS same;
         CREATE FUNCTION f_bin() RETURNS INT DETERMINISTIC RETURN 'a' = 'A';
         SET NAMES utf8mb4;
         SET SESSION sql_mode = 'PIPES_AS_CONCAT,ANSI_QUOTES';
         CREATE FUNCTION f_pipes() RETURNS VARCHAR(10) DETERMINISTIC RETURN 'a' || 'b';
         CREATE PROCEDURE p_count(OUT n INT) SELECT COUNT(*) INTO n FROM \"customers\";
         SET SESSION sql_mode = DEFAULT;
         CREATE EVENT ev_on ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00'
           DO DELETE FROM orders WHERE id < 0;
         CREATE EVENT ev_off ON SCHEDULE EVERY 1 HOUR DISABLE DO DELETE FROM orders WHERE id < 0;
         USE {other};
         CREATE TABLE `order line` (id INT PRIMARY KEY, customer_id INT NOT NULL, qty INT,
           FOREIGN KEY (customer_id) REFERENCES {MAIN}.customers (id)) ENGINE=InnoDB;
         INSERT INTO `order line` SELECT seq, seq % 180 + 1, seq % 7 FROM seq_1_to_700;
         CREATE TABLE `café` (id INT PRIMARY KEY, `crème brûlée` VARCHAR(40)) ENGINE=InnoDB;
         INSERT INTO `café` VALUES (1, 'ünïcödé ✓'), (2, 'naïve'), (3, '日本語');
         CREATE VIEW `vue ünï` AS SELECT c.name, SUM(l.qty) AS qty FROM {MAIN}.customers c
           JOIN `order line` l ON l.customer_id = c.id GROUP BY c.name;
         CREATE TRIGGER `café_bi` BEFORE INSERT ON `café` FOR EACH ROW
           SET NEW.`crème brûlée` = UPPER(NEW.`crème brûlée`);"
    ));
}

/// Make `node`'s copy of the fixture diverge from a backup taken before: rows changed and
/// added, a view and an event dropped, the sequence moved on, and a database only the node
/// has ([`NODE_ONLY`]), which a restore must keep.
///
/// # Panics
/// On any SQL error.
pub fn diverge(node: &MariaDb) {
    node.exec(&format!(
        "SET SESSION sql_log_bin=0;
         UPDATE {MAIN}.customers SET name = CONCAT(name, '-changed') WHERE id <= 20;
         DELETE FROM {MAIN}.orders WHERE id > 450;
         INSERT INTO {MAIN}.orders (customer_id, amount) VALUES (1, 99.99);
         UPDATE {MAIN}.versioned SET v = -1;
         UPDATE {MAIN}.aria_t SET s = 'changed' WHERE id < 100;
         INSERT INTO {MAIN}.parts VALUES (5000, 1);
         DO NEXTVAL({MAIN}.seq);
         DROP VIEW {MAIN}.v_of_v;
         DROP EVENT {MAIN}.ev_on;
         DELETE FROM {}.`café` WHERE id = 3;
         CREATE DATABASE {NODE_ONLY};
         CREATE TABLE {NODE_ONLY}.k (id INT PRIMARY KEY) ENGINE=InnoDB;
         INSERT INTO {NODE_ONLY}.k VALUES (7);",
        q(OTHER)
    ));
}

/// The database [`diverge`] creates on the node only.
pub const NODE_ONLY: &str = "node_only";

/// Everything [`Snapshot::of`] compares, each part keyed so that a difference names the
/// object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `db.table` -> its engine, definition (without `AUTO_INCREMENT=`) and sorted-row hash.
    pub tables: BTreeMap<String, TableState>,
    /// `db.table` -> `AUTO_INCREMENT` (tables that have one).
    pub auto_increments: BTreeMap<String, String>,
    /// `db.view` -> definition, options and the session it was defined in.
    pub views: BTreeMap<String, String>,
    /// `db.table timing event #order` -> trigger name, statement and session.
    pub triggers: BTreeMap<String, String>,
    /// `db.name (type)` -> definition, parameters and session.
    pub routines: BTreeMap<String, String>,
    /// `db.event` -> status, schedule, definition and session.
    pub events: BTreeMap<String, String>,
    /// `db.sequence` -> its row (next value, bounds, increment, cache, cycle).
    pub sequences: BTreeMap<String, String>,
}

/// One table of a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableState {
    /// Its engine.
    pub engine: String,
    /// `SHOW CREATE TABLE`, without the `AUTO_INCREMENT=` option (compared on its own).
    pub definition: String,
    /// How many rows (history rows included).
    pub rows: usize,
    /// SHA-256 over the sorted SHA-256 of each row.
    pub hash: String,
}

impl Snapshot {
    /// Read the fixture's databases on `server`.
    ///
    /// # Panics
    /// On any SQL error.
    pub fn of(server: &MariaDb) -> Snapshot {
        Snapshot {
            tables: tables(server),
            auto_increments: keyed(
                server,
                "SELECT CONCAT(table_schema, '.', table_name), auto_increment FROM information_schema.tables \
                 WHERE table_schema IN (?) AND auto_increment IS NOT NULL",
            ),
            views: keyed(
                server,
                "SELECT CONCAT(table_schema, '.', table_name), CONCAT_WS(' | ', view_definition, check_option, \
                 security_type, definer, algorithm, character_set_client, collation_connection) \
                 FROM information_schema.views WHERE table_schema IN (?)",
            ),
            triggers: keyed(
                server,
                "SELECT CONCAT(trigger_schema, '.', event_object_table, ' ', action_timing, ' ', \
                 event_manipulation, ' #', action_order), CONCAT_WS(' | ', trigger_name, action_statement, \
                 sql_mode, definer, character_set_client, collation_connection, database_collation) \
                 FROM information_schema.triggers WHERE trigger_schema IN (?)",
            ),
            routines: keyed(
                server,
                "SELECT CONCAT(r.routine_schema, '.', r.routine_name, ' (', r.routine_type, ')'), \
                 CONCAT_WS(' | ', r.routine_definition, r.dtd_identifier, r.is_deterministic, r.security_type, \
                 r.sql_data_access, r.sql_mode, r.definer, r.character_set_client, r.collation_connection, \
                 r.database_collation, (SELECT GROUP_CONCAT(CONCAT_WS(' ', p.parameter_mode, p.parameter_name, \
                 p.dtd_identifier) ORDER BY p.ordinal_position) FROM information_schema.parameters p \
                 WHERE p.specific_schema = r.routine_schema AND p.specific_name = r.routine_name)) \
                 FROM information_schema.routines r WHERE r.routine_schema IN (?)",
            ),
            events: keyed(
                server,
                "SELECT CONCAT(event_schema, '.', event_name), CONCAT_WS(' | ', status, event_definition, \
                 event_type, execute_at, interval_value, interval_field, starts, ends, on_completion, \
                 sql_mode, time_zone, definer, character_set_client, collation_connection, \
                 database_collation) FROM information_schema.events WHERE event_schema IN (?)",
            ),
            sequences: sequences(server),
        }
    }

    /// What a server started on a backup of this state holds: MEMORY tables empty, as after
    /// a restart (a physical backup has no data file of theirs).
    pub fn after_restart(mut self) -> Snapshot {
        for t in self.tables.values_mut() {
            if t.engine.eq_ignore_ascii_case("MEMORY") {
                t.rows = 0;
                t.hash = rows_hash(Vec::new());
            }
        }
        self
    }

    /// What a reseeded node holds: the enabled events disabled on the replica.
    pub fn on_a_replica(mut self) -> Snapshot {
        for e in self.events.values_mut() {
            if let Some(rest) = e.strip_prefix("ENABLED |") {
                *e = format!("SLAVESIDE_DISABLED |{rest}");
            }
        }
        self
    }

    /// Asserts that `self` (a restored node) equals `want`, part by part, so that a
    /// difference names the part and the objects.
    ///
    /// # Panics
    /// When a part differs.
    pub fn assert_equals(&self, want: &Snapshot, context: &str) {
        let tables = |s: &Snapshot| -> BTreeMap<String, String> {
            s.tables
                .iter()
                .map(|(k, t)| {
                    (
                        k.clone(),
                        format!("{} rows {} {}", t.rows, t.hash, t.engine),
                    )
                })
                .collect()
        };
        let definitions = |s: &Snapshot| -> BTreeMap<String, String> {
            s.tables
                .iter()
                .map(|(k, t)| (k.clone(), t.definition.clone()))
                .collect()
        };
        assert_eq!(tables(self), tables(want), "{context}: table contents");
        assert_eq!(
            definitions(self),
            definitions(want),
            "{context}: table definitions"
        );
        assert_eq!(
            self.auto_increments, want.auto_increments,
            "{context}: AUTO_INCREMENT"
        );
        assert_eq!(self.views, want.views, "{context}: views");
        assert_eq!(self.triggers, want.triggers, "{context}: triggers");
        assert_eq!(self.routines, want.routines, "{context}: routines");
        assert_eq!(self.events, want.events, "{context}: events");
        assert_eq!(self.sequences, want.sequences, "{context}: sequences");
    }
}

/// `IN (?)` of `sql` filled with the fixture's databases, then the rows as `key -> value`.
fn keyed(server: &MariaDb, sql: &str) -> BTreeMap<String, String> {
    let list: Vec<String> = DATABASES.iter().map(|d| format!("'{d}'")).collect();
    server
        .query(&sql.replace("IN (?)", &format!("IN ({})", list.join(","))))
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter();
            let key = r.next().flatten().unwrap_or_default();
            let value = r.next().flatten().unwrap_or_else(|| "NULL".into());
            (key, value)
        })
        .collect()
}

/// The base tables of the fixture's databases: definition and sorted-row hash.
fn tables(server: &MariaDb) -> BTreeMap<String, TableState> {
    let list: Vec<String> = DATABASES.iter().map(|d| format!("'{d}'")).collect();
    let rows = server.query(&format!(
        "SELECT table_schema, table_name, engine, table_type FROM information_schema.tables \
         WHERE table_schema IN ({}) AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED')",
        list.join(",")
    ));
    let mut out = BTreeMap::new();
    for r in rows {
        let [db, table, engine, ttype] = <[Option<String>; 4]>::try_from(r).unwrap();
        let (db, table) = (db.unwrap(), table.unwrap());
        let full = format!("{}.{}", q(&db), q(&table));
        let definition = server
            .query(&format!("SHOW CREATE TABLE {full}"))
            .remove(0)
            .remove(1)
            .unwrap_or_default();
        let (rows, hash) = table_rows(
            server,
            &db,
            &table,
            ttype.as_deref() == Some("SYSTEM VERSIONED"),
        );
        out.insert(
            format!("{db}.{table}"),
            TableState {
                engine: engine.unwrap_or_default(),
                definition: without_auto_increment(&definition),
                rows,
                hash,
            },
        );
    }
    out
}

/// `SHOW CREATE TABLE` text without its ` AUTO_INCREMENT=<n>` table option.
fn without_auto_increment(definition: &str) -> String {
    let Some(at) = definition.rfind(") ENGINE=") else {
        return definition.to_string();
    };
    let (columns, options) = definition.split_at(at);
    let options: Vec<&str> = options
        .split(' ')
        .filter(|w| !w.starts_with("AUTO_INCREMENT="))
        .collect();
    format!("{columns}{}", options.join(" "))
}

/// Every row of a table (every column, invisible ones included; history rows and their
/// period of a system-versioned one), each hashed, the hashes sorted and hashed: equal on
/// two servers when they hold the same rows. Text and binary values are compared as hex.
fn table_rows(server: &MariaDb, db: &str, table: &str, versioned: bool) -> (usize, String) {
    let columns = server.query(&format!(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_schema='{}' AND table_name='{}' ORDER BY ordinal_position",
        db.replace('\'', "''"),
        table.replace('\'', "''")
    ));
    let mut select: Vec<String> = columns
        .into_iter()
        .map(|c| {
            let (name, ty) = (c[0].clone().unwrap(), c[1].clone().unwrap_or_default());
            if is_plain_type(&ty) {
                q(&name)
            } else {
                format!("HEX({})", q(&name))
            }
        })
        .collect();
    let mut from = format!("{}.{}", q(db), q(table));
    if versioned {
        select.extend(["ROW_START".to_string(), "ROW_END".to_string()]);
        from.push_str(" FOR SYSTEM_TIME ALL");
    }
    let rows = server.query(&format!("SELECT {} FROM {from}", select.join(", ")));
    let n = rows.len();
    (n, rows_hash(rows))
}

/// Numbers and dates, compared as the server prints them.
fn is_plain_type(ty: &str) -> bool {
    matches!(
        ty,
        "tinyint"
            | "smallint"
            | "mediumint"
            | "int"
            | "bigint"
            | "decimal"
            | "float"
            | "double"
            | "date"
            | "datetime"
            | "timestamp"
            | "time"
            | "year"
            | "bit"
    )
}

/// SHA-256 over the sorted SHA-256 of each row.
fn rows_hash(rows: Vec<Vec<Option<String>>>) -> String {
    let mut hashes: Vec<[u8; 32]> = rows
        .into_iter()
        .map(|r| {
            let mut h = Sha256::new();
            for v in r {
                match v {
                    Some(v) => {
                        h.update(b"v");
                        h.update((v.len() as u64).to_le_bytes());
                        h.update(v.as_bytes());
                    }
                    None => h.update(b"n"),
                }
            }
            h.finalize().into()
        })
        .collect();
    hashes.sort_unstable();
    let mut all = Sha256::new();
    for h in &hashes {
        all.update(h);
    }
    all.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Each sequence of the fixture with its row.
fn sequences(server: &MariaDb) -> BTreeMap<String, String> {
    let list: Vec<String> = DATABASES.iter().map(|d| format!("'{d}'")).collect();
    let names = server.query(&format!(
        "SELECT table_schema, table_name FROM information_schema.tables \
         WHERE table_schema IN ({}) AND table_type = 'SEQUENCE'",
        list.join(",")
    ));
    names
        .into_iter()
        .map(|r| {
            let (db, name) = (r[0].clone().unwrap(), r[1].clone().unwrap());
            let row = server.query(&format!("SELECT * FROM {}.{}", q(&db), q(&name)));
            (format!("{db}.{name}"), format!("{row:?}"))
        })
        .collect()
}

/// The queries that show the fixture's objects work, and their answers on `server`: a
/// full-text and a spatial search through their indexes, the views (of views, across
/// databases, with their collation), the functions (with their `sql_mode` and collation),
/// a procedure, the history of the versioned table, the invisible and the indexed virtual
/// column.
///
/// # Panics
/// On any SQL error (a FULLTEXT index that does not work fails here).
pub fn probe(server: &MariaDb) -> Vec<(String, Vec<Vec<Option<String>>>)> {
    let other = q(OTHER);
    [
        format!("SELECT COUNT(*) FROM {MAIN}.docs WHERE MATCH (title, body) AGAINST ('quick')"),
        format!(
            "SELECT COUNT(*) FROM {MAIN}.places FORCE INDEX (pt) \
             WHERE MBRContains(ST_GeomFromText('POLYGON((0 0, 10 0, 10 10, 0 10, 0 0))'), pt)"
        ),
        format!("SELECT * FROM {MAIN}.v_of_v"),
        format!("SELECT * FROM {MAIN}.v_bin"),
        format!("SELECT {MAIN}.f_bin(), {MAIN}.f_pipes()"),
        format!("CALL {MAIN}.p_count(@n); SELECT @n"),
        format!("SELECT * FROM {other}.`vue ünï` ORDER BY name"),
        format!("SELECT COUNT(*), SUM(v) FROM {MAIN}.versioned FOR SYSTEM_TIME ALL"),
        format!("SELECT SUM(secret) FROM {MAIN}.customers"),
        format!(
            "SELECT id FROM {MAIN}.customers FORCE INDEX (name_upper) WHERE name_upper = 'NAME-7'"
        ),
        format!("SELECT COUNT(*), SUM(x) FROM {MAIN}.parts"),
        format!("SELECT COUNT(*) FROM {MAIN}.subparts"),
        format!("SELECT * FROM {other}.`café` ORDER BY id"),
    ]
    .into_iter()
    .map(|sql| {
        let rows = server.query(&sql);
        (sql, rows)
    })
    .collect()
}

/// Asserts that every table of the fixture passes `CHECK TABLE` on `server` (MEMORY
/// tables have no check).
///
/// # Panics
/// When a table does not, naming it and the server's message.
pub fn assert_tables_check(server: &MariaDb) {
    let tables = tables(server);
    for (key, _) in tables.iter().filter(|(_, t)| t.engine != "MEMORY") {
        let (db, table) = key.split_once('.').unwrap();
        let rows = server.query(&format!("CHECK TABLE {}.{}", q(db), q(table)));
        let last = rows.last().cloned().unwrap_or_default();
        assert_eq!(
            (
                last.get(2).cloned().flatten(),
                last.get(3).cloned().flatten()
            ),
            (Some("status".to_string()), Some("OK".to_string())),
            "CHECK TABLE {key}: {rows:?}"
        );
    }
}

/// Asserts that `server`, restored from a backup of the fixture, continues where the backup
/// was: the next customer gets id [`CUSTOMERS_NEXT_ID`], the sequence hands out
/// [`SEQUENCE_NEXT`], the `orders` triggers fire in their order, the trigger of `café`
/// fires. Writes to the fixture: call it last.
///
/// # Panics
/// When one of them does not hold.
pub fn assert_writes_continue(server: &MariaDb) {
    let other = q(OTHER);
    server.exec(&format!(
        "SET SESSION sql_log_bin=0;
         INSERT INTO {MAIN}.customers (name) VALUES ('new');
         INSERT INTO {MAIN}.orders (customer_id, note) VALUES (1, 'n');
         INSERT INTO {other}.`café` VALUES (10, 'abc');"
    ));
    assert_eq!(
        server.query_value(&format!(
            "SELECT id FROM {MAIN}.customers WHERE name = 'new'"
        )),
        Some(CUSTOMERS_NEXT_ID.into()),
        "AUTO_INCREMENT does not continue where the backup was"
    );
    assert_eq!(
        server.query_value(&format!("SELECT NEXTVAL({MAIN}.seq)")),
        Some(SEQUENCE_NEXT.into()),
        "the sequence does not continue where the backup was"
    );
    assert_eq!(
        server.query_value(&format!(
            "SELECT note FROM {MAIN}.orders WHERE id = (SELECT MAX(id) FROM {MAIN}.orders)"
        )),
        Some("n123".into()),
        "the triggers of orders did not fire in their order"
    );
    assert_eq!(
        server.query_value(&format!(
            "SELECT `crème brûlée` FROM {other}.`café` WHERE id = 10"
        )),
        Some("ABC".into()),
        "the trigger of café did not fire"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_increment_is_left_out_of_definitions() {
        assert_eq!(
            without_auto_increment(
                "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB AUTO_INCREMENT=201 DEFAULT CHARSET=latin1"
            ),
            "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB DEFAULT CHARSET=latin1"
        );
    }

    #[test]
    fn row_hashes_ignore_order_but_not_content() {
        let row = |a: &str, b: Option<&str>| vec![Some(a.to_string()), b.map(str::to_string)];
        let one = rows_hash(vec![row("1", Some("x")), row("2", None)]);
        let other_order = rows_hash(vec![row("2", None), row("1", Some("x"))]);
        assert_eq!(one, other_order);
        assert_ne!(
            one,
            rows_hash(vec![row("1", Some("x")), row("2", Some(""))])
        );
        assert_ne!(
            rows_hash(vec![row("1x", None)]),
            rows_hash(vec![vec![Some("1".into()), Some("x".into())]])
        );
    }
}
