//! Reseed and flashback: receive a backup from replication-manager and restore it.
//!
//! Both inbound families do the same work on the node (PROTOCOL.md §2): listen on the row's
//! port, accept replication-manager's one connection, receive a backup and restore it into
//! the local server. Reseed rebuilds the node from another node's backup, flashback restores
//! the node's own older backup; only the wording of logs and results differs ([`Intent`]).
//! The backup format follows from the task name ([`Method`]): `*mysqldump` is a gzip'd SQL
//! dump ([`logical`]), `*xtrabackup`/`*mariabackup` an xbstream ([`physical`]). Both are
//! [`engine::RestoreEngine`]s, run step by step by [`engine::restore_with`].
//!
//! [`run`] is the whole job: read the settings and the server's facts, create the staging
//! directory ([`staging`]), then the engine's steps. Every failure carries the state the
//! server was left in ([`context::Context::settle`]).
//!
//! Modules, by step: [`receive`] (listen, accept, the reader and writer of a transfer),
//! [`staging`], [`logical`] and [`physical`] (one module per step inside), [`shadow`] (the
//! shadow databases and the one switch), [`objects`] (views, triggers, routines, events
//! after the tables), [`replication`] (position, `START SLAVE`), [`summary`] (the result
//! text); [`context`] and [`engine`] hold them together, [`journal`] keeps a restore's
//! progress on disk and [`recover`] finishes the restores of dead runs at start-up,
//! [`fault`] holds the tests' pause points, [`settings`] declares what they read,
//! [`xbstream`] parses the physical stream.

pub mod context;
pub mod engine;
pub mod fault;
pub mod journal;
pub mod logical;
pub mod objects;
pub mod physical;
pub mod receive;
pub mod recover;
pub mod replication;
pub mod settings;
pub mod shadow;
pub mod staging;
pub mod statement;
pub mod summary;
pub mod xbstream;

use std::time::Instant;

use dbjobs_kit::server::ServerFacts;
use dbjobs_sdk::{Host, Job, JobError, Outcome, ServerState};

use context::{Context, LiveChanges};
use engine::{restore_with, RestoreEngine};
use journal::{JobLock, LockInfo};
pub use recover::recover;
pub use settings::{Mode, RestoreSettings, Settings};
use staging::Staging;

/// Every setting the restore engine reads, for the plugins' declarations.
pub fn declared_settings() -> Vec<dbjobs_sdk::SettingDecl> {
    Settings::decls()
}

/// Why the node restores a backup. The work is the same; logs and results say which it was,
/// so an operator reading the row knows whether the node was rebuilt from another node
/// (reseed) or rolled back to its own backup (flashback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// `reseed*` tasks: rebuild from the master's (or backup server's) backup.
    Reseed,
    /// `flashback*` tasks: restore the node's own last backup.
    Flashback,
}

impl Intent {
    /// `reseed` or `flashback`, for results and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Reseed => "reseed",
            Intent::Flashback => "flashback",
        }
    }
}

/// How the backup is restored, which follows from what replication-manager sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// A gzip'd SQL dump (`*mysqldump`), replayed through the `mariadb` client.
    Logical,
    /// An xbstream of a physical backup (`*xtrabackup`, `*mariabackup`).
    Physical,
}

/// The restore method of an inbound task name, or `None` for a task that is not a restore.
/// Matching on the suffix keeps `reseed` and `flashback` (and any future prefix) in one place.
pub fn method_of(task: &str) -> Option<Method> {
    let t = task.to_ascii_lowercase();
    if t.ends_with("mysqldump") {
        Some(Method::Logical)
    } else if t.ends_with("xtrabackup") || t.ends_with("mariabackup") {
        Some(Method::Physical)
    } else {
        None
    }
}

/// Run one reseed or flashback job: read the settings, set up the engine of the task's
/// method (its tools found) before anything listens, then restore with it.
pub fn run(intent: Intent, job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
    let method = method_of(&job.task).ok_or_else(|| {
        JobError::invalid_job(format!(
            "task {:?} is not a restore task (expected a name ending in mysqldump, xtrabackup or mariabackup)",
            job.task
        ))
        .with_state(ServerState::Untouched)
    })?;
    let settings = Settings::read(host)?;
    let untouched = |e: JobError| e.or_state(ServerState::Untouched);
    match method {
        Method::Logical => {
            let engine = logical::Logical::new(&settings.restore).map_err(untouched)?;
            run_engine(&engine, intent, job, host, settings)
        }
        Method::Physical => {
            let engine = physical::Physical::new(&settings).map_err(untouched)?;
            run_engine(&engine, intent, job, host, settings)
        }
    }
}

/// The server's facts and the staging directory, then [`restore_with`]; the error gets the
/// server's state. The staging directory is removed when this returns.
fn run_engine<E: RestoreEngine>(
    engine: &E,
    intent: Intent,
    job: &Job,
    host: &Host<'_>,
    settings: Settings,
) -> Result<Outcome, JobError> {
    let untouched = |e: JobError| e.or_state(ServerState::Untouched);
    let facts = ServerFacts::read(host).map_err(untouched)?;
    let staging = Staging::create(&settings.restore, &facts, job.id).map_err(untouched)?;
    let lock = JobLock::take(
        &journal::journal_dir(host).map_err(untouched)?,
        &LockInfo {
            job_id: job.id,
            task: job.task.clone(),
            staging: staging.path().to_path_buf(),
        },
    )
    .map_err(untouched)?;
    host.info(&format!(
        "{} job {}: staging in {}",
        intent.as_str(),
        job.id,
        staging.path().display()
    ));
    let ctx = Context {
        host,
        job,
        intent,
        settings,
        facts,
        staging,
        started: Instant::now(),
        changes: LiveChanges::default(),
    };
    let result = restore_with(engine, &ctx).map_err(|e| ctx.settle(e));
    drop(ctx);
    lock.release();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_follow_the_task_suffix() {
        assert_eq!(method_of("reseedmysqldump"), Some(Method::Logical));
        assert_eq!(method_of("flashbackmysqldump"), Some(Method::Logical));
        assert_eq!(method_of("reseedxtrabackup"), Some(Method::Physical));
        assert_eq!(method_of("flashbackmariabackup"), Some(Method::Physical));
        assert_eq!(method_of("optimize"), None);
    }
}
