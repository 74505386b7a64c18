//! The full restore: the server is stopped and its datadir replaced by the prepared backup.
//!
//! [`ServiceControl::with_server_stopped`] does the one stop / change / start-or-put-back
//! pattern: stop the service, move the datadir aside, `--move-back` the backup into a new
//! one, give it to the server's user, start and wait; then put the node's own job queue back
//! (the backup holds the source's queue, and the host must still find this job's row) and
//! the databases only the node has ([`super::node_only`]). When
//! anything of that fails, the old datadir is put back and the server started on it; it is
//! deleted only after success. The node then has the backup's accounts too, and its events
//! are disabled on the replica once the server answers, as an online restore creates them.

use std::fs;
use std::path::{Path, PathBuf};

use dbjobs_kit::service::{wait_until_answers, ServiceControl, ServiceSettings};
use dbjobs_kit::sql::quote_ident;
use dbjobs_kit::tool::ToolCommand;
use dbjobs_sdk::{Host, JobError, ServerState};

use super::catalog::Catalog;
use super::files::chown_tree;
use super::node_only::NodeOnly;
use crate::context::Context;
use crate::journal::{FullMove, Journal, JournalPhase, JournalRecord};
use crate::objects;
use crate::shadow::ShadowSet;
use crate::statement::exec;

/// What a full restore needs: the prepared backup, the datadir's owner, the tool that
/// moves the backup in, and what the temporary server read from the backup.
pub struct FullRestore<'p> {
    /// The prepared backup.
    pub backup: &'p Path,
    /// The live datadir's metadata: the owner the restored files get.
    pub owner: &'p fs::Metadata,
    /// `mariadb-backup`, for `--move-back`.
    pub backup_tool: &'p Path,
    /// The backup's databases and tables.
    pub catalog: &'p Catalog,
}

/// Replace the live datadir with the prepared backup (moved there by `--move-back`) while
/// the service is down. Returns the triggers, routines and events of the backup's
/// databases as the restarted server has them (after their events were disabled on the
/// replica), for the result.
pub fn restore(ctx: &Context<'_, '_>, full: &FullRestore<'_>) -> Result<Catalog, JobError> {
    let (backup, owner, backup_tool) = (full.backup, full.owner, full.backup_tool);
    let dirs = Datadirs::of(&ctx.facts.datadir, ctx.job.id)?;
    if dirs.old.exists() {
        return Err(JobError::refused(format!(
            "{} exists (left by an earlier attempt?)",
            dirs.old.display()
        ))
        .with_hint("move it away and retry"));
    }
    // The staging directory may live inside the datadir (the default backup_dir): find the
    // backup there once the datadir has moved.
    let backup_moved = match backup.strip_prefix(&dirs.live) {
        Ok(rel) => dirs.old.join(rel),
        Err(_) => backup.to_path_buf(),
    };
    let queue = QueueTable::save(ctx.host)?;
    let node_only = NodeOnly::read(ctx.host, full.catalog)?;
    let service = ServiceControl::new(ctx.host, &ctx.settings.service)?;
    let journal = begin_journal(ctx, &dirs)?;
    let mut objects = None;
    let replaced = service.with_server_stopped(
        || {
            let replaced = dirs.replace(ctx.host, &backup_moved, owner, backup_tool);
            crate::fault::point(ctx.host, crate::fault::FULL_DATADIR_MOVED);
            replaced
        },
        |()| {
            crate::fault::point(ctx.host, crate::fault::FULL_SERVER_STARTED);
            queue.put_back(ctx.host)?;
            node_only.bring_back(ctx.host, &dirs.old, &dirs.live, owner)?;
            objects = Some(settle_objects(ctx.host, full.catalog)?);
            Ok(())
        },
        || dirs.put_back(),
    );
    match &replaced {
        // The old datadir could not be put back: the next start tries again.
        Err(e) if e.state == ServerState::Partial => {}
        _ => journal.done(),
    }
    replaced?;
    if let Err(e) = fs::remove_dir_all(&dirs.old) {
        ctx.host.warn(&format!(
            "the server runs on the restored data, but the old datadir {} could not be removed: {e}",
            dirs.old.display()
        ));
    }
    Ok(objects.unwrap_or_default())
}

