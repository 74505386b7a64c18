//! The online restore: the live server keeps running while each database of the backup is
//! recreated on it.
//!
//! Per database: drop and recreate, then per InnoDB table `CREATE` + `DISCARD TABLESPACE` +
//! move `.ibd`/`.cfg` in + `IMPORT TABLESPACE` (partitions through a work table, see
//! `restore_partitions`); MyISAM/Aria/CSV/Archive data files are moved over the new empty
//! table's and flushed; then views, triggers, routines and events. The `mysql` schema
//! (accounts) and the other system schemas are left as the node has them.
//!
//! The first `DROP DATABASE` is the first change to the live server; from there a failure
//! leaves the server partial (a crash-safe restore builds every database aside and switches
//! once instead).

use std::fs;
use std::path::{Path, PathBuf};

use dbjobs_kit::sql::{qualified, quote_ident};
use dbjobs_sdk::{Host, JobError};

use super::catalog::{Catalog, Kind, TableDef};
use super::files::{frm_stems, move_in, partition_names, subdirs, table_files};
use super::imported;
use crate::context::Context;
use crate::objects;
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

/// Recreate each database of the backup on the running server, then its views, triggers,
/// routines and events. The session's `foreign_key_checks`, `sql_mode` and `time_zone` are
/// put back afterwards, whatever happened.
pub fn restore(
    ctx: &Context<'_, '_>,
    catalog: &Catalog,
    places: &Places<'_>,
) -> Result<(), JobError> {
    let host = ctx.host;
    let saved_mode = host
        .query_value("SELECT @@SESSION.sql_mode", &[])?
        .unwrap_or_default();
    let saved_tz = host
        .query_value("SELECT @@SESSION.time_zone", &[])?
        .unwrap_or_else(|| "SYSTEM".into());
    exec(host, "SET SESSION foreign_key_checks=0", &[])?;
    let result = restore_databases(ctx, catalog, places)
        .and_then(|()| objects::create_objects(host, catalog));
    let _ = host.query("SET SESSION foreign_key_checks=1", &[]);
    let _ = host.query("SET SESSION sql_mode=?", &[&saved_mode]);
    let _ = host.query("SET SESSION time_zone=?", &[&saved_tz]);
    result
}

/// Drop, recreate and fill each database of the backup.
fn restore_databases(
    ctx: &Context<'_, '_>,
    catalog: &Catalog,
    places: &Places<'_>,
) -> Result<(), JobError> {
    let host = ctx.host;
    for (db, create) in &catalog.databases {
        host.progress(&format!("restoring database {db}"));
        ctx.changes
            .begin(host, &format!("dropping database {db}"))?;
        exec(
            host,
            &format!("DROP DATABASE IF EXISTS {}", quote_ident(db)),
            &[],
        )?;
        let before = subdirs(places.datadir)?;
        exec(host, create, &[])?;
        exec(host, &format!("USE {}", quote_ident(db)), &[])?;
        let live_dir = places
            .datadir
            .join(db_dir_name(&before, places.datadir, db)?);
        let name = live_dir
            .file_name()
            .ok_or_else(|| JobError::internal("a database directory has no name"))?;
        let backup_dir = places.backup.join(name);
        for t in catalog
            .tables
            .iter()
            .filter(|t| &t.schema == db && t.kind != Kind::View)
        {
            restore_table(host, t, &backup_dir, &live_dir, places.owner)?;
        }
    }
    Ok(())
}

/// The directory name of database `db`, which the live server just created: the one that
/// appeared since `before` (so names needing MariaDB's file-name encoding work too), or `db`
/// itself when the directory survived the `DROP DATABASE` (it held foreign files).
fn db_dir_name(
    before: &std::collections::BTreeSet<String>,
    datadir: &Path,
    db: &str,
) -> Result<String, JobError> {
    let after = subdirs(datadir)?;
    let new: Vec<&String> = after.difference(before).collect();
    match new.as_slice() {
        [one] => Ok((*one).clone()),
        _ if datadir.join(db).is_dir() => Ok(db.to_string()),
        _ => Err(JobError::io(format!(
            "cannot find the directory of database {db:?} in {}",
            datadir.display()
        ))),
    }
}

/// Create one table on the live server and bring its data in.
fn restore_table(
    host: &Host<'_>,
    t: &TableDef,
    backup_dir: &Path,
    live_dir: &Path,
    owner: &fs::Metadata,
) -> Result<(), JobError> {
    let q = qualified(&t.schema, &t.name);
    let before = frm_stems(live_dir);
    exec(host, &t.create, &[])?;
    let stem = frm_stems(live_dir)
        .difference(&before)
        .next()
        .cloned()
        .ok_or_else(|| {
            JobError::io(format!(
                "cannot find the files of the new table {q} in {}",
                live_dir.display()
            ))
        })?;
    if t.kind == Kind::Sequence {
        // Its state (next value, cycle) is given with the objects, after every table.
        return Ok(());
    }
    let table = TableFiles {
        q,
        stem,
        from: backup_dir,
        to: live_dir,
        owner,
    };
    let partitions = partition_names(backup_dir, &table.stem);
    if !t.is_innodb() {
        table.move_data_files(host)?;
    } else if !partitions.is_empty() {
        table.restore_partitions(host, t, &partitions)?;
    } else {
        table.import_tablespace(host)?;
    }
    imported::finish(host, &t.schema, &t.name, t)
}

