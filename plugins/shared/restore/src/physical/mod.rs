//! Physical restore (`reseed*backup`, `flashback*backup`): an xbstream from `mariadb-backup`
//! (or `xtrabackup`) into the local server, as the [`Physical`] [`RestoreEngine`].
//!
//! The steps; nothing that changes the live server starts before the last read-only one
//! succeeded:
//! 1. **Receive** ([`extract`]): the socket through the xbstream validator into
//!    `mbstream -x`; a stream cut short fails here.
//! 2. **Prepare** ([`prepare`], [`temp_server`], [`catalog`]): `mariadb-backup --prepare
//!    --export`; the replication position from the backup's files; from a temporary
//!    read-only `mariadbd` on the prepared backup, every database, table definition, row
//!    count, view, trigger, routine and event.
//! 3. **Restore**, by setting `restore_mode`: [`online`] (default; the live server keeps
//!    running and serving its old data while the backup is built in shadow databases, its
//!    tables created and their files imported ([`tables`]), then one `RENAME TABLE` switches)
//!    or [`full`] (the service is stopped and the datadir replaced, the old one put back on
//!    failure). Both are journaled, so a run killed in the middle is finished or rolled back
//!    by the next start ([`crate::recover`]).
//! 4. **Verify** ([`verify`]): every restored table opens and has the backup's row count;
//!    then online mode drops the old tables it kept for a rollback.
//! 5. **Replicate**: running replication connections are stopped before the restore
//!    changes anything; afterwards `gtid_slave_pos` and `START SLAVE` on every configured
//!    connection (legacy and state variants), or the position as payload for
//!    replication-manager to apply (payload variant, API mode).
//!
//! The result counts what was restored: tables, views, triggers, routines, events and
//! sequences (full mode reads them from the restarted server), and says that MEMORY
//! tables come back empty.
//!
//! Every statement goes through [`dbjobs_sdk::Host::query`], whose session has
//! `sql_log_bin=0`, so nothing of the restore reaches the node's binary log.

pub mod catalog;
pub mod extract;
pub mod files;
pub mod full;
pub mod imported;
pub mod node_only;
pub mod online;
pub mod prepare;
pub mod tables;
pub mod temp_server;
pub mod verify;

use std::fs;
use std::path::{Path, PathBuf};

use dbjobs_kit::copy::human_bytes;
use dbjobs_kit::disk;
use dbjobs_kit::position::BinlogPosition;
use dbjobs_kit::tool::find_tool;
use dbjobs_sdk::{JobError, ServerState};

use crate::context::Context;
use crate::engine::RestoreEngine;
use crate::journal::Journal;
use crate::receive::Received;
use crate::replication;
use crate::settings::{Mode, Settings};
use crate::summary::{memory_tables_note, ObjectCounts, Summary};
use catalog::{Catalog, Kind};
use extract::Extracted;
use temp_server::{ServerTools, TempServer};

/// The physical restore engine: its mode and the tools it runs, found before anything
/// listens.
pub struct Physical {
    mode: Mode,
    restore_accounts: bool,
    mbstream: PathBuf,
    backup_tool: PathBuf,
    mariadbd: PathBuf,
    client: PathBuf,
}

impl Physical {
    /// Find the extractor, the backup tool, `mariadbd` and the client (settings first, then
    /// `PATH`); in full mode, check the service commands parse.
    pub fn new(settings: &Settings) -> Result<Self, JobError> {
        let s = &settings.restore;
        if s.restore_mode == Mode::Full {
            settings.service.stop()?;
            settings.service.start()?;
        }
        Ok(Physical {
            mode: s.restore_mode,
            restore_accounts: s.restore_accounts,
            mbstream: find_tool(&["mbstream", "xbstream"], Some(&s.mbstream_tool))?,
            backup_tool: find_tool(
                &["mariadb-backup", "mariabackup", "xtrabackup"],
                Some(&settings.tool.backup_tool),
            )?,
            mariadbd: find_tool(&["mariadbd", "mysqld"], Some(&s.mariadbd_tool))?,
            client: find_tool(&["mariadb", "mysql"], Some(&s.mariadb_client))?,
        })
    }
}

/// A prepared backup and everything read from it.
pub struct Prepared {
    backup: Extracted,
    position: Option<BinlogPosition>,
    catalog: Catalog,
    /// The live datadir's metadata: the owner and mode restored files get.
    owner: fs::Metadata,
}

