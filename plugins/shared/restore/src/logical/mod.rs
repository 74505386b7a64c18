//! Logical restore (`reseedmysqldump`, `flashbackmysqldump`): a gzip'd SQL dump replayed
//! through the `mariadb` client.
//!
//! Two phases, so that a broken transfer never touches the server:
//! 1. **Receive and verify.** The stream is decompressed (flate2, one gzip member) into
//!    `dump.sql` in the staging directory. The gzip trailer (CRC-32 and length) must check
//!    out; up to [`MAX_PADDING`](super::receive::MAX_PADDING) stale bytes after it are
//!    accepted (replication-manager's sender pads its last write), more are refused. A
//!    stream cut short fails here, before anything was applied. One thread decompresses; a
//!    second one writes the SQL to the file and, for a parallel apply, builds its plan from
//!    the same bytes (see below), so the plan costs no read of the staged file.
//! 2. **Apply.** The file is fed to `mariadb --batch --binary-mode` (no `--force`: it stops
//!    at the first error, whose `ERROR nnnn at line N` is reported with the dump's line
//!    number), after `SET SESSION sql_log_bin=0;` so the replay is not binlogged under the
//!    node's own server id (PROTOCOL.md §4). While streaming, line by line, the filter drops
//!    everything about `replication_manager_schema` (a `--all-databases --add-drop-database`
//!    dump would otherwise drop the queue holding this very job) and picks up the position
//!    the dump sets (`SET GLOBAL gtid_slave_pos`, `CHANGE MASTER TO MASTER_LOG_FILE`).
//!
//!    With the setting `apply_parallel` above 1 (default: the number of CPUs), the table
//!    sections are applied by that many client sessions at once, the server's single
//!    session being the bottleneck of a replay: a [`dump_plan`](super::dump_plan) (with the
//!    same filter) is built while the dump is received, then the header and database
//!    statements go through one session, the table sections (biggest first, tables linked by
//!    foreign keys together) through the others, each starting with the header's SET
//!    statements, and the views, routines, events and position through a last session, in
//!    dump order. The first error stops every session (their clients are killed) and is
//!    reported with the dump's line number as above. A dump whose sections are not
//!    recognisable (`--compact`, `--skip-comments`, ...) is applied through one session, as
//!    is everything with `apply_parallel=1` (no plan is built then). The result says how many
//!    sessions applied the tables.
//!
//! Replication: the dump's `CHANGE MASTER TO MASTER_USE_GTID` and `SET GLOBAL
//! gtid_slave_pos` need the replica threads stopped, so a configured replica is stopped
//! before applying and started again afterwards, unless the payload variant leaves that to
//! replication-manager. A node without replication is not an error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

pub mod gzip;

use crate::dump_plan::{newline, DumpPlan, PlanBuilder, Span, Unit};
use gzip::decompress_verified;

use crate::receive::{min_free_bytes, CountingReader, Received, SpaceCheckedWriter};
use crate::{Intent, Text};
use dbjobs_kit::copy::{human_bytes, human_rate, COPY_BUFFER};
use dbjobs_kit::sql::is_gtid_list;
use dbjobs_kit::tool::{find_tool, ToolCommand, ToolExit};
use dbjobs_sdk::{Host, Job, Outcome, TableVariant};

/// The database the filter keeps out of the replay: the node's own job queue.
pub const QUEUE_SCHEMA: &str = "replication_manager_schema";

/// What the first line fed to the client does: keep the replay out of the binary log.
const PREFIX: &[u8] = b"SET SESSION sql_log_bin=0;\n";

