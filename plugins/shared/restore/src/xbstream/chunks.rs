//! The incremental chunk parser behind [`forward`](super::forward): it reads the stream in
//! pieces of any size, checks each chunk's header (and, when asked, its CRC-32), and keeps the
//! table of files ([`FileTable`]) the chunks build, refusing a chunk that the extractor would
//! mishandle: data or an end-of-file chunk for a file already closed (`mbstream -x` then fails
//! to create the file again, and still exits 0), a data chunk at another offset than where its
//! file stands (a chunk is missing), a path that leaves the target directory.
//!
//! It stops at the first error; [`forward`](super::forward) decides whether that error is
//! stale padding after the real end or damage.

use super::contents::FileTable;
use super::CHUNK_MAGIC;

/// Size of the fixed part of a header, before the path: magic, flags, type, path length.
pub(super) const FIXED_HEADER: usize = 14;

/// Longest accepted path in a chunk; real paths are `db/table.ibd`-sized.
const MAX_PATH_LEN: usize = 64 * 1024;

/// Most sparse map entries accepted in one `S` chunk (8 bytes each).
const MAX_SPARSE_ENTRIES: u64 = 1 << 20;

/// The chunk flag bit that lets a reader skip a chunk of an unknown type.
const FLAG_IGNORABLE: u8 = 0x01;

/// The chunk types (MariaDB's `mbstream` and Percona's `xbstream`).
pub(super) mod kind {
    /// File data at an offset.
    pub const PAYLOAD: u8 = b'P';
    /// File data with holes (Percona's page-compressed tablespaces).
    pub const SPARSE: u8 = b'S';
    /// The end of a file: every file of the stream gets exactly one.
    pub const EOF: u8 = b'E';
    /// A file renamed during the backup (MariaDB, DDL during the backup): old and new path.
    pub const RENAME: u8 = b'R';
    /// A file deleted during the backup (MariaDB).
    pub const REMOVE: u8 = b'D';
}

/// How many bytes the header of a chunk of type `t` with a path of `path_len` bytes has after
/// the path, as far as the fixed part tells (`R` then has a second path of its own length).
fn lengths_len(t: u8) -> usize {
    match t {
        kind::EOF | kind::REMOVE => 0,
        kind::RENAME => 4,
        kind::SPARSE => 24,
        // Payload, and unknown ignorable types, which carry a payload like `P`.
        _ => 20,
    }
}

/// The size of the complete header that the first bytes of `bytes` announce, or `None` while
/// `bytes` is too short to tell (it then is a cut header if the input ends there).
pub(super) fn announced_header_len(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < FIXED_HEADER {
        return None;
    }
    let path_len = u32::from_le_bytes(bytes[10..14].try_into().expect("4 bytes")) as usize;
    let base = FIXED_HEADER.saturating_add(path_len);
    let with_lengths = base.saturating_add(lengths_len(bytes[9]));
    if bytes[9] != kind::RENAME {
        return Some(with_lengths);
    }
    let new_len = bytes.get(base..with_lengths)?;
    let new_len = u32::from_le_bytes(new_len.try_into().expect("4 bytes")) as usize;
    Some(with_lengths.saturating_add(new_len))
}

/// A chunk boundary: where the last complete chunk ended (or the stream starts), and the
/// counters there.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Boundary {
    /// Offset in the stream.
    pub pos: u64,
    /// Files with data but no `E` chunk yet.
    pub open_files: usize,
    /// Complete chunks before it.
    pub chunks: u64,
    /// Files closed by their `E` chunk before it.
    pub files: u64,
}

/// The first corruption the parser met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ChunkError {
    /// Offset of the first byte of the chunk.
    pub at: u64,
    /// Why, for the job's result.
    pub why: String,
}

