//! One interface for both ways of restoring a backup, and the one orchestrator that runs it.
//!
//! Like Vitess's backup engines (`go/vt/mysqlctl/backupengine.go`), the logical restore
//! ([`crate::logical::Logical`]) and the physical one ([`crate::physical::Physical`]) are two
//! implementations of [`RestoreEngine`], and [`restore_with`] is the only code that knows the
//! order of the steps. Like pgBackRest's restore, the steps are named, and everything that
//! can fail without touching the server comes first: [`RestoreEngine::receive`] and
//! [`RestoreEngine::prepare`] only read the live server, [`RestoreEngine::restore`] is the
//! first step allowed to change it (and says so with [`crate::context::LiveChanges::begin`]
//! before its first change), then the result is verified and replication set up.
//!
//! Each step hands the next what it produced (an associated type), so a step cannot run
//! before the one it needs, and the data of a restore is a plan computed first, then
//! executed (as rustic's typed plans).
//!
//! # Crash safety
//! * **the journal** ([`crate::journal`]) is written and fsynced before the first change
//!   (`Journal::begin`, which announces it to [`crate::context::LiveChanges`]) and at every
//!   phase boundary; the job's lock file tells a dead run from a live one;
//! * **refusing before touching**: everything [`RestoreEngine::receive`] and
//!   [`RestoreEngine::prepare`] do only reads the live server, and the online restore's
//!   first step refuses what would break the switch (a foreign key from outside);
//! * **build aside, switch once** ([`crate::shadow`]): [`RestoreEngine::restore`] builds
//!   the backup under shadow databases, switches with one `RENAME TABLE` and creates the
//!   objects; [`RestoreEngine::finish`] drops the old tables once [`RestoreEngine::verify`]
//!   passed;
//! * **recovery** ([`crate::recover`]): at start-up, the journals of dead runs are rolled
//!   back (before the switch) or forward (after it), their temporary servers stopped and
//!   their staging directories removed.

use dbjobs_kit::position::BinlogPosition;
use dbjobs_sdk::{JobError, Outcome};

use crate::context::{Context, Phase};
use crate::receive::{self, Received};

/// A way of restoring a backup received from replication-manager.
pub trait RestoreEngine {
    /// What [`RestoreEngine::receive`] left in the staging directory: the complete backup.
    type Staged;
    /// What [`RestoreEngine::prepare`] read and checked: everything the restore needs.
    type Prepared;
    /// What [`RestoreEngine::restore`] did, for the result.
    type Restored;

    /// Receive the backup from the accepted connection into the staging directory and check
    /// that it is complete. Does not touch the server.
    fn receive(
        &self,
        ctx: &Context<'_, '_>,
        connection: Received,
    ) -> Result<Self::Staged, JobError>;

    /// Read and check everything needed before the first change to the live server (the
    /// prepared backup, its definitions, its position, how to apply it). Does not change
    /// the server.
    fn prepare(
        &self,
        ctx: &Context<'_, '_>,
        staged: Self::Staged,
    ) -> Result<Self::Prepared, JobError>;

    /// Make the live server hold the backup's data. The first change it makes is announced
    /// with [`crate::context::LiveChanges::begin`]; an error says what the server was left in
    /// when it knows better than "partial".
    fn restore(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Self::Prepared,
    ) -> Result<Self::Restored, JobError>;

    /// Check the restored data against what the backup holds.
    fn verify(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Self::Prepared,
        restored: &Self::Restored,
    ) -> Result<(), JobError>;

    /// The restore verified: drop what was kept for a rollback (the old tables) and end
    /// the journal. The default has nothing to drop.
    fn finish(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Self::Prepared,
        restored: &mut Self::Restored,
    ) -> Result<(), JobError> {
        let _ = (ctx, prepared, restored);
        Ok(())
    }

    /// Set the replication position and start the replica, or leave both to
    /// replication-manager: the result's notes about it.
    fn replicate(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Self::Prepared,
        restored: &Self::Restored,
    ) -> Result<Vec<String>, JobError>;

    /// The backup's replication position, for the payload replication-manager applies.
    fn position<'p>(
        &self,
        prepared: &'p Self::Prepared,
        restored: &'p Self::Restored,
    ) -> Option<&'p BinlogPosition>;

    /// The result text of the finished restore, with the notes of
    /// [`RestoreEngine::replicate`].
    fn summary(
        &self,
        ctx: &Context<'_, '_>,
        prepared: &Self::Prepared,
        restored: &Self::Restored,
        replication: Vec<String>,
    ) -> String;
}

/// Run a restore with `engine`, step by step: listen and receive, prepare, restore, verify,
/// finish, replicate. A failure stops it where it is; the caller settles the server's state
/// ([`Context::settle`]).
pub fn restore_with<E: RestoreEngine>(
    engine: &E,
    ctx: &Context<'_, '_>,
) -> Result<Outcome, JobError> {
    let connection = receive::accept(ctx.job, ctx.host, &ctx.settings.restore)?;
    let staged = engine.receive(ctx, connection)?;
    ctx.boundary(Phase::Receive);
    crate::fault::point(ctx.host, crate::fault::RECEIVED);
    let prepared = engine.prepare(ctx, staged)?;
    ctx.boundary(Phase::Prepare);
    let mut restored = engine.restore(ctx, &prepared)?;
    ctx.boundary(Phase::Restore);
    engine.verify(ctx, &prepared, &restored)?;
    engine.finish(ctx, &prepared, &mut restored)?;
    ctx.boundary(Phase::Verify);
    let replication = engine.replicate(ctx, &prepared, &restored)?;
    ctx.boundary(Phase::Replicate);

    let text = engine.summary(ctx, &prepared, &restored, replication);
    ctx.host.info(&text);
    let payload = engine
        .position(&prepared, &restored)
        .filter(|_| ctx.job.manager_applies_position())
        .map(|p| p.payload(ctx.facts.vendor));
    Ok(match payload {
        Some(p) => Outcome::new(text).with_payload(p),
        None => Outcome::new(text),
    })
}
