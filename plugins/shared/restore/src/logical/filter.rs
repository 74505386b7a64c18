//! The line filter of a logical replay: what of the dump reaches the server.
//!
//! [`DumpFilter`] judges each line: it drops everything about the node's own job queue
//! ([`QUEUE_SCHEMA`]) and notes the replication position the dump sets. `filter_into`
//! streams a whole dump through it into a client, holding at most `MARKER_MAX` bytes of a
//! line, and maps the client's line numbers back to the dump's (`LineMap`).

use std::io::{self, BufRead, Write};

use dbjobs_kit::position::BinlogPosition;
use dbjobs_kit::sql::is_gtid_list;
use dbjobs_sdk::JobError;

/// The database the filter keeps out of the replay: the node's own job queue.
pub const QUEUE_SCHEMA: &str = "replication_manager_schema";

/// What [`filter_into`] copied so far (kept up to date while it runs, so a failure of the
/// client can still be mapped to the dump's line).
#[derive(Default)]
pub(crate) struct Filtered {
    /// Dump bytes read.
    pub(crate) read: u64,
    /// Bytes of the kept lines, written out.
    pub(crate) fed: u64,
    /// Lines the filter dropped.
    pub(crate) skipped_lines: u64,
    /// Line numbers written out, mapped to the dump's.
    pub(crate) lines: LineMap,
}

/// Why [`filter_into`] stopped before the end of the dump.
#[derive(Debug)]
pub(crate) enum FilterStop {
    /// Reading the staged dump failed.
    Read(io::Error),
    /// Writing to the client failed (it exited: its own error says why).
    Write(io::Error),
    /// `tick` said stop (cancelled), with the error to report.
    Stopped(JobError),
}

/// Copy the dump from `reader` into `out` through `filter`, line by line, holding no more than
/// the first `MARKER_MAX + 1` bytes of a line: a line longer than that is judged on its head
/// ([`DumpFilter::keep_head`]) and streamed on, so a dump with a 1 GiB `INSERT` line is applied
/// with the memory of a buffer, not of the line. Kept lines are numbered from `first_fed_line`
/// (the client's line number of the first one) in the returned [`LineMap`], for error reports.
/// `tick` gets the bytes read after each buffer (and `out`, to flush it) and may stop the
/// copy.
pub(crate) fn filter_into<R: BufRead, W: Write>(
    reader: &mut R,
    out: &mut W,
    filter: &mut DumpFilter,
    first_fed_line: u64,
    done: &mut Filtered,
    mut tick: impl FnMut(u64, &mut W) -> Result<(), JobError>,
) -> Result<(), FilterStop> {
    let mut line = Line {
        head: Vec::with_capacity(MARKER_MAX + 1),
        len: 0,
        kept: None,
    };
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
        line.take(&buf[..n], ends, filter, out)
            .map_err(FilterStop::Write)?;
        if ends {
            end_line(done, line.kept == Some(true), line.len);
            line.clear();
        }
        reader.consume(n);
        done.read += n as u64;
        tick(done.read, out).map_err(FilterStop::Stopped)?;
    }
    if line.len > 0 {
        // A last line without a newline.
        let kept = line.judged(filter, out).map_err(FilterStop::Write)?;
        end_line(done, kept, line.len);
    }
    Ok(())
}

/// The line [`filter_into`] is copying: its first bytes (up to `MARKER_MAX + 1`), its length
/// so far and, once judged, whether it is kept.
struct Line {
    head: Vec<u8>,
    len: u64,
    kept: Option<bool>,
}

impl Line {
    /// Take the next `piece` of the line (`ends`: it ends the line). A judged line streams
    /// through (or not); an unjudged one collects its head, and is judged once the head is
    /// long enough to be data or the line ends, its head then written out if kept.
    fn take<W: Write>(
        &mut self,
        piece: &[u8],
        ends: bool,
        filter: &mut DumpFilter,
        out: &mut W,
    ) -> io::Result<()> {
        self.len += piece.len() as u64;
        if let Some(kept) = self.kept {
            return if kept { out.write_all(piece) } else { Ok(()) };
        }
        let taken = piece.len().min(MARKER_MAX + 1 - self.head.len());
        self.head.extend_from_slice(&piece[..taken]);
        if self.len > MARKER_MAX as u64 {
            // Long: judged on its head, the rest streams through.
            let kept = filter.keep_head(&self.head, self.len);
            if kept {
                out.write_all(&self.head)?;
                out.write_all(&piece[taken..])?;
            }
            self.kept = Some(kept);
        } else if ends {
            self.judged(filter, out)?;
        }
        Ok(())
    }

    /// The verdict on the line, judging it (and writing its head out if kept) if that was
    /// not done yet.
    fn judged<W: Write>(&mut self, filter: &mut DumpFilter, out: &mut W) -> io::Result<bool> {
        if let Some(kept) = self.kept {
            return Ok(kept);
        }
        let kept = filter.keep_head(&self.head, self.len);
        if kept {
            out.write_all(&self.head)?;
        }
        self.kept = Some(kept);
        Ok(kept)
    }

