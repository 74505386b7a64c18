//! The objects of a restored backup: views, triggers, routines and events, and the state of
//! its sequences, created on the live server once every table of the backup is in place
//! under its live name (the tables they name must exist).
//!
//! * Each object is created in the session it was defined in, as the temporary server
//!   showed it: its `sql_mode`, time zone, `character_set_client` and
//!   `collation_connection` (a routine's `'a' || 'b'` and a view's `name = 'Abc'` mean what
//!   they meant on the source). The session is put back afterwards.
//! * Views may use other views, also of other databases: they are created in passes.
//! * Triggers are created in the order they fire on the source (`FOLLOWS`/`PRECEDES` are
//!   not part of `SHOW CREATE TRIGGER`; creating them in order gives the same order).
//! * Enabled events are created `DISABLE ON SLAVE`: every node replication-manager reseeds
//!   or flashes back is, or becomes, a replica, and the master runs them. Full mode, whose
//!   events come with the datadir, disables them with [`disable_events_on_slave`]; a
//!   logical restore, whose dump creates them enabled, with [`disable_events_created_since`].
//! * Sequences get the backup's next value and cycle (`SETVAL`), which their definition
//!   does not carry.

use dbjobs_kit::sql::{is_system_schema, qualified, quote_ident};
use dbjobs_sdk::{Host, JobError};

use crate::physical::catalog::{Catalog, Creation, Kind, ObjectDef, TableDef};
use crate::statement::exec;

/// Create the views, triggers, routines and events of `catalog` and give its sequences
/// their state, on the live names. The session's `sql_mode`, time zone, character set and
/// collation are put back afterwards, whatever happened.
pub fn create_objects(host: &Host<'_>, catalog: &Catalog) -> Result<(), JobError> {
    let saved = Session::save(host)?;
    let result = create_all(host, catalog);
    saved.put_back(host);
    result
}

/// The steps of [`create_objects`].
fn create_all(host: &Host<'_>, catalog: &Catalog) -> Result<(), JobError> {
    create_views(host, catalog)?;
    for t in &catalog.triggers {
        create_object(host, t, "trigger", &t.create)?;
    }
    crate::fault::point(host, crate::fault::OBJECTS_HALF_CREATED);
    for r in &catalog.routines {
        create_object(host, r, "routine", &r.create)?;
    }
    for e in &catalog.events {
        create_event(host, e)?;
    }
    restore_sequences(host, catalog)
}

/// Create `triggers` in the order given (the order they fire), each in the session it was
/// defined in: the live triggers a switch dropped, put back by its rollback.
pub fn create_triggers(host: &Host<'_>, triggers: &[ObjectDef]) -> Result<(), JobError> {
    if triggers.is_empty() {
        return Ok(());
    }
    let saved = Session::save(host)?;
    let result = triggers
        .iter()
        .try_for_each(|t| create_object(host, t, "trigger", &t.create));
    saved.put_back(host);
    result
}

/// `ALTER EVENT .. DISABLE ON SLAVE` for each enabled event of `events`: the events a full
/// restore brought with the datadir, as [`create_objects`] creates them online.
pub fn disable_events_on_slave(host: &Host<'_>, events: &[ObjectDef]) -> Result<(), JobError> {
    for e in events.iter().filter(|e| e.enabled) {
        let q = qualified(&e.schema, &e.name);
        exec(host, &format!("ALTER EVENT {q} DISABLE ON SLAVE"), &[])
            .map_err(|err| err.context(format!("cannot disable event {q} on the replica")))?;
    }
    Ok(())
}

/// The server's clock (`NOW()`), taken before a dump is replayed, for
/// [`disable_events_created_since`].
pub fn server_now(host: &Host<'_>) -> Result<String, JobError> {
    host.query_value("SELECT NOW()", &[])?
        .ok_or_else(|| JobError::sql("SELECT NOW() returned nothing"))
}

/// `ALTER EVENT .. DISABLE ON SLAVE` for every enabled event created at or after `since`
/// (server time, [`server_now`]) outside the system schemas: the events a dump replay
/// created, which the dump creates enabled. Events the node had before are left as they
/// are. Returns how many were disabled.
pub fn disable_events_created_since(host: &Host<'_>, since: &str) -> Result<usize, JobError> {
    let rows = host.query(
        "SELECT event_schema, event_name FROM information_schema.events \
         WHERE status = 'ENABLED' AND created >= ?",
        &[since],
    )?;
    let events: Vec<ObjectDef> = rows
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter().flatten();
            Some((r.next()?, r.next()?))
        })
        .filter(|(schema, _)| !is_system_schema(schema))
        .map(|(schema, name)| ObjectDef {
            schema,
            name,
            creation: Creation::default(),
            create: String::new(),
            enabled: true,
        })
        .collect();
    disable_events_on_slave(host, &events)?;
    Ok(events.len())
}

