//! The receive of a logical restore: the gzip'd dump from the connection into `dump.sql` in
//! the staging directory (mode 0600), verified, with the plan of a parallel apply built from
//! the same bytes on the way ([`super::gzip::decompress_verified`]). Nothing is applied
//! before the whole dump arrived and its gzip trailer checked out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dbjobs_kit::copy::human_bytes;
use dbjobs_kit::private::create_private_file;
use dbjobs_sdk::JobError;

use super::gzip::{decompress_verified, ReceivedDump};
use super::plan::{DumpPlan, PlanBuilder};
use crate::context::Context;
use crate::receive::{CountingReader, Received, SpaceCheckedWriter};

/// A dump received, verified and staged.
pub struct StagedDump {
    /// The staged SQL, `<staging>/dump.sql`.
    pub path: PathBuf,
    /// Who sent it.
    pub peer: SocketAddr,
    /// What arrived: compressed and SQL bytes, stale padding.
    pub received: ReceivedDump,
    /// How long the transfer took.
    pub took: Duration,
    /// The plan of a parallel apply, when one was asked for: the plan, or why the dump
    /// cannot be applied in parallel.
    pub plan: Option<Result<DumpPlan, String>>,
}

/// Receive the dump from `connection` into the staging directory; with `with_plan`, build the
/// plan of a parallel apply from the same bytes.
pub fn receive_dump(
    ctx: &Context<'_, '_>,
    connection: Received,
    with_plan: bool,
) -> Result<StagedDump, JobError> {
    let started = Instant::now();
    let peer = connection.peer;
    let path = ctx.staging.path().join("dump.sql");
    let file = create_private_file(&path)?;
    let min_free = ctx.settings.restore.min_free_bytes();
    let out = SpaceCheckedWriter::new(file, ctx.staging.path(), min_free);
    let input = CountingReader::new(connection.stream, || ctx.host.cancelled());
    let staged = decompress_verified(input, out, with_plan.then(PlanBuilder::default), |n| {
        ctx.host.progress(&format!(
            "receiving the dump from {peer}: {} of SQL",
            human_bytes(n)
        ))
    })?;
    staged
        .out
        .into_inner()
        .sync_all()
        .map_err(|e| JobError::io(format!("cannot write {}: {e}", path.display())))?;
    let got = staged.received;
    let took = started.elapsed();
    ctx.host.info(&format!(
        "received {} from {peer} ({} of SQL, {} stale bytes after the gzip data) in {} s",
        human_bytes(got.compressed),
        human_bytes(got.sql_bytes),
        got.padding,
        took.as_secs()
    ));
    Ok(StagedDump {
        path,
        peer,
        received: got,
        took,
        plan: staged.plan,
    })
}
