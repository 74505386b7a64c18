//! The replay of a staged dump in several client sessions at once, following its
//! [`DumpPlan`].
//!
//! The server's single session is the bottleneck of a replay. With `apply_parallel` above 1
//! the header and database statements go through one session, the table sections (biggest
//! first, tables linked by foreign keys together) through several, each starting with the
//! header's SET statements, and the views, routines, events and position through a last
//! session, in dump order. The first error stops every session (their clients are killed)
//! and is reported with the dump's line number.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use dbjobs_kit::copy::{human_bytes, COPY_BUFFER};
use dbjobs_kit::tool::RunningTool;
use dbjobs_sdk::{Host, JobError};

use super::apply::{apply_failure, feed_failure, Applied, Client, Origin, Replay, PREFIX};
use super::filter::LineMap;
use super::plan::{DumpPlan, Span, Unit};

/// What the sessions of a parallel apply share.
struct Sessions<'a> {
    client: &'a Client<'a>,
    dump: &'a Path,
    total: u64,
    origin: Origin<'a>,
    /// The fault point to pause at once half of the dump is fed.
    half_point: Option<&'static str>,
    /// Dump bytes fed so far (header SETs replayed per session not counted).
    fed: AtomicU64,
    /// Set at the first failure or on cancellation: every session stops.
    stop: AtomicBool,
    /// The first failure, reported as the job's error.
    first_error: Mutex<Option<JobError>>,
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
    fn fail(&self, error: JobError) {
        {
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            if first.is_none() && !self.stop.load(Ordering::SeqCst) {
                *first = Some(error);
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        self.kill_all();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Register (or, with `None`, clear) the pid of the client of session `slot`.
    fn register(&self, slot: usize, pid: Option<u32>) {
        self.running.lock().unwrap_or_else(|e| e.into_inner())[slot] = pid;
    }
}

/// Apply `replay`'s file following `plan`: phase A (header, database statements) in one
/// session, the table units over `n` sessions, then the rest in one session.
pub fn in_sessions(
    host: &Host<'_>,
    client: &Client<'_>,
    replay: &Replay<'_>,
    plan: &DumpPlan,
    n: usize,
) -> Result<Applied, JobError> {
    let workers = n.min(plan.units.len());
    host.info(&format!(
        "applying the dump in {workers} sessions: {} groups of tables, biggest {}",
        plan.units.len(),
        human_bytes(plan.units.first().map(|u| u.bytes()).unwrap_or(0))
    ));
    let sessions = Sessions {
        client,
        dump: replay.path,
        total: replay.total,
        origin: replay.origin,
        half_point: replay.half_point,
        fed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        first_error: Mutex::new(None),
        running: Mutex::new(Vec::new()),
    };
    let one_unit = |spans: &[Span]| {
        [Unit {
            spans: spans.to_vec(),
            tables: Vec::new(),
        }]
    };
    run_phase(host, &sessions, &[], &one_unit(&plan.first), 1)?;
    run_phase(host, &sessions, &plan.session_header, &plan.units, workers)?;
    run_phase(
        host,
        &sessions,
        &plan.session_header,
        &one_unit(&plan.rest),
        1,
    )?;
    Ok(Applied {
        fed: plan.kept_bytes + PREFIX.len() as u64,
        skipped_lines: plan.skipped_lines,
        position: plan.filter.position(),
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
) -> Result<(), JobError> {
    *s.running.lock().unwrap_or_else(|e| e.into_inner()) = vec![None; workers];
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<()>();
    let mut cancelled = false;
    let mut panicked = false;
    let mut half_point = s.half_point;
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
            let ended = matches!(
                rx.recv_timeout(Duration::from_secs(1)),
                Err(mpsc::RecvTimeoutError::Disconnected)
            );
            let fed = s.fed.load(Ordering::SeqCst);
            // Tests only: the sessions may be done by the time this thread looks again.
            if let Some(point) = half_point.filter(|_| fed >= s.total / 2 && !s.stopped()) {
                half_point = None; // once
                crate::fault::point(host, point);
            }
            if ended {
                break;
            }
            host.progress(&format!(
                "applying the dump: {} of {} ({workers} sessions)",
                human_bytes(fed),
                human_bytes(s.total)
            ));
            if !cancelled && host.cancelled() {
                cancelled = true;
                s.stop.store(true, Ordering::SeqCst);
                s.kill_all();
            }
        }
        panicked = handles.into_iter().any(|h| h.join().is_err());
    });
    phase_end(s, cancelled, panicked)
}

/// How a phase of [`run_phase`] ended: the operator's cancellation first, then the first
/// session's failure, then a session that panicked.
fn phase_end(s: &Sessions<'_>, cancelled: bool, panicked: bool) -> Result<(), JobError> {
    let fed = human_bytes(s.fed.load(Ordering::SeqCst));
    if cancelled {
        return Err(JobError::cancelled(format!(
            "cancelled while applying the dump after {fed}"
        )));
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
        return Err(JobError::internal(format!(
            "a session applying the dump stopped unexpectedly after {fed}"
        ))
        .with_hint("run the job again"));
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
) -> Result<(), JobError> {
    if s.stopped() {
        return Ok(());
    }
    let file = File::open(s.dump)
        .map_err(|e| JobError::io(format!("cannot read {}: {e}", s.dump.display())))?;
    let mut tool = s.client.spawn()?;
    s.register(slot, tool.pid());
    let Some(stdin) = tool.take_stdin() else {
        s.register(slot, None);
        return Err(JobError::internal("the client has no stdin pipe"));
    };
    let mut feeder = Feeder {
        s,
        file,
        input: BufWriter::with_capacity(256 << 10, stdin),
        buf: vec![0u8; COPY_BUFFER],
        lines: LineMap::default(),
        fed_line: 1, // the prefix
    };
    let fed = feeder.feed(preamble, units, next);
    let Feeder { input, lines, .. } = feeder;
    drop(input); // end of input: the client finishes and exits
                 // From here on this thread alone reaps the client: no kill may target its pid.
    s.register(slot, None);
    judge_session(s, tool, &lines, fed)
}

/// The end of one session: stopped by another one (not an error of its own), the client's
/// failure, or a failure to feed it.
fn judge_session(
    s: &Sessions<'_>,
    tool: RunningTool,
    lines: &LineMap,
    fed: io::Result<()>,
) -> Result<(), JobError> {
    if s.stopped() {
        drop(tool); // killed with its process group
        return Ok(());
    }
    let exit = tool.wait()?;
    let fed_so_far = s.fed.load(Ordering::SeqCst);
    if s.stopped() {
        return Ok(());
    }
    if !exit.success() {
        return Err(apply_failure(&exit, lines, fed_so_far, s.total, s.origin));
    }
    match fed {
        Err(e) => Err(feed_failure(&exit, fed_so_far, &e)),
        Ok(()) => Ok(()),
    }
}

/// Writes byte ranges of the staged dump into one client's stdin, noting which client line
/// is which dump line.
struct Feeder<'s, 'a, W: Write> {
    s: &'s Sessions<'a>,
    file: File,
    input: BufWriter<W>,
    buf: Vec<u8>,
    lines: LineMap,
    fed_line: u64,
}

impl<W: Write> Feeder<'_, '_, W> {
    /// The prefix, the preamble, then the next unit until none is left.
    fn feed(&mut self, preamble: &[Span], units: &[Unit], next: &AtomicUsize) -> io::Result<()> {
        self.input.write_all(PREFIX)?;
        for span in preamble {
            self.write_span(span, false)?;
        }
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(unit) = units.get(i) else { break };
            for span in &unit.spans {
                self.write_span(span, true)?;
            }
        }
        self.input.flush()
    }

    /// Copy `span` from the staged dump (ending it with a newline if the dump's last line
    /// had none); `count` adds it to the bytes fed.
    fn write_span(&mut self, span: &Span, count: bool) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.lines
            .note_span(self.fed_line + 1, span.first_line, span.lines);
        self.fed_line += span.lines;
        let mut at = span.start;
        let mut last = b'\n';
        while at < span.end {
            if self.s.stopped() {
                return Err(io::Error::other("stopped: another session failed"));
            }
            let n = (span.end - at).min(self.buf.len() as u64) as usize;
            self.file.read_exact_at(&mut self.buf[..n], at)?;
            self.input.write_all(&self.buf[..n])?;
            last = self.buf[n - 1];
            at += n as u64;
            if count {
                self.s.fed.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        if last != b'\n' {
            self.input.write_all(b"\n")?;
        }
        Ok(())
    }
}
