//! The job's log lines to replication-manager's `write-log`, without ever holding up a job.
//!
//! A job's threads only [`LogSender::send`]: the line goes into a bounded queue and the call
//! returns. One sender thread drains the queue in calls of at most
//! [`LINES_PER_CALL`] lines of one task and level, retrying a failed call with a growing
//! pause. While replication-manager is unreachable the queue fills; past [`QUEUE_BOUND`]
//! lines new lines are counted and dropped. A backup's position line (`filename '..',
//! position '..', GTID of the last change '..'`, the only way replication-manager learns it)
//! is never dropped for lack of room: it waits in the queue and is retried until its job
//! ends. When a job ends, [`LogSender::end_job`] waits for its lines while deliveries
//! succeed (not at all while replication-manager is unreachable), drops the rest, and writes
//! ONE warning into the node's own log saying how many lines replication-manager missed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::RepmanClient;

/// Lines per `write-log` call (replication-manager's own batch size).
pub const LINES_PER_CALL: usize = 5;

/// Lines waiting for delivery beyond which new ones are dropped (the position line excepted).
pub const QUEUE_BOUND: usize = 10_000;

/// First pause after a failed call; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long [`LogSender::end_job`] waits for the job's last lines while calls succeed.
const END_WAIT: Duration = Duration::from_secs(30);

/// The level words of `write-log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `ERROR`.
    Error,
    /// `WARN`.
    Warn,
    /// `INFO`.
    Info,
    /// `DEBUG`.
    Debug,
}

impl Level {
    /// The word replication-manager expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

/// Whether `line` is a backup tool's binlog position line, the one line never dropped.
pub fn is_position_line(line: &str) -> bool {
    line.contains("filename '")
        && line.contains("', position '")
        && line.contains("GTID of the last change '")
}

#[derive(Debug)]
struct Line {
    job: u64,
    task: String,
    level: Level,
    text: String,
}

/// Per job: lines queued, delivered and dropped.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    delivered: u64,
    dropped: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Line>,
    /// Queued lines that may be dropped (all but position lines).
    droppable: usize,
    tallies: BTreeMap<u64, Tally>,
    /// The batch the sender took out of the queue and is sending: its job and size.
    in_flight: Option<(u64, usize)>,
    /// The last call failed (and when), with why.
    failing: Option<String>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The queue and its sender thread; one per process.
pub struct LogSender {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogSender {
    /// Start the sender thread, which logs in on its first call.
    pub fn start(client: Arc<RepmanClient>) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("repman-log".into())
            .spawn(move || deliver(&for_thread, &client))
            .expect("spawning the log sender thread");
        LogSender {
            shared,
            thread: Some(thread),
        }
    }

    /// Queue one line of job `job` (task `task`); never blocks on the network. A line with
    /// newlines is sent as several lines.
    pub fn send(&self, job: u64, task: &str, level: Level, text: &str) {
        let mut st = self.shared.lock();
        for part in text.split('\n') {
            let keep = is_position_line(part);
            if !keep && st.droppable >= QUEUE_BOUND {
                st.tallies.entry(job).or_default().dropped += 1;
                continue;
            }
            st.droppable += usize::from(!keep);
            st.tallies.entry(job).or_default();
            st.queue.push_back(Line {
                job,
                task: task.to_string(),
                level,
                text: part.to_string(),
            });
        }
        drop(st);
        self.shared.wake.notify_all();
    }

