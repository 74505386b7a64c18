//! Recovery at start-up: every plugin finishes or rolls back what runs that died left.
//!
//! A `dbjobs run` killed in the middle of a restore leaves more than a row marked running: a
//! journal, shadow databases, a temporary server, a staging directory (issue 10). Only the
//! plugin knows what its leftovers mean, so at every `dbjobs run` and `dbjobs daemon` start,
//! after the plugins are loaded and before any job is claimed, the host calls each plugin's
//! `recover` entry point (SDK 0.2.1; a 0.2.0 plugin has none and is skipped) with a
//! [`RecoveryContext`]. What it returns is the final outcome of each dead job, which
//! [`record_in_table`] writes to the job's row if the row is still unfinished, in place of the
//! generic "abandoned" the pass would write, and keeps with the other outcomes. In API mode
//! there is no row: replication-manager learns that the job failed from the report the dead
//! run owed, and the outcome is logged. In both, an outcome saying the server was left
//! partial marks the node, so restores are refused until `dbjobs clear-partial`.
//!
//! A recovery that fails (or panics) is logged as an error naming the plugin, and the start
//! goes on: the other plugins' jobs must not wait for one plugin's leftovers, which it will try
//! again at the next start.

mod context;

use std::path::PathBuf;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::RRef;
use dbjobs_sdk::abi::HostApi_TO;
use dbjobs_sdk::JobError;

pub use context::RecoveryContext;

use crate::env::HostEnv;
use crate::loader::{LoadedPlugin, Registry};
use crate::outcomes::{self, OutcomeRecord, OutcomeStore};
use crate::queue::{Ending, Queue};

/// The final outcome of a dead job, as a plugin's recovery reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The plugin's library, which must own the job's task for the outcome to be written.
    pub file: PathBuf,
    /// The plugin's name, for the log.
    pub plugin: String,
    /// The plugin's tasks (`reseedmysqldump, reseedmariabackup`), which name the job where its
    /// row does not (API mode, a row that is gone).
    pub tasks: String,
    /// The dead job's id.
    pub id: u64,
    /// How it ended: what the recovery did, and the state it left the server in.
    pub error: JobError,
}

/// Call every loaded plugin's `recover`, in load order, and collect the outcomes of the dead
/// jobs they report. Never fails: a failed recovery is logged (see the module docs).
pub fn recover_plugins(registry: &Registry, env: &HostEnv) -> Vec<Recovered> {
    let mut recovered = Vec::new();
    for plugin in &registry.plugins {
        match recover_one(plugin, env) {
            Ok(dead) => recovered.extend(dead),
            Err(e) => log::error!(
                "recovery (plugin {}) failed, what dead runs left stays until the next start: {}",
                plugin.name,
                e.result_text()
            ),
        }
    }
    recovered
}

/// One plugin's recovery; `Ok(empty)` for a plugin without the entry point.
fn recover_one(plugin: &LoadedPlugin, env: &HostEnv) -> Result<Vec<Recovered>, JobError> {
    let Some(recover) = plugin.module.recover() else {
        log::debug!(
            "plugin {} (dbjobs-sdk {}) has no recover entry point",
            plugin.name,
            plugin.sdk_version
        );
        return Ok(Vec::new());
    };
    let ctx = RecoveryContext::new(env, &plugin.name);
    let dead = recover(HostApi_TO::from_ptr(RRef::new(&ctx), TD_Opaque))
        .into_result()
        .map_err(|e| JobError::from_abi(&e))?;
    Ok(dead
        .into_iter()
        .map(|d| {
            let error = JobError::from_abi(&d.error);
            log::warn!(
                "{}: job {} died with its run; recovered: {}",
                ctx.tag(),
                d.id,
                error.result_text()
            );
            Recovered {
                file: plugin.file.clone(),
                plugin: plugin.name.clone(),
                tasks: plugin
                    .tasks
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                id: d.id,
                error,
            }
        })
        .collect())
}

