//! What the backup holds, read from the temporary server before the live server is touched:
//! every database, table definition, row count, view, trigger, routine and event, and what
//! a definition alone does not carry: the state of each sequence, the `AUTO_INCREMENT` the
//! backup continues from, and the session (`sql_mode`, character set, collation, time zone)
//! each view, trigger, routine and event was defined in.
//!
//! A catalog is read from a [`CatalogSource`]: the temporary server on the prepared backup,
//! or, after a full restore, the live server itself (whose datadir is then the backup).

use std::collections::BTreeSet;

use dbjobs_kit::sql::{is_system_schema, qualified, quote_ident};
use dbjobs_sdk::{Host, JobError};

use super::temp_server::TempServer;
use crate::summary::ObjectCounts;

/// A server a catalog can be read from: rows of text, `NULL` as the text `NULL` (what the
/// temporary server's batch client prints).
pub trait CatalogSource {
    /// The rows `sql` returns.
    fn rows(&self, sql: &str) -> Result<Vec<Vec<String>>, JobError>;
}

impl CatalogSource for TempServer {
    fn rows(&self, sql: &str) -> Result<Vec<Vec<String>>, JobError> {
        self.query(sql)
    }
}

/// The live server, through the job's session: what a full restore reads once the server
/// runs on the restored datadir.
impl CatalogSource for Host<'_> {
    fn rows(&self, sql: &str) -> Result<Vec<Vec<String>>, JobError> {
        Ok(self
            .query(sql, &[])?
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| v.unwrap_or_else(|| "NULL".into()))
                    .collect()
            })
            .collect())
    }
}

/// What kind of object a table entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// A base table (system-versioned ones too).
    Table,
    /// A view.
    View,
    /// A sequence.
    Sequence,
}

/// The session an object was defined in, which it is created in again: a routine's
/// `'a' || 'b'` means `CONCAT` under `PIPES_AS_CONCAT` and `OR` without it, and a view's
/// `name = 'Abc'` compares by the collation of its definition.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Creation {
    /// The `sql_mode` (empty for views, which do not keep one).
    pub sql_mode: String,
    /// The time zone (events).
    pub time_zone: Option<String>,
    /// `character_set_client`.
    pub character_set_client: String,
    /// `collation_connection`.
    pub collation_connection: String,
}

/// The state of a sequence in the backup: what `NEXTVAL` returns next, and in which cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequenceState {
    /// `next_not_cached_value`: the next value a server started on the backup hands out.
    pub next_value: i64,
    /// `cycle_count`: how many times a cycling sequence wrapped around.
    pub cycle_count: i64,
}

/// One table, view or sequence of the backup.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TableDef {
    /// Its database.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Table, view or sequence.
    pub kind: Kind,
    /// Its engine (empty for a view).
    pub engine: String,
    /// `SHOW CREATE TABLE` / `SHOW CREATE VIEW` / `SHOW CREATE SEQUENCE`.
    pub create: String,
    /// Row count on the temporary server (base tables only).
    pub rows: Option<u64>,
    /// The next `AUTO_INCREMENT` value the backup hands out (tables that have one).
    pub auto_increment: Option<u64>,
    /// Views: the character set and collation they were defined with.
    pub creation: Option<Creation>,
    /// Sequences: their state in the backup.
    pub sequence: Option<SequenceState>,
}

impl TableDef {
    /// Whether its data is an InnoDB tablespace (imported rather than moved).
    pub fn is_innodb(&self) -> bool {
        self.engine.eq_ignore_ascii_case("InnoDB")
    }

    /// Whether it is an Aria table, whose moved files must be made this server's.
    pub fn is_aria(&self) -> bool {
        self.engine.eq_ignore_ascii_case("Aria")
    }

    /// Whether it is a MEMORY table: no data file, so it comes back empty, as after a
    /// restart of the server the backup was taken on.
    pub fn is_memory(&self) -> bool {
        self.kind == Kind::Table
            && (self.engine.eq_ignore_ascii_case("MEMORY")
                || self.engine.eq_ignore_ascii_case("HEAP"))
    }

    /// Whether its definition has a FULLTEXT index (InnoDB cannot import one: the index
    /// is rebuilt).
    pub fn has_fulltext(&self) -> bool {
        self.create.contains("\n  FULLTEXT KEY ")
    }

