//! The `xtrabackup` and `mariabackup` tasks: a physical backup streamed to replication-manager.
//!
//! replication-manager opens a listener on its own host, inserts the row with its address in
//! `server` and the listener's port in `port`, and expects one TCP connection carrying an
//! xbstream (PROTOCOL.md §2). This plugin:
//!
//! 1. finds the backup tool: `mariadb-backup` (or `mariabackup`) on MariaDB, `xtrabackup` on
//!    Percona/MySQL, or the path in the setting `backup_tool`;
//! 2. connects to `server:port`, retrying until `connect_timeout` seconds (default 120, the
//!    listener's own deadline in replication-manager 2.1 to 2.3.4) have passed; no backup is
//!    taken when nobody listens;
//! 3. runs `<tool> --defaults-file=<host option file> --backup --stream=xbstream
//!    --databases-exclude=.system --slave-info --target-dir=<private temp dir>
//!    --datadir=<@@datadir> --log-copy-interval=100` and copies its stdout into the socket
//!    (nothing touches the disk), a thread reading the pipe up to 16 MiB ahead so that the
//!    tool's disk reads and the network overlap, reporting the bytes sent as progress. The short log copy interval (the tools default to 1 s)
//!    shortens the two waits for the redo log copy, one of them with commits blocked (see
//!    [`DEFAULT_LOG_COPY_INTERVAL_MS`]);
//! 4. succeeds only when every byte was written, the tool exited 0 and printed
//!    `completed OK!`.
//!
//! The result names the bytes sent, the duration, the rate and the binlog position in the form
//! replication-manager parses: `filename '<file>', position '<pos>', GTID of the last change
//! '<gtid>'` (taken from the tool's `MySQL binlog position:` stderr line). In the payload
//! variant of the jobs table the same position also goes into `payload` as
//! `{"vendor":"mariadb","gtid":..,"binLogFile":..,"binLogPos":..}`.
//!
//! When the connection breaks (the listener closed, the network failed, a write stalled for
//! `send_timeout` seconds, default 600) or the operator cancels the job, the tool is killed
//! with its whole process group and the job fails with the network error and the tool's last
//! stderr lines.
//!
//! Settings: `backup_tool`, `backup_log_copy_interval`, `connect_timeout`, `send_timeout`.

use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbjobs_kit::copy::{human_bytes, human_rate, relay_with_progress};
use dbjobs_kit::net::{connect_to_manager, OutboundSettings};
use dbjobs_kit::position::BinlogPosition;
use dbjobs_kit::server::ServerFacts;
use dbjobs_kit::tool::{find_tool, BackupToolSettings, RunningTool, ToolCommand, ToolExit};
use dbjobs_sdk::{
    declare_settings, export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo,
    ServerState,
};

/// What the backup tools print last when the backup is complete.
pub const COMPLETED_OK: &str = "completed OK!";

declare_settings! {
    /// How the backup tool runs.
    pub struct BackupSettings {
        /// Milliseconds between the backup tool's redo log copies (--log-copy-interval); 0: the tool's default (1000).
        pub backup_log_copy_interval: u64 = "100",
    }
}

/// The backup plugin.
#[derive(Default)]
pub struct Xtrabackup;

impl Plugin for Xtrabackup {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "xtrabackup",
            env!("CARGO_PKG_VERSION"),
            "physical backup (mariadb-backup/xtrabackup) streamed as xbstream to replication-manager",
        )
        .task(
            "xtrabackup",
            Direction::Outbound,
            "stream a physical backup to server:port (xbstream)",
        )
        .task(
            "mariabackup",
            Direction::Outbound,
            "stream a physical backup to server:port (xbstream)",
        )
        .settings(BackupSettings::DECLS)
        .settings(BackupToolSettings::DECLS)
        .settings(OutboundSettings::DECLS)
    }

    fn run(&self, job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
        // A backup reads the data and never changes it.
        backup(job, host).map_err(|e| e.or_state(ServerState::Untouched))
    }
}

/// The whole job: prepare, connect, stream, check the tool's end, report.
fn backup(job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
    let plan = BackupPlan::read(host)?;
    let stream = connect_to_manager(job, host, &plan.outbound)
        .map_err(|e| e.with_hint("is replication-manager listening for this backup?"))?;
    host.info(&format!(
        "connected to {}:{}; starting {}",
        job.require_server()?,
        job.port,
        plan.tool.display()
    ));
    let streamed = stream_backup(job, host, &plan, &stream)?;
    let outcome = report(job, host, &plan, &streamed);
    Ok(outcome)
}