    /// The end of job `job`: wait for its queued lines while deliveries succeed (at most
    /// [`END_WAIT`]; not at all while replication-manager is failing), drop what is left,
    /// and warn once in the node's log when replication-manager missed lines.
    pub fn end_job(&self, job: u64, task: &str) {
        let deadline = Instant::now() + END_WAIT;
        let mut st = self.shared.lock();
        while pending_of(&st, job) > 0 && st.failing.is_none() && Instant::now() < deadline {
            st = self
                .shared
                .wake
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let before = st.queue.len();
        st.queue.retain(|l| l.job != job);
        let in_flight = st
            .in_flight
            .filter(|(j, _)| *j == job)
            .map_or(0, |(_, n)| n);
        let left = before - st.queue.len() + in_flight;
        st.droppable = st
            .queue
            .iter()
            .filter(|l| !is_position_line(&l.text))
            .count();
        let tally = st.tallies.remove(&job).unwrap_or_default();
        let missed = tally.dropped + left as u64;
        if missed > 0 {
            log::warn!(
                "job {job} ({task}): replication-manager did not get {missed} of {} log line(s) ({}); the job itself is not affected",
                missed + tally.delivered,
                st.failing.as_deref().unwrap_or("its write-log did not answer in time")
            );
        }
    }
}

/// Lines of `job` still queued or being sent.
fn pending_of(st: &State, job: u64) -> usize {
    let in_flight = st
        .in_flight
        .filter(|(j, _)| *j == job)
        .map_or(0, |(_, n)| n);
    st.queue.iter().filter(|l| l.job == job).count() + in_flight
}

impl Drop for LogSender {
    /// Tell the thread to stop once the queue is empty; it is not waited for (a call in
    /// flight to a replication-manager that does not answer must not delay the exit, and
    /// every job already accounted for its lines in [`LogSender::end_job`]).
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
        drop(self.thread.take());
    }
}

/// The sender thread: take a batch, send it, on failure pause and retry the same batch
/// (put back at the head of the queue, unless its job has ended meanwhile).
fn deliver(shared: &Shared, client: &RepmanClient) {
    let mut backoff = FIRST_BACKOFF;
    let mut warned_login = false;
    while let Some(batch) = next_batch(shared) {
        let (job, task, level) = (batch[0].job, batch[0].task.clone(), batch[0].level);
        let lines: Vec<&str> = batch.iter().map(|l| l.text.as_str()).collect();
        let sent = client
            .ensure_login()
            .inspect_err(|e| {
                if !warned_login {
                    let hint = e
                        .hint
                        .as_deref()
                        .map(|h| format!("; hint: {h}"))
                        .unwrap_or_default();
                    log::error!("no live job log: {}{hint}", e.message);
                    warned_login = true;
                }
            })
            .and_then(|()| client.write_log(&task, level.as_str(), &lines));
        let mut st = shared.lock();
        st.in_flight = None;
        match sent {
            Ok(()) => {
                st.failing = None;
                if let Some(t) = st.tallies.get_mut(&job) {
                    t.delivered += batch.len() as u64;
                }
                backoff = FIRST_BACKOFF;
                warned_login = false;
            }
            Err(e) if e.kind == dbjobs_sdk::ErrorKind::BadInput => {
                // replication-manager refused these lines (an unknown task): retrying would
                // only block the lines behind them.
                log::debug!("write-log refused {} line(s): {}", batch.len(), e.message);
                if let Some(t) = st.tallies.get_mut(&job) {
                    t.dropped += batch.len() as u64;
                }
                st.failing = Some(e.message);
            }
            Err(e) => {
                log::debug!("write-log failed, retrying in {backoff:?}: {}", e.message);
                st.failing = Some(e.message);
                if st.tallies.contains_key(&job) {
                    st.droppable += batch.iter().filter(|l| !is_position_line(&l.text)).count();
                    for line in batch.into_iter().rev() {
                        st.queue.push_front(line);
                    }
                }
                if st.closed {
                    return;
                }
                shared.wake.notify_all();
                let _ = shared.wake.wait_timeout(st, backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        drop(st);
        shared.wake.notify_all();
    }
}

/// The head of the queue: up to [`LINES_PER_CALL`] lines of one job, task and level, taken
/// out and marked in flight. `None` once closed and empty.
fn next_batch(shared: &Shared) -> Option<Vec<Line>> {
    let mut st = shared.lock();
    loop {
        if let Some(first) = st.queue.front() {
            let (job, task, level) = (first.job, first.task.clone(), first.level);
            let n = st
                .queue
                .iter()
                .take_while(|l| l.job == job && l.task == task && l.level == level)
                .take(LINES_PER_CALL)
                .count();
            let batch: Vec<Line> = st.queue.drain(..n).collect();
            st.droppable -= batch.iter().filter(|l| !is_position_line(&l.text)).count();
            st.in_flight = Some((job, n));
            return Some(batch);
        }
        if st.closed {
            return None;
        }
        st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_position_line() {
        assert!(is_position_line(
            "[00] 2026-01-01 MySQL binlog position: filename 'mariadb-bin.000001', position '328', GTID of the last change '0-1-1'"
        ));
        assert!(!is_position_line("[00] Copying ./ibdata1"));
    }
}
