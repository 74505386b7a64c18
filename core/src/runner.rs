//! One pass over a job source (the cron mode), and the daemon loop around it.
//!
//! The runner does not know where jobs come from: a [`JobSource`] names the tasks worth
//! claiming and claims their jobs; the runner runs each through its plugin with the host
//! context and records the ending through the job's [`JobLink`].

use std::time::{Duration, Instant};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::RRef;
use dbjobs_sdk::abi::HostApi_TO;
use dbjobs_sdk::{Job, JobError, Outcome};

use crate::context::{HostEnv, JobContext};
use crate::error::Result;
use crate::loader::{LoadedPlugin, Registry, Task};
use crate::queue::{Ending, Queue};
use crate::source::table::TableSource;
use crate::source::{JobLink, JobSource};

/// How one job of a pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// Job id.
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

/// Run every pending job once: for each task a plugin owns, the job the source hands out.
pub fn run_pass(
    source: &dyn JobSource,
    registry: &Registry,
    env: &HostEnv,
) -> Result<Vec<JobReport>> {
    source.settle(env);
    let mut reports = Vec::new();
    for task in source.candidates(registry, env)? {
        if env.stop_requested() {
            break;
        }
        if let Some(report) = run_task(source, registry, env, &task)? {
            reports.push(report);
        }
    }
    Ok(reports)
}

/// Claim and run the job of `task`; the claim is released when its link is dropped.
fn run_task(
    source: &dyn JobSource,
    registry: &Registry,
    env: &HostEnv,
    task: &str,
) -> Result<Option<JobReport>> {
    let (plugin, spec) = registry.owner(task).expect("only owned tasks are run");
    let Some(claim) = source.claim(task, spec, env)? else {
        return Ok(None);
    };
    let link = claim.link.as_ref();
    let start = Instant::now();
    let job = match claim.job {
        Ok(job) => job,
        Err(e) => {
            log::error!("job {} ({task}) rejected: {}", claim.id, e.result_text());
            return finish(link, env, claim.id, task, Err(e), start).map(Some);
        }
    };
    if let Some(refusal) = crate::node_state::refusal(&env.host.state_dir, spec) {
        log::error!("job {} ({task}) refused: {}", job.id, refusal.result_text());
        return finish(link, env, job.id, task, Err(refusal), start).map(Some);
    }
    if !link.start(spec.direction)? {
        log::warn!(
            "job {} ({task}) changed under us before it started; skipped",
            job.id
        );
        return Ok(None);
    }
    let ending = run_plugin(link, env, plugin, spec, &job);
    finish(link, env, job.id, task, ending, start).map(Some)
}

/// Run the job in its plugin, with the host context and its progress writer.
fn run_plugin(
    link: &dyn JobLink,
    env: &HostEnv,
    plugin: &LoadedPlugin,
    spec: &Task,
    job: &Job,
) -> std::result::Result<Outcome, JobError> {
    let ctx = JobContext::new(env, link, job.id, &job.task, spec.direction);
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

/// Record the ending through the link, log it, and say how the job went.
fn finish(
    link: &dyn JobLink,
    env: &HostEnv,
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
    link.finish(&ending)?;
    crate::outcomes::record_ending(&env.host.state_dir, id, task, &ending, link.end_time());
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

/// Repeat passes over the job table every `interval` until a stop is requested; a pass that
/// fails (server down) is logged and retried with a fresh session. `queue` is the session
/// opened at start-up. Returns the number of failed jobs.
pub fn run_daemon(registry: &Registry, env: &HostEnv, queue: Queue, interval: Duration) -> usize {
    let mut source = Some(TableSource::new(queue));
    run_loop(env, interval, |env| {
        if source.is_none() {
            match Queue::open(&env.connection) {
                Ok(q) => source = Some(TableSource::new(q)),
                Err(e) => {
                    log::error!("{e}");
                    return 0;
                }
            }
        }
        let s = source.as_ref().expect("opened above");
        match run_pass(s, registry, env) {
            Ok(reports) => reports.iter().filter(|r| !r.ok).count(),
            Err(e) => {
                log::error!("pass failed: {e}; reconnecting");
                source = None;
                0
            }
        }
    })
}

/// Call `pass` every `interval` until a stop is requested; returns the sum of what it
/// returned (failed jobs).
pub fn run_loop(
    env: &HostEnv,
    interval: Duration,
    mut pass: impl FnMut(&HostEnv) -> usize,
) -> usize {
    let mut failed = 0;
    while !env.stop_requested() {
        failed += pass(env);
        let slept = Instant::now();
        while slept.elapsed() < interval && !env.stop_requested() {
            std::thread::sleep(Duration::from_millis(100).min(interval));
        }
    }
    log::info!("stop requested; daemon exits");
    failed
}
