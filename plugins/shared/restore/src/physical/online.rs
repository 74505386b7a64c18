//! The online restore: the live server keeps running and serving its old data while the
//! backup is built aside, then one atomic switch puts it in place ([`crate::shadow`]).
//!
//! The steps, each boundary recorded in the journal ([`crate::journal`]):
//! 1. **refuse before touching**: a foreign key from a database the backup does not have
//!    into one it replaces;
//! 2. **journal** (the catalog kept beside it for a recovery), the first change;
//! 3. **build**: the shadow databases, each table created from the definition the temporary
//!    server read and its files imported ([`super::tables`]); a failure drops the shadows
//!    and the server is untouched;
//! 4. **switch**: one `RENAME TABLE` of every table; a failure is rolled back the same way;
//! 5. **objects**: the live databases' views, triggers, routines and events replaced by the
//!    backup's, sequences given their value;
//! 6. after the verify step, [`finish`]: the old tables dropped, the journal removed.
//!
//! The `mysql` schema (accounts) and the other system schemas are left as the node has
//! them, and so are databases that exist only on the node.

use std::fs;
use std::path::Path;

use dbjobs_kit::private::write_private_file;
use dbjobs_kit::sql::quote_ident;
use dbjobs_sdk::{Host, JobError};

use super::catalog::{Catalog, Kind};
use super::tables::{restore_table, Target};
use crate::context::Context;
use crate::fault;
use crate::journal::{self, AfterSwitch, Journal, JournalPhase, JournalRecord};
use crate::objects;
use crate::shadow::{self, ShadowSet};
use crate::statement::exec;

/// Where a restore reads and writes: the extracted backup, the live datadir and its owner.
pub struct Places<'p> {
    /// The prepared backup.
    pub backup: &'p Path,
    /// The live server's datadir.
    pub datadir: &'p Path,
    /// The datadir's metadata: the owner every moved file gets.
    pub owner: &'p fs::Metadata,
}

/// What the journal of an online restore starts with, besides the catalog.
pub struct JournalStart<'a> {
    /// The replication connections stopped for the restore (started again on a rollback).
    pub stopped_replication: Vec<String>,
    /// The backup's GTID.
    pub gtid: &'a str,
}

/// Build the backup aside, switch, create the objects (steps 1 to 5 of the module docs).
/// The session's `foreign_key_checks`, `sql_mode` and `time_zone` are put back afterwards,
/// whatever happened. The journal, for [`finish`] once the restore verified.
pub fn restore(
    ctx: &Context<'_, '_>,
    catalog: &Catalog,
    places: &Places<'_>,
    start: JournalStart<'_>,
) -> Result<Journal, JobError> {
    let host = ctx.host;
    let set = ShadowSet::new(
        ctx.job.id,
        catalog.databases.iter().map(|(d, _)| d.clone()).collect(),
    );
    shadow::refuse_outside_references(host, &set)?;
    let journal = begin_journal(ctx, catalog, &set, start)?;
    let saved = SavedSession::save(host)?;
    exec(host, "SET SESSION foreign_key_checks=0", &[])?;
    let result = build_and_switch(ctx, catalog, places, &set, &journal)
        .and_then(|()| create_objects(host, catalog, &set, &journal));
    saved.put_back(host);
    result.map(|()| journal)
}

/// Step 6: the restore verified, drop the old tables and the shadows, end the journal.
pub fn finish(host: &Host<'_>, journal: Journal) -> Result<(), JobError> {
    shadow::finish(host, &journal.record().set)?;
    journal.done();
    Ok(())
}

/// Keep the catalog beside the journal (a recovery creates the objects from it) and write
/// the journal.
fn begin_journal(
    ctx: &Context<'_, '_>,
    catalog: &Catalog,
    set: &ShadowSet,
    start: JournalStart<'_>,
) -> Result<Journal, JobError> {
    let catalog_file = journal::side_file(ctx.host, ctx.job.id, "catalog.json")?;
    let text = serde_json::to_vec(catalog)
        .map_err(|e| JobError::internal(format!("cannot encode the catalog: {e}")))?;
    write_private_file(&catalog_file, &text)?;
    let record = JournalRecord {
        job_id: ctx.job.id,
        task: ctx.job.task.clone(),
        phase: JournalPhase::Building,
        set: set.clone(),
        created_live: Vec::new(),
        live_triggers: Vec::new(),
        stopped_replication: start.stopped_replication,
        after_switch: Some(AfterSwitch::Catalog(catalog_file)),
        gtid: start.gtid.to_string(),
        full: None,
    };
    Journal::begin(ctx, record, "building the backup aside in shadow databases")
}

