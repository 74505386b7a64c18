//! One pass over a job source (the cron mode), the daemon loop, and the run of one job.
//!
//! The runner does not know where jobs come from: a [`JobSource`] names the tasks worth
//! claiming and claims their jobs; the runner runs each through its plugin with the host
//! context and records the ending through the job's [`JobLink`]. Jobs of different tasks run
//! at the same time, each in a worker of [`crate::workers`]; [`run_task`] and what it calls
//! are one job, the same whoever schedules it.

use std::time::{Duration, Instant};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::RRef;
use dbjobs_sdk::abi::HostApi_TO;
use dbjobs_sdk::{Job, JobError, Outcome};

use crate::context::JobContext;
use crate::env::HostEnv;
use crate::error::{Error, Result};
use crate::loader::{LoadedPlugin, Registry, Task};
use crate::queue::Ending;
use crate::source::{JobLink, JobSource};
use crate::workers::{Ended, Workers};

pub use crate::workers::JobReport;

/// How often a waiting scheduler looks at the signals: the reaction time to SIGTERM.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Run every pending job once: for each task a plugin owns, the job the source hands out,
/// the jobs of different tasks at the same time (at most `max_parallel_jobs`), each in a
/// worker of [`crate::workers`]. Returns when every job ended; a stop request (SIGTERM)
/// starts no further job and lets the running ones finish, a second one cancels them.
///
/// An error of the source (the server went away) is returned once every worker ended; the
/// jobs that ran are in the log and where they came from.
pub fn run_pass(
    source: &dyn JobSource,
    registry: &Registry,
    env: &HostEnv,
) -> Result<Vec<JobReport>> {
    let max = parallel_limit(env)?;
    source.settle(env);
    let tasks = source.candidates(registry, env)?;
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let run = |task: &str| run_task(source, registry, env, task);
    std::thread::scope(|scope| {
        let mut workers = Workers::new(scope, &run, max);
        for task in &tasks {
            workers.want(task);
        }
        let mut ended = PassEnd::default();
        while !env.stop_requested() {
            workers.start_waiting();
            if workers.running() == 0 {
                break;
            }
            ended.add(workers.next_ended(SIGNAL_CHECK));
        }
        finish_running(env, &mut workers, &mut |e| ended.add(e));
        ended.into_result()
    })
}

/// What the workers of a pass left: the reports, and the first error of the source (later
/// ones are logged).
#[derive(Default)]
struct PassEnd {
    reports: Vec<JobReport>,
    error: Option<Error>,
}

impl PassEnd {
    fn add(&mut self, ended: Option<Ended>) {
        match ended.map(|e| (e.task, e.result)) {
            Some((_, Ok(report))) => self.reports.extend(report),
            Some((task, Err(e))) if self.error.is_some() => log::error!("task {task}: {e}"),
            Some((_, Err(e))) => self.error = Some(e),
            None => {}
        }
    }

    fn into_result(self) -> Result<Vec<JobReport>> {
        self.error.map_or(Ok(self.reports), Err)
    }
}

/// `max_parallel_jobs`, which must allow one job at least.
fn parallel_limit(env: &HostEnv) -> Result<usize> {
    match env.host.max_parallel_jobs {
        0 => Err(Error::new("max_parallel_jobs is 0: no job could ever run")
            .help("set max_parallel_jobs to 1 or more in [dbjobs] (default 4)")),
        n => Ok(n),
    }
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

/// Poll the source every `interval` until a stop is requested, starting a worker for each
/// task with a job that has none (at most `max_parallel_jobs` at a time) while the others
/// run: a long job of one task never delays a job of another. A poll that fails (server down)
/// is logged and tried again at the next one.
///
/// On the first SIGTERM nothing new starts and the running jobs finish; a second one cancels
/// them (their plugins see `cancelled()`). Returns the number of failed jobs.
pub fn run_daemon(
    source: &dyn JobSource,
    registry: &Registry,
    env: &HostEnv,
    interval: Duration,
) -> Result<usize> {
    let max = parallel_limit(env)?;
    let run = |task: &str| run_task(source, registry, env, task);
    let failed = std::thread::scope(|scope| {
        let mut workers = Workers::new(scope, &run, max);
        let mut failed = 0;
        let mut next_poll = Instant::now();
        while !env.stop_requested() {
            if Instant::now() >= next_poll {
                poll(source, registry, env, &mut workers);
                next_poll = Instant::now() + interval;
            }
            workers.start_waiting();
            let wait = next_poll.saturating_duration_since(Instant::now());
            failed += count_failed(workers.next_ended(wait.min(SIGNAL_CHECK)));
        }
        finish_running(env, &mut workers, &mut |e| failed += count_failed(e));
        failed
    });
    log::info!("stop requested; daemon exits");
    Ok(failed)
}

/// One look at the source for the daemon: what an earlier run owed, then a worker asked for
/// each task that may have a job.
fn poll(source: &dyn JobSource, registry: &Registry, env: &HostEnv, workers: &mut Workers<'_, '_>) {
    source.settle(env);
    match source.candidates(registry, env) {
        Ok(tasks) => {
            for task in &tasks {
                workers.want(task);
            }
        }
        Err(e) => log::error!("polling for jobs failed: {e}; tried again at the next poll"),
    }
}

/// After a stop request (or the end of a pass): start nothing new, wait for the running
/// jobs, handing each end to `on_end`; a second signal cancels them.
fn finish_running(
    env: &HostEnv,
    workers: &mut Workers<'_, '_>,
    on_end: &mut dyn FnMut(Option<Ended>),
) {
    workers.forget_waiting();
    if workers.running() > 0 {
        log::info!(
            "stop requested; waiting for {} running job(s) to finish (a second signal cancels them)",
            workers.running()
        );
    }
    let mut cancel_logged = false;
    while workers.running() > 0 {
        if !cancel_logged && env.signals.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
            log::warn!(
                "second signal: cancelling {} running job(s)",
                workers.running()
            );
            cancel_logged = true;
        }
        on_end(workers.next_ended(SIGNAL_CHECK));
    }
}

/// 1 when a worker ended with a failed job, 0 otherwise; an error of the source is logged
/// (the task is tried again at the next poll).
fn count_failed(ended: Option<Ended>) -> usize {
    match ended {
        Some(Ended {
            result: Ok(Some(report)),
            ..
        }) => usize::from(!report.ok),
        Some(Ended {
            task,
            result: Err(e),
        }) => {
            log::error!("task {task}: {e}; tried again at the next poll");
            0
        }
        _ => 0,
    }
}