/// The files of one table being restored: the table, the file-system stem of its files, the
/// backup's database directory they come from and the live one they go to.
struct TableFiles<'p> {
    /// The table, quoted.
    q: String,
    /// The file-system name of its files.
    stem: String,
    from: &'p Path,
    to: &'p Path,
    owner: &'p fs::Metadata,
}

impl TableFiles<'_> {
    /// Move `files` into the live database directory, keeping their names.
    fn move_all_in(&self, files: &[PathBuf]) -> Result<(), JobError> {
        for f in files {
            move_in(f, &self.to.join(f.file_name().expect("a file")), self.owner)?;
        }
        Ok(())
    }

    /// InnoDB: discard the new table's tablespace, move the backup's `.ibd` and `.cfg` in,
    /// import.
    fn import_tablespace(&self, host: &Host<'_>) -> Result<(), JobError> {
        let (q, stem) = (&self.q, &self.stem);
        let files = table_files(self.from, stem, &["ibd", "cfg"]);
        if !files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "ibd"))
        {
            return Err(JobError::bad_input(format!(
                "the backup has no .ibd file for InnoDB table {q} (looked for {stem}.ibd in {})",
                self.from.display()
            )));
        }
        exec(host, &format!("ALTER TABLE {q} DISCARD TABLESPACE"), &[])?;
        self.move_all_in(&files)?;
        exec(host, &format!("ALTER TABLE {q} IMPORT TABLESPACE"), &[])?;
        // The .cfg files are only for the import.
        for f in table_files(self.to, stem, &["cfg"]) {
            let _ = fs::remove_file(f);
        }
        Ok(())
    }

    /// MyISAM, Aria, CSV, Archive: move the backup's data files over the new empty table's,
    /// then flush. MEMORY, BLACKHOLE, FEDERATED...: the definition is all there is.
    fn move_data_files(&self, host: &Host<'_>) -> Result<(), JobError> {
        let exts = ["MYD", "MYI", "MAD", "MAI", "CSV", "CSM", "ARZ", "par"];
        let files = table_files(self.from, &self.stem, &exts);
        if files.is_empty() {
            return Ok(());
        }
        let flush = format!("FLUSH TABLES {}", self.q);
        exec(host, &flush, &[])?;
        self.move_all_in(&files)?;
        exec(host, &flush, &[])
    }

    /// MariaDB cannot discard or import the tablespace of one partition: each partition's
    /// `.ibd` is imported into a plain copy of the table, which is then exchanged with the
    /// (empty) partition.
    fn restore_partitions(
        &self,
        host: &Host<'_>,
        t: &TableDef,
        partitions: &[String],
    ) -> Result<(), JobError> {
        let (q, stem, live_dir) = (&self.q, &self.stem, self.to);
        if partitions
            .iter()
            .any(|p| p.contains("#SP#") || p.contains("#sp#"))
        {
            return Err(JobError::refused(format!(
                "{q} has subpartitions, which an online restore cannot import"
            ))
            .with_hint("use restore_mode=full"));
        }
        let tmp = qualified(&t.schema, &format!("{}#dbjobs", t.name));
        for p in partitions {
            exec(host, &format!("DROP TABLE IF EXISTS {tmp}"), &[])?;
            let before = frm_stems(live_dir);
            exec(host, &format!("CREATE TABLE {tmp} LIKE {q}"), &[])?;
            let tmp_stem = frm_stems(live_dir)
                .difference(&before)
                .next()
                .cloned()
                .ok_or_else(|| {
                    JobError::io(format!("cannot find the files of the work table {tmp}"))
                })?;
            exec(host, &format!("ALTER TABLE {tmp} REMOVE PARTITIONING"), &[])?;
            exec(host, &format!("ALTER TABLE {tmp} DISCARD TABLESPACE"), &[])?;
            for ext in ["ibd", "cfg"] {
                let from = self.from.join(format!("{stem}#P#{p}.{ext}"));
                if from.exists() {
                    move_in(
                        &from,
                        &live_dir.join(format!("{tmp_stem}.{ext}")),
                        self.owner,
                    )?;
                }
            }
            exec(host, &format!("ALTER TABLE {tmp} IMPORT TABLESPACE"), &[])?;
            let _ = fs::remove_file(live_dir.join(format!("{tmp_stem}.cfg")));
            let exchange = format!(
                "ALTER TABLE {q} EXCHANGE PARTITION {} WITH TABLE {tmp}",
                quote_ident(p)
            );
            exec(host, &exchange, &[])?;
            exec(host, &format!("DROP TABLE {tmp}"), &[])?;
        }
        Ok(())
    }
}
