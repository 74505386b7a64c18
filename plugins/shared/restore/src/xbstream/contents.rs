//! What a stream contains, file by file, and the checks a complete backup passes.
//!
//! Only the payloads of an xbstream carry checksums: a path, an end-of-file chunk or a whole
//! chunk can be damaged or lost without `mbstream -x` noticing (it extracts an empty file under
//! a damaged name, or a table definition of 0 bytes, and exits 0). What can still be checked
//! inside the stream is checked here, before anything touches the server:
//!
//! * every file's chunks follow each other (the first at offset 0, each where the previous
//!   ended), one end-of-file chunk per file ([`FileTable`], as the chunks arrive);
//! * a file of a kind that is never empty (`.frm`, `.ibd`, `.MYI`, `db.opt`, `backup-my.cnf`,
//!   ...) is not empty: its only data chunk is missing;
//! * an empty file lies in a directory that something else of the stream is in: an empty
//!   file carries nothing but its path, so a damaged database part of that path shows as a
//!   directory of its own;
//! * in a backup with table definitions (`.frm`: MariaDB, MySQL up to 5.7), every table file
//!   (`.ibd`, `.MYD`, `.CSV`, `.par`, ...) has its table's `.frm`, and no table file lies
//!   outside a database directory: a lost or renamed definition, a damaged table name;
//! * the metadata the backup tool sends last (`xtrabackup_checkpoints`, `xtrabackup_info`) is
//!   there: a stream cut exactly between two files is otherwise complete.
//!
//! What stays uncheckable inside the stream: a damaged name of an empty file that lands on
//! the name of another table of the same database (its `.frm` then "accounts" for it), any
//! damaged name in a backup without `.frm` files (MySQL 8), and a damaged name of an empty
//! top-level file. [`StreamSummary::check_extracted`](super::StreamSummary::check_extracted)
//! compares what the extractor wrote with this table, so an extractor that stopped early
//! (and still exited 0) is caught too.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// The most bytes of file paths the table records (a million tables of three files each
/// stay well under it); a stream naming more is refused, so the table's memory is bounded.
const MAX_PATH_BYTES: usize = 256 << 20;

/// The metadata files mariadb-backup and xtrabackup send last, after every data file.
pub const CLOSING_FILES: [&str; 2] = ["xtrabackup_checkpoints", "xtrabackup_info"];

/// Extensions of table files that belong to a table's `.frm` (partitions `t#P#p0.ibd` too).
const TABLE_FILE_EXTENSIONS: [&str; 10] = [
    "ibd", "MYD", "MYI", "MAD", "MAI", "CSV", "CSM", "ARZ", "par", "TRG",
];

/// Extensions of files that are never empty: definitions, tablespaces, index headers,
/// trigger and partition metadata, links to remote tablespaces.
const NEVER_EMPTY_EXTENSIONS: [&str; 8] = ["frm", "ibd", "MYI", "MAI", "par", "TRG", "TRN", "isl"];

/// Files of the backup's top directory that are never empty.
const NEVER_EMPTY_TOP_FILES: [&str; 5] = [
    "backup-my.cnf",
    "xtrabackup_checkpoints",
    "xtrabackup_info",
    "aria_log_control",
    "ib_logfile0",
];

/// How many paths a message lists.
const SHOWN: usize = 3;

/// One file of an accepted stream, as the extractor writes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamFile {
    /// Path relative to the extraction directory.
    pub path: PathBuf,
    /// Its size: where its last chunk ended (holes of sparse chunks included).
    pub size: u64,
}

/// A file of the stream while it is parsed.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Whether its end-of-file chunk came.
    closed: bool,
    /// Where its next chunk must start: its size so far.
    size: u64,
}

/// The files of a stream, as its chunks make them (see the module documentation).
#[derive(Debug, Default)]
pub struct FileTable {
    files: HashMap<Box<[u8]>, Entry>,
    open: usize,
    closed: u64,
    path_bytes: usize,
}

