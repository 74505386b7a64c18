//! Jobs from replication-manager's API (`jobs_mode = api`, PROTOCOL.md §6.3).
//!
//! There is no job table: for each task a loaded plugin owns (but `zfssnapback`, which is
//! never needed in API mode) the source asks `needs/{task}`; a `true` is a job (and consumes
//! it). A streaming task then asks `receive-task/{task}` where to send (`RECEIVER_PORT=n` on
//! the API host); an inbound one listens on the setting `receive_port`. The job is reported
//! `processing` before its plugin runs, `waiting` once an inbound listener is up, and `done`
//! (with the `restore` object of a reseed or flashback) or `error` at the end. No database
//! connection is needed for any of it, so `start` can run while the server is down.
//!
//! Terminal reports are owed. Before a job runs, an `error` report for it is written to
//! `state_dir/api-reports/<task>.json` and locked (flock) for the job's life; the ending
//! replaces it, and it is removed once delivered. A report that could not be delivered
//! (replication-manager down) or a job whose dbjobs was killed (the lock died with it) is
//! delivered by the next run, so replication-manager never keeps a job `Running` forever.
//!
//! An answer that breaks the contract (a `needs` that is neither true nor false, a
//! `receive-task` without a port, an HTTP 500, a body that is not JSON) is a clear error in the
//! node's log; the job is reported failed where one exists, and the pass goes on.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dbjobs_sdk::{Direction, Job, JobError, JobSource as Origin, TableVariant};
use serde_json::{json, Value};

use super::{Claim, JobLink, JobSource};
use crate::env::HostEnv;
use crate::error::{Error, Result};
use crate::loader::{Registry, Task};
use crate::queue::Ending;
use crate::repman::client::{Receiver, RepmanClient};

/// Tasks never polled in API mode (replication-manager never needs them there).
const NEVER_NEEDED: &[&str] = &["zfssnapback"];

/// Tries of a state report, and the pause between two.
const REPORT_TRIES: u32 = 3;
const REPORT_PAUSE: Duration = Duration::from_millis(500);

/// The owed report of a job whose dbjobs ended before the job did.
const KILLED: &str = "the dbjobs run working on this job ended before the job did (killed or crashed); the server's state is unknown";

/// replication-manager's API as a job source.
pub struct ApiSource {
    client: Arc<RepmanClient>,
    reports: PathBuf,
    receive_port: u16,
    errors: AtomicUsize,
    next_id: AtomicU64,
}

impl ApiSource {
    /// The source of `env`, logged in. Without `repman_api`, or when replication-manager
    /// refuses the login, a configuration error that says what to fix.
    pub fn open(env: &HostEnv) -> Result<Self> {
        let repman = env.repman.as_ref().ok_or_else(|| {
            Error::new("jobs_mode=api needs replication-manager's API, but repman_api is empty")
                .help("set repman_api, repman_cluster and repman_server in [dbjobs]")
        })?;
        repman.client.login().map_err(setup_error)?;
        let first_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        Ok(ApiSource {
            client: repman.client.clone(),
            reports: env.host.state_dir.join("api-reports"),
            receive_port: env.host.receive_port,
            errors: AtomicUsize::new(0),
            next_id: AtomicU64::new(first_id),
        })
    }

    /// The client (for the host's own tasks, jobs-check and jobs-upgrade).
    pub fn client(&self) -> &RepmanClient {
        &self.client
    }

    /// How many calls broke the contract or failed since the source was opened (they are
    /// logged; a cron run exits 1 when there was any).
    pub fn errors(&self) -> usize {
        self.errors.load(Ordering::SeqCst)
    }

    /// Log an API error of `task` and count it.
    pub fn api_error(&self, task: &str, e: &JobError) {
        self.errors.fetch_add(1, Ordering::SeqCst);
        let hint = e
            .hint
            .as_deref()
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        log::error!("task {task}: {}{hint}", e.message);
    }

    /// The job of `task` once `needs` said yes: where it sends or listens.
    fn job(&self, task: &str, spec: &Task) -> std::result::Result<Job, JobError> {
        let api_host = self.client.config().api_host.clone();
        let (server, port) = match spec.direction {
            Direction::Outbound => match self.client.receive_task(task)? {
                Receiver::Port(p) => (Some(api_host), p),
                Receiver::NotNeeded => {
                    return Err(JobError::bad_input(format!(
                        "replication-manager needs {task} but answered NO_RECEIVER_NEEDED to receive-task: nowhere to send"
                    )))
                }
            },
            Direction::Inbound => (Some(api_host), self.receive_port),
            _ => (None, 0),
        };
        Ok(Job {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            task: task.to_string(),
            server,
            port,
            // What a plugin of SDK 0.2.0 reads to leave the position to replication-manager.
            variant: TableVariant::Payload,
            source: Origin::Api,
        })
    }

    /// Deliver the reports owed by earlier runs (those whose job is not running any more).
    fn deliver_owed(&self) {
        let Ok(entries) = std::fs::read_dir(&self.reports) else {
            return;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.extension().is_some_and(|e| e == "json") {
                self.deliver_owed_file(&path);
            }
        }
    }