    /// Whether it is system-versioned (its history rows are in its data).
    pub fn is_versioned(&self) -> bool {
        self.create.contains("WITH SYSTEM VERSIONING")
    }
}

/// A trigger, routine or event: the statement that recreates it and the session it needs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectDef {
    /// Its database.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// The session it was defined in.
    pub creation: Creation,
    /// The statement that recreates it.
    pub create: String,
    /// Events: whether it was enabled (recreated `DISABLE ON SLAVE`).
    pub enabled: bool,
}

/// Everything read from the temporary server.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Catalog {
    /// (name, CREATE DATABASE statement), the system schemas left out.
    pub databases: Vec<(String, String)>,
    /// Tables, views and sequences of those databases.
    pub tables: Vec<TableDef>,
    /// Their triggers, in the order they fire.
    pub triggers: Vec<ObjectDef>,
    /// Their procedures and functions.
    pub routines: Vec<ObjectDef>,
    /// Their events.
    pub events: Vec<ObjectDef>,
}

impl Catalog {
    /// Read it from `source`; `with_objects` adds triggers, routines and events (which a
    /// server started with `--skip-grant-tables` cannot show).
    pub fn read(source: &impl CatalogSource, with_objects: bool) -> Result<Catalog, JobError> {
        Self::read_databases_where(source, with_objects, |_| true)
    }

    /// [`Catalog::read`] of the databases `keep` says yes to.
    pub fn read_databases_where(
        source: &impl CatalogSource,
        with_objects: bool,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Catalog, JobError> {
        let mut databases = read_databases(source)?;
        databases.retain(|(db, _)| keep(db));
        let mut c = Catalog {
            databases,
            ..Catalog::default()
        };
        c.tables = read_tables(source, &c.names())?;
        if with_objects {
            c.read_objects(source)?;
        }
        Ok(c)
    }

    /// Read the triggers, routines and events of the catalog's databases from `source`
    /// (replacing what it had).
    pub fn read_objects(&mut self, source: &impl CatalogSource) -> Result<(), JobError> {
        let known = self.names();
        self.triggers = read_objects(source, &known, ObjectKind::Trigger)?;
        self.routines = read_objects(source, &known, ObjectKind::Routine)?;
        self.events = read_objects(source, &known, ObjectKind::Event)?;
        Ok(())
    }

    /// The names of its databases.
    fn names(&self) -> BTreeSet<String> {
        self.databases.iter().map(|(d, _)| d.clone()).collect()
    }

    /// How many entries of `kind` (and, with `innodb`, of that engine only) there are.
    pub fn count(&self, kind: Kind, innodb_only: bool) -> usize {
        self.tables
            .iter()
            .filter(|t| t.kind == kind && (!innodb_only || t.is_innodb()))
            .count()
    }

    /// `db.table` of each MEMORY table: a physical restore brings them back empty.
    pub fn memory_tables(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter(|t| t.is_memory())
            .map(|t| format!("{}.{}", t.schema, t.name))
            .collect()
    }

    /// How many views, triggers, routines, events and sequences it holds.
    pub fn object_counts(&self) -> ObjectCounts {
        ObjectCounts {
            views: self.count(Kind::View, false),
            triggers: self.triggers.len(),
            routines: self.routines.len(),
            events: self.events.len(),
            sequences: self.count(Kind::Sequence, false),
        }
    }
}

/// The databases of the backup with their definitions, the system schemas left out.
fn read_databases(source: &impl CatalogSource) -> Result<Vec<(String, String)>, JobError> {
    let mut out = Vec::new();
    for row in source.rows("SELECT schema_name FROM information_schema.schemata ORDER BY 1")? {
        let db = &row[0];
        if is_system_schema(db) {
            continue;
        }
        let create = first_row(source, &format!("SHOW CREATE DATABASE {}", quote_ident(db)))?
            .into_iter()
            .nth(1)
            .ok_or_else(|| JobError::tool(format!("no definition for database {db}")))?;
        out.push((db.clone(), create));
    }
    Ok(out)
}

/// Every table, view and sequence of the databases `known`, with what recreates it.
fn read_tables(
    source: &impl CatalogSource,
    known: &BTreeSet<String>,
) -> Result<Vec<TableDef>, JobError> {
    let rows = source.rows(
        "SELECT table_schema, table_name, table_type, IFNULL(engine,''), IFNULL(auto_increment,'') \
         FROM information_schema.tables ORDER BY 1, 2",
    )?;
    let mut out = Vec::new();
    for row in rows {
        let [schema, name, ttype, engine, auto_increment] = <[String; 5]>::try_from(row)
            .map_err(|_| JobError::tool("unexpected information_schema.tables output"))?;
        if !known.contains(&schema) {
            continue;
        }
        let kind = match ttype.as_str() {
            "VIEW" => Kind::View,
            "SEQUENCE" => Kind::Sequence,
            _ => Kind::Table,
        };
        let mut t = TableDef {
            schema,
            name,
            kind,
            engine,
            create: String::new(),
            rows: None,
            auto_increment: auto_increment.parse().ok(),
            creation: None,
            sequence: None,
        };
        read_table_details(source, &mut t)?;
        out.push(t);
    }
    Ok(out)
}

/// The definition of `t` and what goes with its kind: a view's character set and
/// collation, a sequence's state, a table's row count.
fn read_table_details(source: &impl CatalogSource, t: &mut TableDef) -> Result<(), JobError> {
    let q = qualified(&t.schema, &t.name);
    let show = match t.kind {
        Kind::View => format!("SHOW CREATE VIEW {q}"),
        Kind::Sequence => format!("SHOW CREATE SEQUENCE {q}"),
        Kind::Table => format!("SHOW CREATE TABLE {q}"),
    };
    let mut r = first_row(source, &show)?.into_iter();
    t.create = r
        .nth(1)
        .ok_or_else(|| JobError::tool(format!("no definition for {}.{}", t.schema, t.name)))?;
    match t.kind {
        // View, Create View, character_set_client, collation_connection.
        Kind::View => {
            t.creation = Some(Creation {
                character_set_client: r.next().unwrap_or_default(),
                collation_connection: r.next().unwrap_or_default(),
                ..Creation::default()
            })
        }
        Kind::Sequence => t.sequence = Some(read_sequence(source, &q)?),
        Kind::Table => t.rows = Some(count_rows(source, &q)?),
    }
    Ok(())
}

/// The state of sequence `q`, read from the sequence's own row (which `NEXTVAL` would
/// change).
fn read_sequence(source: &impl CatalogSource, q: &str) -> Result<SequenceState, JobError> {
    let row = first_row(
        source,
        &format!("SELECT next_not_cached_value, cycle_count FROM {q}"),
    )?;
    let number = |i: usize| row.get(i).and_then(|v| v.parse::<i64>().ok());
    match (number(0), number(1)) {
        (Some(next_value), Some(cycle_count)) => Ok(SequenceState {
            next_value,
            cycle_count,
        }),
        _ => Err(JobError::tool(format!(
            "cannot read the state of sequence {q}: {row:?}"
        ))),
    }
}

/// `SELECT COUNT(*)` of table `q`.
fn count_rows(source: &impl CatalogSource, q: &str) -> Result<u64, JobError> {
    first_row(source, &format!("SELECT COUNT(*) FROM {q}"))?
        .first()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| JobError::tool(format!("cannot count the rows of {q}")))
}

