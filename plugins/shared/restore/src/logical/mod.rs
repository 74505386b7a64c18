//! Logical restore (`reseedmysqldump`, `flashbackmysqldump`): a gzip'd SQL dump replayed
//! through the `mariadb` client, as the [`Logical`] [`RestoreEngine`].
//!
//! The steps, so that a broken transfer never touches the server:
//! 1. **Receive** ([`stage`], [`gzip`]): the stream is decompressed into `dump.sql` in the
//!    staging directory and its gzip trailer verified; a stream cut short fails here, before
//!    anything was applied. With `apply_parallel` above 1, the [`plan`] of a parallel apply
//!    is built from the same bytes on the way.
//! 2. **Prepare**: choose how to apply the dump: in several sessions when its plan was
//!    recognised and has table groups to spread, else in one.
//! 3. **Restore** ([`apply`], [`parallel`]): a configured replica is stopped (the dump's
//!    `CHANGE MASTER TO` and `SET GLOBAL gtid_slave_pos` need it), then the dump is fed
//!    through the [`filter`] (which keeps the node's own job queue out of the replay and
//!    picks up the position the dump sets) into the client, not binlogged. The first SQL
//!    error stops the replay; the server then holds what was applied before it.
//! 4. **Replicate**: the replica is started again, unless replication-manager applies the
//!    position itself (the payload variant, API mode), which gets the position as payload.

pub mod apply;
pub mod filter;
pub mod gzip;
pub mod parallel;
pub mod plan;
pub mod split;
pub mod stage;

use std::path::PathBuf;

use dbjobs_kit::copy::{human_bytes, human_rate};
use dbjobs_kit::position::BinlogPosition;
use dbjobs_kit::tool::find_tool;
use dbjobs_sdk::JobError;

use crate::context::Context;
use crate::engine::RestoreEngine;
use crate::objects;
use crate::receive::Received;
use crate::replication;
use crate::settings::RestoreSettings;
use crate::summary::{count, Summary};
use apply::{Applied, Client};
use filter::QUEUE_SCHEMA;
use plan::DumpPlan;
use stage::StagedDump;

/// The logical restore engine: the client it replays with and how many sessions it may use.
pub struct Logical {
    client: PathBuf,
    sessions: usize,
}

impl Logical {
    /// Find the `mariadb` client (setting `mariadb_client`, else on `PATH`) and read how many
    /// sessions the tables may be applied in, before anything listens.
    pub fn new(settings: &RestoreSettings) -> Result<Self, JobError> {
        Ok(Logical {
            client: find_tool(&["mariadb", "mysql"], Some(&settings.mariadb_client))?,
            sessions: settings.apply_sessions(),
        })
    }
}

/// How a staged dump is applied, decided before the first change.
pub enum HowToApply {
    /// Through one client session, in dump order.
    OneSession,
    /// Following the dump's plan, the table groups over up to `sessions` sessions.
    Parallel {
        /// The dump's plan.
        plan: DumpPlan,
        /// The most sessions to use.
        sessions: usize,
    },
}

/// A staged dump and how to apply it.
pub struct Prepared {
    dump: StagedDump,
    how: HowToApply,
}

/// What the replay did.
pub struct Restored {
    applied: Applied,
    /// Whether a configured replica was stopped for the replay.
    replica_stopped: bool,
}

impl RestoreEngine for Logical {
    type Staged = StagedDump;
    type Prepared = Prepared;
    type Restored = Restored;

    fn receive(&self, ctx: &Context<'_, '_>, connection: Received) -> Result<StagedDump, JobError> {
        stage::receive_dump(ctx, connection, self.sessions > 1)
    }

    fn prepare(&self, ctx: &Context<'_, '_>, mut dump: StagedDump) -> Result<Prepared, JobError> {
        let (how, one_session_because) = how_to_apply(dump.plan.take(), self.sessions);
        if let Some(why) = one_session_because {
            ctx.host
                .info(&format!("applying the dump in one session: {why}"));
        }
        Ok(Prepared { dump, how })
    }

    fn restore(&self, ctx: &Context<'_, '_>, prepared: &Prepared) -> Result<Restored, JobError> {
        let replica_stopped = replication::replica_configured(ctx.host);
        if replica_stopped {
            replication::stop_for_restore(ctx.host)?;
        }
        let replay_started = objects::server_now(ctx.host)?;
        let position_before = replication::slave_pos(ctx.host)?;
        ctx.changes.begin(ctx.host, "applying the dump")?;
        let applied = self
            .apply(ctx, prepared)
            .map_err(|e| replication::left_stopped(e, replica_stopped))?;
        // The node is (or becomes) a replica: the dump's enabled events run on the master.
        objects::disable_events_created_since(ctx.host, &replay_started)?;
        // A multi-source node keeps its place in the domains the dump does not set.
        replication::keep_other_domains(ctx.host, &position_before)?;
        Ok(Restored {
            applied,
            replica_stopped,
        })
    }

