//! A streaming validator and forwarder for the xbstream archive format.
//!
//! `mbstream -x` (or Percona's `xbstream -x`) fails on any byte after the last chunk, and
//! replication-manager's sender (up to 3.0.1-rc) pads its last write with up to 16 KiB of
//! stale bytes (PROTOCOL.md §2). It also succeeds on a stream that was cut exactly between
//! two files. So the receiver does not pipe the socket straight into `mbstream`: [`forward`]
//! parses every chunk, checks its CRC-32, tracks which files are still open, and hands
//! `mbstream` only the bytes that belong to complete chunks. It holds back the last
//! [`MAX_STALE_BYTES`] of the input until the end, so stale padding never reaches the tool.
//!
//! Chunk layout (little-endian; the same in MariaDB's `mbstream` and Percona's `xbstream`):
//!
//! | field | size | present in |
//! |---|---|---|
//! | magic `XBSTCK01` | 8 | all |
//! | flags (bit 0: an unknown type may be ignored) | 1 | all |
//! | type: `P` payload, `S` sparse payload, `E` end of file | 1 | all |
//! | path length | 4 | all |
//! | path | path length | all |
//! | sparse map entries | 4 | `S` |
//! | payload length | 8 | `P`, `S` |
//! | payload offset in the file | 8 | `P`, `S` |
//! | CRC-32 (ISO 3309) of sparse map + payload | 4 | `P`, `S` |
//! | sparse map (entries x 8 bytes) | | `S` |
//! | payload | payload length | `P`, `S` |
//!
//! A stream is accepted when, at its real end, every file got its `E` chunk and the input
//! ended on a chunk boundary, or what follows the last chunk is at most [`MAX_STALE_BYTES`]
//! of stale padding: bytes that do not start like a chunk, or an exact copy of data received
//! shortly before (what a sender re-sending an old buffer produces). Anything else (cut in a
//! chunk, a file without its `E` chunk, a bad checksum, an unknown chunk type) is rejected.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};

/// The first 8 bytes of every chunk.
pub const CHUNK_MAGIC: [u8; 8] = *b"XBSTCK01";

/// The most trailing bytes accepted as stale padding after the last chunk: the sender's
/// 16 KiB buffer, with margin for a sender using a bigger one.
pub const MAX_STALE_BYTES: u64 = 32 * 1024;

/// How much already-received data is kept to recognise stale padding as a copy of it.
const HISTORY_BYTES: usize = 64 * 1024;

/// Longest accepted path in a chunk; real paths are `db/table.ibd`-sized.
const MAX_PATH_LEN: usize = 64 * 1024;

/// Most sparse map entries accepted in one `S` chunk (8 bytes each).
const MAX_SPARSE_ENTRIES: u64 = 1 << 20;

/// Read size from the network.
const READ_BUF: usize = 256 * 1024;

/// The chunk flag bit that lets a reader skip a chunk of an unknown type.
const FLAG_IGNORABLE: u8 = 0x01;

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
}

/// A chunk boundary: where a chunk ended (or the stream starts), and the counters there.
#[derive(Clone, Copy, Debug)]
struct Boundary {
    pos: u64,
    open_files: usize,
    chunks: u64,
    files: u64,
}

/// Where the parser is inside the current chunk.
#[derive(Debug)]
enum State {
    /// Collecting the header bytes; `want` is how many the header has, as far as known.
    Header { want: usize },
    /// Inside the sparse map and payload of a `P`/`S` chunk.
    Payload {
        remaining: u64,
        expected_crc: u32,
        /// `None` when checksums are left to the extractor.
        crc: Option<flate2::Crc>,
    },
}

/// An incremental chunk parser.
struct Parser {
    state: State,
    header: Vec<u8>,
    /// Offset of the first byte of the current chunk.
    chunk_start: u64,
    /// Offset of the next byte to parse.
    pos: u64,
    /// Files with data but no `E` chunk yet, with the offset of their first chunk.
    open: HashMap<Vec<u8>, u64>,
    chunks: u64,
    files: u64,
    /// Boundaries not older than the stale window (plus the latest one).
    boundaries: VecDeque<Boundary>,
    /// The first corruption: offset of the bad chunk and why.
    error: Option<(u64, String)>,
    /// Whether payload checksums are computed.
    verify: bool,
}

