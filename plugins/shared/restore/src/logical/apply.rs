//! The replay of a staged dump through one `mariadb` client session.
//!
//! The file is fed to `mariadb --batch --binary-mode` (no `--force`: it stops at the first
//! error, whose `ERROR nnnn at line N` is reported with the dump's line number), after
//! `SET SESSION sql_log_bin=0;` so the replay is not binlogged under the node's own server
//! id (PROTOCOL.md §4). On the way, line by line, the [`super::filter`] drops everything about
//! the node's own job queue and picks up the position the dump sets.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use dbjobs_kit::copy::{human_bytes, COPY_BUFFER};
use dbjobs_kit::position::BinlogPosition;
use dbjobs_kit::tool::{RunningTool, ToolCommand, ToolExit};
use dbjobs_sdk::{Host, JobError};

use super::filter::{filter_into, DumpFilter, FilterStop, Filtered, LineMap};

/// What the first line fed to every client session does: keep the replay out of the binary
/// log.
pub const PREFIX: &[u8] = b"SET SESSION sql_log_bin=0;\n";

/// What the replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Bytes fed to the client (prefix and kept lines).
    pub fed: u64,
    /// Dump lines left out (the queue's database).
    pub skipped_lines: u64,
    /// The replication position the dump set (`gtid_slave_pos`, `CHANGE MASTER TO`), if any.
    pub position: Option<BinlogPosition>,
    /// Client sessions the table sections were applied in (1: the single-session replay).
    pub sessions: usize,
}

/// The `mariadb` client a replay runs in, and its credentials.
pub struct Client<'p> {
    /// The client binary.
    pub program: &'p Path,
    /// The host's 0600 option file with the connection's credentials.
    pub option_file: PathBuf,
}

impl Client<'_> {
    /// Start one client session reading statements from its stdin.
    pub fn spawn(&self) -> Result<RunningTool, JobError> {
        ToolCommand::new(self.program, Some(&self.option_file))
            // --skip-reconnect: a session killed under it (a recovery ending the sessions
            // of a dead run) stops instead of going on in a new connection.
            .args([
                "--batch",
                "--binary-mode",
                "--skip-reconnect",
                "--max-allowed-packet=1G",
            ])
            .piped_stdin()
            .spawn(|_| {})
    }
}

/// Where the lines of a replayed file come from, for the line an error names.
#[derive(Clone, Copy, Debug)]
pub enum Origin<'a> {
    /// The file is the dump as received: its lines are the dump's.
    Dump,
    /// The file is a part of the dump: each of its lines is the dump's line the map says.
    Part(&'a LineMap),
    /// A file of its own, named so in errors (`objects.sql`).
    Named(&'a str),
}

impl Origin<'_> {
    /// ` (line N of the dump)` or ` (line N of objects.sql)` for line `line` of the file.
    fn describe(&self, line: u64) -> String {
        match self {
            Origin::Dump => format!(" (line {line} of the dump)"),
            Origin::Part(map) => map
                .dump_line(line)
                .map(|n| format!(" (line {n} of the dump)"))
                .unwrap_or_default(),
            Origin::Named(name) => format!(" (line {line} of {name})"),
        }
    }
}

/// A file replayed through the client.
pub struct Replay<'a> {
    /// The staged file.
    pub path: &'a Path,
    /// Its size, for progress.
    pub total: u64,
    /// Where its lines come from.
    pub origin: Origin<'a>,
    /// A fault point ([`crate::fault::point`]) to pause at once half of it is fed (the
    /// fault-matrix tests kill the run there).
    pub half_point: Option<&'static str>,
}

/// Feed `replay`'s file through the filter into one client session and wait for it.
pub fn one_session(
    host: &Host<'_>,
    client: &Client<'_>,
    replay: &Replay<'_>,
) -> Result<Applied, JobError> {
    let (dump, total) = (replay.path, replay.total);
    let mut tool = client.spawn()?;
    let stdin = tool
        .take_stdin()
        .ok_or_else(|| JobError::internal("the client has no stdin pipe"))?;
    let mut input = BufWriter::with_capacity(COPY_BUFFER, stdin);
    let file = File::open(dump)
        .map_err(|e| JobError::io(format!("cannot read {}: {e}", dump.display())))?;
    let mut reader = BufReader::with_capacity(COPY_BUFFER, file);
    let mut filter = DumpFilter::default();
    let mut done = Filtered::default();
    let mut watch = FeedWatch {
        host,
        total,
        next_progress: 0,
        half_point: replay.half_point,
    };
    let fed = input
        .write_all(PREFIX)
        .map_err(FilterStop::Write)
        .and_then(|()| {
            filter_into(
                &mut reader,
                &mut input,
                &mut filter,
                2,
                &mut done,
                |read, out| watch.fed(read, out),
            )
        })
        .and_then(|()| input.flush().map_err(FilterStop::Write));
    drop(input); // end of input: the client finishes and exits
    let write_error = match fed {
        Ok(()) => None,
        Err(FilterStop::Write(e)) => Some(e),
        Err(FilterStop::Read(e)) => {
            return Err(JobError::io(format!("cannot read {}: {e}", dump.display())))
        }
        Err(FilterStop::Stopped(why)) => {
            drop(tool); // killed with its process group
            return Err(why);
        }
    };
    let exit = tool.wait()?;
    if !exit.success() {
        return Err(apply_failure(
            &exit,
            &done.lines,
            done.read,
            total,
            replay.origin,
        ));
    }
    if let Some(e) = write_error {
        return Err(feed_failure(&exit, done.read, &e));
    }
    Ok(Applied {
        fed: done.fed + PREFIX.len() as u64,
        skipped_lines: done.skipped_lines,
        position: filter.position(),
        sessions: 1,
    })
}

