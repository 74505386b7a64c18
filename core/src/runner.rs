//! One pass over the queue (the cron mode), and the daemon loop around it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::RRef;
use abi_stable::std_types::{RNone, ROption, RString};
use dbjobs_sdk::abi::{AbiJob, HostApi_TO};
use dbjobs_sdk::Direction;

use crate::context::{HostEnv, JobContext};
use crate::error::Result;
use crate::loader::Registry;
use crate::queue::{Ending, Queue};
use crate::validate;

/// How one job of a pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// Row id.
    pub id: u64,
    /// Task.
    pub task: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result text (or the error).
    pub result: String,
    /// Wall time.
    pub duration: Duration,
}

/// Run every pending job once: for each task a plugin owns, the newest pending row.
///
/// An idle pass costs one query: the tasks with unfinished rows are read first, and only those
/// are locked and looked at.
pub fn run_pass(
    queue: &Mutex<Queue>,
    registry: &Registry,
    env: &HostEnv,
) -> Result<Vec<JobReport>> {
    let unfinished = lock(queue).unfinished()?;
    let mut busy_tasks: Vec<&str> = Vec::new();
    for row in &unfinished {
        match row.task.as_deref().map(str::trim) {
            Some(t) if registry.owner(t).is_some() => busy_tasks.push(t),
            task => reject_unowned(queue, registry, env, row.id, task, row.age)?,
        }
    }
    let mut reports = Vec::new();
    for task in registry.task_names().filter(|t| busy_tasks.contains(t)) {
        if env.stop_requested() {
            break;
        }
        if let Some(report) = run_task(queue, registry, env, task)? {
            reports.push(report);
        }
    }
    Ok(reports)
}

/// Default of the `unowned_task_grace` setting, in seconds.
pub const DEFAULT_UNOWNED_TASK_GRACE: i64 = 600;

/// A pending row whose task no loaded plugin owns. A NULL or empty task can never run and is
/// failed at once. A named task may belong to another agent on the node (or to a plugin being
/// installed), so it is left alone for `unowned_task_grace` seconds (default 600; 0 = never
/// fail) with a warning, then failed with a message naming the fix, so that nobody waits for a
/// job that no one will run.
fn reject_unowned(
    queue: &Mutex<Queue>,
    registry: &Registry,
    env: &HostEnv,
    id: u64,
    task: Option<&str>,
    age: Option<i64>,
) -> Result<()> {
    let grace = env
        .settings
        .get("unowned_task_grace")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(DEFAULT_UNOWNED_TASK_GRACE);
    let reason = match task {
        None | Some("") => "the task is NULL or empty; nothing can run this row".to_string(),
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
            format!(
                "no dbjobs plugin on this node owns the task {t:?} (loaded: {}); install the plugin that provides it",
                owned.join(", ")
            )
        }
    };
    if lock(queue).fail_if_pending(id, &reason)? {
        log::error!("job {id} rejected: {reason}");
    }
    Ok(())
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

/// Claim and run the newest pending job of `task`, holding the task's lock throughout.
fn run_task(
    queue: &Mutex<Queue>,
    registry: &Registry,
    env: &HostEnv,
    task: &str,
) -> Result<Option<JobReport>> {
    if !lock(queue).lock_task(task)? {
        log::debug!("task {task} is being worked on by another dbjobs run; skipped");
        return Ok(None);
    }
    let result = run_locked(queue, registry, env, task);
    lock(queue).unlock_task(task);
    result
}

fn run_locked(
    queue: &Mutex<Queue>,
    registry: &Registry,
    env: &HostEnv,
    task: &str,
) -> Result<Option<JobReport>> {
    let (plugin, spec) = registry.owner(task).expect("only owned tasks are run");
    let (row, variant) = {
        let mut q = lock(queue);
        for id in q.fail_abandoned(task)? {
            log::warn!("job {id} ({task}) was abandoned by an earlier run; marked failed");
        }
        let Some(row) = q.take_pending(task)? else {
            return Ok(None);
        };
        (row, q.layout().variant)
    };
    let start = Instant::now();
    let endpoint = match validate::endpoint(spec.direction, row.server.as_deref(), row.port) {
        Ok(e) => e,
        Err(reason) => {
            log::error!("job {} ({task}) rejected: {reason}", row.id);
            lock(queue).finish(row.id, &Ending::Failure(reason.clone()))?;
            return Ok(Some(JobReport {
                id: row.id,
                task: task.to_string(),
                ok: false,
                result: reason,
                duration: start.elapsed(),
            }));
        }
    };
    if spec.direction != Direction::Inbound && !lock(queue).mark_running(row.id)? {
        log::warn!(
            "job {} ({task}) changed under us before it started; skipped",
            row.id
        );
        return Ok(None);
    }
    log::info!(
        "job {} ({task}) started by plugin {} [{}{}]",
        row.id,
        plugin.name,
        spec.direction.as_str(),
        endpoint
            .server
            .as_deref()
            .map(|s| format!(", server {s}:{}", endpoint.port))
            .unwrap_or_default()
    );
    let job = AbiJob {
        id: row.id,
        task: RString::from(task),
        server: match &endpoint.server {
            Some(s) => ROption::RSome(RString::from(s.as_str())),
            None => RNone,
        },
        port: endpoint.port,
        variant,
    };
    let ctx = JobContext::new(env, queue, row.id, task, spec.direction);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| ctx.write_progress_until_done());
        let host = HostApi_TO::from_ptr(RRef::new(&ctx), TD_Opaque);
        let outcome = (plugin.module.run())(&job, host).into_result();
        ctx.stop_progress();
        outcome
    });
    let duration = start.elapsed();
    let (ending, ok, text) = match outcome {
        Ok(o) => {
            let text = o.result.to_string();
            (
                Ending::Success {
                    result: text.clone(),
                    payload: o.payload.map(|p| p.to_string()).into_option(),
                },
                true,
                text,
            )
        }
        Err(e) => (Ending::Failure(e.to_string()), false, e.to_string()),
    };
    lock(queue).finish(row.id, &ending)?;
    if ok {
        log::info!(
            "job {} ({task}) succeeded in {:.1} s: {text}",
            row.id,
            duration.as_secs_f64()
        );
    } else {
        log::error!(
            "job {} ({task}) failed in {:.1} s: {text}",
            row.id,
            duration.as_secs_f64()
        );
    }
    Ok(Some(JobReport {
        id: row.id,
        task: task.to_string(),
        ok,
        result: text,
        duration,
    }))
}

/// Repeat passes every `interval` until a stop is requested; a pass that fails (server down)
/// is logged and retried with a fresh session. `queue` is the session opened at start-up.
/// Returns the number of failed jobs.
pub fn run_daemon(registry: &Registry, env: &HostEnv, queue: Queue, interval: Duration) -> usize {
    let mut failed = 0;
    let mut queue: Option<Mutex<Queue>> = Some(Mutex::new(queue));
    while !env.stop_requested() {
        if queue.is_none() {
            match Queue::open(&env.connection) {
                Ok(q) => queue = Some(Mutex::new(q)),
                Err(e) => log::error!("{e}"),
            }
        }
        if let Some(q) = &queue {
            match run_pass(q, registry, env) {
                Ok(reports) => failed += reports.iter().filter(|r| !r.ok).count(),
                Err(e) => {
                    log::error!("pass failed: {e}; reconnecting");
                    queue = None;
                }
            }
        }
        let slept = Instant::now();
        while slept.elapsed() < interval && !env.stop_requested() {
            std::thread::sleep(Duration::from_millis(100).min(interval));
        }
    }
    log::info!("stop requested; daemon exits");
    failed
}