/// Restore a gzip'd SQL dump received on `received` into the local server (see the module
/// documentation for the two phases).
pub fn restore(
    host: &Host<'_>,
    job: &Job,
    intent: Intent,
    received: Received,
    staging: &Path,
) -> Result<Outcome, String> {
    let start = Instant::now();
    let peer = received.peer;
    let min_free = min_free_bytes(host)?;
    let sessions = apply_sessions(host)?;
    let dump_path = staging.join("dump.sql");

    // Phase 1: receive into the staging file and verify the gzip trailer; the plan of a
    // parallel apply is built from the same bytes on the way.
    let (got, plan) = {
        let file = create_private(&dump_path)?;
        let out = SpaceCheckedWriter::new(file, staging, min_free);
        let input = CountingReader::new(received.stream, || host.cancelled());
        let planner = (sessions > 1).then(PlanBuilder::default);
        let staged = decompress_verified(input, out, planner, |n| {
            host.progress(&format!(
                "receiving the dump from {peer}: {} of SQL",
                human_bytes(n)
            ))
        })
        .map_err(|e| format!("{e}; nothing was applied to the server"))?;
        staged
            .out
            .into_inner()
            .sync_all()
            .map_err(|e| format!("cannot write {}: {e}", dump_path.display()))?;
        (staged.received, staged.plan)
    };
    let received_in = start.elapsed();
    host.info(&format!(
        "received {} from {peer} ({} of SQL, {} stale bytes after the gzip data) in {} s",
        human_bytes(got.compressed),
        human_bytes(got.sql_bytes),
        got.padding,
        received_in.as_secs()
    ));

    // Phase 2: apply.
    let replica = replica_configured(host);
    if replica {
        host.info("stopping replication for the restore");
        host.query("STOP SLAVE", &[]).map_err(|e| {
            format!("cannot stop replication before the restore: {e}; nothing was applied")
        })?;
    }
    let applied = apply_dump(host, &dump_path, got.sql_bytes, sessions, plan).map_err(|e| {
        if replica {
            format!("{e} (replication was stopped for the restore and left stopped)")
        } else {
            e
        }
    })?;

    let mut notes = Vec::new();
    if let Some(g) = &applied.gtid {
        notes.push(format!("gtid_slave_pos {g}"));
    }
    if replica {
        if job.variant == TableVariant::Payload {
            notes.push("replication left stopped for replication-manager".into());
        } else {
            match host.query("START SLAVE", &[]) {
                Ok(_) => notes.push("replication started".into()),
                Err(e) => {
                    host.warn(&format!("START SLAVE failed after the restore: {e}"));
                    notes.push(format!("START SLAVE failed: {e}"));
                }
            }
        }
    } else {
        notes.push("no replication configured".into());
    }
    notes.push(format!(
        "applied in {} session{}",
        applied.sessions,
        if applied.sessions == 1 { "" } else { "s" }
    ));
    if applied.skipped_lines > 0 {
        notes.push(format!(
            "{} lines about {QUEUE_SCHEMA} skipped",
            applied.skipped_lines
        ));
    }
    let elapsed = start.elapsed();
    let text = format!(
        "{} from a mysqldump done: {} received from {peer} ({}), {} of SQL applied in {} s{}{}",
        intent.as_str(),
        human_bytes(got.compressed),
        human_rate(got.compressed, received_in),
        human_bytes(applied.fed),
        elapsed.as_secs(),
        if got.padding > 0 {
            format!(", {} stale bytes ignored", got.padding)
        } else {
            String::new()
        },
        notes.iter().map(|n| format!("; {n}")).collect::<String>()
    );
    host.info(&text);
    let mut outcome = Outcome::new(text);
    if job.variant == TableVariant::Payload {
        if let Some(p) = applied.payload() {
            outcome = outcome.with_payload(p);
        }
    }
    Ok(outcome)
}

/// Create `path` mode 0600 (it holds a copy of the data).
fn create_private(path: &Path) -> Result<File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Whether the node is a configured replica (`SHOW SLAVE STATUS` has a row with a
/// `Master_Host`). An error reading it (privileges) counts as "not configured", logged.
fn replica_configured(host: &Host<'_>) -> bool {
    match host.query("SHOW SLAVE STATUS", &[]) {
        Ok(rows) => rows.first().is_some_and(|row| {
            row.get(1)
                .and_then(|h| h.as_deref())
                .is_some_and(|h| !h.trim().is_empty())
        }),
        Err(e) => {
            host.warn(&format!(
                "cannot read SHOW SLAVE STATUS ({e}); treating the node as having no replication"
            ));
            false
        }
    }
}

/// What phase 2 did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Bytes fed to the client (prefix and kept lines).
    pub fed: u64,
    /// Dump lines left out (the queue's database).
    pub skipped_lines: u64,
    /// The `gtid_slave_pos` the dump set, if any.
    pub gtid: Option<String>,
    /// The binary log file of the dump's `CHANGE MASTER TO MASTER_LOG_FILE`, if any.
    pub binlog_file: Option<String>,
    /// The position of the dump's `CHANGE MASTER TO ... MASTER_LOG_POS`, if any.
    pub binlog_pos: Option<String>,
    /// Client sessions the table sections were applied in (1: the single-session replay).
    pub sessions: usize,
}

impl Applied {
    /// The payload replication-manager reads in the newest layout, when a position is known.
    pub fn payload(&self) -> Option<String> {
        if self.gtid.is_none() && self.binlog_file.is_none() {
            return None;
        }
        let mut m = serde_json::Map::new();
        m.insert("vendor".into(), "mariadb".into());
        if let Some(g) = &self.gtid {
            m.insert("gtid".into(), g.clone().into());
        }
        if let Some(f) = &self.binlog_file {
            m.insert("binLogFile".into(), f.clone().into());
        }
        if let Some(p) = &self.binlog_pos {
            m.insert("binLogPos".into(), p.clone().into());
        }
        Some(serde_json::Value::Object(m).to_string())
    }
}

