//! The host context a running plugin calls back into (the SDK's `HostApi`).
//!
//! One [`JobContext`] exists per running job. It passes progress and the "waiting" moment to
//! the job's source (the row, or replication-manager's API) through its link, gives the plugin its settings and the path of the
//! credentials option file, and runs the plugin's SQL on a session of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use abi_stable::std_types::{RErr, ROk, ROption, RResult, RSlice, RStr, RString, RVec};
use dbjobs_sdk::abi::{AbiRows, HostApi, LogLevel_NE};
use dbjobs_sdk::{Direction, LogLevel};
use mysql::Conn;

use crate::config::ConnectionOptions;
use crate::db;
use crate::env::HostEnv;
use crate::repman::Level;
use crate::source::JobLink;

/// How often a job's progress may rewrite its row.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// The host side of one running job.
pub struct JobContext<'a> {
    env: &'a HostEnv,
    link: &'a dyn JobLink,
    job_id: u64,
    task: String,
    direction: Direction,
    waiting_sent: AtomicBool,
    last_progress: Mutex<Option<Instant>>,
    progress: ProgressSlot,
    session: PluginSession,
}

/// The latest progress text not yet written, handed from the plugin's threads to the writer
/// thread ([`JobContext::write_progress_until_done`]).
///
/// Plugins report progress from their data path (the copy loop of a backup). Writing it to the
/// row there would couple the stream to the queue table: while `mariadb-backup` holds the
/// backup lock, an UPDATE of an InnoDB table waits, the copy loop stops draining the tool's
/// stdout, and the tool never gets to release the lock. So `progress()` only stores the text.
#[derive(Default)]
struct ProgressSlot {
    pending: Mutex<Option<String>>,
    wake: Condvar,
    done: AtomicBool,
}

impl<'a> JobContext<'a> {
    /// The context of job `job_id` of `task`.
    pub fn new(
        env: &'a HostEnv,
        link: &'a dyn JobLink,
        job_id: u64,
        task: &str,
        direction: Direction,
    ) -> Self {
        JobContext {
            env,
            link,
            job_id,
            task: task.to_string(),
            direction,
            waiting_sent: AtomicBool::new(false),
            last_progress: Mutex::new(None),
            progress: ProgressSlot::default(),
            session: PluginSession::default(),
        }
    }

    /// Write the progress texts the plugin reports into the row until [`Self::stop_progress`]
    /// is called. Runs on a thread of its own for the duration of the job.
    pub fn write_progress_until_done(&self) {
        loop {
            let text = {
                let mut pending = self
                    .progress
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                while pending.is_none() && !self.progress.done.load(Ordering::SeqCst) {
                    pending = self
                        .progress
                        .wake
                        .wait(pending)
                        .unwrap_or_else(|p| p.into_inner());
                }
                if self.progress.done.load(Ordering::SeqCst) {
                    return;
                }
                pending.take()
            };
            if let Some(text) = text {
                self.link.progress(&text);
            }
        }
    }

    /// End [`Self::write_progress_until_done`]; progress not yet written is dropped (the
    /// outcome replaces it anyway).
    pub fn stop_progress(&self) {
        self.progress.done.store(true, Ordering::SeqCst);
        let _guard = self
            .progress
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.progress.wake.notify_all();
    }

    fn tag(&self) -> String {
        format!("job {} ({})", self.job_id, self.task)
    }

    /// Send `text` to replication-manager's live job log, when there is one.
    fn to_repman(&self, level: Level, text: &str) {
        if let Some(r) = &self.env.repman {
            r.log.send(self.job_id, &self.task, level, text);
        }
    }

    /// The start of the job: the host's line in the node's log, and for replication-manager
    /// the `Job <task> initiated` line it keys on, then the same detail.
    pub fn job_started(&self, detail: &str) {
        log::info!("{} started by {detail}", self.tag());
        self.to_repman(Level::Info, &format!("Job {} initiated", self.task));
        self.to_repman(
            Level::Info,
            &format!("job {} started by {detail}", self.job_id),
        );
    }

