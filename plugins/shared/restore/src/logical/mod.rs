//! Logical restore (`reseedmysqldump`, `flashbackmysqldump`): a gzip'd SQL dump replayed
//! through the `mariadb` client, built aside and switched in one step, as the [`Logical`]
//! [`RestoreEngine`].
//!
//! The steps, so that neither a broken transfer nor a failure or a kill at any point leaves
//! a database half old and half new:
//! 1. **Receive** ([`stage`], [`gzip`], [`split`]): the stream is decompressed and split on
//!    the way into `build.sql` (the tables and sequences, every database name rewritten to
//!    its shadow name) and `objects.sql` (the `mysql` schema, then views, triggers,
//!    routines and events under the live names, then the position the dump sets), its gzip
//!    trailer verified; a stream cut short, or a dump whose sections are not recognised,
//!    fails here, before anything was applied. With `apply_parallel` above 1, the [`plan`]
//!    of a parallel apply of `build.sql` is built from the same bytes.
//! 2. **Prepare**: choose how to apply `build.sql`: in several sessions when its plan was
//!    recognised and has table groups to spread, else in one.
//! 3. **Restore**: a running replica is stopped (the dump's `CHANGE MASTER TO` and
//!    `SET GLOBAL gtid_slave_pos` need it); a foreign key from a database the dump does not
//!    have into one it replaces is refused; the journal is written ([`crate::journal`],
//!    `objects.sql` kept beside it); `build.sql` is applied into the shadow databases
//!    ([`apply`], [`parallel`], through the [`filter`], not binlogged) while the live ones
//!    keep serving; one `RENAME TABLE` switches ([`crate::shadow::switch`]); then
//!    `objects.sql` is replayed in one session and the events it created are disabled on
//!    the slave. Any failure before the switch drops the shadows: the server is untouched.
//!    A run killed at any point is finished or rolled back by the next start
//!    ([`crate::recover`](mod@crate::recover)).
//! 4. **Finish**: the old tables (and the shadows' leftovers) are dropped, the journal ends.
//! 5. **Replicate**: the replica is started again, unless replication-manager applies the
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
use dbjobs_kit::private::create_private_file;
use dbjobs_kit::tool::find_tool;
use dbjobs_sdk::{JobError, ServerState};

use crate::context::Context;
use crate::engine::RestoreEngine;
use crate::fault;
use crate::journal::{self, AfterSwitch, Journal, JournalPhase, JournalRecord};
use crate::objects;
use crate::receive::Received;
use crate::replication;
use crate::settings::RestoreSettings;
use crate::shadow::{self, ShadowSet};
use crate::summary::{count, Summary};
use apply::{Applied, Client, Origin, Replay};
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

/// How `build.sql` is applied, decided before the first change.
pub enum HowToApply {
    /// Through one client session, in dump order.
    OneSession,
    /// Following the plan, the table groups over up to `sessions` sessions.
    Parallel {
        /// The plan of `build.sql`.
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
    /// The build of the shadow databases.
    built: Applied,
    /// The replay of the objects after the switch (it sets the position).
    objects: Applied,
    /// Events the replay created, disabled on the slave.
    events_disabled: usize,
    /// Whether the node has a replica configured (stopped for the replay if it ran).
    replica_stopped: bool,
    /// The journal, ended by [`RestoreEngine::finish`].
    journal: Option<Journal>,
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
        let connections = replication::stop_running(ctx.host)?;
        let stopped = connections.iter().any(|c| c.running);
        let running = connections
            .iter()
            .filter(|c| c.running)
            .map(|c| c.name.clone())
            .collect();
        self.restore_aside(ctx, prepared, running)
            .map(|mut r| {
                r.replica_stopped = !connections.is_empty();
                r
            })
            .map_err(|e| {
                // A rollback started the stopped connections again.
                let rolled_back = e.state == ServerState::Untouched && ctx.changes.started();
                replication::left_stopped(e, stopped && !rolled_back)
            })
    }