/// Default of the `apply_parallel` setting: one client session per CPU (at least one).
fn default_parallel() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The client sessions to apply the table sections in: the setting `apply_parallel`
/// (default: the number of CPUs; 0 means the default). Read before receiving, as the plan of
/// a parallel apply is built while receiving, and so that a bad value fails the job before
/// the transfer rather than after it.
fn apply_sessions(host: &Host<'_>) -> Result<usize, String> {
    let n = crate::RestoreSettings::read(host).text()?.apply_parallel;
    Ok(if n == 0 { default_parallel() } else { n })
}

/// Apply the staged dump: in `n` sessions when `n` ([`apply_sessions`]) is above 1 and the
/// dump's plan, built while receiving, is recognised ([`dump_plan`](super::dump_plan)), else
/// through one session exactly as [`apply`] always did. `plan` is there when `n` is above 1.
fn apply_dump(
    host: &Host<'_>,
    dump: &Path,
    total: u64,
    n: usize,
    plan: Option<Result<DumpPlan, String>>,
) -> Result<Applied, String> {
    let Some(plan) = plan.filter(|_| n > 1) else {
        return apply(host, dump, total);
    };
    match plan {
        Ok(plan) if plan.units.len() >= 2 => apply_parallel(host, dump, total, plan, n),
        Ok(plan) => {
            host.info(&format!(
                "applying the dump in one session: it has {} table group(s), nothing to spread over {n} sessions",
                plan.units.len()
            ));
            apply(host, dump, total)
        }
        Err(why) => {
            host.info(&format!(
                "applying the dump in one session: its table sections are not recognisable ({why})"
            ));
            apply(host, dump, total)
        }
    }
}

/// What the sessions of a parallel apply share.
struct Sessions<'a> {
    client: PathBuf,
    option_file: PathBuf,
    dump: &'a Path,
    total: u64,
    /// Dump bytes fed so far (header SETs replayed per session not counted).
    fed: AtomicU64,
    /// Set at the first failure or on cancellation: every session stops.
    stop: AtomicBool,
    /// The first failure, reported as the job's error.
    first_error: Mutex<Option<String>>,
    /// Process ids of the running clients, to kill them when another session fails. A
    /// session clears its slot (under the lock) before reaping its client, so a pid here is
    /// never a reused one.
    running: Mutex<Vec<Option<u32>>>,
}

impl Sessions<'_> {
    /// Kill every registered client (with its process group).
    fn kill_all(&self) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for pid in running.iter().flatten() {
            // SAFETY: kill(2) on the process group of a client we started and not yet reaped.
            unsafe {
                libc::kill(-(*pid as libc::pid_t), libc::SIGKILL);
            }
        }
    }

    /// Record a session's failure (only the first is kept) and stop the others.
    fn fail(&self, error: String) {
        {
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            if first.is_none() && !self.stop.load(Ordering::SeqCst) {
                *first = Some(error);
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        self.kill_all();
    }
}

/// Apply the dump following `plan`: phase A (header, database statements) in one session,
/// the table units over `n` sessions, then the rest in one session (see
/// [`dump_plan`](super::dump_plan)).
fn apply_parallel(
    host: &Host<'_>,
    dump: &Path,
    total: u64,
    plan: DumpPlan,
    n: usize,
) -> Result<Applied, String> {
    let client = find_tool(
        &["mariadb", "mysql"],
        Some(
            crate::RestoreSettings::read(host)
                .text()?
                .mariadb_client
                .as_str(),
        ),
    )
    .text()?;
    let workers = n.min(plan.units.len());
    host.info(&format!(
        "applying the dump in {workers} sessions: {} groups of tables, biggest {}",
        plan.units.len(),
        human_bytes(plan.units.first().map(|u| u.bytes()).unwrap_or(0))
    ));
    let sessions = Sessions {
        client,
        option_file: host.client_option_file().text()?,
        dump,
        total,
        fed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        first_error: Mutex::new(None),
        running: Mutex::new(Vec::new()),
    };
    let first = [Unit {
        spans: plan.first.clone(),
        tables: Vec::new(),
    }];
    run_phase(host, &sessions, &[], &first, 1)?;
    run_phase(host, &sessions, &plan.session_header, &plan.units, workers)?;
    let rest = [Unit {
        spans: plan.rest.clone(),
        tables: Vec::new(),
    }];
    run_phase(host, &sessions, &plan.session_header, &rest, 1)?;
    Ok(Applied {
        fed: plan.kept_bytes + PREFIX.len() as u64,
        skipped_lines: plan.skipped_lines,
        gtid: plan.filter.gtid,
        binlog_file: plan.filter.binlog_file,
        binlog_pos: plan.filter.binlog_pos,
        sessions: workers,
    })
}

/// Run `units` over `workers` client sessions (each starts with the prefix and `preamble`,
/// then takes the next unit until none is left), reporting progress and watching for
/// cancellation from this thread, the only one that talks to the host.
fn run_phase(
    host: &Host<'_>,
    s: &Sessions<'_>,
    preamble: &[Span],
    units: &[Unit],
    workers: usize,
) -> Result<(), String> {
    *s.running.lock().unwrap_or_else(|e| e.into_inner()) = vec![None; workers];
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<()>();
    let mut cancelled = false;
    let mut panicked = false;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|slot| {
                let tx = tx.clone();
                let next = &next;
                scope.spawn(move || {
                    let _done = tx; // dropped when the session ends, however it ends
                    if let Err(e) = feed_session(s, slot, preamble, units, next) {
                        s.fail(e);
                    }
                })
            })
            .collect();
        drop(tx);
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            host.progress(&format!(
                "applying the dump: {} of {} ({workers} sessions)",
                human_bytes(s.fed.load(Ordering::SeqCst)),
                human_bytes(s.total)
            ));
            if !cancelled && host.cancelled() {
                cancelled = true;
                s.stop.store(true, Ordering::SeqCst);
                s.kill_all();
            }
        }
        for h in handles {
            if h.join().is_err() {
                panicked = true;
            }
        }
    });
    let fed = s.fed.load(Ordering::SeqCst);
    if cancelled {
        return Err(format!(
            "cancelled while applying the dump after {}: the server holds a partial restore",
            human_bytes(fed)
        ));
    }
    if let Some(e) = s
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        return Err(e);
    }
    if panicked {
        return Err(format!(
            "a session applying the dump stopped unexpectedly after {}: the server holds a partial restore: run the job again",
            human_bytes(fed)
        ));
    }
    Ok(())
}

