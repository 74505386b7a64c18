//! Jobs from the node's `replication_manager_schema.jobs` table (SQL mode): the claim rules
//! are [`crate::queue`]'s; this is the [`JobSource`] face of them.
//!
//! A claim is a named lock, and a named lock belongs to the session that took it: so each
//! claimed job holds a queue session of its own until its link is dropped, and jobs of
//! different tasks can run at the same time (the runner's workers claim from several threads).
//! The sessions are a pool: a claim or a poll takes a free one (a kept one that still answers,
//! or a new one) and gives it back; one that failed is dropped, so a server that went away
//! costs a new connection at the next use, and no reconnect logic. A pass with one job uses
//! one session, the one it polled on.

use std::sync::{Mutex, MutexGuard};

use dbjobs_sdk::{Direction, Job, JobError, JobSource as Origin, ServerState, TableVariant};

use super::{Claim, JobLink, JobSource};
use crate::config::ConnectionOptions;
use crate::env::HostEnv;
use crate::error::Result;
use crate::loader::{Registry, Task};
use crate::queue::{Ending, JobRow, Queue};
use crate::validate;

/// The table, through a pool of queue sessions (see the module docs).
pub struct TableSource {
    connection: ConnectionOptions,
    free: Mutex<Vec<Queue>>,
}

impl TableSource {
    /// A source starting with the session `queue`; more connect with `connection`.
    pub fn new(queue: Queue, connection: &ConnectionOptions) -> Self {
        TableSource {
            connection: connection.clone(),
            free: Mutex::new(vec![queue]),
        }
    }

    /// A free session: a kept one that still answers, or a new one.
    fn session(&self) -> Result<Queue> {
        loop {
            let kept = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match kept {
                Some(mut q) => {
                    if q.alive() {
                        return Ok(q);
                    }
                }
                None => return Queue::open(&self.connection),
            }
        }
    }

    /// Give a session back for the next use.
    fn keep(&self, q: Queue) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).push(q);
    }
}

impl JobSource for TableSource {
    /// The owned tasks with unfinished rows; an idle pass costs this one query. Rows whose
    /// task no loaded plugin owns are left for another agent, then failed (see
    /// [`reject_unowned`]).
    fn candidates(&self, registry: &Registry, env: &HostEnv) -> Result<Vec<String>> {
        let mut q = self.session()?;
        let unfinished = q.unfinished()?;
        let mut busy: Vec<&str> = Vec::new();
        for row in &unfinished {
            match row.task.as_deref().map(str::trim) {
                Some(t) if registry.owner(t).is_some() => busy.push(t),
                task => reject_unowned(&mut q, registry, env, row.id, task, row.age)?,
            }
        }
        self.keep(q);
        Ok(registry
            .task_names()
            .filter(|t| busy.contains(t))
            .map(str::to_string)
            .collect())
    }

    /// On a session of its own: take the task's lock, fail what an earlier run abandoned,
    /// take the newest pending row and validate it. The lock and the session are held until
    /// the link is dropped.
    fn claim<'s>(&'s self, task: &str, spec: &Task, _env: &HostEnv) -> Result<Option<Claim<'s>>> {
        let mut q = self.session()?;
        if !q.lock_task(task)? {
            log::debug!("task {task} is being worked on by another dbjobs run; skipped");
            self.keep(q);
            return Ok(None);
        }
        let (row, variant) = match take(&mut q, task, spec) {
            Ok(Some(taken)) => taken,
            other => {
                q.unlock_task(task);
                if other.is_ok() {
                    self.keep(q);
                }
                return other.map(|_| None);
            }
        };
        Ok(Some(Claim {
            id: row.id,
            job: validated_job(&row, task, spec, variant),
            link: Box::new(TableLink {
                source: self,
                task: task.to_string(),
                id: row.id,
                session: Some(Mutex::new(q)),
            }),
        }))
    }
}

/// Fail the task's abandoned rows, then take its newest pending row (and the table variant).
fn take(q: &mut Queue, task: &str, spec: &Task) -> Result<Option<(JobRow, TableVariant)>> {
    // A killed job of a task that never changes data left the server as it was.
    let state = if spec.replaces_data || spec.direction == Direction::Local {
        ServerState::Unknown
    } else {
        ServerState::Untouched
    };
    for id in q.fail_abandoned(task, state)? {
        log::warn!("job {id} ({task}) was abandoned by an earlier run; marked failed");
    }
    let variant = q.layout().variant;
    Ok(q.take_pending(task)?.map(|row| (row, variant)))
}