    /// The end of the job for replication-manager: the result, then `Job <task> ended with
    /// state: Finished|Error`, the line it keys on; then wait (briefly, and not at all while
    /// it is unreachable) for the job's lines to be delivered.
    pub fn job_ended(&self, ok: bool, result: &str) {
        let Some(r) = &self.env.repman else { return };
        if ok {
            self.to_repman(
                Level::Info,
                &format!("job {} succeeded: {result}", self.job_id),
            );
            self.to_repman(
                Level::Info,
                &format!("Job {} ended with state: Finished", self.task),
            );
        } else {
            self.to_repman(
                Level::Error,
                &format!("job {} ERROR: {result}", self.job_id),
            );
            self.to_repman(
                Level::Error,
                &format!("Job {} ended with state: Error", self.task),
            );
        }
        r.log.end_job(self.job_id, &self.task);
    }
}

/// The session a plugin's statements run on ([`HostApi::query`]), apart from the queue's,
/// connected on the first statement.
#[derive(Default)]
pub struct PluginSession {
    conn: Mutex<Option<Conn>>,
}

impl PluginSession {
    /// Run a plugin statement. A session that died (the server was restarted by the job
    /// itself, as a full restore or a ZFS rollback does) is replaced by a new one and the
    /// statement is tried once more on it.
    pub fn query(
        &self,
        connection: &ConnectionOptions,
        sql: RStr<'_>,
        params: RSlice<'_, RString>,
    ) -> RResult<AbiRows, RString> {
        let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
        match self.run(connection, sql.as_str(), &params) {
            Ok(rows) => ROk(rows
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|v| ROption::from(v.map(RString::from)))
                        .collect::<RVec<_>>()
                })
                .collect()),
            Err(e) => RErr(RString::from(e.message)),
        }
    }

    fn run(
        &self,
        connection: &ConnectionOptions,
        sql: &str,
        params: &[String],
    ) -> crate::Result<Vec<db::TextRow>> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = guard.as_mut() {
            match db::query_text(conn, sql, params) {
                Ok(rows) => return Ok(rows),
                Err(e) if conn.ping().is_ok() => return Err(e),
                Err(_) => *guard = None,
            }
        }
        let conn = guard.insert(db::connect(connection)?);
        db::query_text(conn, sql, params)
    }
}

impl HostApi for JobContext<'_> {
    fn progress(&self, text: RStr<'_>) {
        {
            let mut last = self.last_progress.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < PROGRESS_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.to_repman(Level::Info, text.as_str());
        if self.direction == Direction::Inbound && !self.waiting_sent.load(Ordering::SeqCst) {
            // Touching an inbound row before the listener is up would make
            // replication-manager connect too early.
            log::debug!("{}: progress {}", self.tag(), text);
            return;
        }
        *self
            .progress
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(text.to_string());
        self.progress.wake.notify_all();
    }

    fn waiting(&self) -> RResult<(), RString> {
        if self.direction != Direction::Inbound {
            log::debug!(
                "{}: waiting() ignored for a {} task",
                self.tag(),
                self.direction.as_str()
            );
            return ROk(());
        }
        if self.waiting_sent.swap(true, Ordering::SeqCst) {
            return ROk(());
        }
        match self.link.waiting() {
            Ok(()) => {
                log::info!("{}: listening, reported waiting", self.tag());
                ROk(())
            }
            Err(e) => RErr(RString::from(e)),
        }
    }

    fn log(&self, level: LogLevel_NE, text: RStr<'_>) {
        // A level from a newer SDK than this host's is logged as information.
        let (level, repman) = match level.as_enum() {
            Ok(LogLevel::Error) => (log::Level::Error, Level::Error),
            Ok(LogLevel::Warn) => (log::Level::Warn, Level::Warn),
            Ok(LogLevel::Debug) => (log::Level::Debug, Level::Debug),
            _ => (log::Level::Info, Level::Info),
        };
        log::log!(level, "{}: {}", self.tag(), text);
        self.to_repman(repman, text.as_str());
    }

    /// See [`HostEnv::plugin_setting`].
    fn setting(&self, name: RStr<'_>) -> ROption<RString> {
        self.env.plugin_setting(name)
    }

    fn client_option_file(&self) -> RString {
        match self.env.option_file() {
            Ok(p) => RString::from(p.display().to_string()),
            Err(e) => {
                log::error!("{}: {e}", self.tag());
                RString::new()
            }
        }
    }

    fn query(&self, sql: RStr<'_>, params: RSlice<'_, RString>) -> RResult<AbiRows, RString> {
        self.session.query(&self.env.connection, sql, params)
    }

    fn cancelled(&self) -> bool {
        self.env.signals.load(Ordering::SeqCst) >= 2
    }
}