/// Where the parser is inside the current chunk.
#[derive(Debug)]
enum State {
    /// Collecting the header bytes; `want` is how many the header has, as far as known.
    Header { want: usize },
    /// Inside the sparse map and payload of a `P`/`S` chunk.
    Payload {
        /// Bytes of the sparse map not read yet (they come first).
        map_left: u64,
        /// Bytes of map and payload not read yet.
        remaining: u64,
        expected_crc: u32,
        /// `None` when checksums are left to the extractor.
        crc: Option<flate2::Crc>,
    },
}

/// The header fields of a data chunk (`P`, `S`, or an ignorable unknown type).
struct DataHeader {
    sparse_entries: u64,
    payload_len: u64,
    offset: u64,
    expected_crc: u32,
}

/// An incremental chunk parser (see the module documentation).
pub(super) struct Parser {
    state: State,
    header: Vec<u8>,
    /// Offset of the first byte of the current chunk.
    chunk_start: u64,
    /// Offset of the next byte to parse.
    pos: u64,
    /// The files the chunks so far make.
    pub files: FileTable,
    /// Where the last complete chunk ended.
    pub last: Boundary,
    /// The first corruption.
    pub error: Option<ChunkError>,
    /// Whether payload checksums are computed.
    verify: bool,
    /// The sparse map entry being read (8 bytes: skip, then length, both u32).
    map_entry: [u8; 8],
    map_entry_len: usize,
}

impl Parser {
    /// A parser at the start of a stream; `verify` computes every chunk's CRC-32.
    pub fn new(verify: bool) -> Self {
        Parser {
            state: State::Header { want: FIXED_HEADER },
            header: Vec::with_capacity(256),
            chunk_start: 0,
            pos: 0,
            files: FileTable::default(),
            last: Boundary::default(),
            error: None,
            verify,
            map_entry: [0; 8],
            map_entry_len: 0,
        }
    }

