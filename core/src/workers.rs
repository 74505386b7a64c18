//! The workers of one dbjobs process: jobs of different tasks run at the same time, each on
//! a thread of its own.
//!
//! At most `max_parallel_jobs` workers run; a task found busy while every slot is taken
//! waits for the next free one, in the order the tasks were found. There is never more than
//! one worker per task in a process. The pool only schedules: what a worker does with its task
//! is the function it was given ([`TaskRun`]: the runner's claim, run and finish of one job).
//! Each claim holds what it needs for itself (in SQL mode a queue session with the task's
//! lock, see [`crate::source::table`]), so workers share nothing but the source.

use std::collections::{BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::Scope;
use std::time::Duration;

use crate::error::{Error, Result};

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

/// What a worker does: claim and run the job of a task; `None` when there was nothing to run
/// (no job, or the task is claimed by another dbjobs).
pub type TaskRun<'env> = dyn Fn(&str) -> Result<Option<JobReport>> + Sync + 'env;

/// How a worker ended.
pub struct Ended {
    /// The task it worked on.
    pub task: String,
    /// The job's report, `None` when there was nothing to run, or the error that stopped the
    /// worker (the source could not be read or written).
    pub result: Result<Option<JobReport>>,
}

/// The pool of one pass or one daemon; its threads live in `scope`.
pub struct Workers<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    run: &'env TaskRun<'env>,
    max: usize,
    running: BTreeSet<String>,
    waiting: VecDeque<String>,
    sender: Sender<Ended>,
    receiver: Receiver<Ended>,
}

impl<'scope, 'env> Workers<'scope, 'env> {
    /// A pool of at most `max` workers (at least 1) running `run`.
    pub fn new(scope: &'scope Scope<'scope, 'env>, run: &'env TaskRun<'env>, max: usize) -> Self {
        let (sender, receiver) = channel();
        Workers {
            scope,
            run,
            max: max.max(1),
            running: BTreeSet::new(),
            waiting: VecDeque::new(),
            sender,
            receiver,
        }
    }

    /// Ask for a worker for `task`, unless one runs or waits for a slot already.
    pub fn want(&mut self, task: &str) {
        if !self.running.contains(task) && !self.waiting.iter().any(|t| t == task) {
            self.waiting.push_back(task.to_string());
        }
    }

    /// Start the waiting tasks that fit under the limit, oldest first.
    pub fn start_waiting(&mut self) {
        while self.running.len() < self.max {
            let Some(task) = self.waiting.pop_front() else {
                return;
            };
            self.start(task);
        }
    }

    /// Drop the tasks waiting for a slot (a stop was requested: start nothing new).
    pub fn forget_waiting(&mut self) {
        self.waiting.clear();
    }

    /// How many workers run.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Wait up to `timeout` for a worker to end (just sleep when none runs).
    pub fn next_ended(&mut self, timeout: Duration) -> Option<Ended> {
        if self.running.is_empty() {
            std::thread::sleep(timeout);
            return None;
        }
        let ended = match self.receiver.recv_timeout(timeout) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => unreachable!("the pool holds a sender"),
        };
        self.running.remove(&ended.task);
        Some(ended)
    }

    fn start(&mut self, task: String) {
        let run = self.run;
        let sender = self.sender.clone();
        self.running.insert(task.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("job-{task}"))
            .spawn_scoped(self.scope, move || {
                // A panic of the host's own code (a plugin's is caught at the ABI) must
                // still end the worker, or its task would count as running for ever.
                let result = catch_unwind(AssertUnwindSafe(|| run(&task))).unwrap_or_else(|_| {
                    Err(Error::new(format!(
                        "the worker of task {task} panicked; see the log above"
                    )))
                });
                // The pool outlives its workers (they run in its scope): it is listening.
                let _ = sender.send(Ended { task, result });
            });
        if let Err(e) = spawned {
            // Without a thread the task would stay marked running and nothing would end it.
            panic!("cannot start a worker thread: {e}");
        }
    }
}