/// The job a plugin sees, after the row's `server` and `port` were checked for the task's
/// direction; a bad row is an [`dbjobs_sdk::ErrorKind::InvalidJob`] error, server untouched.
fn validated_job(
    row: &JobRow,
    task: &str,
    spec: &Task,
    variant: TableVariant,
) -> std::result::Result<Job, JobError> {
    let endpoint = validate::endpoint(spec.direction, row.server.as_deref(), row.port)
        .map_err(|reason| JobError::invalid_job(reason).with_state(ServerState::Untouched))?;
    Ok(Job {
        id: row.id,
        task: task.to_string(),
        server: endpoint.server,
        port: endpoint.port,
        variant,
        source: Origin::Table,
    })
}

/// A claimed row with the session holding the task's lock, until dropped.
struct TableLink<'s> {
    source: &'s TableSource,
    task: String,
    id: u64,
    /// `Some` until dropped; the progress writer and the plugin's thread share it.
    session: Option<Mutex<Queue>>,
}

impl TableLink<'_> {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.session
            .as_ref()
            .expect("held until dropped")
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl JobLink for TableLink<'_> {
    fn start(&self, direction: Direction) -> Result<bool> {
        // Touching an inbound row before the listener is up would make replication-manager
        // connect too early.
        if direction == Direction::Inbound {
            return Ok(true);
        }
        self.lock().mark_running(self.id)
    }

    fn waiting(&self) -> std::result::Result<(), String> {
        match self.lock().mark_waiting(self.id) {
            Ok(true) => Ok(()),
            Ok(false) => Err(
                "the job row changed before the listener was up (deleted or taken by another agent)"
                    .into(),
            ),
            Err(e) => Err(format!("cannot mark the job waiting: {e}")),
        }
    }

    fn progress(&self, text: &str) {
        if let Err(e) = self.lock().progress(self.id, text) {
            log::debug!("job {} ({}): progress not written: {e}", self.id, self.task);
        }
    }

    fn finish(&self, ending: &Ending) -> Result<()> {
        self.lock().finish(self.id, ending)
    }

    fn end_time(&self) -> Option<String> {
        self.lock().end_of(self.id).unwrap_or_else(|e| {
            log::warn!(
                "job {} ({}): cannot read back its end time: {e}",
                self.id,
                self.task
            );
            None
        })
    }
}

impl Drop for TableLink<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let mut q = session.into_inner().unwrap_or_else(|p| p.into_inner());
            q.unlock_task(&self.task);
            self.source.keep(q);
        }
    }
}

/// A pending row whose task no loaded plugin owns. A NULL or empty task can never run and is
/// failed at once. A named task may belong to another agent on the node (or to a plugin being
/// installed), so it is left alone for `unowned_task_grace` seconds (default 600; 0 = never
/// fail) with a warning, then failed with a message naming the fix, so that nobody waits for a
/// job that no one will run.
fn reject_unowned(
    queue: &mut Queue,
    registry: &Registry,
    env: &HostEnv,
    id: u64,
    task: Option<&str>,
    age: Option<i64>,
) -> Result<()> {
    let grace = i64::try_from(env.host.unowned_task_grace).unwrap_or(i64::MAX);
    let reason = match task {
        None | Some("") => {
            JobError::invalid_job("the task is NULL or empty; nothing can run this row")
        }
        Some(t) => {
            if grace == 0 || age.is_some_and(|a| a < grace) || age.is_none() {
                if env.warn_once(id) {
                    log::warn!(
                        "job {id} has task {t:?}, which no loaded plugin owns; left for another agent for {grace} s (setting unowned_task_grace)"
                    );
                }
                return Ok(());
            }
            let owned: Vec<&str> = registry.task_names().collect();
            JobError::invalid_job(format!(
                "no dbjobs plugin on this node owns the task {t:?} (loaded: {})",
                owned.join(", ")
            ))
            .with_hint("install the plugin that provides it")
        }
    };
    let reason = reason.with_state(ServerState::Untouched);
    if queue.fail_if_pending(id, &reason)? {
        log::error!("job {id} rejected: {}", reason.result_text());
        let end = queue.end_of(id).ok().flatten();
        let ending = Ending::Failure(reason);
        crate::outcomes::record_ending(&env.host.state_dir, id, task.unwrap_or(""), &ending, end);
    }
    Ok(())
}