/// Size of the fixed part before the path.
const FIXED_HEADER: usize = 14;

impl Parser {
    fn new(verify: bool) -> Self {
        let mut boundaries = VecDeque::new();
        boundaries.push_back(Boundary {
            pos: 0,
            open_files: 0,
            chunks: 0,
            files: 0,
        });
        Parser {
            state: State::Header { want: FIXED_HEADER },
            header: Vec::with_capacity(256),
            chunk_start: 0,
            pos: 0,
            open: HashMap::new(),
            chunks: 0,
            files: 0,
            boundaries,
            error: None,
            verify,
        }
    }

    /// Parse `data`, which follows the bytes parsed so far. Stops at the first corruption.
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.error.is_none() {
            match &mut self.state {
                State::Header { want } => {
                    let take = (*want - self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.pos += take as u64;
                    if self.header.len() == *want {
                        if let Err(e) = self.header_step() {
                            self.error = Some((self.chunk_start, e));
                        }
                    }
                }
                State::Payload {
                    remaining,
                    expected_crc,
                    crc,
                } => {
                    let take = (*remaining).min(data.len() as u64) as usize;
                    if let Some(crc) = crc {
                        crc.update(&data[..take]);
                    }
                    *remaining -= take as u64;
                    data = &data[take..];
                    self.pos += take as u64;
                    if *remaining == 0 {
                        let (got, expected) = (crc.as_ref().map(|c| c.sum()), *expected_crc);
                        if let Some(got) = got.filter(|g| *g != expected) {
                            let msg = format!(
                                "checksum mismatch in a chunk of {} (computed {got:08x}, chunk says {expected:08x})",
                                self.path_text(),
                            );
                            self.error = Some((self.chunk_start, msg));
                        } else {
                            self.chunk_done();
                        }
                    }
                }
            }
        }
    }

    /// The header has `want` bytes: decide what comes next.
    fn header_step(&mut self) -> Result<(), String> {
        let h = &self.header;
        if h.len() == FIXED_HEADER {
            if h[..8] != CHUNK_MAGIC {
                return Err(format!(
                    "no chunk starts here (bytes {:02x?} instead of the magic XBSTCK01)",
                    &h[..8]
                ));
            }
            let path_len = u32::from_le_bytes(h[10..14].try_into().expect("4 bytes")) as usize;
            if path_len == 0 || path_len > MAX_PATH_LEN {
                return Err(format!("implausible path length {path_len}"));
            }
            let (flags, kind) = (h[8], h[9]);
            if !matches!(kind, b'P' | b'S' | b'E') && flags & FLAG_IGNORABLE == 0 {
                return Err(format!("unknown chunk type 0x{kind:02x}"));
            }
            self.state = State::Header {
                want: FIXED_HEADER + path_len,
            };
            return Ok(());
        }
        let path_end =
            FIXED_HEADER + u32::from_le_bytes(h[10..14].try_into().expect("4 bytes")) as usize;
        let kind = h[9];
        let lengths_len = if kind == b'S' { 24 } else { 20 };
        if kind == b'E' {
            // h.len() == path_end
            let path = h[FIXED_HEADER..path_end].to_vec();
            self.open.remove(&path);
            self.files += 1;
            self.chunk_done();
            return Ok(());
        }
        if h.len() == path_end {
            self.state = State::Header {
                want: path_end + lengths_len,
            };
            return Ok(());
        }
        // The lengths are in: sparse map entries (S only), payload length, offset, CRC.
        let mut at = path_end;
        let sparse_entries = if kind == b'S' {
            at += 4;
            u64::from(u32::from_le_bytes(h[path_end..at].try_into().expect("4")))
        } else {
            0
        };
        if sparse_entries > MAX_SPARSE_ENTRIES {
            return Err(format!(
                "implausible sparse map of {sparse_entries} entries"
            ));
        }
        let payload_len = u64::from_le_bytes(h[at..at + 8].try_into().expect("8"));
        let expected_crc = u32::from_le_bytes(h[at + 16..at + 20].try_into().expect("4"));
        if payload_len > u64::MAX / 2 {
            return Err(format!("implausible payload length {payload_len}"));
        }
        if matches!(kind, b'P' | b'S') {
            let path = h[FIXED_HEADER..path_end].to_vec();
            let start = self.chunk_start;
            self.open.entry(path).or_insert(start);
        }
        let remaining = sparse_entries * 8 + payload_len;
        if remaining == 0 {
            // An empty payload: its CRC is that of nothing.
            if self.verify && expected_crc != 0 {
                return Err(format!(
                    "checksum mismatch in an empty chunk of {}",
                    self.path_text()
                ));
            }
            self.chunk_done();
        } else {
            self.state = State::Payload {
                remaining,
                expected_crc,
                crc: self.verify.then(flate2::Crc::new),
            };
        }
        Ok(())
    }

