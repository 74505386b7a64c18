//! A streaming validator and forwarder for the xbstream archive format.
//!
//! `mbstream -x` (or Percona's `xbstream -x`) fails on any byte after the last chunk, and
//! replication-manager's sender (up to 3.0.1-rc) pads its last write with up to 16 KiB of
//! stale bytes (PROTOCOL.md §2). It also succeeds on a stream that was cut exactly between
//! two files, on one whose file lost its only data chunk, and (with exit status 0) on one
//! with a repeated end-of-file chunk, after which it silently stops extracting. So the
//! receiver does not pipe the socket straight into `mbstream`: [`forward`] parses every chunk
//! ([`chunks`]), tracks every file ([`contents`]), and hands `mbstream` only the bytes of
//! complete chunks of a complete backup. It holds back the last [`MAX_STALE_BYTES`] of the
//! input until the end, so stale padding never reaches the tool.
//!
//! Chunk layout (little-endian; the same in MariaDB's `mbstream` and Percona's `xbstream`,
//! `S` is Percona's, `R` and `D` MariaDB's):
//!
//! | field | size | present in |
//! |---|---|---|
//! | magic `XBSTCK01` | 8 | all |
//! | flags (bit 0: an unknown type may be ignored) | 1 | all |
//! | type: `P` payload, `S` sparse payload, `E` end of file, `R` rename, `D` remove | 1 | all |
//! | path length | 4 | all |
//! | path | path length | all |
//! | new path length, new path | 4 + its length | `R` |
//! | sparse map entries | 4 | `S` |
//! | payload length | 8 | `P`, `S` |
//! | payload offset in the file | 8 | `P`, `S` |
//! | CRC-32 (ISO 3309) of sparse map + payload | 4 | `P`, `S` |
//! | sparse map (entries x 8 bytes: skip, length) | | `S` |
//! | payload | payload length | `P`, `S` |
//!
//! A stream is accepted when its last complete chunk leaves every file closed, the input
//! ends there or what follows is at most [`MAX_STALE_BYTES`] of stale padding, and the files
//! pass the checks of a complete backup ([`contents`]). Stale padding is what the sender's
//! defect produces: bytes that do not start like a chunk, or an exact copy of data received
//! shortly before. What follows the last chunk is *not* padding when it starts like a chunk
//! but is shorter than the header it announces (a stream cut a few bytes into the next
//! chunk), when it is a chunk header with a damaged magic, or when it is a chunk that is not
//! a copy. Since a copy of earlier chunks names files already closed, no chunk of real
//! padding parses as a valid chunk, so only the last boundary is ever a candidate end, and
//! judging it costs one linear search of the held-back window.

mod chunks;
mod contents;

use std::io::{ErrorKind, Read, Write};
use std::path::Path;

use dbjobs_sdk::JobError;

use chunks::{announced_header_len, Parser};
pub use contents::{StreamFile, CLOSING_FILES};

/// The first 8 bytes of every chunk.
pub const CHUNK_MAGIC: [u8; 8] = *b"XBSTCK01";

/// The most trailing bytes accepted as stale padding after the last chunk: the sender's
/// 16 KiB buffer, with margin for a sender using a bigger one.
pub const MAX_STALE_BYTES: u64 = 32 * 1024;

/// How much already-received data is kept to recognise stale padding as a copy of it.
const HISTORY_BYTES: usize = 64 * 1024;

/// Read size from the network.
const READ_BUF: usize = 256 * 1024;

/// How many of the magic's 8 bytes a damaged chunk header still has in place: one or two
/// flipped bytes. Random stale bytes match 6 of 8 with odds of about 1 in 10^13.
const DAMAGED_MAGIC_MATCHES: usize = 6;

/// What [`forward`] found in an accepted stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// Every byte read from the input, stale padding included.
    pub bytes_received: u64,
    /// The bytes of complete chunks, all forwarded to the writer.
    pub stream_bytes: u64,
    /// Trailing bytes recognised as stale padding and dropped.
    pub stale_bytes: u64,
    /// Complete chunks.
    pub chunks: u64,
    /// Files closed by their `E` chunk.
    pub files: u64,
    /// Every file of the backup with its size, sorted by path: what the extractor must have
    /// written ([`StreamSummary::check_extracted`]).
    pub contents: Vec<StreamFile>,
}