    /// Parse `data`, which follows the bytes parsed so far. Stops at the first corruption.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.error.is_none() {
            let taken = match self.state {
                State::Header { want } => self.header_bytes(data, want),
                State::Payload { .. } => self.payload_bytes(data),
            };
            if let Err(why) = taken.1 {
                self.error = Some(ChunkError {
                    at: self.chunk_start,
                    why,
                });
            }
            data = &data[taken.0..];
        }
    }

    /// Take header bytes from `data` up to `want`; returns how many were taken.
    fn header_bytes(&mut self, data: &[u8], want: usize) -> (usize, Result<(), String>) {
        let take = (want - self.header.len()).min(data.len());
        self.header.extend_from_slice(&data[..take]);
        self.pos += take as u64;
        let step = if self.header.len() == want {
            self.header_step()
        } else {
            Ok(())
        };
        (take, step)
    }

    /// Take map and payload bytes from `data`; returns how many were taken.
    fn payload_bytes(&mut self, data: &[u8]) -> (usize, Result<(), String>) {
        let State::Payload {
            map_left,
            remaining,
            expected_crc,
            crc,
        } = &mut self.state
        else {
            unreachable!("called in the payload state only")
        };
        let take = (*remaining).min(data.len() as u64) as usize;
        let bytes = &data[..take];
        if let Some(crc) = crc {
            crc.update(bytes);
        }
        let map_bytes = (*map_left).min(take as u64) as usize;
        *map_left -= map_bytes as u64;
        *remaining -= take as u64;
        self.pos += take as u64;
        let done = *remaining == 0;
        let (got, expected) = (crc.as_ref().map(flate2::Crc::sum), *expected_crc);
        let mut step = self.sparse_map_bytes(&bytes[..map_bytes]);
        if done && step.is_ok() {
            step = match got.filter(|g| *g != expected) {
                Some(got) => Err(format!(
                    "checksum mismatch in a chunk of {} (computed {got:08x}, chunk says {expected:08x})",
                    self.path_text(),
                )),
                None => {
                    self.chunk_done();
                    Ok(())
                }
            };
        }
        (take, step)
    }

    /// Bytes of a sparse map: each entry's skip moves the file's offset on (the data lengths
    /// were counted from the header's payload length).
    fn sparse_map_bytes(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            let take = (8 - self.map_entry_len).min(bytes.len());
            self.map_entry[self.map_entry_len..self.map_entry_len + take]
                .copy_from_slice(&bytes[..take]);
            self.map_entry_len += take;
            bytes = &bytes[take..];
            if self.map_entry_len == 8 {
                self.map_entry_len = 0;
                let skip = u32::from_le_bytes(self.map_entry[..4].try_into().expect("4 bytes"));
                let path = self.path().to_vec();
                self.files.skip(&path, u64::from(skip))?;
            }
        }
        Ok(())
    }

    /// The header has `want` bytes: decide what comes next.
    fn header_step(&mut self) -> Result<(), String> {
        let h = &self.header;
        if h.len() == FIXED_HEADER {
            return self.fixed_part();
        }
        let t = self.header[9];
        let path_end = self.path_end();
        // `None` only for a rename whose second path length is not in yet: 4 more bytes.
        let want = announced_header_len(&self.header).unwrap_or(path_end + 4);
        if self.header.len() == path_end {
            self.path_known(t)?;
        }
        if self.header.len() < want {
            return self.need(want);
        }
        match t {
            kind::EOF => {
                let path = self.path().to_vec();
                self.files.close(&path)?;
                self.chunk_done();
            }
            kind::REMOVE => {
                let path = self.path().to_vec();
                self.files.remove(&path)?;
                self.chunk_done();
            }
            kind::RENAME => {
                let (old, new) = (self.path().to_vec(), self.header[path_end + 4..].to_vec());
                check_path(&new)?;
                self.files.rename(&old, &new)?;
                self.chunk_done();
            }
            _ => self.data_header(t)?,
        }
        Ok(())
    }

    /// The first 14 bytes are in: magic, type and path length.
    fn fixed_part(&mut self) -> Result<(), String> {
        let h = &self.header;
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
        let (flags, t) = (h[8], h[9]);
        let known = [
            kind::PAYLOAD,
            kind::SPARSE,
            kind::EOF,
            kind::RENAME,
            kind::REMOVE,
        ];
        if !known.contains(&t) && flags & FLAG_IGNORABLE == 0 {
            return Err(format!("unknown chunk type 0x{t:02x}"));
        }
        self.need(FIXED_HEADER + path_len)
    }

    /// The path is in: check it against the file it names.
    fn path_known(&mut self, t: u8) -> Result<(), String> {
        let path = self.path().to_vec();
        check_path(&path)?;
        match t {
            kind::PAYLOAD | kind::SPARSE => self.files.check_data(&path),
            kind::EOF => self.files.check_close(&path),
            kind::RENAME | kind::REMOVE => self.files.check_closed(&path),
            _ => Ok(()),
        }
    }

    /// The lengths of a data chunk are in: check the offset and read its payload.
    fn data_header(&mut self, t: u8) -> Result<(), String> {
        let d = self.data_fields(t)?;
        if matches!(t, kind::PAYLOAD | kind::SPARSE) {
            let path = self.path().to_vec();
            self.files.data(&path, d.offset, d.payload_len)?;
        }
        let remaining = d.sparse_entries * 8 + d.payload_len;
        if remaining == 0 {
            // An empty payload: its CRC is that of nothing.
            if self.verify && d.expected_crc != 0 {
                return Err(format!(
                    "checksum mismatch in an empty chunk of {}",
                    self.path_text()
                ));
            }
            self.chunk_done();
        } else {
            self.map_entry_len = 0;
            self.state = State::Payload {
                map_left: d.sparse_entries * 8,
                remaining,
                expected_crc: d.expected_crc,
                crc: self.verify.then(flate2::Crc::new),
            };
        }
        Ok(())
    }

    /// The fields after the path of a data chunk: sparse map entries (`S` only), payload
    /// length, offset, CRC.
    fn data_fields(&self, t: u8) -> Result<DataHeader, String> {
        let h = &self.header;
        let mut at = self.path_end();
        let sparse_entries = if t == kind::SPARSE {
            at += 4;
            u64::from(u32::from_le_bytes(h[at - 4..at].try_into().expect("4")))
        } else {
            0
        };
        if sparse_entries > MAX_SPARSE_ENTRIES {
            return Err(format!(
                "implausible sparse map of {sparse_entries} entries"
            ));
        }
        let field = |from: usize| u64::from_le_bytes(h[from..from + 8].try_into().expect("8"));
        let payload_len = field(at);
        if payload_len > u64::MAX / 4 {
            return Err(format!("implausible payload length {payload_len}"));
        }
        Ok(DataHeader {
            sparse_entries,
            payload_len,
            offset: field(at + 8),
            expected_crc: u32::from_le_bytes(h[at + 16..at + 20].try_into().expect("4")),
        })
    }

    /// Wait for the header to have `want` bytes.
    fn need(&mut self, want: usize) -> Result<(), String> {
        self.state = State::Header { want };
        Ok(())
    }

    /// Where the path of the current header ends.
    fn path_end(&self) -> usize {
        FIXED_HEADER + u32::from_le_bytes(self.header[10..14].try_into().expect("4")) as usize
    }

    /// The path of the current chunk (its header is past the path).
    fn path(&self) -> &[u8] {
        &self.header[FIXED_HEADER..self.path_end()]
    }

    /// The path of the current chunk, for messages.
    fn path_text(&self) -> String {
        if self.header.len() < FIXED_HEADER {
            return "?".into();
        }
        let end = self.path_end().min(self.header.len());
        String::from_utf8_lossy(&self.header[FIXED_HEADER..end]).into_owned()
    }

    /// The current chunk is complete: record the boundary and start the next header.
    fn chunk_done(&mut self) {
        self.last = Boundary {
            pos: self.pos,
            open_files: self.files.open_count(),
            chunks: self.last.chunks + 1,
            files: self.files.closed_count(),
        };
        self.chunk_start = self.pos;
        self.header.clear();
        self.state = State::Header { want: FIXED_HEADER };
    }
}

