//! The receive of a logical restore: the gzip'd dump from the connection, verified, split
//! on the way ([`super::split`]) into `build.sql` (the tables, under shadow database names)
//! and `objects.sql` (what is created after the switch) in the staging directory (mode
//! 0600), with the plan of a parallel apply of `build.sql` built from the same bytes. Nothing
//! is applied before the whole dump arrived, its gzip trailer checked out and its sections
//! were recognised.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dbjobs_kit::copy::{human_bytes, COPY_BUFFER};
use dbjobs_kit::position::BinlogPosition;
use dbjobs_kit::private::create_private_file;
use dbjobs_sdk::{JobError, ServerState};

use super::filter::LineMap;
use super::gzip::{decompress_verified, ReceivedDump};
use super::plan::DumpPlan;
use super::split::{Outputs, Patch, Splitter, BUILD_FILE, OBJECTS_FILE, OBJECTS_PART_FILE};
use crate::context::Context;
use crate::receive::{CountingReader, Received, SpaceCheckedWriter};
use crate::shadow::shadow_name;

/// A dump received, verified, split and staged.
pub struct StagedDump {
    /// `<staging>/build.sql`: what is built in the shadow databases.
    pub build: PathBuf,
    /// Its size.
    pub build_bytes: u64,
    /// The dump's line of each line of `build.sql`.
    pub build_lines: LineMap,
    /// `<staging>/objects.sql`: what is replayed after the switch.
    pub objects: PathBuf,
    /// The live names of the dump's user databases, in dump order.
    pub databases: Vec<String>,
    /// The dump's `CREATE DATABASE` of each of them.
    pub creates: Vec<(String, String)>,
    /// The position the dump sets, if any.
    pub position: Option<BinlogPosition>,
    /// Lines about the job queue left out.
    pub skipped_lines: u64,
    /// Who sent it.
    pub peer: SocketAddr,
    /// What arrived: compressed and SQL bytes, stale padding.
    pub received: ReceivedDump,
    /// How long the transfer took.
    pub took: Duration,
    /// The plan of a parallel apply of `build.sql`, when one was asked for: the plan, or why
    /// it cannot be applied in parallel.
    pub plan: Option<Result<DumpPlan, String>>,
}

/// A staged file being written: buffered, its free space checked.
type StagedFile = BufWriter<SpaceCheckedWriter<File>>;

/// Receive the dump from `connection` into the staging directory, split; with `with_plan`,
/// build the plan of a parallel apply of `build.sql` from the same bytes.
pub fn receive_dump(
    ctx: &Context<'_, '_>,
    connection: Received,
    with_plan: bool,
) -> Result<StagedDump, JobError> {
    let started = Instant::now();
    let peer = connection.peer;
    let dir = ctx.staging.path();
    let open = |name: &str| -> Result<StagedFile, JobError> {
        let file = create_private_file(&dir.join(name))?;
        let min_free = ctx.settings.restore.min_free_bytes();
        Ok(BufWriter::with_capacity(
            COPY_BUFFER,
            SpaceCheckedWriter::new(file, dir, min_free),
        ))
    };
    let outputs = Outputs {
        build: open(BUILD_FILE)?,
        objects: open(OBJECTS_FILE)?,
        part: open(OBJECTS_PART_FILE)?,
    };
    let job_id = ctx.job.id;
    let splitter = Splitter::new(outputs, move |k| shadow_name(job_id, k), with_plan);
    let input = CountingReader::new(connection.stream, || ctx.host.cancelled());
    let staged = decompress_verified(input, splitter, None, |n| {
        ctx.host.progress(&format!(
            "receiving the dump from {peer}: {} of SQL",
            human_bytes(n)
        ))
    })?;
    let got = staged.received;
    let took = started.elapsed();
    ctx.host.info(&format!(
        "received {} from {peer} ({} of SQL, {} stale bytes after the gzip data) in {} s",
        human_bytes(got.compressed),
        human_bytes(got.sql_bytes),
        got.padding,
        took.as_secs(),
    ));
    let split = staged.out.finish().map_err(refused)?;
    ctx.host.info(&format!(
        "split: {} database(s) to build aside ({} of build.sql)",
        split.databases.len(),
        human_bytes(split.build_bytes),
    ));
    let (build, objects) = (dir.join(BUILD_FILE), dir.join(OBJECTS_FILE));
    let Outputs {
        build: build_file,
        objects: objects_file,
        ..
    } = split.outputs;
    let build_file = into_file(build_file).map_err(|e| write_failed(&build, e))?;
    patch(&build_file, &split.patches).map_err(|e| write_failed(&build, e))?;
    let mut objects_file = into_file(objects_file).map_err(|e| write_failed(&objects, e))?;
    compose(&mut objects_file, &dir.join(OBJECTS_PART_FILE), &split.tail)
        .map_err(|e| write_failed(&objects, e))?;
    Ok(StagedDump {
        build,
        build_bytes: split.build_bytes,
        build_lines: split.build_lines,
        objects,
        databases: split.databases,
        creates: split.creates,
        position: split.position,
        skipped_lines: split.skipped_lines,
        peer,
        received: got,
        took,
        plan: split.plan,
    })
}

/// The refusal of a dump whose sections were not recognised.
fn refused(why: String) -> JobError {
    JobError::refused(format!(
        "the dump cannot be restored aside and switched in one step: {why}"
    ))
    .with_hint("send a dump made by mariadb-dump (or mysqldump) with --databases or --all-databases and its comments (not --compact or --skip-comments)")
    .with_state(ServerState::Untouched)
}

/// The error of a failed write of staged file `path`.
fn write_failed(path: &Path, e: io::Error) -> JobError {
    crate::receive::write_error(
        Some(e.kind()),
        format!("cannot write {}: {e}", path.display()),
    )
}

/// The file under a staged writer, flushed.
fn into_file(w: StagedFile) -> io::Result<File> {
    Ok(w.into_inner().map_err(|e| e.into_error())?.into_inner())
}

/// Write the forward references' shadow names into `build.sql`, then sync it.
fn patch(file: &File, patches: &[Patch]) -> io::Result<()> {
    for p in patches {
        file.write_all_at(&p.bytes, p.offset)?;
    }
    file.sync_all()
}

/// `objects.sql` completed: the objects collected in `part` (removed), then `tail`, synced.
fn compose(objects: &mut File, part: &Path, tail: &[u8]) -> io::Result<()> {
    let mut from = File::open(part)?;
    io::copy(&mut from, objects)?;
    objects.write_all(tail)?;
    objects.sync_all()?;
    std::fs::remove_file(part)
}