/// The session variables an object's creation changes, to put back afterwards.
struct Session {
    values: Vec<(&'static str, Option<String>)>,
}

impl Session {
    /// The variables [`enter`] sets.
    const VARIABLES: [&'static str; 5] = [
        "sql_mode",
        "time_zone",
        "character_set_client",
        "character_set_results",
        "collation_connection",
    ];

    /// Read them.
    fn save(host: &Host<'_>) -> Result<Session, JobError> {
        let select: Vec<String> = Self::VARIABLES
            .iter()
            .map(|v| format!("@@SESSION.{v}"))
            .collect();
        let row = host
            .query(&format!("SELECT {}", select.join(", ")), &[])?
            .into_iter()
            .next()
            .unwrap_or_default();
        Ok(Session {
            values: Self::VARIABLES.into_iter().zip(row).collect(),
        })
    }

    /// Set them back (best effort: the objects are created either way).
    fn put_back(&self, host: &Host<'_>) {
        for (name, value) in &self.values {
            let _ = match value {
                Some(v) => host.query(&format!("SET SESSION {name}=?"), &[v]),
                None => host.query(&format!("SET SESSION {name}=NULL"), &[]),
            };
        }
    }
}

/// Put the session in the state `c` describes, for `statement` in database `schema`.
///
/// The statement text is UTF-8 (as the temporary server printed it): it is sent with
/// `character_set_client` as defined when that reads the same bytes (a UTF-8 set, or a
/// statement of plain ASCII); otherwise utf8mb4 reads it, with the definition's collation,
/// which keeps the meaning of its literals.
fn enter(host: &Host<'_>, schema: &str, c: &Creation, statement: &str) -> Result<(), JobError> {
    exec(host, &format!("USE {}", quote_ident(schema)), &[])?;
    exec(host, "SET SESSION sql_mode=?", &[&c.sql_mode])?;
    if let Some(tz) = c.time_zone.as_deref().filter(|tz| *tz != "NULL") {
        exec(host, "SET SESSION time_zone=?", &[tz])?;
    }
    if c.character_set_client.is_empty() {
        return Ok(());
    }
    let client = client_charset(&c.character_set_client, statement);
    exec(
        host,
        "SET SESSION character_set_client=?, character_set_results=?, collation_connection=?",
        &[client, client, &c.collation_connection],
    )
}

/// The `character_set_client` that reads `statement` (UTF-8 text) as it was defined with
/// `defined`: `defined` itself when it is a UTF-8 set or the text is plain ASCII, else
/// utf8mb4.
fn client_charset<'c>(defined: &'c str, statement: &str) -> &'c str {
    if statement.is_ascii() || defined.to_ascii_lowercase().starts_with("utf8") {
        defined
    } else {
        "utf8mb4"
    }
}

/// Views may use other views: create in passes until none is left or no progress is made.
fn create_views(host: &Host<'_>, catalog: &Catalog) -> Result<(), JobError> {
    let mut pending: Vec<&TableDef> = catalog
        .tables
        .iter()
        .filter(|t| t.kind == Kind::View)
        .collect();
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        for v in &pending {
            let creation = v.creation.clone().unwrap_or_default();
            enter(host, &v.schema, &creation, &v.create)?;
            if let Err(e) = exec(host, &v.create, &[]) {
                last_error = Some(e.context(format!("view {}.{}", v.schema, v.name)));
                failed.push(*v);
            }
        }
        if failed.len() == pending.len() {
            let e = last_error.expect("a view failed");
            return Err(e.context(format!("cannot recreate {} view(s)", failed.len())));
        }
        pending = failed;
    }
    Ok(())
}

/// Recreate a trigger, routine or event with `statement`, in the session it was defined in.
fn create_object(
    host: &Host<'_>,
    o: &ObjectDef,
    what: &str,
    statement: &str,
) -> Result<(), JobError> {
    enter(host, &o.schema, &o.creation, statement)?;
    exec(host, statement, &[])
        .map_err(|e| e.context(format!("cannot recreate {what} {}.{}", o.schema, o.name)))
}