    /// The client's exit status is the check of a replay: it stops at the first error.
    fn verify(&self, _: &Context<'_, '_>, _: &Prepared, _: &Restored) -> Result<(), JobError> {
        Ok(())
    }

    fn replicate(
        &self,
        ctx: &Context<'_, '_>,
        _: &Prepared,
        restored: &Restored,
    ) -> Result<Vec<String>, JobError> {
        let note = if !restored.replica_stopped {
            "no replication configured".to_string()
        } else if ctx.job.manager_applies_position() {
            "replication left stopped for replication-manager".to_string()
        } else {
            match replication::start_after_restore(ctx.host) {
                Ok(()) => "replication started".to_string(),
                Err(e) => format!("START SLAVE failed: {e}"),
            }
        };
        Ok(vec![note])
    }

    fn position<'p>(&self, _: &'p Prepared, restored: &'p Restored) -> Option<&'p BinlogPosition> {
        restored.applied.position.as_ref()
    }

    fn summary(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Prepared,
        restored: &Restored,
        replication: Vec<String>,
    ) -> String {
        let (got, applied) = (&prepared.dump.received, &restored.applied);
        let mut summary = Summary::new(format!(
            "{} from a mysqldump done: {} received from {} ({}), {} of SQL applied in {} s{}",
            ctx.intent.as_str(),
            human_bytes(got.compressed),
            prepared.dump.peer,
            human_rate(got.compressed, prepared.dump.took),
            human_bytes(applied.fed),
            ctx.started.elapsed().as_secs(),
            match got.padding {
                0 => String::new(),
                n => format!(", {n} stale bytes ignored"),
            },
        ));
        let gtid = applied.position.as_ref().filter(|p| !p.gtid.is_empty());
        if let Some(p) = gtid {
            summary.note(format!("gtid_slave_pos {}", p.gtid));
        }
        summary
            .notes(replication)
            .note(format!("applied in {}", count(applied.sessions, "session")));
        if applied.skipped_lines > 0 {
            summary.note(format!(
                "{} lines about {QUEUE_SCHEMA} skipped",
                applied.skipped_lines
            ));
        }
        summary.text()
    }
}

impl Logical {
    /// Replay the staged dump as [`HowToApply`] says.
    fn apply(&self, ctx: &Context<'_, '_>, prepared: &Prepared) -> Result<Applied, JobError> {
        let client = Client {
            program: &self.client,
            option_file: ctx.host.client_option_file()?,
        };
        let (dump, total) = (&prepared.dump.path, prepared.dump.received.sql_bytes);
        match &prepared.how {
            HowToApply::OneSession => apply::one_session(ctx.host, &client, dump, total),
            HowToApply::Parallel { plan, sessions } => {
                parallel::in_sessions(ctx.host, &client, dump, total, plan, *sessions)
            }
        }
    }
}

/// Several sessions when `sessions` is above 1 and the dump's `plan`, built while receiving,
/// was recognised and has table groups to spread; otherwise one session, and why when a
/// parallel apply was asked for.
fn how_to_apply(
    plan: Option<Result<DumpPlan, String>>,
    sessions: usize,
) -> (HowToApply, Option<String>) {
    match plan.filter(|_| sessions > 1) {
        None => (HowToApply::OneSession, None),
        Some(Ok(plan)) if plan.units.len() >= 2 => (HowToApply::Parallel { plan, sessions }, None),
        Some(Ok(plan)) => (
            HowToApply::OneSession,
            Some(format!(
                "it has {} table group(s), nothing to spread over {sessions} sessions",
                plan.units.len()
            )),
        ),
        Some(Err(why)) => (
            HowToApply::OneSession,
            Some(format!("its table sections are not recognisable ({why})")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::{PlanBuilder, Unit};

    fn plan_of(units: usize) -> DumpPlan {
        DumpPlan {
            units: vec![Unit::default(); units],
            ..DumpPlan::default()
        }
    }

    #[test]
    fn several_sessions_only_for_a_plan_with_groups_to_spread() {
        let parallel = |h: &HowToApply| matches!(h, HowToApply::Parallel { sessions: 3, .. });
        let (how, why) = how_to_apply(Some(Ok(plan_of(2))), 3);
        assert!(parallel(&how) && why.is_none());
        let (how, why) = how_to_apply(Some(Ok(plan_of(2))), 1);
        assert!(matches!(how, HowToApply::OneSession) && why.is_none());
        let (how, why) = how_to_apply(None, 1);
        assert!(matches!(how, HowToApply::OneSession) && why.is_none());
        let (how, why) = how_to_apply(Some(Ok(plan_of(1))), 3);
        assert!(matches!(how, HowToApply::OneSession));
        assert!(why.unwrap().contains("1 table group(s)"));
        let unrecognised = PlanBuilder::default().finish();
        let (how, why) = how_to_apply(Some(unrecognised), 3);
        assert!(matches!(how, HowToApply::OneSession));
        assert!(why.unwrap().contains("not recognisable"));
    }
}