    /// The client's exit status is the check of a replay: it stops at the first error.
    fn verify(&self, _: &Context<'_, '_>, _: &Prepared, _: &Restored) -> Result<(), JobError> {
        Ok(())
    }

    /// Drop the old tables kept for a rollback and the shadows' leftovers, end the journal.
    fn finish(
        &self,
        ctx: &Context<'_, '_>,
        _: &Prepared,
        restored: &mut Restored,
    ) -> Result<(), JobError> {
        let Some(journal) = restored.journal.take() else {
            return Ok(());
        };
        shadow::finish(ctx.host, &journal.record().set)?;
        journal.done();
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
        restored.objects.position.as_ref()
    }

    fn summary(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Prepared,
        restored: &Restored,
        replication: Vec<String>,
    ) -> String {
        let (dump, got) = (&prepared.dump, &prepared.dump.received);
        let fed = restored.built.fed + restored.objects.fed;
        let mut summary = Summary::new(format!(
            "{} from a mysqldump done: {} received from {} ({}), {} of SQL applied in {} s{}",
            ctx.intent.as_str(),
            human_bytes(got.compressed),
            dump.peer,
            human_rate(got.compressed, dump.took),
            human_bytes(fed),
            ctx.started.elapsed().as_secs(),
            match got.padding {
                0 => String::new(),
                n => format!(", {n} stale bytes ignored"),
            },
        ));
        let gtid = restored.objects.position.as_ref();
        if let Some(p) = gtid.filter(|p| !p.gtid.is_empty()) {
            summary.note(format!("gtid_slave_pos {}", p.gtid));
        }
        summary
            .notes(replication)
            .note(format!(
                "{} built aside and switched in one step",
                count(dump.databases.len(), "database")
            ))
            .note(format!(
                "applied in {}",
                count(restored.built.sessions, "session")
            ));
        if restored.events_disabled > 0 {
            summary.note(format!(
                "{} disabled on the slave",
                count(restored.events_disabled, "event")
            ));
        }
        if dump.skipped_lines > 0 {
            summary.note(format!(
                "{} lines about {QUEUE_SCHEMA} skipped",
                dump.skipped_lines
            ));
        }
        summary.text()
    }
}