impl StreamSummary {
    /// Check that the extractor wrote every file of the stream into `dir` with the size the
    /// stream gave it. `mbstream -x` can exit 0 after it stopped extracting (a file it failed
    /// to create), so its exit status alone does not prove the backup is on disk; call this
    /// after it exited, before anything touches the server.
    pub fn check_extracted(&self, dir: &Path) -> Result<(), JobError> {
        for f in &self.contents {
            let path = dir.join(&f.path);
            let found = std::fs::symlink_metadata(&path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            if found != Some(f.size) {
                let what = match found {
                    None => "is missing".to_string(),
                    Some(n) => format!("has {n} bytes"),
                };
                return Err(JobError::tool(format!(
                    "the extractor exited without error but {} {what}, where the stream carried {} bytes",
                    f.path.display(),
                    f.size
                ))
                .with_hint("check the extractor's messages in the log and the free space of the staging directory, then retry the job"));
            }
        }
        Ok(())
    }
}

/// Received bytes not yet dropped: the held-back tail plus some history before it.
struct Window {
    /// Offset of `data[0]` in the input.
    start: u64,
    data: Vec<u8>,
}

impl Window {
    fn slice(&self, from: u64, to: u64) -> &[u8] {
        let a = from.saturating_sub(self.start) as usize;
        let b = (to - self.start) as usize;
        &self.data[a.min(b)..b]
    }

    /// Drop what lies before `keep_from`, in big steps (it is a copy).
    fn trim(&mut self, keep_from: u64) {
        if keep_from > self.start && (keep_from - self.start) as usize > 4 * HISTORY_BYTES {
            let cut = (keep_from - self.start) as usize;
            self.data.drain(..cut);
            self.start = keep_from;
        }
    }
}

/// What the bytes after the last complete chunk are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tail {
    /// Nothing: the input ended on the boundary.
    Empty,
    /// Stale padding: bytes that do not start like a chunk, or a copy of earlier bytes.
    Stale,
    /// The start of a chunk header, cut before the header's end.
    CutHeader,
    /// A chunk header whose magic has one or two damaged bytes.
    DamagedHeader,
    /// A chunk (or the start of one) that is not a copy of earlier bytes.
    Chunk,
}

/// Judge `tail`, the bytes after the last chunk boundary; `history` is what came before it.
fn judge_tail(tail: &[u8], history: &[u8]) -> Tail {
    if tail.is_empty() {
        return Tail::Empty;
    }
    let n = tail.len().min(CHUNK_MAGIC.len());
    if tail[..n] != CHUNK_MAGIC[..n] {
        let matching = tail[..n]
            .iter()
            .zip(CHUNK_MAGIC)
            .filter(|(a, b)| **a == *b)
            .count();
        return if n == CHUNK_MAGIC.len() && matching >= DAMAGED_MAGIC_MATCHES {
            Tail::DamagedHeader
        } else {
            Tail::Stale
        };
    }
    match announced_header_len(tail) {
        Some(len) if len <= tail.len() => {
            if memchr::memmem::find(history, tail).is_some() {
                Tail::Stale
            } else {
                Tail::Chunk
            }
        }
        _ => Tail::CutHeader,
    }
}

