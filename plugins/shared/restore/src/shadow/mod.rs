//! Build aside, switch once: the live databases keep serving their old data while the
//! backup is built under shadow names, then one `RENAME TABLE` puts it in place.
//!
//! For each database of the backup (its *live* name) the restore uses two databases no user
//! database can be named like, on the live server: the *shadow* `#dbjobs<job>_new<k>`, where
//! the backup is built, and the *old* `#dbjobs<job>_old<k>`, where the live tables go at
//! the switch and stay until the restore is verified (see [`shadow_name`]).
//!
//! The switch ([`switch`]) is one multi-table `RENAME TABLE` of every base table and
//! sequence: live to old, then shadow to live, which MariaDB executes atomically and, from
//! 10.6, crash-safely (its DDL log). Two rules of the server shape it:
//! * a table with triggers cannot be moved to another database, so the live triggers are
//!   dropped right before the `RENAME`, their definitions kept in the journal so that a run
//!   dying in that short window gets them back ([`roll_back`]);
//! * foreign keys follow renamed tables, and InnoDB constraint names are per database: the
//!   live tables leave the live database (taking their constraint names with them) in the
//!   same statement, before the shadow tables arrive with theirs, and a foreign key from a
//!   database the restore does not replace into one it replaces is refused before anything
//!   is touched ([`refuse_outside_references`]), because it would follow the old table.
//!
//! Views, triggers, routines and events are not moved: after the switch the live databases'
//! ones are dropped ([`clear_live_objects`]) and the backup's created under the live names.
//! [`finish`] drops the old and shadow databases once the restore verified.

use dbjobs_kit::sql::{qualified, quote_ident};
use dbjobs_sdk::{Host, JobError, ServerState};

pub mod names;

pub use names::{database_options, old_name, shadow_name, ShadowSet, Swap, PREFIX};

use crate::journal::{Journal, JournalPhase, JournalRecord};
use crate::objects;
use crate::physical::catalog::{Catalog, ObjectDef};
use crate::replication;
use crate::statement::exec;

/// The directory name the server gives database `name` (its file-name encoding, as
/// `CONVERT(.. USING filename)` computes it): where the backup holds that database's files.
pub fn directory_of(host: &Host<'_>, name: &str) -> Result<String, JobError> {
    host.query_value("SELECT CAST(CONVERT(? USING filename) AS BINARY)", &[name])?
        .filter(|d| !d.is_empty())
        .ok_or_else(|| JobError::sql(format!("the server gives no directory name for {name:?}")))
}

/// Whether database `name` exists on the live server.
pub fn exists(host: &Host<'_>, name: &str) -> Result<bool, JobError> {
    Ok(host
        .query_value(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?",
            &[name],
        )?
        .is_some_and(|n| n != "0"))
}

/// Refuse, before the first change, a restore whose databases are referenced by a foreign
/// key of a database it does not replace: at the switch that key would follow the old
/// table, which the restore then drops.
pub fn refuse_outside_references(host: &Host<'_>, set: &ShadowSet) -> Result<(), JobError> {
    let lives = set.lives();
    if lives.is_empty() {
        return Ok(());
    }
    let marks = vec!["?"; lives.len()].join(",");
    let sql = format!(
        "SELECT constraint_schema, table_name, unique_constraint_schema, referenced_table_name \
         FROM information_schema.referential_constraints \
         WHERE unique_constraint_schema IN ({marks}) AND constraint_schema NOT IN ({marks})"
    );
    let params: Vec<&str> = lives
        .iter()
        .chain(lives.iter())
        .map(String::as_str)
        .collect();
    let rows = host.query(&sql, &params)?;
    let Some(r) = rows.first() else {
        return Ok(());
    };
    let f = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    Err(JobError::refused(format!(
        "{} has a foreign key to {}, which the restore replaces ({} such key(s) in databases the backup does not have)",
        qualified(&f(0), &f(1)),
        qualified(&f(2), &f(3)),
        rows.len()
    ))
    .with_hint("drop those foreign keys before the restore (or restore that database too), or use restore_mode=full")
    .with_state(ServerState::Untouched))
}

/// Create the shadow and old databases of `set` (and every live one the node does not
/// have yet, recorded in the journal first, so a rollback drops it again), each with the
/// options of the backup's `CREATE DATABASE` (`creates`: live name, statement).
pub fn create_databases(
    host: &Host<'_>,
    set: &ShadowSet,
    creates: &[(String, String)],
    journal: &Journal,
) -> Result<(), JobError> {
    for s in &set.swaps {
        let options = creates
            .iter()
            .find(|(db, _)| *db == s.live)
            .map_or("", |(_, c)| database_options(c));
        if !exists(host, &s.live)? {
            journal.update(|r| r.created_live.push(s.live.clone()))?;
            create_database(host, &s.live, options)?;
        }
        create_database(host, &s.shadow, options)?;
        create_database(host, &s.old, options)?;
    }
    Ok(())
}