impl Logical {
    /// The client, with the host's credentials.
    fn client<'p>(&'p self, ctx: &Context<'_, '_>) -> Result<Client<'p>, JobError> {
        Ok(Client {
            program: &self.client,
            option_file: ctx.host.client_option_file()?,
        })
    }

    /// Refuse what would break the switch, write the journal, build, switch, create the
    /// objects (step 3 of the module docs). `running`: the replication connections stopped.
    fn restore_aside(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Prepared,
        running: Vec<String>,
    ) -> Result<Restored, JobError> {
        let (host, dump) = (ctx.host, &prepared.dump);
        let set = ShadowSet::new(ctx.job.id, dump.databases.clone());
        shadow::refuse_outside_references(host, &set)?;
        let replay_started = objects::server_now(host)?;
        let position_before = replication::slave_pos(host)?;
        let journal = begin_journal(ctx, dump, &set, running)?;
        let built = self.build_and_switch(ctx, prepared, &set, &journal)?;
        let (applied, events_disabled) = self
            .create_objects(ctx, dump, &set, &journal)
            .and_then(|applied| {
                // The node is (or becomes) a replica: the dump's enabled events run on the
                // master.
                let disabled = objects::disable_events_created_since(host, &replay_started)?;
                journal.enter(JournalPhase::ObjectsCreated)?;
                Ok((applied, disabled))
            })
            .map_err(|e| shadow::give_up_old_tables(ctx.host, &set, &journal, e))?;
        // A multi-source node keeps its place in the domains the dump does not set.
        replication::keep_other_domains(host, &position_before)?;
        Ok(Restored {
            built,
            objects: applied,
            events_disabled,
            replica_stopped: false,
            journal: Some(journal),
        })
    }

    /// Build the shadow databases from `build.sql`, then switch; a failure in either rolls
    /// back (shadows dropped, live data untouched).
    fn build_and_switch(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Prepared,
        set: &ShadowSet,
        journal: &Journal,
    ) -> Result<Applied, JobError> {
        let host = ctx.host;
        let switched = shadow::create_databases(host, set, &prepared.dump.creates, journal)
            .and_then(|()| self.build(ctx, prepared))
            .and_then(|built| {
                fault::point(host, fault::BEFORE_SWITCH);
                host.progress("switching to the restored tables");
                shadow::switch(host, set, journal, ctx.settings.restore.switch_lock_wait)?;
                Ok(built)
            });
        let e = match switched {
            Ok(built) => {
                fault::point(host, fault::AFTER_SWITCH);
                return Ok(built);
            }
            Err(e) => e,
        };
        Err(shadow::rolled_back_before_switch(
            host, journal, e, "the dump",
        ))
    }

    /// Apply `build.sql` as [`HowToApply`] says.
    fn build(&self, ctx: &Context<'_, '_>, prepared: &Prepared) -> Result<Applied, JobError> {
        let client = self.client(ctx)?;
        let dump = &prepared.dump;
        let replay = Replay {
            path: &dump.build,
            total: dump.build_bytes,
            origin: Origin::Part(&dump.build_lines),
            half_point: Some(fault::SHADOW_HALF_BUILT),
        };
        match &prepared.how {
            HowToApply::OneSession => apply::one_session(ctx.host, &client, &replay),
            HowToApply::Parallel { plan, sessions } => {
                parallel::in_sessions(ctx.host, &client, &replay, plan, *sessions)
            }
        }
    }

    /// After the switch: the live databases' objects replaced by the backup's, from
    /// `objects.sql`. A failure leaves the journal at [`JournalPhase::Switched`]: the next
    /// start replays it again.
    fn create_objects(
        &self,
        ctx: &Context<'_, '_>,
        dump: &StagedDump,
        set: &ShadowSet,
        journal: &Journal,
    ) -> Result<Applied, JobError> {
        let host = ctx.host;
        host.progress("creating views, triggers, routines and events");
        shadow::clear_live_objects(host, set)?;
        let script = match journal.record().after_switch {
            Some(AfterSwitch::Script(path)) => path,
            _ => dump.objects.clone(),
        };
        let total = std::fs::metadata(&script).map_or(0, |m| m.len());
        let replay = Replay {
            path: &script,
            total,
            origin: Origin::Named("objects.sql"),
            half_point: Some(fault::OBJECTS_HALF_CREATED),
        };
        apply::one_session(host, &self.client(ctx)?, &replay)
            .map_err(|e| e.context("creating the objects"))
    }
}

/// Keep `objects.sql` beside the journal (a recovery after the switch replays it) and write
/// the journal: the first change.
fn begin_journal(
    ctx: &Context<'_, '_>,
    dump: &StagedDump,
    set: &ShadowSet,
    running: Vec<String>,
) -> Result<Journal, JobError> {
    let script = journal::side_file(ctx.host, ctx.job.id, "objects.sql")?;
    copy_private(&dump.objects, &script)?;
    let record = JournalRecord {
        job_id: ctx.job.id,
        task: ctx.job.task.clone(),
        phase: JournalPhase::Building,
        set: set.clone(),
        created_live: Vec::new(),
        live_triggers: Vec::new(),
        stopped_replication: running,
        after_switch: Some(AfterSwitch::Script(script)),
        gtid: dump
            .position
            .as_ref()
            .map(|p| p.gtid.clone())
            .unwrap_or_default(),
        full: None,
    };
    Journal::begin(ctx, record, "building the dump aside in shadow databases")
}

/// Copy `from` to a new private file `to`, synced.
fn copy_private(from: &std::path::Path, to: &std::path::Path) -> Result<(), JobError> {
    let io = |e: std::io::Error| {
        JobError::io(format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        ))
    };
    let _ = std::fs::remove_file(to);
    let mut out = create_private_file(to)?;
    let mut input = std::fs::File::open(from).map_err(io)?;
    std::io::copy(&mut input, &mut out).map_err(io)?;
    out.sync_all().map_err(io)
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
