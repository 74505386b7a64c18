//! What the backup holds, read from the temporary server before the live server is touched:
//! every database, table definition, row count, view, trigger, routine and event.

use std::collections::BTreeSet;

use dbjobs_kit::sql::{is_system_schema, qualified, quote_ident};
use dbjobs_sdk::JobError;

use super::temp_server::TempServer;

/// What kind of object a table entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A base table.
    Table,
    /// A view.
    View,
    /// A sequence.
    Sequence,
}

/// One table, view or sequence of the backup.
#[derive(Clone, Debug)]
pub struct TableDef {
    /// Its database.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Table, view or sequence.
    pub kind: Kind,
    /// Its engine (empty for a view).
    pub engine: String,
    /// `SHOW CREATE TABLE` / `SHOW CREATE VIEW`.
    pub create: String,
    /// Row count on the temporary server (base tables only).
    pub rows: Option<u64>,
}

impl TableDef {
    /// Whether its data is an InnoDB tablespace (imported rather than moved).
    pub fn is_innodb(&self) -> bool {
        self.engine.eq_ignore_ascii_case("InnoDB")
    }
}

/// A trigger, routine or event: the statement that recreates it and the session it needs.
#[derive(Clone, Debug)]
pub struct ObjectDef {
    /// Its database.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// The `sql_mode` it was defined under.
    pub sql_mode: String,
    /// The time zone it was defined in (events).
    pub time_zone: Option<String>,
    /// The statement that recreates it.
    pub create: String,
    /// Events: whether it was enabled (recreated `DISABLE ON SLAVE`).
    pub enabled: bool,
}

/// Everything read from the temporary server.
#[derive(Debug, Default)]
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
    /// Read it from `temp`; `with_objects` adds triggers, routines and events (which a
    /// server started with `--skip-grant-tables` cannot show).
    pub fn read(temp: &TempServer, with_objects: bool) -> Result<Catalog, JobError> {
        let mut c = Catalog {
            databases: read_databases(temp)?,
            ..Catalog::default()
        };
        let known: BTreeSet<&str> = c.databases.iter().map(|(d, _)| d.as_str()).collect();
        c.tables = read_tables(temp, &known)?;
        if with_objects {
            c.triggers = read_objects(temp, &known, ObjectKind::Trigger)?;
            c.routines = read_objects(temp, &known, ObjectKind::Routine)?;
            c.events = read_objects(temp, &known, ObjectKind::Event)?;
        }
        Ok(c)
    }

    /// How many entries of `kind` (and, with `innodb`, of that engine only) there are.
    pub fn count(&self, kind: Kind, innodb_only: bool) -> usize {
        self.tables
            .iter()
            .filter(|t| t.kind == kind && (!innodb_only || t.is_innodb()))
            .count()
    }
}

/// The databases of the backup with their definitions, the system schemas left out.
fn read_databases(temp: &TempServer) -> Result<Vec<(String, String)>, JobError> {
    let mut out = Vec::new();
    for row in temp.query("SELECT schema_name FROM information_schema.schemata ORDER BY 1")? {
        let db = &row[0];
        if is_system_schema(db) {
            continue;
        }
        let create = first_row(temp, &format!("SHOW CREATE DATABASE {}", quote_ident(db)))?
            .into_iter()
            .nth(1)
            .ok_or_else(|| JobError::tool(format!("no definition for database {db}")))?;
        out.push((db.clone(), create));
    }
    Ok(out)
}

/// Every table, view and sequence of the databases `known`, with definition and row count.
fn read_tables(temp: &TempServer, known: &BTreeSet<&str>) -> Result<Vec<TableDef>, JobError> {
    let rows = temp.query(
        "SELECT table_schema, table_name, table_type, IFNULL(engine,'') FROM information_schema.tables ORDER BY 1, 2",
    )?;
    let mut out = Vec::new();
    for row in rows {
        let [schema, name, ttype, engine] = <[String; 4]>::try_from(row)
            .map_err(|_| JobError::tool("unexpected information_schema.tables output"))?;
        if !known.contains(schema.as_str()) {
            continue;
        }
        let kind = match ttype.as_str() {
            "VIEW" => Kind::View,
            "SEQUENCE" => Kind::Sequence,
            _ => Kind::Table,
        };
        let q = qualified(&schema, &name);
        let show = match kind {
            Kind::View => format!("SHOW CREATE VIEW {q}"),
            _ => format!("SHOW CREATE TABLE {q}"),
        };
        let create = first_row(temp, &show)?
            .into_iter()
            .nth(1)
            .ok_or_else(|| JobError::tool(format!("no definition for {schema}.{name}")))?;
        let rows = match kind {
            Kind::Table => Some(count_rows(temp, &q)?),
            _ => None,
        };
        out.push(TableDef {
            schema,
            name,
            kind,
            engine,
            create,
            rows,
        });
    }
    Ok(out)
}

/// `SELECT COUNT(*)` of table `q` on the temporary server.
fn count_rows(temp: &TempServer, q: &str) -> Result<u64, JobError> {
    first_row(temp, &format!("SELECT COUNT(*) FROM {q}"))?
        .first()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| JobError::tool(format!("cannot count the rows of {q}")))
}

/// The kinds of [`ObjectDef`]: how the temporary server lists them and shows their
/// definitions.
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
}

/// Every object of `kind` in the databases `known`, with the statement that recreates it.
fn read_objects(
    temp: &TempServer,
    known: &BTreeSet<&str>,
    kind: ObjectKind,
) -> Result<Vec<ObjectDef>, JobError> {
    let mut out = Vec::new();
    for row in temp.query(kind.list_sql())? {
        if !known.contains(row[0].as_str()) {
            continue;
        }
        // Triggers and routines: Name, sql_mode, Create ..., ...
        // Events: Event, sql_mode, time_zone, Create Event, ...
        let r = first_row(temp, &kind.show_sql(&row))?;
        let (time_zone, create) = match kind {
            ObjectKind::Event => (r.get(2).cloned(), r.get(3)),
            ObjectKind::Trigger | ObjectKind::Routine => (None, r.get(2)),
        };
        out.push(ObjectDef {
            schema: row[0].clone(),
            name: row[1].clone(),
            sql_mode: r.get(1).cloned().unwrap_or_default(),
            time_zone,
            create: create.cloned().unwrap_or_default(),
            enabled: kind != ObjectKind::Event || row[2] == "ENABLED",
        });
    }
    Ok(out)
}

/// The first row `sql` returns on the temporary server.
fn first_row(temp: &TempServer, sql: &str) -> Result<Vec<String>, JobError> {
    temp.query(sql)?
        .into_iter()
        .next()
        .ok_or_else(|| JobError::tool(format!("{sql} returned nothing on the temporary server")))
}