/// A path for messages.
fn shown(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

impl FileTable {
    /// Files with data but no end-of-file chunk yet.
    pub fn open_count(&self) -> usize {
        self.open
    }

    /// End-of-file chunks so far.
    pub fn closed_count(&self) -> u64 {
        self.closed
    }

    /// The paths of the open files, sorted, for messages.
    pub fn open_paths(&self) -> Vec<String> {
        let mut open: Vec<String> = self
            .files
            .iter()
            .filter(|(_, e)| !e.closed)
            .map(|(p, _)| shown(p))
            .collect();
        open.sort();
        open
    }

    /// A data chunk for `path` is coming: refused for a file already closed, which the
    /// extractor would fail to create again.
    pub fn check_data(&self, path: &[u8]) -> Result<(), String> {
        match self.files.get(path) {
            Some(e) if e.closed => Err(format!(
                "a data chunk for {} after its end-of-file chunk (a repeated chunk: the extractor would fail to create the file again)",
                shown(path)
            )),
            _ => Ok(()),
        }
    }

    /// A data chunk of `len` bytes at `offset` of `path`: it must start where the file stands.
    pub fn data(&mut self, path: &[u8], offset: u64, len: u64) -> Result<(), String> {
        let size = match self.files.get(path) {
            Some(e) => e.size,
            None => {
                self.insert(path, false)?;
                0
            }
        };
        if offset != size {
            return Err(if size == 0 {
                format!(
                    "the first data chunk of {} is at offset {offset}, not 0: its earlier chunks are missing",
                    shown(path)
                )
            } else {
                format!(
                    "a data chunk of {} at offset {offset} where {size} was expected: a chunk is missing or out of order",
                    shown(path)
                )
            });
        }
        self.grow(path, len)
    }

    /// A sparse chunk's hole of `len` bytes in `path`.
    pub fn skip(&mut self, path: &[u8], len: u64) -> Result<(), String> {
        self.grow(path, len)
    }

    fn grow(&mut self, path: &[u8], len: u64) -> Result<(), String> {
        let e = self.files.get_mut(path).expect("an open file");
        e.size = e
            .size
            .checked_add(len)
            .ok_or_else(|| format!("implausible size of {} (beyond 2^64 bytes)", shown(path)))?;
        Ok(())
    }

    /// An end-of-file chunk for `path` is coming: refused for a file already closed.
    pub fn check_close(&self, path: &[u8]) -> Result<(), String> {
        match self.files.get(path) {
            Some(e) if e.closed => Err(format!(
                "a second end-of-file chunk for {} (the extractor would fail to create the file again and stop extracting)",
                shown(path)
            )),
            _ => Ok(()),
        }
    }

    /// The end-of-file chunk of `path`; a file without data chunks is an empty file.
    pub fn close(&mut self, path: &[u8]) -> Result<(), String> {
        match self.files.get_mut(path) {
            Some(e) => {
                e.closed = true;
                self.open -= 1;
            }
            None => self.insert(path, true)?,
        }
        self.closed += 1;
        Ok(())
    }

    /// A rename or remove chunk for `path` is coming: the extractor applies them to closed
    /// files only.
    pub fn check_closed(&self, path: &[u8]) -> Result<(), String> {
        match self.files.get(path) {
            Some(e) if e.closed => Ok(()),
            Some(_) => Err(format!(
                "a rename or remove chunk for {}, which is still open",
                shown(path)
            )),
            None => Err(format!(
                "a rename or remove chunk for {}, which the stream has not carried",
                shown(path)
            )),
        }
    }

    /// A remove chunk: the file is gone from the backup.
    pub fn remove(&mut self, path: &[u8]) -> Result<(), String> {
        self.files.remove(path);
        Ok(())
    }

    /// A rename chunk: the closed file `old` becomes `new` (replacing a closed `new`).
    pub fn rename(&mut self, old: &[u8], new: &[u8]) -> Result<(), String> {
        if self.files.get(new).is_some_and(|e| !e.closed) {
            return Err(format!(
                "a rename of {} onto {}, which is still open",
                shown(old),
                shown(new)
            ));
        }
        let entry = self.files.remove(old).expect("checked closed");
        self.charge(new)?;
        self.files.insert(new.into(), entry);
        Ok(())
    }

    fn insert(&mut self, path: &[u8], closed: bool) -> Result<(), String> {
        self.charge(path)?;
        self.files.insert(path.into(), Entry { closed, size: 0 });
        if !closed {
            self.open += 1;
        }
        Ok(())
    }

    fn charge(&mut self, path: &[u8]) -> Result<(), String> {
        self.path_bytes += path.len();
        if self.path_bytes > MAX_PATH_BYTES {
            return Err(format!(
                "the stream names more than {} MiB of file paths; no backup has that many files",
                MAX_PATH_BYTES >> 20
            ));
        }
        Ok(())
    }

    /// Every file, sorted by path.
    pub fn list(&self) -> Vec<StreamFile> {
        let mut out: Vec<StreamFile> = self
            .files
            .iter()
            .map(|(p, e)| StreamFile {
                path: PathBuf::from(OsString::from_vec(p.to_vec())),
                size: e.size,
            })
            .collect();
        out.sort();
        out
    }

    /// The checks a complete backup passes (see the module documentation), on a table whose
    /// files are all closed. The error names the files.
    pub fn check_backup(&self) -> Result<(), String> {
        let files: Vec<(&[u8], u64)> = self.files.iter().map(|(p, e)| (&p[..], e.size)).collect();
        refuse(
            &files,
            |&(p, size)| size == 0 && never_empty(p),
            "is empty, which a file of its kind never is: its data chunk is missing from the stream",
        )?;
        let with_data: HashSet<&[u8]> = files
            .iter()
            .filter(|(_, size)| *size > 0)
            .filter_map(|(p, _)| split(p).0)
            .collect();
        refuse(
            &files,
            |&(p, size)| size == 0 && split(p).0.is_some_and(|d| !with_data.contains(d)),
            "is an empty file in a directory that nothing else of the stream is in: its path is damaged (no checksum covers the path of an empty file)",
        )?;
        if files.iter().any(|(p, _)| extension(p) == Some(&b"frm"[..])) {
            check_definitions(&files)?;
        }
        let missing: Vec<&str> = CLOSING_FILES
            .into_iter()
            .filter(|name| !self.files.contains_key(name.as_bytes()))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the stream ended after {} complete file(s) without {}, which the backup tool sends last: it was cut between two files",
                self.closed,
                missing.join(" and ")
            ));
        }
        Ok(())
    }
}