/// Refuse a path the extractor would write outside its target directory, or cannot write:
/// absolute, with an empty, `.` or `..` component, or with a NUL byte.
fn check_path(path: &[u8]) -> Result<(), String> {
    let bad = path.first() == Some(&b'/')
        || path.contains(&0)
        || path
            .split(|b| *b == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..");
    if bad {
        return Err(format!(
            "the path {:?} is not a plain relative path (the extractor would write outside its directory or fail)",
            String::from_utf8_lossy(path)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths_follow_the_type() {
        let mut h = Vec::from(CHUNK_MAGIC);
        h.extend([0, b'E', 3, 0, 0, 0]);
        assert_eq!(announced_header_len(&h), Some(17));
        h[9] = b'P';
        assert_eq!(announced_header_len(&h), Some(37));
        h[9] = b'S';
        assert_eq!(announced_header_len(&h), Some(41));
        h[9] = b'R';
        assert_eq!(announced_header_len(&h), None);
        h.extend(b"abc");
        h.extend(5u32.to_le_bytes());
        assert_eq!(announced_header_len(&h), Some(26));
        assert_eq!(announced_header_len(&h[..13]), None);
    }

    #[test]
    fn paths_stay_inside_the_target() {
        for bad in [
            &b"/etc/passwd"[..],
            b"../x",
            b"db/../../x",
            b"a//b",
            b"a/",
            b"./a",
            b"a\0b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        for good in [
            &b"ibdata1"[..],
            b"db/t.ibd",
            b"db/t#P#p0.ibd",
            b"#innodb_redo/x",
        ] {
            assert!(check_path(good).is_ok(), "{good:?}");
        }
    }
}
