//! What every phase of a restore shares: the job, the host, the settings and server facts
//! read when the job started, the staging directory, and the record of the first change to
//! the live server, from which the job's error gets the server's state.
//!
//! The state an operator reads first in a failed row ("failed, server untouched: ...") is
//! decided in one place, [`Context::settle`]: a failure before the first change to the live
//! server leaves it untouched; after it, the phase that failed says what it knows (a full
//! restore that put the old datadir back says rolled back), and otherwise the server is
//! partial. Phases mark the first change with [`LiveChanges::begin`] right before making it.

use std::cell::OnceCell;
use std::time::Instant;

use dbjobs_kit::server::ServerFacts;
use dbjobs_sdk::{Host, Job, JobError, ServerState};

use crate::settings::Settings;
use crate::staging::Staging;
use crate::Intent;

/// The steps of every restore, in order; the orchestrator ([`crate::engine::restore_with`])
/// marks each boundary with [`Context::boundary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Listen, accept the sender, receive the stream into the staging directory, verified.
    Receive,
    /// Read and check everything needed before the first change (read-only).
    Prepare,
    /// Change the live server so that it holds the backup's data.
    Restore,
    /// Check the restored data against what the backup holds.
    Verify,
    /// Set or report the replication position, start the replica.
    Replicate,
}

impl Phase {
    /// The phase's name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Receive => "receive",
            Phase::Prepare => "prepare",
            Phase::Restore => "restore",
            Phase::Verify => "verify",
            Phase::Replicate => "replicate",
        }
    }
}

/// One restore job under way.
pub struct Context<'j, 'a> {
    /// The host: logs, progress, cancellation, the plugin's SQL session.
    pub host: &'j Host<'a>,
    /// The job's row.
    pub job: &'j Job,
    /// Reseed or flashback, for the wording.
    pub intent: Intent,
    /// Every setting, read when the job started.
    pub settings: Settings,
    /// The server's version, vendor and datadir, read when the job started.
    pub facts: ServerFacts,
    /// The job's private staging directory (removed when the context is dropped).
    pub staging: Staging,
    /// When the job started, for the result's duration.
    pub started: Instant,
    /// Whether, and by what, the live server has been changed yet.
    pub changes: LiveChanges,
}

impl Context<'_, '_> {
    /// A phase ended well. Logged; the place where a journal of the restore records its
    /// progress.
    pub fn boundary(&self, done: Phase) {
        self.host.debug(&format!(
            "{} phase done after {:.1} s",
            done.as_str(),
            self.started.elapsed().as_secs_f64()
        ));
    }

    /// The job's error with the state the server is in: what the failing phase said, else
    /// untouched before the first change and partial after it. A rollback is only reported
    /// as such when the server answers again.
    pub fn settle(&self, error: JobError) -> JobError {
        let answers = || self.host.query_value("SELECT 1", &[]).is_ok();
        let state = settled_state(error.state, self.changes.started(), answers);
        if error.state == ServerState::RolledBack && state != ServerState::RolledBack {
            return JobError {
                message: format!(
                    "{}; the server does not answer after the rollback",
                    error.message
                ),
                ..error
            }
            .with_state(state);
        }
        error.with_state(state)
    }
}

/// The state a failed restore reports: what the failing phase said (`said`), else
/// untouched before the first change and partial after it; a rollback only while the server
/// `answers`.
fn settled_state(said: ServerState, changed: bool, answers: impl FnOnce() -> bool) -> ServerState {
    match said {
        ServerState::Unknown if changed => ServerState::Partial,
        ServerState::Unknown => ServerState::Untouched,
        ServerState::RolledBack if !answers() => ServerState::Unknown,
        other => other,
    }
}

/// The record of the first change a restore makes to the live server.
///
/// Everything a restore does before [`LiveChanges::begin`] only reads the server, so a
/// failure there leaves it untouched. A crash-safe restore writes its journal here, before
/// the first change, so that a run that dies afterwards can be finished or rolled back.
#[derive(Debug, Default)]
pub struct LiveChanges {
    first: OnceCell<String>,
}

impl LiveChanges {
    /// The restore is about to change the live server (`what`, e.g. `dropping database
    /// app`). The first call is logged and recorded; later calls do nothing.
    pub fn begin(&self, host: &Host<'_>, what: &str) -> Result<(), JobError> {
        if self.first.get().is_none() {
            host.info(&format!("first change to the live server: {what}"));
            let _ = self.first.set(what.to_string());
        }
        Ok(())
    }

    /// Whether the live server has been changed (or is being changed).
    pub fn started(&self) -> bool {
        self.first.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_follows_the_first_change() {
        use ServerState::*;
        let never = || -> bool { panic!("only a rollback asks the server") };
        assert_eq!(settled_state(Unknown, false, never), Untouched);
        assert_eq!(settled_state(Unknown, true, never), Partial);
        assert_eq!(settled_state(Untouched, true, never), Untouched);
        assert_eq!(settled_state(Partial, true, never), Partial);
        assert_eq!(settled_state(RolledBack, true, || true), RolledBack);
        assert_eq!(settled_state(RolledBack, true, || false), Unknown);
    }
}