/// What the restore step did, for the result.
pub struct Restored {
    notes: Vec<String>,
    /// The views, triggers, routines, events and sequences restored.
    objects: ObjectCounts,
    /// The node's replication connections before the restore (the running ones were
    /// stopped for it).
    connections: Vec<replication::Connection>,
    /// Online mode: the journal, ended by [`RestoreEngine::finish`].
    journal: Option<Journal>,
}

impl RestoreEngine for Physical {
    type Staged = Extracted;
    type Prepared = Prepared;
    type Restored = Restored;

    fn receive(&self, ctx: &Context<'_, '_>, connection: Received) -> Result<Extracted, JobError> {
        extract::receive(ctx, &self.mbstream, connection)
    }

    fn prepare(&self, ctx: &Context<'_, '_>, backup: Extracted) -> Result<Prepared, JobError> {
        ctx.host.progress("preparing the backup");
        prepare::check_tool_version(&self.backup_tool, &ctx.facts)?;
        prepare::prepare(ctx.host, &self.backup_tool, &backup.dir)?;
        let position = BinlogPosition::from_backup_dir(&backup.dir)?;
        if position.is_none() {
            ctx.host
                .warn("the backup has no binary log position (the source ran without log-bin)");
        }
        let datadir = &ctx.facts.datadir;
        let owner = fs::metadata(datadir).map_err(|e| {
            JobError::io(format!(
                "cannot stat the datadir {}: {e}",
                datadir.display()
            ))
        })?;
        room_in_the_datadir(ctx, &backup.dir)?;
        ctx.host.progress("reading the backup's definitions");
        let catalog = self.read_catalog(ctx, &backup)?;
        Ok(Prepared {
            backup,
            position,
            catalog,
            owner,
        })
    }

    fn restore(&self, ctx: &Context<'_, '_>, prepared: &Prepared) -> Result<Restored, JobError> {
        let connections = replication::stop_running(ctx.host)?;
        let stopped = connections.iter().any(|c| c.running);
        self.restore_data(ctx, prepared, connections).map_err(|e| {
            // A rollback started the stopped connections again.
            let rolled_back = e.state == ServerState::Untouched && ctx.changes.started();
            replication::left_stopped(e, stopped && !rolled_back)
        })
    }

    /// Online mode: drop the old tables kept for a rollback, end the journal.
    fn finish(
        &self,
        ctx: &Context<'_, '_>,
        _: &Prepared,
        restored: &mut Restored,
    ) -> Result<(), JobError> {
        match restored.journal.take() {
            Some(journal) => online::finish(ctx.host, journal),
            None => Ok(()),
        }
    }

    fn verify(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Prepared,
        _: &Restored,
    ) -> Result<(), JobError> {
        ctx.host.progress("verifying the restored tables");
        verify::tables(ctx.host, &prepared.catalog)
    }

    /// The legacy and state variants: `gtid_slave_pos` and every configured connection
    /// started. The payload variant and API mode: position and replication are left to
    /// replication-manager (which stopped every channel before, and restarts them).
    fn replicate(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Prepared,
        restored: &Restored,
    ) -> Result<Vec<String>, JobError> {
        if ctx.job.manager_applies_position() {
            let mut notes = vec![match &prepared.position {
                Some(p) => format!("GTID {} (left to replication-manager)", p.gtid),
                None => "no replication position in the backup".into(),
            }];
            if restored.connections.iter().any(|c| c.running) {
                notes.push(
                    "replication stopped for the restore, left to replication-manager".into(),
                );
            }
            return Ok(notes);
        }
        let mut notes = match &prepared.position {
            None => vec!["no replication position in the backup".into()],
            Some(p) => replication::set_position_and_start(ctx.host, p)?,
        };
        if self.mode == Mode::Full {
            let now = replication::connections(ctx.host)?;
            notes.extend(replication::lost_connections_note(
                &restored.connections,
                &now,
            ));
        }
        Ok(notes)
    }

    fn position<'p>(&self, prepared: &'p Prepared, _: &'p Restored) -> Option<&'p BinlogPosition> {
        prepared.position.as_ref()
    }