/// The journal of a full restore, before the service is stopped: where the old datadir
/// goes, so that a run killed while the server is down gets it put back.
fn begin_journal(ctx: &Context<'_, '_>, dirs: &Datadirs) -> Result<Journal, JobError> {
    let record = JournalRecord {
        job_id: ctx.job.id,
        task: ctx.job.task.clone(),
        phase: JournalPhase::FullReplacing,
        set: ShadowSet::new(ctx.job.id, Vec::new()),
        created_live: Vec::new(),
        live_triggers: Vec::new(),
        stopped_replication: Vec::new(),
        after_switch: None,
        gtid: String::new(),
        full: Some(FullMove {
            datadir: dirs.live.clone(),
            old: dirs.old.clone(),
        }),
    };
    Journal::begin(ctx, record, "stopping the server to replace its datadir")
}

/// A full restore whose run died while the datadir was being replaced (its journal's
/// `full`): the service stopped if the server answers (it may run on the backup's
/// datadir), the old datadir put back, the service started on it and waited for.
pub fn put_back_after_crash(
    host: &Host<'_>,
    settings: &ServiceSettings,
    moved: &FullMove,
    job_id: u64,
) -> Result<String, JobError> {
    let dirs = Datadirs::of(&moved.datadir, job_id)?;
    if !dirs.old.exists() {
        return Ok("the old datadir was not moved aside, nothing to put back".into());
    }
    if host.query_value("SELECT 1", &[]).is_ok() {
        host.info("the server runs on the datadir of the dead restore: stopping it");
        settings.stop()?.run()?;
    }
    dirs.put_back()?;
    let start = settings.start()?;
    host.info(&format!("starting the service on the old datadir: {start}"));
    start.run()?;
    wait_until_answers(host, settings.wait())?;
    Ok(format!(
        "the old datadir was put back in {} and the server started on it",
        dirs.live.display()
    ))
}

/// Once the server runs on the restored datadir: read the triggers, routines and events of
/// the backup's databases, and disable the enabled events on the replica (as an online
/// restore creates them). Read from the live server: the temporary server of a full restore
/// runs without grant tables (creating an account would change the backup) and cannot show
/// events.
fn settle_objects(host: &Host<'_>, catalog: &Catalog) -> Result<Catalog, JobError> {
    let mut live = Catalog {
        databases: catalog.databases.clone(),
        ..Catalog::default()
    };
    live.read_objects(host)
        .map_err(|e| e.context("reading the restored triggers, routines and events"))?;
    objects::disable_events_on_slave(host, &live.events)?;
    Ok(live)
}

/// The live datadir and where the old one waits while the backup replaces it.
struct Datadirs {
    /// The live datadir.
    live: PathBuf,
    /// `<datadir>.dbjobs-old-<job>`: the old datadir until the restore succeeded.
    old: PathBuf,
    /// `<datadir>.dbjobs-failed-<job>`: a failed restore's datadir, while the old one is
    /// put back.
    failed: PathBuf,
}

impl Datadirs {
    /// The directories of job `job_id` beside `datadir`.
    fn of(datadir: &Path, job_id: u64) -> Result<Self, JobError> {
        let parent = datadir
            .parent()
            .ok_or_else(|| JobError::refused("the datadir has no parent directory"))?;
        let name = datadir
            .file_name()
            .ok_or_else(|| JobError::refused("the datadir has no name"))?
            .to_string_lossy()
            .into_owned();
        Ok(Datadirs {
            live: datadir.to_path_buf(),
            old: parent.join(format!("{name}.dbjobs-old-{job_id}")),
            failed: parent.join(format!("{name}.dbjobs-failed-{job_id}")),
        })
    }

    /// The change made while the server is down: the datadir aside, a new one with the
    /// old one's mode, the backup moved into it, everything given to the server's user.
    fn replace(
        &self,
        host: &Host<'_>,
        backup: &Path,
        owner: &fs::Metadata,
        backup_tool: &Path,
    ) -> Result<(), JobError> {
        let io = |what: &str, e: std::io::Error| JobError::io(format!("{what}: {e}"));
        fs::rename(&self.live, &self.old).map_err(|e| {
            io(
                &format!("cannot move the datadir {} aside", self.live.display()),
                e,
            )
        })?;
        fs::create_dir(&self.live)
            .map_err(|e| io(&format!("cannot create {}", self.live.display()), e))?;
        fs::set_permissions(&self.live, owner.permissions()).ok();
        // No host.progress while the server is down: writing the row would wait for it.
        host.info("moving the backup into place");
        let exit = ToolCommand::new(backup_tool, None)
            .arg("--no-defaults")
            .arg("--move-back")
            .arg(format!("--target-dir={}", backup.display()))
            .arg(format!("--datadir={}", self.live.display()))
            .run()?;
        if !exit.success() {
            return Err(exit.error("--move-back failed"));
        }
        chown_tree(&self.live, owner)
    }