/// `CREATE DATABASE name options`.
fn create_database(host: &Host<'_>, name: &str, options: &str) -> Result<(), JobError> {
    exec(
        host,
        &format!("CREATE DATABASE {} {options}", quote_ident(name)),
        &[],
    )
}

/// The base tables and sequences of database `db` (what a `RENAME TABLE` moves).
fn tables_of(host: &Host<'_>, db: &str) -> Result<Vec<String>, JobError> {
    Ok(host
        .query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? \
             AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE') ORDER BY 1",
            &[db],
        )?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

/// The `a TO b` pairs of the switch: every live table to its old database, then every
/// shadow table to its live one.
fn rename_pairs(host: &Host<'_>, set: &ShadowSet) -> Result<Vec<String>, JobError> {
    let mut out = Vec::new();
    for s in &set.swaps {
        for t in tables_of(host, &s.live)? {
            out.push(format!(
                "{} TO {}",
                qualified(&s.live, &t),
                qualified(&s.old, &t)
            ));
        }
    }
    for s in &set.swaps {
        for t in tables_of(host, &s.shadow)? {
            out.push(format!(
                "{} TO {}",
                qualified(&s.shadow, &t),
                qualified(&s.live, &t)
            ));
        }
    }
    Ok(out)
}

/// The triggers of the live databases of `set`, with the session each was defined in.
fn live_triggers(host: &Host<'_>, set: &ShadowSet) -> Result<Vec<ObjectDef>, JobError> {
    let mut live = Catalog {
        databases: set
            .lives()
            .into_iter()
            .map(|d| (d, String::new()))
            .collect(),
        ..Catalog::default()
    };
    live.read_objects(host)?;
    Ok(live.triggers)
}

/// The switch: the live triggers kept in the journal and dropped, then one `RENAME TABLE`
/// of every table (see the module docs), waiting at most `lock_wait` seconds for the live
/// tables' locks. On an error nothing was renamed and the triggers are put back; the
/// caller rolls back the shadows.
pub fn switch(
    host: &Host<'_>,
    set: &ShadowSet,
    journal: &Journal,
    lock_wait: u64,
) -> Result<(), JobError> {
    let triggers = live_triggers(host, set)?;
    let pairs = rename_pairs(host, set)?;
    journal.update(|r| {
        r.phase = JournalPhase::Switching;
        r.live_triggers = triggers.clone();
    })?;
    let saved_wait = host.query_value("SELECT @@SESSION.lock_wait_timeout", &[])?;
    exec(
        host,
        &format!("SET SESSION lock_wait_timeout = {lock_wait}"),
        &[],
    )?;
    let switched = drop_triggers(host, &triggers).and_then(|()| {
        if pairs.is_empty() {
            return Ok(());
        }
        exec(host, &format!("RENAME TABLE {}", pairs.join(", ")), &[])
    });
    if let Some(w) = saved_wait {
        let _ = host.query("SET SESSION lock_wait_timeout = ?", &[&w]);
    }
    if let Err(e) = switched {
        let _ = objects::create_triggers(host, &triggers);
        return Err(e.context("switching to the restored tables (nothing was switched)"));
    }
    journal.enter(JournalPhase::Switched)
}

/// `DROP TRIGGER` each of `triggers`.
fn drop_triggers(host: &Host<'_>, triggers: &[ObjectDef]) -> Result<(), JobError> {
    for t in triggers {
        exec(
            host,
            &format!("DROP TRIGGER IF EXISTS {}", qualified(&t.schema, &t.name)),
            &[],
        )?;
    }
    Ok(())
}

/// Whether the switch of `set` happened: the shadows hold no table any more (the `RENAME`
/// moves all of them or none).
pub fn is_switched(host: &Host<'_>, set: &ShadowSet) -> Result<bool, JobError> {
    for s in &set.swaps {
        if !tables_of(host, &s.shadow)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Drop the views, triggers, routines and events of the live databases of `set`: after the
/// switch they are the node's (or half of the backup's, after a crash), and the backup's
/// are created next.
pub fn clear_live_objects(host: &Host<'_>, set: &ShadowSet) -> Result<(), JobError> {
    const LISTS: [&str; 4] = [
        "SELECT trigger_name, 'TRIGGER' FROM information_schema.triggers WHERE trigger_schema = ?",
        "SELECT table_name, 'VIEW' FROM information_schema.views WHERE table_schema = ?",
        "SELECT routine_name, routine_type FROM information_schema.routines WHERE routine_schema = ?",
        "SELECT event_name, 'EVENT' FROM information_schema.events WHERE event_schema = ?",
    ];
    for s in &set.swaps {
        for list in LISTS {
            for row in host.query(list, &[&s.live])? {
                let mut r = row.into_iter().flatten();
                let (Some(name), Some(kind)) = (r.next(), r.next()) else {
                    continue;
                };
                let q = qualified(&s.live, &name);
                exec(host, &format!("DROP {kind} IF EXISTS {q}"), &[])?;
            }
        }
    }
    Ok(())
}

/// The restore verified: drop the old and shadow databases of `set` (the node's previous
/// tables, and what is left of the shadows: views a dump created there).
pub fn finish(host: &Host<'_>, set: &ShadowSet) -> Result<(), JobError> {
    exec(host, "SET SESSION foreign_key_checks=0", &[])?;
    let dropped = drop_aside(host, set);
    let _ = host.query("SET SESSION foreign_key_checks=1", &[]);
    dropped
}

/// The objects failed after the switch (error `e`): the tables are the backup's and no
/// rollback brings the old ones back, so they are dropped with the shadows' leftovers and
/// the journal ends, rather than left in databases nobody looks at. The node is partial:
/// `e` says which objects failed.
pub fn give_up_old_tables(
    host: &Host<'_>,
    set: &ShadowSet,
    journal: &Journal,
    e: JobError,
) -> JobError {
    match finish(host, set) {
        Ok(()) => {
            journal.done();
            e.context("after the switch (the tables are the backup's, the old ones were dropped)")
        }
        Err(f) => e.context(format!(
            "after the switch (the tables are the backup's; dropping the old ones failed too: {})",
            f.message
        )),
    }
}

/// `DROP DATABASE IF EXISTS` every shadow and old database of `set`.
fn drop_aside(host: &Host<'_>, set: &ShadowSet) -> Result<(), JobError> {
    for s in &set.swaps {
        for db in [&s.shadow, &s.old] {
            exec(
                host,
                &format!("DROP DATABASE IF EXISTS {}", quote_ident(db)),
                &[],
            )?;
        }
    }
    Ok(())
}

/// Kill the sessions still working in the shadow or old databases of `set`: the client
/// sessions of a run that was killed go on with what was in their pipe, and one of them
/// could create a shadow database again after the recovery dropped it. Only sessions whose
/// current database is one of these names are killed; errors are ignored (a session may
/// end on its own meanwhile).
pub fn end_sessions_in(host: &Host<'_>, set: &ShadowSet) -> Result<usize, JobError> {
    let names: Vec<&str> = set
        .swaps
        .iter()
        .flat_map(|s| [s.shadow.as_str(), s.old.as_str()])
        .collect();
    if names.is_empty() {
        return Ok(0);
    }
    let marks = vec!["?"; names.len()].join(",");
    let sql = format!(
        "SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND db IN ({marks})"
    );
    let ids: Vec<String> = host
        .query(&sql, &names)?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .filter(|id| id.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    for id in &ids {
        let _ = host.query(&format!("KILL CONNECTION {id}"), &[]);
    }
    Ok(ids.len())
}

/// A restore failed with `e` before its switch: roll it back ([`roll_back`]) and end its
/// journal; the error says so, with the server untouched. `what` names the build ("the
/// backup", "the dump"). When the rollback fails too the journal stays for the next start.
pub fn rolled_back_before_switch(
    host: &Host<'_>,
    journal: &Journal,
    e: JobError,
    what: &str,
) -> JobError {
    match roll_back(host, &journal.record()) {
        Ok(()) => {
            host.info("the restore was rolled back before the switch: shadow databases dropped, live data untouched");
            journal.done();
            e.context(format!("building {what} aside (rolled back, live data untouched)"))
        }
        Err(rb) => e.context(format!(
            "building {what} aside; dropping the shadow databases failed too ({}), the next start retries",
            rb.message
        )),
    }
    .with_state(ServerState::Untouched)
}

/// Undo a restore that did not switch, as its journal says: the live triggers put back if
/// the run died between dropping them and the `RENAME`, the shadow and old databases
/// dropped, the live databases it created dropped again (when still empty), the replication
/// it stopped started again. The live data was never touched.
pub fn roll_back(host: &Host<'_>, record: &JournalRecord) -> Result<(), JobError> {
    exec(host, "SET SESSION foreign_key_checks=0", &[])?;
    let result = roll_back_steps(host, record);
    let _ = host.query("SET SESSION foreign_key_checks=1", &[]);
    result
}

/// The steps of [`roll_back`].
fn roll_back_steps(host: &Host<'_>, record: &JournalRecord) -> Result<(), JobError> {
    let missing: Vec<ObjectDef> = record
        .live_triggers
        .iter()
        .filter(|t| !trigger_exists(host, t).unwrap_or(true))
        .cloned()
        .collect();
    objects::create_triggers(host, &missing)?;
    drop_aside(host, &record.set)?;
    for db in &record.created_live {
        if exists(host, db)? && tables_of(host, db)?.is_empty() {
            exec(host, &format!("DROP DATABASE {}", quote_ident(db)), &[])?;
        }
    }
    replication::start_again(host, &record.stopped_replication);
    Ok(())
}

/// Whether trigger `t` exists on the live server.
fn trigger_exists(host: &Host<'_>, t: &ObjectDef) -> Result<bool, JobError> {
    Ok(host
        .query_value(
            "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = ? AND trigger_name = ?",
            &[&t.schema, &t.name],
        )?
        .is_some_and(|n| n != "0"))
}