/// Read an xbstream from `input` to its end, forward the bytes of its complete chunks to
/// `output` (e.g. `mbstream -x`'s stdin) and check that the stream is a complete backup.
///
/// `verify_checksums` computes each chunk's CRC-32 here; pass `false` when the writer is
/// `mbstream`/`xbstream`, which verify every chunk themselves (and an unoptimised build of
/// the CRC code runs at a few MB/s). `on_progress` gets the bytes received so far after every
/// read; an `Err` from it (e.g. the job was cancelled) stops reading and is returned as is.
/// Errors name the offset and the reason; nothing after a corruption is forwarded beyond
/// the held-back window, but a prefix of the stream has been, so the caller must discard the
/// output on `Err`. Time is linear in the input, memory bounded by the window and the file
/// table.
pub fn forward(
    input: &mut dyn Read,
    output: &mut dyn Write,
    verify_checksums: bool,
    on_progress: &mut dyn FnMut(u64) -> Result<(), String>,
) -> Result<StreamSummary, String> {
    let mut parser = Parser::new(verify_checksums);
    let mut window = Window {
        start: 0,
        data: Vec::with_capacity(READ_BUF + 2 * HISTORY_BYTES),
    };
    let mut forwarded: u64 = 0;
    let mut end: u64 = 0;
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading the stream failed after {end} bytes: {e}")),
        };
        window.data.extend_from_slice(&buf[..n]);
        end += n as u64;
        parser.feed(&buf[..n]);
        if let Some(e) = &parser.error {
            if end - e.at > MAX_STALE_BYTES {
                return Err(format!(
                    "the stream is corrupt at byte {}: {}; {} more bytes follow, so it is not stale padding. The sender's backup is damaged or not an xbstream: take a new backup and retry",
                    e.at,
                    e.why,
                    end - e.at
                ));
            }
        }
        let safe = end.saturating_sub(MAX_STALE_BYTES);
        if safe > forwarded {
            output
                .write_all(window.slice(forwarded, safe))
                .map_err(|e| format!("writing the stream to the extractor failed: {e}"))?;
            forwarded = safe;
        }
        window.trim(forwarded.saturating_sub(HISTORY_BYTES as u64));
        on_progress(end)?;
    }
    let summary = judge_end(&parser, &window, end)?;
    output
        .write_all(window.slice(forwarded, summary.stream_bytes))
        .and_then(|()| output.flush())
        .map_err(|e| format!("writing the stream to the extractor failed: {e}"))?;
    Ok(summary)
}

/// Whether the stream of `end` bytes, parsed by `parser`, is a complete backup (see the
/// module documentation), and what it holds.
fn judge_end(parser: &Parser, window: &Window, end: u64) -> Result<StreamSummary, String> {
    if end == 0 {
        return Err("the sender closed the connection without sending anything".into());
    }
    let last = parser.last;
    if last.chunks == 0 && parser.error.as_ref().is_some_and(|e| e.at == 0) {
        return Err(format!(
            "the {end} bytes received are not an xbstream (no chunk found); the sender did not send a mariadb-backup/xtrabackup stream"
        ));
    }
    let tail = if end - last.pos > MAX_STALE_BYTES {
        Tail::Chunk
    } else {
        let history = window.slice(last.pos.saturating_sub(HISTORY_BYTES as u64), last.pos);
        judge_tail(window.slice(last.pos, end), history)
    };
    if !matches!(tail, Tail::Empty | Tail::Stale) || last.open_files > 0 || last.chunks == 0 {
        return Err(incomplete_message(parser, tail, end));
    }
    let retry = "the backup is damaged or incomplete: take a new backup and retry the job";
    parser
        .files
        .check_backup()
        .map_err(|why| format!("the stream is not a complete backup: {why}; {retry}"))?;
    Ok(StreamSummary {
        bytes_received: end,
        stream_bytes: last.pos,
        stale_bytes: end - last.pos,
        chunks: last.chunks,
        files: last.files,
        contents: parser.files.list(),
    })
}