/// One client session of [`run_phase`]. Returns the error to report, or `Ok` when it ended
/// well or was stopped because another session failed.
fn feed_session(
    s: &Sessions<'_>,
    slot: usize,
    preamble: &[Span],
    units: &[Unit],
    next: &AtomicUsize,
) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    if s.stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut tool = ToolCommand::new(&s.client, Some(&s.option_file))
        .args(["--batch", "--binary-mode", "--max-allowed-packet=1G"])
        .piped_stdin()
        .spawn(|_| {})
        .text()?;
    s.running.lock().unwrap_or_else(|e| e.into_inner())[slot] = tool.pid();
    let stdin = tool.take_stdin().ok_or("the client has no stdin pipe")?;
    let mut input = BufWriter::with_capacity(256 << 10, stdin);
    let file = File::open(s.dump).map_err(|e| format!("cannot read {}: {e}", s.dump.display()))?;
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut segments = LineMap::default();
    let mut fed_line = 1u64; // the prefix
    let stopped = || io::Error::other("stopped: another session failed");

    let mut write_span = |input: &mut BufWriter<_>, span: &Span, count: bool| -> io::Result<()> {
        segments.note_span(fed_line + 1, span.first_line, span.lines);
        fed_line += span.lines;
        let mut at = span.start;
        let mut last = b'\n';
        while at < span.end {
            if s.stop.load(Ordering::SeqCst) {
                return Err(stopped());
            }
            let n = (span.end - at).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], at)?;
            input.write_all(&buf[..n])?;
            last = buf[n - 1];
            at += n as u64;
            if count {
                s.fed.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        if last != b'\n' {
            input.write_all(b"\n")?;
        }
        Ok(())
    };
    let fed = (|| -> io::Result<()> {
        input.write_all(PREFIX)?;
        for span in preamble {
            write_span(&mut input, span, false)?;
        }
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(unit) = units.get(i) else { break };
            for span in &unit.spans {
                write_span(&mut input, span, true)?;
            }
        }
        input.flush()
    })();
    drop(input); // end of input: the client finishes and exits
                 // From here on this thread alone reaps the client: no kill may target its pid.
    s.running.lock().unwrap_or_else(|e| e.into_inner())[slot] = None;
    if s.stop.load(Ordering::SeqCst) {
        drop(tool); // killed with its process group
        return Ok(());
    }
    let exit = tool.wait().text()?;
    let fed_so_far = s.fed.load(Ordering::SeqCst);
    if !exit.success() {
        if s.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        return Err(apply_failure(&exit, &segments, fed_so_far, s.total));
    }
    if let Err(e) = fed {
        if s.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        return Err(format!(
            "feeding the dump to {} failed after {}: {e}",
            exit.name,
            human_bytes(fed_so_far)
        ));
    }
    Ok(())
}