/// Table files without their table's definition, and table files outside any database
/// directory, in a backup whose tables have `.frm` files.
fn check_definitions(files: &[(&[u8], u64)]) -> Result<(), String> {
    let paths: HashSet<&[u8]> = files.iter().map(|(p, _)| *p).collect();
    refuse(
        files,
        |&(p, _)| {
            split(p).0.is_none()
                && extension(p).is_some_and(|e| {
                    e == b"frm" || e == b"TRN" || e == b"opt" || is_table_extension(e)
                })
        },
        "is a table file outside any database directory: its path is damaged",
    )?;
    refuse(
        files,
        |&(p, _)| definition_of(p).is_some_and(|frm| !paths.contains(&frm[..])),
        "has no table definition (.frm) in the stream: the definition is missing or the file's name is damaged",
    )
}

/// Fail with `what` naming the files `bad` picks, if any.
fn refuse(
    files: &[(&[u8], u64)],
    bad: impl Fn(&(&[u8], u64)) -> bool,
    what: &str,
) -> Result<(), String> {
    let mut found: Vec<String> = files
        .iter()
        .filter(|f| bad(f))
        .map(|(p, _)| shown(p))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    found.sort();
    let more = found.len().saturating_sub(SHOWN);
    found.truncate(SHOWN);
    let list = found.join(", ");
    Err(match more {
        0 if found.len() == 1 => format!("{list} {what}"),
        0 => format!("each of {list} {what}"),
        n => format!("each of {list} and {n} more {what}"),
    })
}