/// Everything decided before connecting: settings, tool, server facts, a private directory.
struct BackupPlan {
    outbound: OutboundSettings,
    tool: PathBuf,
    facts: ServerFacts,
    option_file: PathBuf,
    log_copy_interval: u64,
    target: tempfile::TempDir,
}

impl BackupPlan {
    fn read(host: &Host<'_>) -> Result<Self, JobError> {
        let outbound = OutboundSettings::read(host)?;
        let backup = BackupSettings::read(host)?;
        let forced = BackupToolSettings::read(host)?.backup_tool;
        let facts = ServerFacts::read(host)?;
        let tool = find_tool(facts.vendor.backup_tools(), Some(&forced))
            .map_err(|e| e.context("setting backup_tool"))?;
        let target = tempfile::Builder::new()
            .prefix("dbjobs-backup-")
            .tempdir()
            .map_err(|e| {
                JobError::io(format!("cannot create a private temporary directory: {e}"))
            })?;
        Ok(BackupPlan {
            outbound,
            tool,
            option_file: host.client_option_file()?,
            facts,
            log_copy_interval: backup.backup_log_copy_interval,
            target,
        })
    }
}

/// What the stream did: bytes, time, the tool's end and the position it printed.
struct Streamed {
    sent: u64,
    elapsed: Duration,
    position: Option<BinlogPosition>,
}

/// Run the tool and relay its stdout into the socket; the job fails unless every byte was
/// written and the tool ended with `completed OK!`.
fn stream_backup(
    job: &Job,
    host: &Host<'_>,
    plan: &BackupPlan,
    stream: &TcpStream,
) -> Result<Streamed, JobError> {
    let position_line: Arc<Mutex<Option<BinlogPosition>>> = Arc::default();
    let seen = Arc::clone(&position_line);
    let datadir = plan.facts.datadir.display().to_string();
    let mut running = ToolCommand::new(&plan.tool, Some(&plan.option_file))
        .args(backup_args(
            plan.target.path(),
            &datadir,
            plan.log_copy_interval,
        ))
        .piped_stdout()
        .log_stderr()
        .spawn(move |line| {
            if let Some(p) = BinlogPosition::from_tool_line(line) {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(p);
            }
        })?;
    let tool_log = running.stderr_log();
    let start = Instant::now();
    // Every stderr line goes to the host's log as it comes (replication-manager learns the
    // backup's position from the tool's position line); the thread ends with the tool.
    let (sent, exit) = std::thread::scope(|scope| {
        if let Some(lines) = tool_log {
            scope.spawn(|| lines.forward(host));
        }
        let sent = relay(job, host, plan, &mut running, stream, start)?;
        // End of stream for the listener: the tool closed its stdout, everything was written.
        let _ = stream.shutdown(Shutdown::Write);
        Ok::<_, JobError>((sent, running.wait()?))
    })?;
    check_completed(&exit, sent)?;
    let position = position_line
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .or_else(|| {
            exit.stderr_tail
                .iter()
                .rev()
                .find_map(|l| BinlogPosition::from_tool_line(l))
        });
    Ok(Streamed {
        sent,
        elapsed: start.elapsed(),
        position,
    })
}

/// Relay the tool's stdout into the socket (a thread reads the pipe up to 16 MiB ahead so
/// the tool reads its next chunk from disk while the last one goes out). `host.progress()`
/// never blocks, so reporting from the copy cannot stall the stream while the tool holds its
/// backup lock, which also blocks writes to the job row. On a failure the tool is killed.
fn relay(
    job: &Job,
    host: &Host<'_>,
    plan: &BackupPlan,
    running: &mut RunningTool,
    stream: &TcpStream,
    start: Instant,
) -> Result<u64, JobError> {
    let server = job.require_server()?;
    let stdout = running
        .take_stdout()
        .ok_or_else(|| JobError::internal("the tool has no stdout pipe"))?;
    let mut out = stream;
    let copied = relay_with_progress(
        stdout,
        &mut out,
        || host.cancelled(),
        |n| {
            host.progress(&format!(
                "{} sent to {server}:{} ({})",
                human_bytes(n),
                job.port,
                human_rate(n, start.elapsed())
            ))
        },
    );
    copied.map_err(|e| {
        running.kill();
        let what = match &e {
            dbjobs_kit::copy::CopyError::Write { .. } => {
                format!("sending the backup to {server}:{} failed", job.port)
            }
            dbjobs_kit::copy::CopyError::Read { .. } => format!(
                "reading the backup stream from {} failed",
                plan.tool.display()
            ),
        };
        let err = e.into_job_error(&what);
        JobError {
            message: format!("{}; the backup tool was stopped", err.message),
            ..err
        }
    })
}