/// The kinds of [`ObjectDef`]: how a server lists them and shows their definitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjectKind {
    Trigger,
    Routine,
    Event,
}

impl ObjectKind {
    /// The query listing every object of this kind: schema, name, then the routine's type
    /// or the event's status.
    fn list_sql(self) -> &'static str {
        match self {
            ObjectKind::Trigger => {
                "SELECT trigger_schema, trigger_name FROM information_schema.triggers \
                 ORDER BY trigger_schema, event_object_table, action_timing, event_manipulation, action_order"
            }
            ObjectKind::Routine => {
                "SELECT routine_schema, routine_name, routine_type FROM information_schema.routines \
                 WHERE routine_type IN ('PROCEDURE','FUNCTION') ORDER BY 1, 2"
            }
            ObjectKind::Event => {
                "SELECT event_schema, event_name, status FROM information_schema.events ORDER BY 1, 2"
            }
        }
    }

    /// The `SHOW CREATE` statement of the object a row of [`ObjectKind::list_sql`] names.
    fn show_sql(self, row: &[String]) -> String {
        let q = qualified(&row[0], &row[1]);
        match self {
            ObjectKind::Trigger => format!("SHOW CREATE TRIGGER {q}"),
            ObjectKind::Routine => format!("SHOW CREATE {} {q}", row[2]),
            ObjectKind::Event => format!("SHOW CREATE EVENT {q}"),
        }
    }

    /// The statement and the session of a `SHOW CREATE` row. Triggers: Trigger, sql_mode,
    /// SQL Original Statement, character_set_client, collation_connection, ...; routines:
    /// Procedure, sql_mode, Create Procedure, character_set_client, collation_connection,
    /// ...; events: Event, sql_mode, time_zone, Create Event, character_set_client,
    /// collation_connection, ...
    fn definition(self, r: &[String]) -> (String, Creation) {
        let field = |i: usize| r.get(i).cloned().unwrap_or_default();
        let first = match self {
            ObjectKind::Event => 3,
            ObjectKind::Trigger | ObjectKind::Routine => 2,
        };
        let creation = Creation {
            sql_mode: field(1),
            time_zone: (self == ObjectKind::Event).then(|| field(2)),
            character_set_client: field(first + 1),
            collation_connection: field(first + 2),
        };
        (field(first), creation)
    }
}