/// Why a stream of `end` bytes whose tail is `tail` was not accepted, for the job result.
fn incomplete_message(parser: &Parser, tail: Tail, end: u64) -> String {
    let last = parser.last;
    let retry = "the transfer was interrupted or the sender's backup is incomplete: retry the job (and check the sender's log)";
    if let Some(e) = &parser.error {
        let why = if tail == Tail::DamagedHeader {
            format!("a damaged chunk header ({})", e.why)
        } else {
            e.why.clone()
        };
        return format!(
            "the stream is corrupt at byte {} of {end}: {why}; {retry}",
            e.at
        );
    }
    let open = parser.files.open_paths();
    if !open.is_empty() {
        let shown: Vec<&str> = open.iter().take(3).map(String::as_str).collect();
        return format!(
            "the stream was cut short after {end} bytes: {} file(s) never got their end-of-file chunk ({}{}); {retry}",
            open.len(),
            shown.join(", "),
            if open.len() > 3 { ", ..." } else { "" }
        );
    }
    if tail == Tail::CutHeader {
        return format!(
            "the stream was cut short {} bytes into a chunk header, at byte {end} (the last complete chunk ended at byte {}); {retry}",
            end - last.pos,
            last.pos
        );
    }
    format!(
        "the stream ended in the middle of a chunk at byte {end} (the last complete chunk ended at byte {}); {retry}",
        last.pos
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `P` chunk.
    fn payload(path: &str, offset: u64, data: &[u8]) -> Vec<u8> {
        let mut c = Vec::new();
        c.extend_from_slice(&CHUNK_MAGIC);
        c.push(0);
        c.push(b'P');
        c.extend_from_slice(&(path.len() as u32).to_le_bytes());
        c.extend_from_slice(path.as_bytes());
        c.extend_from_slice(&(data.len() as u64).to_le_bytes());
        c.extend_from_slice(&offset.to_le_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(data);
        c.extend_from_slice(&crc.sum().to_le_bytes());
        c.extend_from_slice(data);
        c
    }

    /// One `E` chunk.
    fn eof(path: &str) -> Vec<u8> {
        let mut c = Vec::new();
        c.extend_from_slice(&CHUNK_MAGIC);
        c.push(0);
        c.push(b'E');
        c.extend_from_slice(&(path.len() as u32).to_le_bytes());
        c.extend_from_slice(path.as_bytes());
        c
    }

    /// Pseudo-random bytes (no magic inside).
    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2654435761) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 3) as u8
            })
            .collect()
    }

    /// One complete small file: a `P` and an `E` chunk.
    fn file(path: &str, data: &[u8]) -> Vec<u8> {
        [payload(path, 0, data), eof(path)].concat()
    }

    /// A stream with interleaved files, a big one, an empty one, table definitions and the
    /// backup tool's metadata last.
    fn sample() -> Vec<u8> {
        let mut s = Vec::new();
        let big = noise(300_000, 1);
        s.extend(payload("ibdata1", 0, &big[..200_000]));
        s.extend(payload("db/t.ibd", 0, &noise(5000, 2)));
        s.extend(payload("ibdata1", 200_000, &big[200_000..]));
        s.extend(eof("ibdata1"));
        s.extend(eof("db/t.ibd"));
        s.extend(eof("db/empty.MYD"));
        s.extend(file("db/t.frm", &noise(900, 3)));
        s.extend(file("db/empty.frm", &noise(400, 4)));
        for i in 0..100 {
            s.extend(file(&format!("db/f{i}.frm"), &noise(300, 10 + i)));
        }
        s.extend(file(
            "xtrabackup_checkpoints",
            b"backup_type = full-backuped\n",
        ));
        s.extend(file("xtrabackup_info", b"binlog_pos = x\n"));
        s
    }

    /// Feeds `input` in small reads (to cross every boundary) and returns what was
    /// forwarded.
    fn run(input: &[u8]) -> (Result<StreamSummary, String>, Vec<u8>) {
        struct Dribble<'a>(&'a [u8], usize);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.1 = (self.1 * 7 + 3) % 9000 + 1;
                let n = self.1.min(buf.len()).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        let r = forward(&mut Dribble(input, 1), &mut out, true, &mut |_| Ok(()));
        (r, out)
    }

    #[test]
    fn a_complete_stream_is_forwarded_unchanged() {
        let s = sample();
        let (r, out) = run(&s);
        let sum = r.unwrap();
        assert_eq!(out, s);
        assert_eq!(sum.stream_bytes, s.len() as u64);
        assert_eq!(sum.stale_bytes, 0);
        assert_eq!(sum.files, 107);
        assert_eq!(sum.chunks, 3 + 3 + 2 * 104);
        assert_eq!(sum.contents.len(), 107);
        let size = |p: &str| {
            sum.contents
                .iter()
                .find(|f| f.path == Path::new(p))
                .map(|f| f.size)
        };
        assert_eq!(size("ibdata1"), Some(300_000));
        assert_eq!(size("db/empty.MYD"), Some(0));
    }

    #[test]
    fn stale_padding_is_dropped() {
        let s = sample();
        let mut padded = s.clone();
        padded.extend(noise(16383, 99));
        let (r, out) = run(&padded);
        assert_eq!(r.unwrap().stale_bytes, 16383);
        assert_eq!(out, s);
    }

    #[test]
    fn stale_padding_that_repeats_old_chunks_is_dropped() {
        // What repman sends: the tail of its previous 16 KiB buffer, which here starts
        // exactly on a chunk header.
        let s = sample();
        let mut at = s.len() - 16384;
        while s[at..at + 8] != CHUNK_MAGIC {
            at += 1;
        }
        let mut padded = s.clone();
        padded.extend_from_slice(&s[at..at + 9000]);
        let (r, out) = run(&padded);
        assert_eq!(r.unwrap().stale_bytes, 9000);
        assert_eq!(out, s);
    }

    #[test]
    fn a_cut_stream_is_rejected() {
        let s = sample();
        for cut in [s.len() / 2, 100_000, s.len() - 5, s.len() - 30, 20] {
            let (r, _) = run(&s[..cut]);
            let e = r.unwrap_err();
            assert!(
                e.contains("cut short") || e.contains("middle"),
                "{cut}: {e}"
            );
            assert!(!e.contains("corrupt"), "{cut}: {e}");
        }
    }

    #[test]
    fn a_file_without_its_end_chunk_is_rejected() {
        let mut s = sample();
        s.extend(payload("db/late.ibd", 0, b"abc"));
        let e = run(&s).0.unwrap_err();
        assert!(e.contains("db/late.ibd"), "{e}");
    }

    #[test]
    fn a_new_chunk_cut_after_closed_files_is_rejected() {
        // Every file is closed, but a real new chunk follows, cut: not padding.
        let mut s = sample();
        let next = payload("zz_last", 0, &noise(4000, 7));
        s.extend_from_slice(&next[..2000]);
        let e = run(&s).0.unwrap_err();
        assert!(e.contains("zz_last") || e.contains("middle"), "{e}");
    }

    #[test]
    fn corruption_is_rejected() {
        let s = sample();
        let mut bad = s.clone();
        bad[100] ^= 0xff; // inside ibdata1's payload
        let e = run(&bad).0.unwrap_err();
        assert!(e.contains("checksum mismatch"), "{e}");

        let mut unknown = s.clone();
        unknown[9] = b'X';
        let e = run(&unknown).0.unwrap_err();
        assert!(e.contains("unknown chunk type"), "{e}");

        let mut garbage = s.clone();
        garbage.extend(noise(MAX_STALE_BYTES as usize + 1, 5));
        let e = run(&garbage).0.unwrap_err();
        assert!(e.contains("not stale padding"), "{e}");
    }

    #[test]
    fn empty_or_foreign_input_is_rejected() {
        let e = run(b"").0.unwrap_err();
        assert!(e.contains("without sending anything"), "{e}");
        let e = run(&noise(1000, 3)).0.unwrap_err();
        assert!(e.contains("not an xbstream"), "{e}");
    }

    #[test]
    fn tails_after_the_last_chunk() {
        let s = sample();
        assert_eq!(judge_tail(b"", b""), Tail::Empty);
        assert_eq!(judge_tail(b"garbage", b""), Tail::Stale);
        assert_eq!(judge_tail(&noise(16383, 9), &s), Tail::Stale);
        // The start of a header, whatever came before: cut, never padding.
        for n in 1..40 {
            assert_eq!(judge_tail(&s[..n], &s), Tail::CutHeader, "{n}");
        }
        // A whole header: padding only as a copy of what came before.
        assert_eq!(judge_tail(&s[..60], &s), Tail::Stale);
        assert_eq!(judge_tail(&s[..60], &s[100..]), Tail::Chunk);
        let mut damaged = s[..60].to_vec();
        damaged[0] = b'Y';
        assert_eq!(judge_tail(&damaged, &s), Tail::DamagedHeader);
        damaged[3] = b'x';
        damaged[5] = b'x';
        assert_eq!(judge_tail(&damaged, &s), Tail::Stale);
    }

    /// The files of `../shared/bad-inputs/xbstream/` (copied into the repository).
    fn bad_input(name: &str) -> Vec<u8> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../tests/bad-inputs/xbstream/"
        );
        std::fs::read(format!("{dir}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn bad_inputs_are_refused_for_what_they_are() {
        for (name, says) in [
            ("cut_between_files.xb", "without xtrabackup_checkpoints and xtrabackup_info, which the backup tool sends last: it was cut between two files"),
            ("cut_9_bytes_into_next_header.xb", "cut short 9 bytes into a chunk header, at byte 368"),
            ("flipped_magic_of_last_file.xb", "corrupt at byte 3002 of 3380: a damaged chunk header"),
            ("duplicated_E_chunk.xb", "corrupt at byte 359 of 3407: a second end-of-file chunk for backup-my.cnf"),
            ("empty_file_E_path_flipped.xb", "`pp/empty.CSV is an empty file in a directory that nothing else of the stream is in"),
            ("empty_file_original.xb", "app/empty.CSV has no table definition (.frm)"),
            ("deleted_P_chunk.xb", "app/c.frm is empty, which a file of its kind never is: its data chunk is missing"),
            ("stale_tail_slow.xb", "corrupt at byte 70: a second end-of-file chunk for a"),
        ] {
            let (r, _) = run(&bad_input(name));
            let e = r.unwrap_err();
            assert!(e.contains(says), "{name}: {e}");
        }
    }

    #[test]
    fn the_end_is_judged_at_the_last_chunk_only() {
        // Thousands of chunks within the held-back window, then a cut: one judgement.
        let mut s = sample();
        for i in 0..3000 {
            s.extend(eof(&format!("db/e{i:04}.MYD")));
        }
        s.extend_from_slice(&payload("db/zz", 0, b"abc")[..30]);
        let e = run(&s).0.unwrap_err();
        assert!(e.contains("cut short 30 bytes into a chunk header"), "{e}");
    }

    #[test]
    fn renames_and_removes_apply_to_closed_files() {
        let rename = |old: &str, new: &str| {
            let mut c = Vec::from(CHUNK_MAGIC);
            c.extend([0, b'R']);
            c.extend((old.len() as u32).to_le_bytes());
            c.extend(old.as_bytes());
            c.extend((new.len() as u32).to_le_bytes());
            c.extend(new.as_bytes());
            c
        };
        let remove = |path: &str| {
            let mut c = eof(path);
            c[9] = b'D';
            c
        };
        let mut s = sample();
        let end = s.len() - file("xtrabackup_info", b"binlog_pos = x\n").len();
        let tail = s.split_off(end);
        s.extend(file("db/old.ibd", &noise(100, 5)));
        s.extend(file("db/old.frm", &noise(100, 6)));
        s.extend(rename("db/old.ibd", "db/new.ibd"));
        s.extend(rename("db/old.frm", "db/new.frm"));
        s.extend(file("db/gone.ibd", &noise(100, 7)));
        s.extend(remove("db/gone.ibd"));
        s.extend(&tail);
        let sum = run(&s).0.unwrap();
        let paths: Vec<_> = sum
            .contents
            .iter()
            .map(|f| f.path.to_str().unwrap())
            .collect();
        assert!(paths.contains(&"db/new.ibd") && !paths.contains(&"db/old.ibd"));
        assert!(!paths.contains(&"db/gone.ibd"));

        let mut open = sample();
        open.extend(payload("db/x", 0, b"x"));
        open.extend(remove("db/x"));
        let e = run(&open).0.unwrap_err();
        assert!(
            e.contains("remove chunk for db/x, which is still open"),
            "{e}"
        );
    }

    #[test]
    fn chunks_of_a_file_follow_each_other() {
        // Without the first chunk of ibdata1, its second one starts at 200000.
        let mut s = sample();
        s.drain(..payload("ibdata1", 0, &[0; 200_000]).len());
        let e = run(&s).0.unwrap_err();
        assert!(
            e.contains("first data chunk of ibdata1 is at offset 200000"),
            "{e}"
        );
    }

    #[test]
    fn what_the_extractor_wrote_is_checked() {
        let s = sample();
        let sum = run(&s).0.unwrap();
        let dir = tempfile::tempdir().unwrap();
        for f in &sum.contents {
            let p = dir.path().join(&f.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, vec![0u8; f.size as usize]).unwrap();
        }
        sum.check_extracted(dir.path()).unwrap();
        std::fs::write(dir.path().join("db/t.frm"), b"").unwrap();
        let e = sum.check_extracted(dir.path()).unwrap_err();
        assert!(
            e.message
                .contains("db/t.frm has 0 bytes, where the stream carried 900"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("xtrabackup_info")).unwrap();
        std::fs::write(dir.path().join("db/t.frm"), vec![0u8; 900]).unwrap();
        let e = sum.check_extracted(dir.path()).unwrap_err();
        assert!(e.message.contains("xtrabackup_info is missing"), "{e}");
    }
}