/// Feed `dump` through the filter into the `mariadb` client and wait for it.
fn apply(host: &Host<'_>, dump: &Path, total: u64) -> Result<Applied, String> {
    let client = find_tool(
        &["mariadb", "mysql"],
        Some(
            crate::RestoreSettings::read(host)
                .text()?
                .mariadb_client
                .as_str(),
        ),
    )
    .text()?;
    let option_file = host.client_option_file().text()?;
    let mut tool = ToolCommand::new(&client, Some(&option_file))
        .args(["--batch", "--binary-mode", "--max-allowed-packet=1G"])
        .piped_stdin()
        .spawn(|_| {})
        .text()?;
    let stdin = tool.take_stdin().ok_or("the client has no stdin pipe")?;
    let mut input = BufWriter::with_capacity(COPY_BUFFER, stdin);
    let file = File::open(dump).map_err(|e| format!("cannot read {}: {e}", dump.display()))?;
    let mut reader = BufReader::with_capacity(COPY_BUFFER, file);

    let mut filter = DumpFilter::default();
    let mut done = Filtered::default();
    let mut next_progress = 0u64;
    let fed = input
        .write_all(PREFIX)
        .map_err(FilterStop::Write)
        .and_then(|()| {
            filter_into(&mut reader, &mut input, &mut filter, 2, &mut done, |read| {
                if read < next_progress {
                    return Ok(());
                }
                next_progress = read + (1 << 20);
                host.progress(&format!(
                    "applying the dump: {} of {}",
                    human_bytes(read),
                    human_bytes(total)
                ));
                if host.cancelled() {
                    return Err(format!(
                        "cancelled while applying the dump after {}: the server holds a partial restore",
                        human_bytes(read)
                    ));
                }
                Ok(())
            })
        })
        .and_then(|()| input.flush().map_err(FilterStop::Write));
    let write_error = match fed {
        Ok(()) => None,
        Err(FilterStop::Write(e)) => Some(e),
        Err(FilterStop::Read(e)) => return Err(format!("cannot read {}: {e}", dump.display())),
        Err(FilterStop::Stopped(why)) => {
            drop(input);
            drop(tool); // killed with its process group
            return Err(why);
        }
    };
    drop(input); // end of input: the client finishes and exits
    let exit = tool.wait().text()?;
    if !exit.success() {
        return Err(apply_failure(&exit, &done.lines, done.read, total));
    }
    if let Some(e) = write_error {
        return Err(format!(
            "feeding the dump to {} failed after {}: {e}",
            exit.name,
            human_bytes(done.read)
        ));
    }
    Ok(Applied {
        fed: done.fed + PREFIX.len() as u64,
        skipped_lines: done.skipped_lines,
        gtid: filter.gtid,
        binlog_file: filter.binlog_file,
        binlog_pos: filter.binlog_pos,
        sessions: 1,
    })
}

/// What [`filter_into`] copied so far (kept up to date while it runs, so a failure of the
/// client can still be mapped to the dump's line).
#[derive(Default)]
struct Filtered {
    /// Dump bytes read.
    read: u64,
    /// Bytes of the kept lines, written out.
    fed: u64,
    /// Lines the filter dropped.
    skipped_lines: u64,
    /// Line numbers written out, mapped to the dump's.
    lines: LineMap,
}

/// Why [`filter_into`] stopped before the end of the dump.
#[derive(Debug)]
enum FilterStop {
    /// Reading the staged dump failed.
    Read(io::Error),
    /// Writing to the client failed (it exited: its own error says why).
    Write(io::Error),
    /// `tick` said stop (cancelled), with the error to report.
    Stopped(String),
}

