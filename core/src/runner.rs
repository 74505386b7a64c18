//! One pass over the queue (the cron mode), and the daemon loop around it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::RRef;
use dbjobs_sdk::abi::HostApi_TO;
use dbjobs_sdk::{Direction, Job, JobError, JobSource, Outcome, ServerState, TableVariant};

use crate::context::{HostEnv, JobContext};
use crate::error::Result;
use crate::loader::{LoadedPlugin, Registry, Task};
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
    if lock(queue).fail_if_pending(id, &reason)? {
        log::error!("job {id} rejected: {}", reason.result_text());
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

/// With the task's lock held: fail what an earlier run abandoned, claim the newest pending
/// row, validate it, run it through its plugin and record the ending.
fn run_locked(
    queue: &Mutex<Queue>,
    registry: &Registry,
    env: &HostEnv,
    task: &str,
) -> Result<Option<JobReport>> {
    let (plugin, spec) = registry.owner(task).expect("only owned tasks are run");
    let Some((row, variant)) = claim(queue, task, spec)? else {
        return Ok(None);
    };
    let start = Instant::now();
    let job = match validated_job(&row, task, spec, variant) {
        Ok(job) => job,
        Err(e) => {
            log::error!("job {} ({task}) rejected: {}", row.id, e.result_text());
            return finish(queue, row.id, task, Err(e), start).map(Some);
        }
    };
    if spec.direction != Direction::Inbound && !lock(queue).mark_running(row.id)? {
        log::warn!(
            "job {} ({task}) changed under us before it started; skipped",
            row.id
        );
        return Ok(None);
    }
    let ending = run_plugin(queue, env, plugin, spec, &job);
    finish(queue, row.id, task, ending, start).map(Some)
}

/// Fail the task's abandoned rows, then take its newest pending row (and the table variant).
fn claim(
    queue: &Mutex<Queue>,
    task: &str,
    spec: &Task,
) -> Result<Option<(crate::queue::JobRow, TableVariant)>> {
    let mut q = lock(queue);
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
    row: &crate::queue::JobRow,
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
        source: JobSource::Table,
    })
}

/// Run the job in its plugin, with the host context and its progress writer.
fn run_plugin(
    queue: &Mutex<Queue>,
    env: &HostEnv,
    plugin: &LoadedPlugin,
    spec: &Task,
    job: &Job,
) -> std::result::Result<Outcome, JobError> {
    let ctx = JobContext::new(env, queue, job.id, &job.task, spec.direction);
    ctx.job_started(&format!(
        "plugin {} [{}{}]",
        plugin.name,
        spec.direction.as_str(),
        job.server
            .as_deref()
            .map(|s| format!(", server {s}:{}", job.port))
            .unwrap_or_default()
    ));
    let ended = std::thread::scope(|scope| {
        scope.spawn(|| ctx.write_progress_until_done());
        let ended = job.with_abi(|abi| {
            let host = HostApi_TO::from_ptr(RRef::new(&ctx), TD_Opaque);
            (plugin.module.run())(abi, host).into_result()
        });
        ctx.stop_progress();
        ended
            .map(|o| Outcome {
                result: o.result.to_string(),
                payload: o.payload.map(|p| p.to_string()).into_option(),
            })
            .map_err(|e| JobError::from_abi(&e))
    });
    match &ended {
        Ok(o) => ctx.job_ended(true, &o.result),
        Err(e) => ctx.job_ended(false, &e.result_text()),
    }
    ended
}

/// Record the ending in the row, log it, and say how the job went.
fn finish(
    queue: &Mutex<Queue>,
    id: u64,
    task: &str,
    ended: std::result::Result<Outcome, JobError>,
    start: Instant,
) -> Result<JobReport> {
    let duration = start.elapsed();
    let (ending, ok, text) = match ended {
        Ok(o) => {
            let text = o.result.clone();
            (
                Ending::Success {
                    result: o.result,
                    payload: o.payload,
                },
                true,
                text,
            )
        }
        Err(e) => {
            let text = e.result_text();
            (Ending::Failure(e), false, text)
        }
    };
    lock(queue).finish(id, &ending)?;
    let secs = duration.as_secs_f64();
    if ok {
        log::info!("job {id} ({task}) succeeded in {secs:.1} s: {text}");
    } else {
        log::error!("job {id} ({task}) {text} (after {secs:.1} s)");
    }
    Ok(JobReport {
        id,
        task: task.to_string(),
        ok,
        result: text,
        duration,
    })
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
