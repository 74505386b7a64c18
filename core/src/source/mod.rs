//! Where jobs come from: the seam between the runner and replication-manager.
//!
//! A [`JobSource`] says which tasks may have a job and claims the job of a task; the claimed
//! job comes with its [`JobLink`], through which its progress, its "listening" moment and its
//! ending go back to the source. Two implementations:
//! - [`table::TableSource`]: the node's `replication_manager_schema.jobs` (SQL mode, the
//!   default), claimed under a per-task named lock;
//! - [`api::ApiSource`]: replication-manager's HTTPS API (`jobs_mode = api`): `needs`,
//!   `receive-task`, `job-state`, with no job table and no database connection needed.
//!
//! Plugins do not know which one it is: they see a [`dbjobs_sdk::Job`] whose id, server and
//! port come from either (`variant = Payload` for an API job, so a plugin leaves the position
//! to replication-manager, as it must in API mode).

pub mod api;
pub mod table;

use dbjobs_sdk::{Direction, Job, JobError};

use crate::env::HostEnv;
use crate::error::Result;
use crate::loader::{Registry, Task};
use crate::queue::Ending;

/// The link from a claimed job back to where it came from. Dropping it releases the claim.
pub trait JobLink: Sync {
    /// The plugin is about to run: report it (an inbound job is reported only once it
    /// listens). `false`: the job went away meanwhile and must not run.
    fn start(&self, direction: Direction) -> Result<bool>;
    /// The inbound listener is up: let replication-manager connect. `Err`: it must not.
    fn waiting(&self) -> std::result::Result<(), String>;
    /// A progress text (best effort, never blocks the job for long).
    fn progress(&self, text: &str);
    /// Record how the job ended.
    fn finish(&self, ending: &Ending) -> Result<()>;
    /// After [`JobLink::finish`]: the end time the source recorded (the table's `end`, as
    /// MariaDB prints it), which the outcome kept in `state_dir` is matched to the row by
    /// (`crate::outcomes`). `None` by default: a source without rows to list.
    fn end_time(&self) -> Option<String> {
        None
    }
}

/// A claimed job: the job as the plugin will see it (or why it cannot run), and its link.
pub struct Claim<'s> {
    /// The job's id (the row's, or one the API source numbers).
    pub id: u64,
    /// The job, or the error that fails it without running (a bad row).
    pub job: std::result::Result<Job, JobError>,
    /// Where its state goes.
    pub link: Box<dyn JobLink + 's>,
}

/// A source of jobs.
pub trait JobSource: Sync {
    /// The tasks that may have a job this pass, in the registry's order (the table also
    /// deals here with rows no loaded plugin owns).
    fn candidates(&self, registry: &Registry, env: &HostEnv) -> Result<Vec<String>>;
    /// Claim the job of `task`, if there is one and no other run has it.
    fn claim<'s>(&'s self, task: &str, spec: &Task, env: &HostEnv) -> Result<Option<Claim<'s>>>;
    /// Work owed from an earlier run (reports that could not be delivered), done at the
    /// start of a pass. Nothing by default.
    fn settle(&self, _env: &HostEnv) {}
}