/// Copy the dump from `reader` into `out` through `filter`, line by line, holding no more than
/// the first `MARKER_MAX + 1` bytes of a line: a line longer than that is judged on its head
/// ([`DumpFilter::keep_head`]) and streamed on, so a dump with a 1 GiB `INSERT` line is applied
/// with the memory of a buffer, not of the line. Kept lines are numbered from `first_fed_line`
/// (the client's line number of the first one) in the returned [`LineMap`], for error reports.
/// `tick` gets the bytes read after each buffer and may stop the copy.
fn filter_into<R: BufRead, W: Write>(
    reader: &mut R,
    out: &mut W,
    filter: &mut DumpFilter,
    first_fed_line: u64,
    done: &mut Filtered,
    mut tick: impl FnMut(u64) -> Result<(), String>,
) -> Result<(), FilterStop> {
    let mut head: Vec<u8> = Vec::with_capacity(MARKER_MAX + 1);
    let mut line_len = 0u64; // bytes of the current line so far
    let mut long_line: Option<bool> = None; // a long line's verdict: kept or not
    let mut dump_line = 0u64;
    let mut fed_line = first_fed_line - 1;
    // Ends a line of `len` bytes: counts it, maps it when kept.
    let mut end_line = |done: &mut Filtered, kept: bool, len: u64| {
        dump_line += 1;
        if kept {
            fed_line += 1;
            done.lines.note(fed_line, dump_line);
            done.fed += len;
        } else {
            done.skipped_lines += 1;
        }
    };
    loop {
        let buf = reader.fill_buf().map_err(FilterStop::Read)?;
        if buf.is_empty() {
            break;
        }
        let (n, ends) = match newline(buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let piece = &buf[..n];
        line_len += n as u64;
        match long_line {
            Some(kept) => {
                if kept {
                    out.write_all(piece).map_err(FilterStop::Write)?;
                }
            }
            None => {
                let taken = piece.len().min(MARKER_MAX + 1 - head.len());
                head.extend_from_slice(&piece[..taken]);
                if line_len > MARKER_MAX as u64 {
                    // Long: judged on its head, the rest streams through.
                    let kept = filter.keep_head(&head, line_len);
                    if kept {
                        out.write_all(&head).map_err(FilterStop::Write)?;
                        out.write_all(&piece[taken..]).map_err(FilterStop::Write)?;
                    }
                    long_line = Some(kept);
                } else if ends {
                    let kept = filter.keep_head(&head, line_len);
                    if kept {
                        out.write_all(&head).map_err(FilterStop::Write)?;
                    }
                    long_line = Some(kept);
                }
            }
        }
        if ends {
            end_line(done, long_line == Some(true), line_len);
            head.clear();
            line_len = 0;
            long_line = None;
        }
        reader.consume(n);
        done.read += n as u64;
        tick(done.read).map_err(FilterStop::Stopped)?;
    }
    if line_len > 0 {
        // A last line without a newline.
        let kept = match long_line {
            Some(kept) => kept,
            None => {
                let kept = filter.keep_head(&head, line_len);
                if kept {
                    out.write_all(&head).map_err(FilterStop::Write)?;
                }
                kept
            }
        };
        end_line(done, kept, line_len);
    }
    Ok(())
}

/// `N` from the client's `ERROR 1064 (42000) at line N: ...`.
/// The job error for a client that stopped at a statement: its `ERROR ...` line, mapped back
/// to the dump's own line number, and how far the apply got.
fn apply_failure(exit: &ToolExit, lines: &LineMap, applied: u64, total: u64) -> String {
    let error_line = exit
        .stderr_tail
        .iter()
        .find(|l| l.contains("ERROR"))
        .cloned()
        .unwrap_or_else(|| exit.last_lines(3));
    let at = client_error_line(&error_line)
        .and_then(|n| lines.dump_line(n))
        .map(|n| format!(" (line {n} of the dump)"))
        .unwrap_or_default();
    format!(
        "the dump failed to apply after {} of {}{at}: {}: {error_line}; the server holds a partial restore: fix the cause and run the job again",
        human_bytes(applied),
        human_bytes(total),
        exit.name
    )
}

fn client_error_line(text: &str) -> Option<u64> {
    let rest = &text[text.find(" at line ")? + " at line ".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Maps a line number of what the client read back to the dump's line number: the filter
/// drops lines, so the two numberings drift apart at each skipped section.
#[derive(Default)]
struct LineMap {
    /// `(fed line, dump line)` at the start of each run of consecutive kept lines.
    starts: Vec<(u64, u64)>,
    last: Option<(u64, u64)>,
}

impl LineMap {
    fn note(&mut self, fed: u64, dump: u64) {
        let continues = self
            .last
            .is_some_and(|(f, d)| fed == f + 1 && dump == d + 1);
        if !continues {
            self.starts.push((fed, dump));
        }
        self.last = Some((fed, dump));
    }

    /// A run of `lines` consecutive lines fed from `fed` on, which are the dump's lines from
    /// `dump` on.
    fn note_span(&mut self, fed: u64, dump: u64, lines: u64) {
        self.note(fed, dump);
        if lines > 1 {
            self.last = Some((fed + lines - 1, dump + lines - 1));
        }
    }

    fn dump_line(&self, fed: u64) -> Option<u64> {
        let (f, d) = self.starts.iter().rev().find(|(f, _)| *f <= fed)?;
        Some(d + (fed - f))
    }
}

/// The line filter of the replay: skips the job queue's database, and notes the position
/// the dump sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpFilter {
    skipping: bool,
    /// `gtid_slave_pos` from `SET GLOBAL gtid_slave_pos='...'`.
    pub gtid: Option<String>,
    /// File from `CHANGE MASTER TO MASTER_LOG_FILE='...'` (also as a comment).
    pub binlog_file: Option<String>,
    /// Position from `MASTER_LOG_POS=...`.
    pub binlog_pos: Option<String>,
}

/// Lines longer than this are data (`INSERT` with many rows) and never markers: the filter
/// and the [`dump_plan`](super::dump_plan) look at the text of shorter lines only, so a line
/// can be judged from its first `MARKER_MAX + 1` bytes and its length, without holding a data
/// line of many MiB.
pub(crate) const MARKER_MAX: usize = 4096;

impl DumpFilter {
    /// Whether to feed `line` (with its newline) to the client.
    pub fn keep(&mut self, line: &[u8]) -> bool {
        self.keep_head(line, line.len() as u64)
    }

    /// [`keep`](Self::keep) for a line of `len` bytes (with its newline) of which only `head`
    /// is at hand: the whole line when `len` is at most `MARKER_MAX` (4096), else at least
    /// its first `MARKER_MAX + 1` bytes. A line streaming by (the receive builds the plan while
    /// decompressing) is judged the same as a whole one, without buffering it.
    pub fn keep_head(&mut self, head: &[u8], len: u64) -> bool {
        debug_assert!(head.len() as u64 == len || head.len() > MARKER_MAX);
        // Long lines and the rows of an extended INSERT (`(1,'a'),`) are data, never one of
        // the lines looked for (whose text a row may well contain).
        if len > MARKER_MAX as u64 || head.first() == Some(&b'(') {
            return !self.skipping;
        }
        let text = String::from_utf8_lossy(head);
        let t = text.trim();
        if let Some(db) = t.strip_prefix("-- Current Database: ") {
            self.skipping = names_queue(db);
            return !self.skipping;
        }
        if let Some(rest) = t.strip_prefix("SET GLOBAL gtid_slave_pos=") {
            // mariadb-dump writes the position after the last database section, which may
            // be the queue's: the statement ends any skipped section.
            self.skipping = false;
            let v = rest.trim_end_matches(';').trim().trim_matches('\'');
            if is_gtid_list(v) {
                self.gtid = Some(v.to_string());
            }
            return true;
        }
        if t.starts_with("-- The deferred gtid setting")
            || t.starts_with("/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE")
            || t.starts_with("-- Dump completed")
        {
            self.skipping = false;
            return true;
        }
        if let Some(pos) = t.find("CHANGE MASTER TO MASTER_LOG_FILE='") {
            let rest = &t[pos + "CHANGE MASTER TO MASTER_LOG_FILE='".len()..];
            if let Some(end) = rest.find('\'') {
                self.binlog_file = Some(rest[..end].to_string());
            }
            if let Some(p) = t.find("MASTER_LOG_POS=") {
                let digits: String = t[p + "MASTER_LOG_POS=".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if !digits.is_empty() {
                    self.binlog_pos = Some(digits);
                }
            }
        }
        if self.skipping {
            return false;
        }
        // Statements about the queue's database outside its section.
        let upper = t.to_ascii_uppercase();
        let about_db = upper.starts_with("/*!40000 DROP DATABASE")
            || upper.starts_with("DROP DATABASE")
            || upper.starts_with("CREATE DATABASE")
            || upper.starts_with("USE ");
        !(about_db && upper.contains(&QUEUE_SCHEMA.to_ascii_uppercase()))
    }
}

/// Whether the name of a `-- Current Database: `x`` marker is the queue's database.
fn names_queue(marker: &str) -> bool {
    marker
        .trim()
        .trim_matches('`')
        .eq_ignore_ascii_case(QUEUE_SCHEMA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_database_is_skipped() {
        let dump = "\
-- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=1783;
-- Current Database: `app`
/*!40000 DROP DATABASE IF EXISTS `app`*/;
USE `app`;
INSERT INTO t VALUES (1);
-- Current Database: `replication_manager_schema`
/*!40000 DROP DATABASE IF EXISTS `replication_manager_schema`*/;
CREATE DATABASE /*!32312 IF NOT EXISTS*/ `replication_manager_schema`;
USE `replication_manager_schema`;
DROP TABLE IF EXISTS `jobs`;
INSERT INTO jobs VALUES (1);
-- Current Database: `zz`
USE `zz`;
-- Current Database: `replication_manager_schema`
USE `replication_manager_schema`;
-- The deferred gtid setting for slave corresponding to the master-data CHANGE-MASTER follows
SET GLOBAL gtid_slave_pos='0-1-8';
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
DROP DATABASE `replication_manager_schema`;
";
        let mut f = DumpFilter::default();
        let kept: Vec<&str> = dump
            .split_inclusive('\n')
            .filter(|l| f.keep(l.as_bytes()))
            .collect();
        let kept = kept.concat();
        assert!(!kept.contains("replication_manager_schema"), "{kept}");
        assert!(kept.contains("INSERT INTO t VALUES (1);"));
        assert!(!kept.contains("INSERT INTO jobs"));
        assert!(kept.contains("USE `zz`;"));
        assert!(kept.contains("SET GLOBAL gtid_slave_pos='0-1-8';"));
        assert!(kept.contains("OLD_TIME_ZONE"));
        assert_eq!(f.gtid.as_deref(), Some("0-1-8"));
        assert_eq!(f.binlog_file.as_deref(), Some("mariadb-bin.000001"));
        assert_eq!(f.binlog_pos.as_deref(), Some("1783"));
        let applied = Applied {
            gtid: f.gtid.clone(),
            binlog_file: f.binlog_file.clone(),
            binlog_pos: f.binlog_pos.clone(),
            ..Default::default()
        };
        let p: serde_json::Value = serde_json::from_str(&applied.payload().unwrap()).unwrap();
        assert_eq!(p["vendor"], "mariadb");
        assert_eq!(p["gtid"], "0-1-8");
        assert_eq!(p["binLogFile"], "mariadb-bin.000001");
        assert_eq!(p["binLogPos"], "1783");
        assert_eq!(Applied::default().payload(), None);
    }

    /// A dump with long lines (kept and in the queue's skipped section), lines of exactly
    /// `MARKER_MAX` and `MARKER_MAX + 1` bytes, and a last line without a newline.
    fn dump_with_long_lines() -> Vec<u8> {
        let long =
            |c: char, n: usize| format!("INSERT INTO t VALUES ('{}');\n", c.to_string().repeat(n));
        let mut d = String::from("-- Current Database: `app`\nUSE `app`;\n");
        d += &long('a', 100 << 10);
        d += &format!("({}),\n", "1".repeat(MARKER_MAX - 4)); // exactly MARKER_MAX bytes
        d += &format!("({}),\n", "2".repeat(MARKER_MAX - 3)); // MARKER_MAX + 1
        d += "-- Current Database: `replication_manager_schema`\nUSE `replication_manager_schema`;\n";
        d += &long('q', 100 << 10);
        d += "-- Current Database: `zz`\nUSE `zz`;\n";
        d += &long('z', 3 * MARKER_MAX);
        d += "SET GLOBAL gtid_slave_pos='0-1-8';";
        d.into_bytes()
    }

    #[test]
    fn streaming_filter_matches_the_line_filter_for_every_buffer_size() {
        let dump = dump_with_long_lines();
        // What the line-by-line filter keeps, and the dump line of each kept line.
        let mut f = DumpFilter::default();
        let mut want = Vec::new();
        let mut want_lines = Vec::new();
        for (i, line) in dump.split_inclusive(|&b| b == b'\n').enumerate() {
            if f.keep(line) {
                want.extend_from_slice(line);
                want_lines.push(i as u64 + 1);
            }
        }
        assert!(
            !want.windows(3).any(|w| w == b"qqq"),
            "the queue's line is skipped"
        );
        for cap in [1, 7, 64, 4096, MARKER_MAX + 1, 1 << 20] {
            let mut reader = io::BufReader::with_capacity(cap, &dump[..]);
            let mut out = Vec::new();
            let mut g = DumpFilter::default();
            let mut done = Filtered::default();
            filter_into(&mut reader, &mut out, &mut g, 2, &mut done, |_| Ok(())).unwrap();
            assert!(out == want, "buffer of {cap} bytes: output differs");
            assert_eq!(done.read, dump.len() as u64);
            assert_eq!(done.fed, want.len() as u64);
            assert_eq!(done.skipped_lines, 3);
            assert_eq!(g.gtid.as_deref(), Some("0-1-8"));
            for (k, dump_line) in want_lines.iter().enumerate() {
                assert_eq!(
                    done.lines.dump_line(k as u64 + 2),
                    Some(*dump_line),
                    "cap {cap}"
                );
            }
        }
    }

    #[test]
    fn streaming_filter_stops_when_told_and_keeps_the_line_map_on_write_errors() {
        let dump = dump_with_long_lines();
        let mut reader = io::BufReader::with_capacity(64, &dump[..]);
        let mut done = Filtered::default();
        let stopped = filter_into(
            &mut reader,
            &mut Vec::new(),
            &mut DumpFilter::default(),
            2,
            &mut done,
            |read| {
                if read > 100 {
                    Err("cancelled".into())
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(stopped, Err(FilterStop::Stopped(ref w)) if w == "cancelled"));
        assert!(done.read > 100 && done.read < dump.len() as u64);

        /// Takes `room` bytes, then fails like a client that exited.
        struct Exits {
            room: usize,
        }
        impl Write for Exits {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.room == 0 {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                let n = buf.len().min(self.room);
                self.room -= n;
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut reader = io::BufReader::with_capacity(64, &dump[..]);
        let mut done = Filtered::default();
        let failed = filter_into(
            &mut reader,
            &mut Exits { room: 40 },
            &mut DumpFilter::default(),
            2,
            &mut done,
            |_| Ok(()),
        );
        assert!(matches!(failed, Err(FilterStop::Write(_))));
        // The two short lines went out before the client stopped reading: still mapped.
        assert_eq!(done.lines.dump_line(3), Some(2));
    }

    #[test]
    fn client_lines_map_to_dump_lines() {
        assert_eq!(
            client_error_line("ERROR 1064 (42000) at line 17: You have an error"),
            Some(17)
        );
        let mut m = LineMap::default();
        // prefix is fed line 1; dump lines 1-3 kept, 4-6 skipped, 7-9 kept.
        for (fed, dump) in [(2, 1), (3, 2), (4, 3), (5, 7), (6, 8), (7, 9)] {
            m.note(fed, dump);
        }
        assert_eq!(m.dump_line(3), Some(2));
        assert_eq!(m.dump_line(6), Some(8));
        assert_eq!(m.dump_line(1), None);
    }
}