/// Steps 3 and 4; a failure in either rolls back (shadows dropped, live data untouched).
fn build_and_switch(
    ctx: &Context<'_, '_>,
    catalog: &Catalog,
    places: &Places<'_>,
    set: &ShadowSet,
    journal: &Journal,
) -> Result<(), JobError> {
    let host = ctx.host;
    let switched = build(ctx, catalog, places, set, journal).and_then(|()| {
        fault::point(host, fault::BEFORE_SWITCH);
        host.progress("switching to the restored tables");
        shadow::switch(host, set, journal, ctx.settings.restore.switch_lock_wait)
    });
    let Err(e) = switched else {
        fault::point(host, fault::AFTER_SWITCH);
        return Ok(());
    };
    Err(shadow::rolled_back_before_switch(
        host,
        journal,
        e,
        "the backup",
    ))
}

/// Step 3: the shadow databases, every table of the backup in them.
fn build(
    ctx: &Context<'_, '_>,
    catalog: &Catalog,
    places: &Places<'_>,
    set: &ShadowSet,
    journal: &Journal,
) -> Result<(), JobError> {
    let host = ctx.host;
    shadow::create_databases(host, set, &catalog.databases, journal)?;
    let tables: Vec<_> = catalog
        .tables
        .iter()
        .filter(|t| t.kind != Kind::View)
        .collect();
    for (i, t) in tables.iter().enumerate() {
        if i == tables.len() / 2 {
            fault::point(host, fault::SHADOW_HALF_BUILT);
        }
        let shadow = set
            .shadow_of(&t.schema)
            .ok_or_else(|| JobError::internal(format!("no shadow for database {}", t.schema)))?;
        host.progress(&format!(
            "building {}.{} aside ({} of {})",
            t.schema,
            t.name,
            i + 1,
            tables.len()
        ));
        exec(host, &format!("USE {}", quote_ident(shadow)), &[])?;
        let target = Target {
            schema: shadow,
            from: &places.backup.join(shadow::directory_of(host, &t.schema)?),
            to: &places.datadir.join(shadow::directory_of(host, shadow)?),
            owner: places.owner,
        };
        restore_table(host, t, &set.rewrite_references(&t.create), &target)
            .map_err(|e| e.context(format!("table {}.{}", t.schema, t.name)))?;
    }
    Ok(())
}

/// Step 5: the live databases' objects replaced by the backup's. A failure leaves the
/// backup's tables in place (no rollback brings the old ones back) and drops the old ones
/// ([`shadow::give_up_old_tables`]): the node is partial, the error names the object.
fn create_objects(
    host: &Host<'_>,
    catalog: &Catalog,
    set: &ShadowSet,
    journal: &Journal,
) -> Result<(), JobError> {
    host.progress("creating views, triggers, routines and events");
    shadow::clear_live_objects(host, set)
        .and_then(|()| objects::create_objects(host, catalog))
        .map_err(|e| shadow::give_up_old_tables(host, set, journal, e))?;
    journal.enter(JournalPhase::ObjectsCreated)
}

/// The session variables an online restore changes, put back afterwards.
struct SavedSession {
    sql_mode: String,
    time_zone: String,
}

impl SavedSession {
    /// Read them.
    fn save(host: &Host<'_>) -> Result<Self, JobError> {
        Ok(SavedSession {
            sql_mode: host
                .query_value("SELECT @@SESSION.sql_mode", &[])?
                .unwrap_or_default(),
            time_zone: host
                .query_value("SELECT @@SESSION.time_zone", &[])?
                .unwrap_or_else(|| "SYSTEM".into()),
        })
    }

    /// Put them back, with `foreign_key_checks` on (best effort).
    fn put_back(&self, host: &Host<'_>) {
        let _ = host.query("SET SESSION foreign_key_checks=1", &[]);
        let _ = host.query("SET SESSION sql_mode=?", &[&self.sql_mode]);
        let _ = host.query("SET SESSION time_zone=?", &[&self.time_zone]);
    }
}