/// What [`one_session`] does as the file is fed: the progress every MiB, the pause point
/// once half of it is fed, the operator's cancellation.
struct FeedWatch<'h, 'a> {
    host: &'h Host<'a>,
    total: u64,
    next_progress: u64,
    half_point: Option<&'static str>,
}

impl FeedWatch<'_, '_> {
    /// `read` bytes of the file were fed into `out`.
    fn fed(&mut self, read: u64, out: &mut impl Write) -> Result<(), JobError> {
        if let Some(point) = self.half_point.filter(|_| read >= self.total / 2) {
            // Once; what was read so far reaches the client before the pause.
            self.half_point = None;
            let _ = out.flush();
            crate::fault::point(self.host, point);
        }
        if read < self.next_progress {
            return Ok(());
        }
        self.next_progress = read + (1 << 20);
        self.host.progress(&format!(
            "applying the dump: {} of {}",
            human_bytes(read),
            human_bytes(self.total)
        ));
        if self.host.cancelled() {
            return Err(JobError::cancelled(format!(
                "cancelled while applying the dump after {}",
                human_bytes(read)
            )));
        }
        Ok(())
    }
}

/// The job error for a client that stopped at a statement: its `ERROR ...` line, mapped back
/// to the dump's own line number, and how far the apply got. A statement error is an SQL
/// error; a client that failed without one (it could not connect, it was killed) a tool
/// error.
pub(crate) fn apply_failure(
    exit: &ToolExit,
    lines: &LineMap,
    applied: u64,
    total: u64,
    origin: Origin<'_>,
) -> JobError {
    let error_line = exit
        .stderr_tail
        .iter()
        .find(|l| l.contains("ERROR"))
        .cloned();
    let at = error_line
        .as_deref()
        .and_then(client_error_line)
        .and_then(|n| lines.dump_line(n))
        .map(|n| origin.describe(n))
        .unwrap_or_default();
    let message = format!(
        "the dump failed to apply after {} of {}{at}: {}: {}",
        human_bytes(applied),
        human_bytes(total),
        exit.name,
        error_line.clone().unwrap_or_else(|| exit.last_lines(3))
    );
    let error = match error_line {
        Some(_) => JobError::sql(message),
        None => JobError::tool(message),
    };
    error.with_hint("fix the cause and run the job again")
}

/// The job error for a client that exited well although it did not read the whole dump.
pub(crate) fn feed_failure(exit: &ToolExit, fed: u64, error: &std::io::Error) -> JobError {
    JobError::tool(format!(
        "feeding the dump to {} failed after {}: {error}",
        exit.name,
        human_bytes(fed)
    ))
}

/// `N` from the client's `ERROR 1064 (42000) at line N: ...`.
fn client_error_line(text: &str) -> Option<u64> {
    let rest = &text[text.find(" at line ")? + " at line ".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_name_their_line() {
        assert_eq!(
            client_error_line("ERROR 1064 (42000) at line 17: You have an error"),
            Some(17)
        );
        assert_eq!(client_error_line("ERROR 2002 (HY000): Can't connect"), None);
    }

    #[test]
    fn a_statement_error_is_sql_and_names_the_dump_line() {
        let sh = dbjobs_kit::tool::find_tool(&["sh"], None).unwrap();
        let exit = ToolCommand::new(&sh, None)
            .args([
                "-c",
                "echo 'ERROR 1064 (42000) at line 4: You have an error' >&2; exit 1",
            ])
            .run()
            .unwrap();
        let mut lines = LineMap::default();
        lines.note(2, 1);
        lines.note(3, 2);
        lines.note(4, 7);
        let e = apply_failure(&exit, &lines, 10, 20, Origin::Dump);
        assert_eq!(e.kind, dbjobs_sdk::ErrorKind::Sql);
        assert!(e.message.contains("(line 7 of the dump)"), "{e}");
        assert!(e.message.contains("ERROR 1064 (42000) at line 4"), "{e}");
        let exit = ToolCommand::new(&sh, None)
            .args(["-c", "echo 'cannot connect' >&2; exit 1"])
            .run()
            .unwrap();
        let e = apply_failure(&exit, &lines, 0, 20, Origin::Dump);
        assert_eq!(e.kind, dbjobs_sdk::ErrorKind::Tool);
        assert!(e.message.ends_with("cannot connect"), "{e}");
    }
}