    fn summary(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Prepared,
        restored: &Restored,
        replication: Vec<String>,
    ) -> String {
        let (stream, c) = (&prepared.backup.stream, &prepared.catalog);
        let mut summary = Summary::new(format!(
            "{} ({} restore) done in {:.1} s: {} received{}, {} files, {} databases, {} tables ({} InnoDB imported), {}",
            ctx.intent.as_str(),
            self.mode.as_str(),
            ctx.started.elapsed().as_secs_f64(),
            human_bytes(stream.bytes_received),
            match stream.stale_bytes {
                0 => String::new(),
                n => format!(" ({n} bytes of stale padding ignored)"),
            },
            stream.files,
            c.databases.len(),
            c.count(Kind::Table, false),
            c.count(Kind::Table, true),
            restored.objects.text(),
        ));
        summary
            .notes(replication)
            .notes(restored.notes.iter().cloned());
        summary.text()
    }
}

/// Refuse, before the first change, a backup whose files would not fit in the datadir:
/// staged on the datadir's file system (the default) they are moved, and take no more room;
/// staged elsewhere (`backup_dir`) they are copied, and the datadir must hold them beside
/// the live data (kept until the restore verified) plus `min_free_mb`.
fn room_in_the_datadir(ctx: &Context<'_, '_>, backup: &Path) -> Result<(), JobError> {
    let datadir = &ctx.facts.datadir;
    let io = |e: std::io::Error| JobError::io(format!("cannot measure {}: {e}", backup.display()));
    if disk::same_file_system(backup, datadir).map_err(io)? {
        return Ok(());
    }
    let need = disk::tree_bytes(backup).map_err(io)?;
    let floor = ctx.settings.restore.min_free_bytes();
    let free = disk::free_bytes(datadir).map_err(io)?;
    if free >= need.saturating_add(floor) {
        return Ok(());
    }
    Err(JobError::no_space(format!(
        "the backup needs {} in the datadir {} (staged on another file system, its files are copied) and {} must stay free, but only {} is",
        human_bytes(need),
        datadir.display(),
        human_bytes(floor),
        human_bytes(free)
    ))
    .with_hint("free space in the datadir, or stage on its file system (backup_dir empty)")
    .with_state(ServerState::Untouched))
}

impl Physical {
    /// The data step of [`RestoreEngine::restore`], by mode: the object counts and notes
    /// for the result.
    fn restore_data(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Prepared,
        connections: Vec<replication::Connection>,
    ) -> Result<Restored, JobError> {
        let mut notes = Vec::new();
        let mut journal = None;
        let objects = match self.mode {
            Mode::Online => {
                if self.restore_accounts {
                    ctx.host.warn("restore_accounts=true is not implemented for online restores: the node keeps its own accounts");
                    notes.push("accounts kept (restore_accounts not implemented)".to_string());
                }
                let places = online::Places {
                    backup: &prepared.backup.dir,
                    datadir: &ctx.facts.datadir,
                    owner: &prepared.owner,
                };
                let start = online::JournalStart {
                    stopped_replication: connections
                        .iter()
                        .filter(|c| c.running)
                        .map(|c| c.name.clone())
                        .collect(),
                    gtid: prepared.position.as_ref().map_or("", |p| p.gtid.as_str()),
                };
                journal = Some(online::restore(ctx, &prepared.catalog, &places, start)?);
                prepared.catalog.object_counts()
            }
            Mode::Full => {
                let full = full::FullRestore {
                    backup: &prepared.backup.dir,
                    owner: &prepared.owner,
                    backup_tool: &self.backup_tool,
                    catalog: &prepared.catalog,
                };
                let live = full::restore(ctx, &full)?;
                ObjectCounts {
                    views: prepared.catalog.count(Kind::View, false),
                    sequences: prepared.catalog.count(Kind::Sequence, false),
                    ..live.object_counts()
                }
            }
        };
        notes.extend(memory_tables_note(&prepared.catalog.memory_tables()));
        Ok(Restored {
            notes,
            objects,
            connections,
            journal,
        })
    }

    /// Start the temporary server on the prepared backup, read its catalog, stop it. Online
    /// mode gets an account on it, so triggers, routines and events can be read too.
    fn read_catalog(&self, ctx: &Context<'_, '_>, backup: &Extracted) -> Result<Catalog, JobError> {
        let with_objects = self.mode == Mode::Online;
        let tools = ServerTools {
            mariadbd: &self.mariadbd,
            client: &self.client,
        };
        let temp = TempServer::start(
            ctx.host,
            &tools,
            &backup.dir,
            ctx.staging.path(),
            with_objects,
        )?;
        crate::fault::point(ctx.host, crate::fault::TEMP_SERVER_UP);
        let catalog = Catalog::read(&temp, with_objects);
        temp.shutdown();
        catalog.map_err(|e| e.context("reading the backup's definitions"))
    }
}