    /// Start the next line.
    fn clear(&mut self) {
        self.head.clear();
        self.len = 0;
        self.kept = None;
    }
}

/// Maps a line number of what the client read back to the dump's line number: the filter
/// drops lines, so the two numberings drift apart at each skipped section.
#[derive(Clone, Debug, Default)]
pub struct LineMap {
    /// `(fed line, dump line)` at the start of each run of consecutive kept lines.
    starts: Vec<(u64, u64)>,
    last: Option<(u64, u64)>,
}

impl LineMap {
    /// Fed line `fed` is dump line `dump`.
    pub fn note(&mut self, fed: u64, dump: u64) {
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
    pub fn note_span(&mut self, fed: u64, dump: u64, lines: u64) {
        self.note(fed, dump);
        if lines > 1 {
            self.last = Some((fed + lines - 1, dump + lines - 1));
        }
    }

    /// The dump's line of fed line `fed`.
    pub fn dump_line(&self, fed: u64) -> Option<u64> {
        let (f, d) = self.starts.iter().rev().find(|(f, _)| *f <= fed)?;
        Some(d + (fed - f))
    }
}

/// The line filter of the replay: skips the job queue's database, and notes the position
/// the dump sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpFilter {
    skipping: bool,
    // The parts of the position as the dump writes them; [`DumpFilter::position`] is the
    // position.
    /// `gtid_slave_pos` from `SET GLOBAL gtid_slave_pos='...'`.
    pub(crate) gtid: Option<String>,
    /// File from `CHANGE MASTER TO MASTER_LOG_FILE='...'` (also as a comment).
    pub(crate) binlog_file: Option<String>,
    /// Position from `MASTER_LOG_POS=...`.
    pub(crate) binlog_pos: Option<String>,
}

/// Lines longer than this are data (`INSERT` with many rows) and never markers: the filter
/// and the [`plan`](crate::logical::plan) look at the text of shorter lines only, so a line
/// can be judged from its first `MARKER_MAX + 1` bytes and its length, without holding a data
/// line of many MiB.
pub(crate) const MARKER_MAX: usize = 4096;

impl DumpFilter {
    /// The replication position the dump sets, if it sets one: the GTID of its
    /// `SET GLOBAL gtid_slave_pos`, the file and offset of its `CHANGE MASTER TO`. A file
    /// without a valid offset is left out (the GTID is what a replica starts from).
    pub fn position(&self) -> Option<BinlogPosition> {
        if self.gtid.is_none() && self.binlog_file.is_none() {
            return None;
        }
        let gtid = self.gtid.clone().unwrap_or_default();
        let full = BinlogPosition {
            file: self.binlog_file.clone().unwrap_or_default(),
            position: self.binlog_pos.clone().unwrap_or_default(),
            gtid: gtid.clone(),
        };
        Some(full.validated().unwrap_or(BinlogPosition {
            gtid,
            ..Default::default()
        }))
    }

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

/// The index of the first `\n` in `bytes`.
pub(crate) fn newline(bytes: &[u8]) -> Option<usize> {
    // libc's memchr (vectorised in glibc; `libc` is already a dependency) rather than a
    // byte-by-byte search: every byte of the dump goes through here, many MiB per second.
    // SAFETY: memchr reads at most `bytes.len()` bytes from the start of `bytes`, all valid;
    // a non-null result points into `bytes`, so the subtraction is its index.
    let p = unsafe { libc::memchr(bytes.as_ptr().cast(), i32::from(b'\n'), bytes.len()) };
    (!p.is_null()).then(|| p as usize - bytes.as_ptr() as usize)
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
        assert_eq!(
            f.position(),
            Some(BinlogPosition {
                file: "mariadb-bin.000001".into(),
                position: "1783".into(),
                gtid: "0-1-8".into(),
            })
        );
        assert_eq!(DumpFilter::default().position(), None);
        let no_offset = DumpFilter {
            binlog_file: Some("mariadb-bin.000002".into()),
            gtid: Some("0-1-9".into()),
            ..Default::default()
        };
        assert_eq!(no_offset.position().unwrap().file, "");
        assert_eq!(no_offset.position().unwrap().gtid, "0-1-9");
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
            filter_into(&mut reader, &mut out, &mut g, 2, &mut done, |_, _| Ok(())).unwrap();
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
            |read, _| {
                if read > 100 {
                    Err(JobError::cancelled("cancelled"))
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(stopped, Err(FilterStop::Stopped(ref w)) if w.message == "cancelled"));
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
            |_, _| Ok(()),
        );
        assert!(matches!(failed, Err(FilterStop::Write(_))));
        // The two short lines went out before the client stopped reading: still mapped.
        assert_eq!(done.lines.dump_line(3), Some(2));
    }

    #[test]
    fn fed_lines_map_to_dump_lines() {
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
