//! Full mode keeps the databases only the node has: the backup's datadir replaces the
//! node's, so the databases the backup does not hold are carried over into it.
//!
//! Before the service is stopped, their definitions (tables, views, triggers, routines,
//! events) are read from the live server ([`NodeOnly::read`]). Once the server runs on the
//! backup's datadir, each is created again and its tables' files are taken from the old
//! datadir, which the clean stop left consistent: InnoDB tablespaces imported (without a
//! `.cfg`, which the server accepts for a definition that is the same), MyISAM, Aria, CSV and
//! Archive files moved ([`super::tables`]); then its objects ([`NodeOnly::bring_back`]). A
//! failure there is a failure of the restore's check step, which puts the old datadir back.
//!
//! What is written to those databases between the read and the stop is kept too (the files
//! are taken after the stop); only a definition changed in that moment would not match.

use std::fs;
use std::path::Path;

use dbjobs_kit::sql::quote_ident;
use dbjobs_sdk::{Host, JobError};

use super::catalog::{Catalog, Kind};
use super::tables::{restore_table, Target};
use crate::objects;
use crate::shadow::directory_of;
use crate::statement::exec;

/// The databases of the live server that the backup does not hold, and their definitions.
pub struct NodeOnly {
    catalog: Catalog,
}

impl NodeOnly {
    /// Read them from the live server (`host`): every database neither in `backup` nor a
    /// system schema (the job queue has its own carrying, see `full::QueueTable`).
    pub fn read(host: &Host<'_>, backup: &Catalog) -> Result<NodeOnly, JobError> {
        let in_backup = |db: &str| backup.databases.iter().any(|(b, _)| b == db);
        let catalog = Catalog::read_databases_where(host, true, |db| !in_backup(db))
            .map_err(|e| e.context("reading the databases only the node has"))?;
        Ok(NodeOnly { catalog })
    }

    /// Their names, for the log.
    pub fn names(&self) -> Vec<&str> {
        self.catalog
            .databases
            .iter()
            .map(|(d, _)| d.as_str())
            .collect()
    }

    /// On the server now running on the backup's datadir `datadir`: create each database
    /// again, its tables with their files from the old datadir `old`, then its objects.
    pub fn bring_back(
        &self,
        host: &Host<'_>,
        old: &Path,
        datadir: &Path,
        owner: &fs::Metadata,
    ) -> Result<(), JobError> {
        if self.catalog.databases.is_empty() {
            return Ok(());
        }
        host.info(&format!(
            "carrying over the databases only the node has: {}",
            self.names().join(", ")
        ));
        exec(host, "SET SESSION foreign_key_checks=0", &[])?;
        let result = self
            .catalog
            .databases
            .iter()
            .try_for_each(|(db, create)| self.bring_back_one(host, db, create, old, datadir, owner))
            .and_then(|()| objects::create_objects(host, &self.catalog));
        let _ = host.query("SET SESSION foreign_key_checks=1", &[]);
        result.map_err(|e| e.context("carrying over the databases only the node has"))
    }

    /// One database: created, then each of its tables from the old datadir's files.
    fn bring_back_one(
        &self,
        host: &Host<'_>,
        db: &str,
        create: &str,
        old: &Path,
        datadir: &Path,
        owner: &fs::Metadata,
    ) -> Result<(), JobError> {
        exec(host, create, &[])?;
        exec(host, &format!("USE {}", quote_ident(db)), &[])?;
        let dir = directory_of(host, db)?;
        let target = Target {
            schema: db,
            from: &old.join(&dir),
            to: &datadir.join(&dir),
            owner,
        };
        for t in self
            .catalog
            .tables
            .iter()
            .filter(|t| t.schema == db && t.kind != Kind::View)
        {
            restore_table(host, t, &t.create, &target)
                .map_err(|e| e.context(format!("table {db}.{}", t.name)))?;
        }
        Ok(())
    }
}