/// Recreate an event; an enabled one is created `DISABLE ON SLAVE` in the same statement,
/// so it never runs on the replica, not even between a `CREATE` and an `ALTER`.
fn create_event(host: &Host<'_>, e: &ObjectDef) -> Result<(), JobError> {
    if !e.enabled {
        return create_object(host, e, "event", &e.create);
    }
    match disabled_on_slave(&e.create) {
        Some(create) => create_object(host, e, "event", &create),
        None => {
            // A definition in a form this does not know: create, then disable at once.
            create_object(host, e, "event", &e.create)?;
            disable_events_on_slave(host, std::slice::from_ref(e))
        }
    }
}

/// `SHOW CREATE EVENT` text with its status `ENABLE` turned into `DISABLE ON SLAVE`: the
/// first `PRESERVE ENABLE` outside quotes (`ON COMPLETION [NOT] PRESERVE` always precedes
/// the status, and the name, definer and schedule are quoted), or `None` when there is none.
fn disabled_on_slave(create: &str) -> Option<String> {
    const STATUS: &str = "PRESERVE ENABLE ";
    let mut quote: Option<char> = None;
    for (i, c) in create.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '`' || c == '\'' || c == '"' => quote = Some(c),
            None if create[i..].starts_with(STATUS) => {
                let at = i + "PRESERVE ".len();
                return Some(format!(
                    "{}DISABLE ON SLAVE {}",
                    &create[..at],
                    &create[at + "ENABLE ".len()..]
                ));
            }
            None => {}
        }
    }
    None
}

/// Give each sequence of the backup the state it had there: `SETVAL(seq, next, 0, cycle)`
/// makes the next `NEXTVAL` return what a server started on the backup would return.
fn restore_sequences(host: &Host<'_>, catalog: &Catalog) -> Result<(), JobError> {
    for t in catalog.tables.iter().filter(|t| t.kind == Kind::Sequence) {
        let Some(state) = t.sequence else {
            continue;
        };
        let q = qualified(&t.schema, &t.name);
        let sql = format!(
            "SELECT SETVAL({q}, {}, 0, {})",
            state.next_value, state.cycle_count
        );
        exec(host, &sql, &[])
            .map_err(|e| e.context(format!("cannot give sequence {q} its value")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enabled_event_is_created_disabled_on_the_slave() {
        let create = "CREATE DEFINER=`root`@`localhost` EVENT `e` ON SCHEDULE EVERY 1 DAY STARTS '2026-12-01 11:22:30' ON COMPLETION NOT PRESERVE ENABLE COMMENT 'PRESERVE ENABLE ' DO DELETE FROM t";
        assert_eq!(
            disabled_on_slave(create).unwrap(),
            "CREATE DEFINER=`root`@`localhost` EVENT `e` ON SCHEDULE EVERY 1 DAY STARTS '2026-12-01 11:22:30' ON COMPLETION NOT PRESERVE DISABLE ON SLAVE COMMENT 'PRESERVE ENABLE ' DO DELETE FROM t"
        );
        // Quoted names that look like the status are names.
        let tricky = "CREATE DEFINER=`PRESERVE ENABLE `@`h` EVENT `PRESERVE ENABLE ` ON SCHEDULE AT '2030-01-01 00:00:00' ON COMPLETION PRESERVE ENABLE DO SELECT 1";
        assert_eq!(
            disabled_on_slave(tricky).unwrap(),
            "CREATE DEFINER=`PRESERVE ENABLE `@`h` EVENT `PRESERVE ENABLE ` ON SCHEDULE AT '2030-01-01 00:00:00' ON COMPLETION PRESERVE DISABLE ON SLAVE DO SELECT 1"
        );
        assert_eq!(
            disabled_on_slave(
                "CREATE EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 'PRESERVE ENABLE '"
            ),
            None
        );
    }

    #[test]
    fn the_client_charset_reads_the_text_as_defined() {
        assert_eq!(client_charset("latin1", "SELECT 1"), "latin1");
        assert_eq!(client_charset("latin1", "SELECT 'é'"), "utf8mb4");
        assert_eq!(client_charset("utf8mb3", "SELECT 'é'"), "utf8mb3");
        assert_eq!(client_charset("UTF8MB4", "SELECT '😀'"), "UTF8MB4");
    }
}