    /// The path of the current chunk, for messages.
    fn path_text(&self) -> String {
        if self.header.len() < FIXED_HEADER {
            return "?".into();
        }
        let path_end = FIXED_HEADER
            + u32::from_le_bytes(self.header[10..14].try_into().expect("4 bytes")) as usize;
        String::from_utf8_lossy(&self.header[FIXED_HEADER..path_end.min(self.header.len())])
            .into_owned()
    }

    /// The current chunk is complete: record a boundary and start the next header.
    fn chunk_done(&mut self) {
        self.chunks += 1;
        self.boundaries.push_back(Boundary {
            pos: self.pos,
            open_files: self.open.len(),
            chunks: self.chunks,
            files: self.files,
        });
        self.chunk_start = self.pos;
        self.header.clear();
        self.state = State::Header { want: FIXED_HEADER };
    }

    /// Forget boundaries that can no longer be the real end of a stream of `end` bytes
    /// (always keeping the latest, for messages).
    fn prune(&mut self, end: u64) {
        while self.boundaries.len() > 1 && self.boundaries[0].pos + MAX_STALE_BYTES < end {
            self.boundaries.pop_front();
        }
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

/// Whether `tail` (what follows a chunk boundary) is stale padding: it does not start like
/// a chunk, or it repeats bytes that were received before it (`history`).
fn is_stale(tail: &[u8], history: &[u8]) -> bool {
    let n = tail.len().min(CHUNK_MAGIC.len());
    if tail[..n] != CHUNK_MAGIC[..n] {
        return true;
    }
    occurs_in(history, tail)
}

/// Whether `needle` occurs in `hay`; gives up (false) after many near misses, which only a
/// pathological input produces.
fn occurs_in(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() || needle.len() > hay.len() {
        return needle.is_empty();
    }
    let probe = &needle[..needle.len().min(32)];
    let mut verified = 0;
    for i in 0..=hay.len() - needle.len() {
        if &hay[i..i + probe.len()] == probe {
            if &hay[i..i + needle.len()] == needle {
                return true;
            }
            verified += 1;
            if verified > 1024 {
                return false;
            }
        }
    }
    false
}

/// Read an xbstream from `input` to its end, forward the bytes of its complete chunks to
/// `output` (e.g. `mbstream -x`'s stdin) and check that the stream is complete.
///
/// `verify_checksums` computes each chunk's CRC-32 here; pass `false` when the writer is
/// `mbstream`/`xbstream`, which verify every chunk themselves (and an unoptimised build of
/// the CRC code runs at a few MB/s). `on_progress` gets the bytes received so far after every
/// read; an `Err` from it (e.g. the job was cancelled) stops reading and is returned as is.
/// Errors name the offset and the reason; nothing after a corruption is forwarded beyond
/// the held-back window, but a prefix of the stream has been, so the caller must discard the
/// output on `Err`.
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
        if let Some((at, why)) = &parser.error {
            if end - at > MAX_STALE_BYTES {
                return Err(format!(
                    "the stream is corrupt at byte {at}: {why}; {} more bytes follow, so it is not stale padding. The sender's backup is damaged or not an xbstream: take a new backup and retry",
                    end - at
                ));
            }
        }
        parser.prune(end);
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
    if end == 0 {
        return Err("the sender closed the connection without sending anything".into());
    }
    // The real end is the first boundary, within the stale window, where every file is
    // closed and only stale padding follows.
    let accepted = parser.boundaries.iter().find(|b| {
        b.pos >= forwarded
            && b.pos + MAX_STALE_BYTES >= end
            && b.open_files == 0
            && (b.pos == end || {
                let tail = window.slice(b.pos, end);
                let history = window.slice(b.pos.saturating_sub(HISTORY_BYTES as u64), b.pos);
                is_stale(tail, history)
            })
    });
    let Some(b) = accepted.copied() else {
        return Err(incomplete_message(&parser, end));
    };
    if b.chunks == 0 {
        return Err(format!(
            "the {end} bytes received are not an xbstream (no chunk found); the sender did not send a mariadb-backup/xtrabackup stream"
        ));
    }
    output
        .write_all(window.slice(forwarded, b.pos))
        .and_then(|()| output.flush())
        .map_err(|e| format!("writing the stream to the extractor failed: {e}"))?;
    Ok(StreamSummary {
        bytes_received: end,
        stream_bytes: b.pos,
        stale_bytes: end - b.pos,
        chunks: b.chunks,
        files: b.files,
    })
}

/// Why a stream of `end` bytes was not accepted, for the job result.
fn incomplete_message(parser: &Parser, end: u64) -> String {
    let last = parser.boundaries.back().copied().expect("never empty");
    let retry = "the transfer was interrupted or the sender's backup is incomplete: retry the job (and check the sender's log)";
    if let Some((at, why)) = &parser.error {
        return format!("the stream is corrupt at byte {at} of {end}: {why}; {retry}");
    }
    let mut open: Vec<String> = parser
        .open
        .keys()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    open.sort();
    if open.is_empty() {
        return format!(
            "the stream ended in the middle of a chunk at byte {end} (the last complete chunk ended at byte {}); {retry}",
            last.pos
        );
    }
    let shown: Vec<&str> = open.iter().take(3).map(String::as_str).collect();
    format!(
        "the stream was cut short after {end} bytes: {} file(s) never got their end-of-file chunk ({}{}); {retry}",
        open.len(),
        shown.join(", "),
        if open.len() > 3 { ", ..." } else { "" }
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

    /// A stream with interleaved files, a big one, an empty one and small metadata last.
    fn sample() -> Vec<u8> {
        let mut s = Vec::new();
        let big = noise(300_000, 1);
        s.extend(payload("ibdata1", 0, &big[..200_000]));
        s.extend(payload("db/t.ibd", 0, &noise(5000, 2)));
        s.extend(payload("ibdata1", 200_000, &big[200_000..]));
        s.extend(eof("ibdata1"));
        s.extend(eof("db/t.ibd"));
        s.extend(eof("db/empty.MYD"));
        for i in 0..100 {
            let name = format!("db/f{i}.frm");
            s.extend(payload(&name, 0, &noise(300, 10 + i)));
            s.extend(eof(&name));
        }
        s.extend(payload("xtrabackup_info", 0, b"binlog_pos = x\n"));
        s.extend(eof("xtrabackup_info"));
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
        assert_eq!(sum.files, 104);
        assert_eq!(sum.chunks, 3 + 3 + 200 + 2);
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
    fn stale_check_basics() {
        assert!(is_stale(b"garbage", b""));
        assert!(!is_stale(b"XBST", b"nothing"));
        assert!(is_stale(b"XBSTCK01ab", b"..XBSTCK01abc"));
        assert!(occurs_in(b"hello world", b"o w"));
        assert!(!occurs_in(b"hello", b"hello!"));
    }
}
