//! One table of the backup brought into a database of the live server: created from the
//! definition the temporary server read, then its data imported (InnoDB: discard and
//! import the tablespace, partitions and subpartitions through a work table each) or moved
//! in (MyISAM, Aria, CSV, Archive), then finished ([`super::imported`]).

use std::fs;
use std::path::{Path, PathBuf};

use dbjobs_kit::sql::{qualified, quote_ident};
use dbjobs_sdk::{Host, JobError};

use super::catalog::{Kind, TableDef};
use super::files::{frm_stems, move_in, partition_names, table_files};
use super::imported;
use crate::statement::exec;

/// Where one table goes: the database it is created in (a shadow database), the
/// directories its files come from and go to, and the owner they get.
pub struct Target<'p> {
    /// The database the table is created in (the current database of the session).
    pub schema: &'p str,
    /// The backup's directory of the table's database.
    pub from: &'p Path,
    /// The live server's directory of `schema`.
    pub to: &'p Path,
    /// The datadir's metadata: the owner every moved file gets.
    pub owner: &'p fs::Metadata,
}

/// Create table `t` of the backup with `create` (its definition, foreign keys pointed at
/// the shadows) in `target.schema`, and bring its data in.
pub fn restore_table(
    host: &Host<'_>,
    t: &TableDef,
    create: &str,
    target: &Target<'_>,
) -> Result<(), JobError> {
    let q = qualified(target.schema, &t.name);
    let before = frm_stems(target.to);
    exec(host, create, &[])?;
    let stem = frm_stems(target.to)
        .difference(&before)
        .next()
        .cloned()
        .ok_or_else(|| {
            JobError::io(format!(
                "cannot find the files of the new table {q} in {}",
                target.to.display()
            ))
        })?;
    if t.kind == Kind::Sequence {
        // Its state (next value, cycle) is given with the objects, after the switch.
        return Ok(());
    }
    let table = TableFiles {
        schema: target.schema,
        name: &t.name,
        q,
        stem,
        from: target.from,
        to: target.to,
        owner: target.owner,
    };
    let partitions = partition_names(target.from, &table.stem);
    if !t.is_innodb() {
        table.move_data_files(host)?;
    } else if !partitions.is_empty() {
        table.restore_partitions(host, &partitions)?;
    } else {
        table.import_tablespace(host)?;
    }
    imported::finish(host, target.schema, &t.name, t)
}

/// The files of one table being restored: the table, the file-system stem of its files, the
/// backup's database directory they come from and the live one they go to.
struct TableFiles<'p> {
    /// The database it is created in.
    schema: &'p str,
    /// Its name.
    name: &'p str,
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
    /// (or subpartition's) `.ibd` is imported into a plain copy of the table, which is then
    /// exchanged with the (empty) partition. A subpartition's file is
    /// `<stem>#P#<partition>#SP#<subpartition>.ibd`, and `EXCHANGE PARTITION` takes the
    /// subpartition's name.
    fn restore_partitions(&self, host: &Host<'_>, partitions: &[String]) -> Result<(), JobError> {
        let tmp = qualified(self.schema, &format!("{}#dbjobs", self.name));
        for p in partitions {
            let exchanged = p
                .split_once("#SP#")
                .or_else(|| p.split_once("#sp#"))
                .map_or(p.as_str(), |(_, sub)| sub);
            exec(host, &format!("DROP TABLE IF EXISTS {tmp}"), &[])?;
            let tmp_stem = self.work_table(host, &tmp)?;
            for ext in ["ibd", "cfg"] {
                let from = self.from.join(format!("{}#P#{p}.{ext}", self.stem));
                if from.exists() {
                    move_in(
                        &from,
                        &self.to.join(format!("{tmp_stem}.{ext}")),
                        self.owner,
                    )?;
                }
            }
            exec(host, &format!("ALTER TABLE {tmp} IMPORT TABLESPACE"), &[])?;
            let _ = fs::remove_file(self.to.join(format!("{tmp_stem}.cfg")));
            let exchange = format!(
                "ALTER TABLE {} EXCHANGE PARTITION {} WITH TABLE {tmp}",
                self.q,
                quote_ident(exchanged)
            );
            exec(host, &exchange, &[])?;
            exec(host, &format!("DROP TABLE {tmp}"), &[])?;
        }
        Ok(())
    }

    /// Create the work table `tmp`: a copy of the table without partitioning and without
    /// a tablespace, ready for an import. Its file-system stem.
    fn work_table(&self, host: &Host<'_>, tmp: &str) -> Result<String, JobError> {
        let before = frm_stems(self.to);
        exec(host, &format!("CREATE TABLE {tmp} LIKE {}", self.q), &[])?;
        let stem = frm_stems(self.to)
            .difference(&before)
            .next()
            .cloned()
            .ok_or_else(|| {
                JobError::io(format!("cannot find the files of the work table {tmp}"))
            })?;
        exec(host, &format!("ALTER TABLE {tmp} REMOVE PARTITIONING"), &[])?;
        exec(host, &format!("ALTER TABLE {tmp} DISCARD TABLESPACE"), &[])?;
        Ok(stem)
    }
}