    /// Put the old datadir back in place (the server is stopped); the failed one is
    /// deleted. Nothing to do when the datadir was never moved aside.
    fn put_back(&self) -> Result<(), JobError> {
        if !self.old.exists() {
            return Ok(());
        }
        let _ = fs::remove_dir_all(&self.failed);
        let aside = match self.live.exists() {
            true => fs::rename(&self.live, &self.failed),
            false => Ok(()),
        };
        aside
            .and_then(|()| fs::rename(&self.old, &self.live))
            .map_err(|e| {
                JobError::io(format!("putting the old datadir back failed: {e}"))
                    .with_hint(format!(
                        "the old data is in {}: move it to {} by hand and start the server",
                        self.old.display(),
                        self.live.display()
                    ))
                    .with_state(ServerState::Partial)
            })?;
        let _ = fs::remove_dir_all(&self.failed);
        Ok(())
    }
}

/// The node's job queue, carried over a full restore: the backup holds the source's queue
/// (or none), and the host must still find this job's row to write the outcome.
struct QueueTable {
    create: String,
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

impl QueueTable {
    const NAME: &'static str = "`replication_manager_schema`.`jobs`";

    /// Read the queue's definition and rows.
    fn save(host: &Host<'_>) -> Result<QueueTable, JobError> {
        let create = host
            .query(&format!("SHOW CREATE TABLE {}", Self::NAME), &[])?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().nth(1).flatten())
            .ok_or_else(|| JobError::sql("cannot read the definition of the job queue"))?;
        let columns = host
            .query(&format!("SHOW COLUMNS FROM {}", Self::NAME), &[])?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        let rows = host.query(&format!("SELECT * FROM {}", Self::NAME), &[])?;
        Ok(QueueTable {
            create,
            columns,
            rows,
        })
    }

    /// Replace whatever queue the backup brought with the saved one (not binlogged).
    fn put_back(&self, host: &Host<'_>) -> Result<(), JobError> {
        exec(
            host,
            "DROP DATABASE IF EXISTS `replication_manager_schema`",
            &[],
        )?;
        exec(host, "CREATE DATABASE `replication_manager_schema`", &[])?;
        exec(host, "USE `replication_manager_schema`", &[])?;
        exec(host, &self.create, &[])?;
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        for row in &self.rows {
            let values: Vec<&str> = row.iter().flatten().map(String::as_str).collect();
            let marks: Vec<&str> = row
                .iter()
                .map(|v| if v.is_some() { "?" } else { "NULL" })
                .collect();
            let insert = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                Self::NAME,
                cols.join(","),
                marks.join(",")
            );
            exec(host, &insert, &values)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_datadir_goes_back_in_place() {
        let parent = tempfile::tempdir().unwrap();
        let live = parent.path().join("data");
        fs::create_dir(&live).unwrap();
        fs::write(live.join("ibdata1"), b"old").unwrap();
        let dirs = Datadirs::of(&live, 9).unwrap();
        assert_eq!(dirs.old, parent.path().join("data.dbjobs-old-9"));
        // Never moved aside: nothing to put back.
        dirs.put_back().unwrap();
        assert_eq!(fs::read(live.join("ibdata1")).unwrap(), b"old");
        // Moved aside, a new datadir half filled: the old one comes back, the new one goes.
        fs::rename(&live, &dirs.old).unwrap();
        fs::create_dir(&live).unwrap();
        fs::write(live.join("ibdata1"), b"new").unwrap();
        dirs.put_back().unwrap();
        assert_eq!(fs::read(live.join("ibdata1")).unwrap(), b"old");
        assert!(!dirs.old.exists() && !dirs.failed.exists());
        // Moved aside, no new datadir yet.
        fs::rename(&live, &dirs.old).unwrap();
        dirs.put_back().unwrap();
        assert_eq!(fs::read(live.join("ibdata1")).unwrap(), b"old");
    }
}
