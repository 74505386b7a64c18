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
//!    session being the bottleneck of a replay: a [`plan`] (with the
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
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

pub mod filter;
pub mod gzip;
pub mod plan;

use filter::{filter_into, DumpFilter, FilterStop, Filtered, LineMap, QUEUE_SCHEMA};
use gzip::decompress_verified;
use plan::{DumpPlan, PlanBuilder, Span, Unit};

use crate::receive::{min_free_bytes, CountingReader, Received, SpaceCheckedWriter};
use crate::{Intent, Text};
use dbjobs_kit::copy::{human_bytes, human_rate, COPY_BUFFER};
use dbjobs_kit::tool::{find_tool, ToolCommand, ToolExit};
use dbjobs_sdk::{Host, Job, Outcome, TableVariant};

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
/// dump's plan, built while receiving, is recognised ([`plan`]), else
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
/// [`plan`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_has_what_the_dump_set() {
        let applied = Applied {
            gtid: Some("0-1-8".into()),
            binlog_file: Some("mariadb-bin.000001".into()),
            binlog_pos: Some("1783".into()),
            ..Default::default()
        };
        let p: serde_json::Value = serde_json::from_str(&applied.payload().unwrap()).unwrap();
        assert_eq!(p["vendor"], "mariadb");
        assert_eq!(p["gtid"], "0-1-8");
        assert_eq!(p["binLogFile"], "mariadb-bin.000001");
        assert_eq!(p["binLogPos"], "1783");
        assert_eq!(Applied::default().payload(), None);
    }

    #[test]
    fn client_errors_name_their_line() {
        assert_eq!(
            client_error_line("ERROR 1064 (42000) at line 17: You have an error"),
            Some(17)
        );
    }
}