/// SQL mode: write each outcome to its job's row, with the task's lock held and only if the
/// row is still unfinished and its task is the reporting plugin's. A row another dbjobs run is
/// working on (it holds the task's lock) is left to it; an outcome that cannot be written is
/// logged as an error with its text, so it is not lost silently.
///
/// Whether written or not, an outcome that says the server was left partial marks the node
/// (restores are refused until `dbjobs clear-partial`), and a written one is kept with the
/// other outcomes (`dbjobs jobs --json` shows its kind and state).
pub fn record_in_table(
    queue: &mut Queue,
    registry: &Registry,
    env: &HostEnv,
    recovered: &[Recovered],
) {
    for r in recovered {
        let task = match record_one(queue, registry, r) {
            Ok(Some(written)) => {
                let end = queue.end_of(r.id).ok().flatten();
                let record = OutcomeRecord::new(r.id, &written, &r.ending(), end);
                if let Err(e) = OutcomeStore::new(&env.host.state_dir).record(&record) {
                    log::error!("recovery: job {} ({written}): outcome not kept: {e}", r.id);
                }
                written
            }
            Ok(None) => r.tasks.clone(),
            Err(e) => {
                not_recorded(r, &e);
                r.tasks.clone()
            }
        };
        outcomes::mark_if_partial(&env.host.state_dir, r.id, &task, &r.error);
    }
}

/// No session to the job table could be opened: log every outcome as an error with its text
/// (and mark the node if one left it partial).
pub fn record_in_table_failed(env: &HostEnv, recovered: &[Recovered], why: &crate::Error) {
    for r in recovered {
        not_recorded(r, why);
        outcomes::mark_if_partial(&env.host.state_dir, r.id, &r.tasks, &r.error);
    }
}

/// API mode: the outcomes are not reported to replication-manager (it learns from the
/// report the dead run owed that the job failed); each is logged with its text, and one that
/// left the server partial marks the node.
pub fn log_unreported(env: &HostEnv, recovered: &[Recovered]) {
    for r in recovered {
        log::warn!(
            "recovery: job {}'s outcome stays in this log (API mode reports the dead run's owed error): {}",
            r.id,
            r.error.result_text()
        );
        outcomes::mark_if_partial(&env.host.state_dir, r.id, &r.tasks, &r.error);
    }
}

fn not_recorded(r: &Recovered, why: &crate::Error) {
    log::error!(
        "recovery: the outcome of job {} was not written ({}): {}",
        r.id,
        why.message,
        r.error.result_text()
    );
}

impl Recovered {
    /// The ending the host records.
    fn ending(&self) -> Ending {
        Ending::Failure(self.error.clone())
    }
}

/// Write one outcome, as [`record_in_table`] says; the task of the row written.
fn record_one(
    queue: &mut Queue,
    registry: &Registry,
    r: &Recovered,
) -> crate::Result<Option<String>> {
    let Some(task) = unfinished_task(queue, r.id)? else {
        log::info!(
            "recovery: job {} is finished already or gone; the outcome plugin {} reported is not written",
            r.id,
            r.plugin
        );
        return Ok(None);
    };
    if registry.owner(&task).is_none_or(|(p, _)| p.file != r.file) {
        log::error!(
            "recovery: plugin {} reported job {}, whose task {task:?} it does not own; its row is left as it is",
            r.plugin,
            r.id
        );
        return Ok(None);
    }
    if !queue.lock_task(&task)? {
        log::warn!(
            "recovery: task {task} is being worked on by another dbjobs run; job {} is left to it",
            r.id
        );
        return Ok(None);
    }
    let written = match unfinished_task(queue, r.id) {
        Ok(Some(_)) => queue.finish(r.id, &r.ending()).map(|()| true),
        Ok(None) => Ok(false),
        Err(e) => Err(e),
    };
    queue.unlock_task(&task);
    if !written? {
        return Ok(None);
    }
    log::info!(
        "recovery: job {} ({task}) marked failed with the outcome of its recovery",
        r.id
    );
    Ok(Some(task))
}

/// The task of job `id` if its row is still unfinished.
fn unfinished_task(queue: &mut Queue, id: u64) -> crate::Result<Option<String>> {
    Ok(queue
        .unfinished()?
        .into_iter()
        .find(|u| u.id == id)
        .map(|u| u.task.unwrap_or_default().trim().to_string()))
}