    fn deliver_owed_file(&self, path: &Path) {
        let Ok(mut file) = File::options().read(true).write(true).open(path) else {
            return;
        };
        if !try_lock(&file) {
            return; // its job is running in another dbjobs
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let task = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let report: Value = serde_json::from_str(&text).unwrap_or_else(
            |_| json!({"task": task, "state": "error", "body": {"result": KILLED}}),
        );
        let state = report["state"].as_str().unwrap_or("error").to_string();
        match self.report(&task, &state, report["body"].clone()) {
            Ok(()) => {
                log::info!(
                    "task {task}: delivered the {state} report an earlier run owed replication-manager"
                );
                let _ = std::fs::remove_file(path);
            }
            Err(e) => log::warn!(
                "task {task}: the {state} report owed from an earlier run is still undelivered: {}",
                e.message
            ),
        }
    }

    /// `job-state`, tried [`REPORT_TRIES`] times.
    fn report(&self, task: &str, state: &str, body: Value) -> std::result::Result<(), JobError> {
        let mut last = None;
        for attempt in 0..REPORT_TRIES {
            if attempt > 0 {
                std::thread::sleep(REPORT_PAUSE * attempt);
            }
            match self.client.job_state(task, state, body.clone()) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one try"))
    }
}

fn setup_error(e: JobError) -> Error {
    let err = Error::new(e.message);
    match e.hint {
        Some(h) => err.help(h),
        None => err,
    }
}

impl JobSource for ApiSource {
    fn candidates(&self, registry: &Registry, _env: &HostEnv) -> Result<Vec<String>> {
        Ok(registry
            .task_names()
            .filter(|t| !NEVER_NEEDED.contains(t))
            .map(str::to_string)
            .collect())
    }

    fn claim<'s>(&'s self, task: &str, spec: &Task, _env: &HostEnv) -> Result<Option<Claim<'s>>> {
        match self.client.needs(task) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                self.api_error(task, &e);
                return Ok(None);
            }
        }
        let job = self.job(task, spec);
        let id = job
            .as_ref()
            .map_or_else(|_| self.next_id.fetch_add(1, Ordering::SeqCst), |j| j.id);
        if let Err(e) = &job {
            self.api_error(task, e);
        }
        let owed = OwedReport::create(&self.reports, task).map_err(|e| {
            Error::new(format!(
                "cannot keep the report of job {id} ({task}) in {}: {e}",
                self.reports.display()
            ))
            .help("make state_dir writable by dbjobs")
        })?;
        Ok(Some(Claim {
            id,
            job,
            link: Box::new(ApiLink {
                source: self,
                task: task.to_string(),
                restore: spec.replaces_data,
                owed,
            }),
        }))
    }

    fn settle(&self, env: &HostEnv) {
        self.deliver_owed();
        let script = env.host.repman_script.trim();
        if !script.is_empty() {
            for (task, e) in
                crate::repman::scripts::run(&self.client, Path::new(script), self.receive_port)
            {
                self.api_error(task, &e);
            }
        }
    }
}

/// A job from the API: its reports go to `job-state`.
struct ApiLink<'s> {
    source: &'s ApiSource,
    task: String,
    /// A reseed or flashback: the `done` report carries the `restore` object.
    restore: bool,
    owed: OwedReport,
}

impl JobLink for ApiLink<'_> {
    fn start(&self, _direction: Direction) -> Result<bool> {
        if let Err(e) = self.source.report(&self.task, "processing", json!({})) {
            // The job still runs: its ending is owed, and replication-manager learns it then.
            log::warn!(
                "task {}: replication-manager was not told the job is processing: {}",
                self.task,
                e.message
            );
        }
        Ok(true)
    }

    fn waiting(&self) -> std::result::Result<(), String> {
        self.source
            .report(&self.task, "waiting", json!({}))
            .map_err(|e| {
                format!(
                    "replication-manager was not told the node listens: {}",
                    e.message
                )
            })
    }

    fn progress(&self, _text: &str) {
        // Progress reaches replication-manager as log lines (write-log); job-state has none.
    }

    fn finish(&self, ending: &Ending) -> Result<()> {
        let (state, body) = match ending {
            Ending::Success { result, payload } => {
                let mut body = json!({ "result": result });
                if let Some(p) = payload.as_deref().filter(|_| self.restore) {
                    match serde_json::from_str::<Value>(p) {
                        Ok(restore) => body["restore"] = restore,
                        Err(e) => log::error!(
                            "task {}: the restore payload is not JSON ({e}): {p}",
                            self.task
                        ),
                    }
                }
                ("done", body)
            }
            Ending::Failure(e) => ("error", json!({ "result": e.result_text() })),
        };
        self.owed.write(state, &body);
        match self.source.report(&self.task, state, body) {
            Ok(()) => self.owed.remove(),
            Err(e) => log::warn!(
                "task {}: the {state} report could not be delivered ({}); kept in {} for the next run",
                self.task,
                e.message,
                self.owed.path.display()
            ),
        }
        Ok(())
    }
}

/// The report a running job owes replication-manager, kept in the state directory and
/// locked while the job runs.
struct OwedReport {
    path: PathBuf,
    file: File,
}

impl OwedReport {
    /// Create (or take over) the owed report of `task`, locked, saying "killed" until the job
    /// ends.
    fn create(dir: &Path, task: &str) -> std::io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let path = dir.join(format!("{task}.json"));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        // SAFETY: flock on a descriptor we own; blocking is bounded by the other job's life.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owed = OwedReport { path, file };
        owed.write("error", &json!({ "result": KILLED }));
        Ok(owed)
    }

    /// Replace the report (best effort: a failure is logged).
    fn write(&self, state: &str, body: &Value) {
        let text = json!({ "state": state, "body": body }).to_string();
        let mut f = &self.file;
        let written = f
            .set_len(0)
            .and_then(|()| f.rewind())
            .and_then(|()| f.write_all(text.as_bytes()))
            .and_then(|()| f.sync_data());
        if let Err(e) = written {
            log::error!("cannot write the owed report {}: {e}", self.path.display());
        }
    }

    /// Delivered: nothing is owed any more.
    fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Take the lock of an owed report without waiting; `false` when a live job holds it.
fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}