/// Every object of `kind` in the databases `known`, with the statement that recreates it.
fn read_objects(
    source: &impl CatalogSource,
    known: &BTreeSet<String>,
    kind: ObjectKind,
) -> Result<Vec<ObjectDef>, JobError> {
    let mut out = Vec::new();
    for row in source.rows(kind.list_sql())? {
        if !known.contains(&row[0]) {
            continue;
        }
        let (create, creation) = kind.definition(&first_row(source, &kind.show_sql(&row))?);
        if create.is_empty() || create == "NULL" {
            return Err(JobError::tool(format!(
                "the definition of {}.{} cannot be read",
                row[0], row[1]
            )));
        }
        out.push(ObjectDef {
            schema: row[0].clone(),
            name: row[1].clone(),
            creation,
            create,
            enabled: kind != ObjectKind::Event || row[2] == "ENABLED",
        });
    }
    Ok(out)
}

/// The first row `sql` returns on `source`.
fn first_row(source: &impl CatalogSource, sql: &str) -> Result<Vec<String>, JobError> {
    source
        .rows(sql)?
        .into_iter()
        .next()
        .ok_or_else(|| JobError::tool(format!("{sql} returned nothing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(engine: &str, create: &str) -> TableDef {
        TableDef {
            schema: "d".into(),
            name: "t".into(),
            kind: Kind::Table,
            engine: engine.into(),
            create: create.into(),
            rows: Some(0),
            auto_increment: None,
            creation: None,
            sequence: None,
        }
    }

    #[test]
    fn what_a_definition_says() {
        let ft = table(
            "InnoDB",
            "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `b` text,\n  PRIMARY KEY (`id`),\n  FULLTEXT KEY `b` (`b`)\n) ENGINE=InnoDB WITH SYSTEM VERSIONING",
        );
        assert!(ft.is_innodb() && ft.has_fulltext() && ft.is_versioned());
        assert!(!ft.is_memory() && !ft.is_aria());
        // A column named like the keyword is not an index.
        let plain = table(
            "Aria",
            "CREATE TABLE `t` (\n  `FULLTEXT KEY ` int(11)\n) ENGINE=Aria",
        );
        assert!(!plain.has_fulltext() && plain.is_aria());
        assert!(table("MEMORY", "").is_memory());
    }

    #[test]
    fn object_definitions_and_their_sessions() {
        let row = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (create, c) = ObjectKind::Event.definition(&row(&[
            "e",
            "ANSI_QUOTES",
            "+00:00",
            "CREATE EVENT e ...",
            "latin1",
            "latin1_bin",
            "utf8mb4_general_ci",
        ]));
        assert_eq!(create, "CREATE EVENT e ...");
        assert_eq!(c.time_zone.as_deref(), Some("+00:00"));
        assert_eq!(
            (
                c.sql_mode.as_str(),
                c.character_set_client.as_str(),
                c.collation_connection.as_str()
            ),
            ("ANSI_QUOTES", "latin1", "latin1_bin")
        );
        let (create, c) = ObjectKind::Routine.definition(&row(&[
            "f",
            "PIPES_AS_CONCAT",
            "CREATE FUNCTION f() ...",
            "utf8mb4",
            "utf8mb4_bin",
            "latin1_swedish_ci",
        ]));
        assert_eq!(create, "CREATE FUNCTION f() ...");
        assert_eq!(c.time_zone, None);
        assert_eq!(c.collation_connection, "utf8mb4_bin");
    }
}
