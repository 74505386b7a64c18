//! The receive of a physical restore: the socket through the xbstream validator into
//! `mbstream -x`, which extracts the backup into the staging directory.
//!
//! [`crate::xbstream::forward`] checks every chunk and drops the sender's stale padding, so
//! a stream cut short fails here, and so does one whose last file never arrived. A failure
//! says whose fault it was: the network or the operator ([`CountingReader`]), a full disk
//! ([`SpaceCheckedWriter`]), the extractor (its own error), or the stream itself.

use std::path::{Path, PathBuf};

use dbjobs_kit::copy::human_bytes;
use dbjobs_kit::private::create_private_dir;
use dbjobs_kit::tool::{RunningTool, ToolCommand};
use dbjobs_sdk::JobError;

use crate::context::Context;
use crate::receive::{write_error, CountingReader, Received, SpaceCheckedWriter};
use crate::xbstream::{self, StreamSummary};

/// The files every prepared-to-be backup has; a stream cut between two files lacks them.
const REQUIRED: [&str; 2] = ["xtrabackup_checkpoints", "xtrabackup_info"];

/// An extracted, complete backup.
pub struct Extracted {
    /// `<staging>/backup`.
    pub dir: PathBuf,
    /// What the stream held.
    pub stream: StreamSummary,
}

/// Receive the xbstream on `connection` and extract it with `mbstream` into
/// `<staging>/backup`; check that the backup is complete.
pub fn receive(
    ctx: &Context<'_, '_>,
    mbstream: &Path,
    connection: Received,
) -> Result<Extracted, JobError> {
    let dir = ctx.staging.path().join("backup");
    create_private_dir(&dir)?;
    let stream = extract(ctx, mbstream, connection, &dir)?;
    ctx.host.info(&format!(
        "received {} ({} stale bytes dropped), {} files",
        human_bytes(stream.bytes_received),
        stream.stale_bytes,
        stream.files
    ));
    for required in REQUIRED {
        if !dir.join(required).is_file() {
            return Err(JobError::bad_input(format!(
                "the stream has no {required}, so the backup is incomplete (cut between two files?)"
            ))
            .with_hint("retry the job"));
        }
    }
    Ok(Extracted { dir, stream })
}

/// Forward the stream into `mbstream -x -C <dir>` and wait for it.
fn extract(
    ctx: &Context<'_, '_>,
    mbstream: &Path,
    connection: Received,
    dir: &Path,
) -> Result<StreamSummary, JobError> {
    let mut extractor = ToolCommand::new(mbstream, None)
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .piped_stdin()
        .log_stderr()
        .spawn(|_| {})?;
    let stdin = extractor
        .take_stdin()
        .ok_or_else(|| JobError::internal("the extractor has no stdin pipe"))?;
    let min_free = ctx.settings.restore.min_free_bytes();
    let mut out = SpaceCheckedWriter::new(stdin, dir, min_free);
    let mut input = CountingReader::new(connection.stream, || ctx.host.cancelled());
    let mut next_report = 0u64;
    // The extractor verifies every chunk's checksum itself.
    let forwarded = xbstream::forward(&mut input, &mut out, false, &mut |n| {
        if n >= next_report {
            ctx.host.progress(&format!("{} received", human_bytes(n)));
            next_report = n + (64 << 20);
        }
        Ok(())
    });
    let write_failure = out.failure();
    drop(out); // end of input: the extractor finishes
    match forwarded {
        Ok(summary) => {
            let exit = extractor.wait_logged(ctx.host)?;
            if !exit.success() {
                return Err(exit.error("extracting the stream failed"));
            }
            // mbstream exits 0 on streams it extracted only in part (a duplicated
            // end-of-file chunk): every file the stream carried must be there.
            summary.check_extracted(dir)?;
            Ok(summary)
        }
        Err(message) => Err(stream_error(&input, write_failure, extractor, message)),
    }
}

/// Why forwarding stopped: the extractor's pipe (a full disk, or the extractor gave up:
/// its own error says why), else the connection or the operator, else the stream itself.
/// The extractor's partial output goes with the staging directory.
fn stream_error<R: std::io::Read>(
    input: &CountingReader<'_, R>,
    write_failure: Option<std::io::ErrorKind>,
    extractor: RunningTool,
    message: String,
) -> JobError {
    match write_failure {
        Some(std::io::ErrorKind::StorageFull) => write_error(write_failure, message),
        Some(_) => match extractor.wait() {
            Ok(exit) => JobError::tool(format!("{message}: {}", exit.failure())),
            Err(e) => e.context(message),
        },
        None => input.error(message), // dropping the extractor kills it
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbjobs_kit::tool::find_tool;
    use dbjobs_sdk::ErrorKind;

    fn extractor(script: &str) -> RunningTool {
        let sh = find_tool(&["sh"], None).unwrap();
        ToolCommand::new(&sh, None)
            .args(["-c", script])
            .spawn(|_| {})
            .unwrap()
    }

    #[test]
    fn a_failed_forward_names_whose_fault_it_was() {
        let input = CountingReader::new(&b""[..], || false);
        let full = Some(std::io::ErrorKind::StorageFull);
        let e = stream_error(&input, full, extractor("sleep 5"), "disk".into());
        assert_eq!(e.kind, ErrorKind::NoSpace);
        let pipe = Some(std::io::ErrorKind::BrokenPipe);
        let e = stream_error(
            &input,
            pipe,
            extractor("echo 'bad chunk' >&2; exit 1"),
            "w".into(),
        );
        assert_eq!(e.kind, ErrorKind::Tool);
        assert!(
            e.message
                .starts_with("w: sh exited with status 1: bad chunk"),
            "{e}"
        );
        let e = stream_error(&input, None, extractor("sleep 5"), "cut".into());
        assert_eq!(e.kind, ErrorKind::BadInput);
        let mut r = CountingReader::new(&b"x"[..], || true);
        assert!(std::io::Read::read(&mut r, &mut [0u8; 1]).is_err());
        let e = stream_error(&r, None, extractor("sleep 5"), "stopped".into());
        assert_eq!(e.kind, ErrorKind::Cancelled);
    }
}