/// The directory and file name of `path` (no directory for a top-level file).
fn split(path: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (Some(&path[..i]), &path[i + 1..]),
        None => (None, path),
    }
}

/// The extension of `path`'s file name.
fn extension(path: &[u8]) -> Option<&[u8]> {
    let name = split(path).1;
    name.iter()
        .rposition(|b| *b == b'.')
        .map(|i| &name[i + 1..])
}

fn is_table_extension(e: &[u8]) -> bool {
    TABLE_FILE_EXTENSIONS.iter().any(|t| t.as_bytes() == e)
}

/// Whether the file at `path` is never empty in a real backup.
fn never_empty(path: &[u8]) -> bool {
    let (dir, name) = split(path);
    match dir {
        None => {
            NEVER_EMPTY_TOP_FILES.iter().any(|f| f.as_bytes() == name)
                || name.starts_with(b"ibdata")
                || name.starts_with(b"undo")
        }
        Some(_) => {
            name == b"db.opt"
                || extension(path)
                    .is_some_and(|e| NEVER_EMPTY_EXTENSIONS.iter().any(|n| n.as_bytes() == e))
        }
    }
}

/// The `.frm` path that table file `path` belongs to, or `None` for a file that is not a
/// table file or has no `.frm` of its own (InnoDB's full-text index tables `FTS_*`,
/// temporary `#sql*` tables, files outside a database directory).
fn definition_of(path: &[u8]) -> Option<Vec<u8>> {
    let (Some(dir), name) = split(path) else {
        return None;
    };
    let e = extension(path).filter(|e| is_table_extension(e))?;
    let lower = name.to_ascii_lowercase();
    if name.starts_with(b"#") || lower.starts_with(b"fts_") {
        return None;
    }
    let stem = &name[..name.len() - e.len() - 1];
    // Partitions and subpartitions: `t#P#p0`, `t#P#p0#SP#s0` (`#p#` on older servers).
    let table = lower
        .windows(3)
        .position(|w| w == b"#p#")
        .map_or(stem, |i| &stem[..i]);
    let mut frm = dir.to_vec();
    frm.push(b'/');
    frm.extend_from_slice(table);
    frm.extend_from_slice(b".frm");
    Some(frm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of closed files of the given sizes.
    fn table(files: &[(&str, u64)]) -> FileTable {
        let mut t = FileTable::default();
        for (path, size) in files {
            if *size > 0 {
                t.data(path.as_bytes(), 0, *size).unwrap();
            }
            t.close(path.as_bytes()).unwrap();
        }
        t
    }

    /// The files of a small real backup: InnoDB, partitions, MyISAM, CSV, a trigger, an
    /// InnoDB full-text table, the metadata.
    const BACKUP: [(&str, u64); 16] = [
        ("ibdata1", 12 << 20),
        ("app/t.ibd", 98304),
        ("app/t.frm", 954),
        ("app/p#P#p0.ibd", 65536),
        ("app/p.par", 36),
        ("app/p.frm", 482),
        ("app/e.MYD", 0),
        ("app/e.MYI", 1024),
        ("app/e.frm", 433),
        ("app/c.CSV", 0),
        ("app/c.frm", 430),
        ("app/FTS_0000000000000104_CONFIG.ibd", 65536),
        ("app/db.opt", 65),
        ("app/t.TRG", 289),
        ("xtrabackup_checkpoints", 97),
        ("xtrabackup_info", 620),
    ];

    fn backup_with(change: impl FnOnce(&mut Vec<(&'static str, u64)>)) -> Result<(), String> {
        let mut files = BACKUP.to_vec();
        change(&mut files);
        table(&files).check_backup()
    }

    #[test]
    fn a_real_backup_passes() {
        backup_with(|_| {}).unwrap();
        // Without any .frm (MySQL 8): no definitions to look for.
        backup_with(|f| f.retain(|(p, _)| !p.ends_with(".frm"))).unwrap();
    }

    #[test]
    fn an_empty_definition_is_refused() {
        let e = backup_with(|f| f[2].1 = 0).unwrap_err();
        assert!(e.starts_with("app/t.frm is empty"), "{e}");
        let e = backup_with(|f| f[12].1 = 0).unwrap_err();
        assert!(e.starts_with("app/db.opt is empty"), "{e}");
        let e = backup_with(|f| f[14].1 = 0).unwrap_err();
        assert!(e.starts_with("xtrabackup_checkpoints is empty"), "{e}");
    }

    #[test]
    fn an_empty_file_in_a_directory_of_its_own_is_refused() {
        let e = backup_with(|f| f[9].0 = "`pp/c.CSV").unwrap_err();
        assert!(
            e.starts_with("`pp/c.CSV is an empty file in a directory"),
            "{e}"
        );
    }

    #[test]
    fn table_files_need_their_definition() {
        let e = backup_with(|f| f.retain(|(p, _)| *p != "app/e.frm")).unwrap_err();
        assert!(
            e.starts_with("each of app/e.MYD, app/e.MYI has no table definition"),
            "{e}"
        );
        let e = backup_with(|f| f[9].0 = "app/d.CSV").unwrap_err();
        assert!(e.starts_with("app/d.CSV has no table definition"), "{e}");
        let e = backup_with(|f| f[9].0 = "app.c.CSV").unwrap_err();
        assert!(e.starts_with("app.c.CSV is a table file outside"), "{e}");
    }

    #[test]
    fn a_backup_without_its_closing_files_is_cut() {
        let e = backup_with(|f| f.truncate(14)).unwrap_err();
        assert!(
            e.contains("without xtrabackup_checkpoints and xtrabackup_info"),
            "{e}"
        );
        assert!(e.contains("cut between two files"), "{e}");
    }

    #[test]
    fn definitions_of_table_files() {
        let d = |p: &str| definition_of(p.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(d("db/t.ibd").as_deref(), Some("db/t.frm"));
        assert_eq!(d("db/t#P#p0#SP#s1.ibd").as_deref(), Some("db/t.frm"));
        assert_eq!(d("db/t#p#p0.MYD").as_deref(), Some("db/t.frm"));
        assert_eq!(d("db/t.TRG").as_deref(), Some("db/t.frm"));
        for none in [
            "ibdata1",
            "db/t.frm",
            "db/t.new",
            "db/#sql-1.ibd",
            "db/fts_1_2.ibd",
            "x.ibd",
        ] {
            assert_eq!(d(none), None, "{none}");
        }
    }

    #[test]
    fn chunks_follow_each_other() {
        let mut t = FileTable::default();
        t.data(b"f", 0, 10).unwrap();
        let e = t.data(b"f", 20, 5).unwrap_err();
        assert!(e.contains("at offset 20 where 10 was expected"), "{e}");
        let e = t.data(b"g", 7, 5).unwrap_err();
        assert!(e.contains("first data chunk of g is at offset 7"), "{e}");
        t.close(b"f").unwrap();
        assert!(t
            .check_close(b"f")
            .unwrap_err()
            .contains("second end-of-file"));
        assert!(t
            .check_data(b"f")
            .unwrap_err()
            .contains("after its end-of-file"));
        t.check_closed(b"f").unwrap();
        t.rename(b"f", b"h").unwrap();
        assert!(t.check_closed(b"f").is_err());
        assert_eq!(
            t.list()
                .iter()
                .map(|f| (f.path.clone(), f.size))
                .collect::<Vec<_>>(),
            vec![(PathBuf::from("g"), 0), (PathBuf::from("h"), 10)]
        );
        assert_eq!(t.open_paths(), vec!["g".to_string()]);
    }
}