/// The tool must exit 0 and print `completed OK!`.
fn check_completed(exit: &ToolExit, sent: u64) -> Result<(), JobError> {
    if exit.success() && exit.stderr_contains(COMPLETED_OK) {
        return Ok(());
    }
    let why = if exit.success() {
        format!(
            "{} exited without printing {COMPLETED_OK:?}: {}",
            exit.name,
            exit.last_lines(5)
        )
    } else {
        exit.failure()
    };
    Err(JobError::tool(format!(
        "the backup failed after sending {}: {why}",
        human_bytes(sent)
    )))
}

/// The result text (bytes, time, rate and the position in the form replication-manager
/// parses) and, in the payload variant or API mode, the position payload.
fn report(job: &Job, host: &Host<'_>, plan: &BackupPlan, s: &Streamed) -> Outcome {
    let mut result = format!(
        "backup sent to {}:{}: {} in {:.1} s ({})",
        job.server.as_deref().unwrap_or("?"),
        job.port,
        human_bytes(s.sent),
        s.elapsed.as_secs_f64(),
        human_rate(s.sent, s.elapsed)
    );
    match &s.position {
        Some(p) => {
            result.push_str("; ");
            result.push_str(&p.to_string());
        }
        None => result.push_str("; no binlog position (is the binary log off?)"),
    }
    host.info(&result);
    let outcome = Outcome::new(result);
    match &s.position {
        Some(p) if job.manager_applies_position() => {
            outcome.with_payload(p.payload(plan.facts.vendor))
        }
        _ => outcome,
    }
}

/// Default of the setting `backup_log_copy_interval`, in milliseconds.
///
/// Why not the tools' own 1000 ms: at two points of a backup (entering `BACKUP STAGE
/// BLOCK_DDL` and, with commits blocked, `BLOCK_COMMIT`) mariadb-backup waits until its redo
/// log copying thread has read up to the server's current LSN, and that thread only looks
/// every interval. With 1000 ms each wait is 0 to 1 s (up to 0.9 s per wait measured on the
/// benchmark's source), and commits on the node stay blocked for the second one. A 300 MB
/// backup into /dev/null took 1.4 s (median of 4) with 1000 ms and 0.8 s with 100 ms; the
/// thread's extra wake-ups cost nothing measurable.
pub const DEFAULT_LOG_COPY_INTERVAL_MS: u64 = 100;

/// The tool's arguments after `--defaults-file`. `--target-dir` is a private empty directory
/// for the tool's temporary files (it writes nothing else there when streaming); `--datadir`
/// is the running server's, so a datadir in the option file or the tool's default cannot
/// point it at the wrong files; `--log-copy-interval` (both vendors' tools have it) is left
/// out when `log_copy_interval_ms` is 0, i.e. the tool's default is wanted.
pub fn backup_args(target_dir: &Path, datadir: &str, log_copy_interval_ms: u64) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--backup".into(),
        "--stream=xbstream".into(),
        "--databases-exclude=.system".into(),
        "--slave-info".into(),
        format!("--target-dir={}", target_dir.display()),
        format!("--datadir={datadir}"),
    ];
    if log_copy_interval_ms > 0 {
        args.push(format!("--log-copy-interval={log_copy_interval_ms}"));
    }
    args
}

export_plugin!(Xtrabackup);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_arguments() {
        let args = backup_args(Path::new("/tmp/t"), "/var/lib/mysql/", 100);
        assert_eq!(&args[..2], &["--backup", "--stream=xbstream"]);
        assert!(args.contains(&"--target-dir=/tmp/t".to_string()));
        assert!(args.contains(&"--datadir=/var/lib/mysql/".to_string()));
        assert!(args.contains(&"--log-copy-interval=100".to_string()));
        let tool_default = backup_args(Path::new("/tmp/t"), "/var/lib/mysql/", 0);
        assert!(!tool_default
            .iter()
            .any(|a| a.starts_with("--log-copy-interval")));
    }

    #[test]
    fn the_default_interval_is_declared() {
        let s = BackupSettings::read(&|_: &str| None).unwrap();
        assert_eq!(s.backup_log_copy_interval, DEFAULT_LOG_COPY_INTERVAL_MS);
    }
}
