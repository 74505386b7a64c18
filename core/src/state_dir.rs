//! The host's state directory (setting `state_dir`, default `/var/lib/dbjobs`): what must
//! outlive a run, such as job outcomes and the mark of a node left partial.
//!
//! The directory is created 0700 and every file in it 0600, written whole to a temporary
//! name and renamed into place, so a reader (another dbjobs process, `dbjobs jobs`) never
//! sees half a file. Writers that read, change and write a file take its lock first
//! ([`StateDir::lock`]): several dbjobs processes (overlapping cron passes, a daemon) and
//! threads share the directory.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The state directory of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    dir: PathBuf,
}

/// An exclusive lock on one file of the state directory, released when dropped.
pub struct StateLock {
    _file: File,
}

impl StateDir {
    /// The directory `dir` (created on the first write).
    pub fn new(dir: &Path) -> Self {
        StateDir {
            dir: dir.to_path_buf(),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The path of `name` in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Create the directory (and missing parents) with mode 0700.
    pub fn create(&self) -> Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| {
                Error::new(format!(
                    "cannot create the state directory {}: {e}",
                    self.dir.display()
                ))
                .help("set state_dir in [dbjobs] to a directory this user may create or write")
            })
    }

    /// Wait for the exclusive lock of `name` (a `<name>.lock` file beside it).
    pub fn lock(&self, name: &str) -> Result<StateLock> {
        self.create()?;
        let path = self.file(&format!("{name}.lock"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::new(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: flock on a descriptor we own; it is released when the file is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::new(format!("cannot lock {}: {e}", path.display())));
        }
        Ok(StateLock { _file: file })
    }

    /// Replace `name` with `bytes`: a 0600 temporary file, synced, renamed into place.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        self.create()?;
        let path = self.file(name);
        let tmp = self.file(&format!(
            ".{name}.{}.{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::new(format!("cannot write {}: {e}", path.display()))
        })
    }

    /// The content of `name`; `None` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<String>> {
        let path = self.file(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::new(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Remove `name`; `false` when it did not exist.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let path = self.file(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::new(format!("cannot remove {}: {e}", path.display()))),
        }
    }
}

/// Now, as RFC 3339 UTC to the second (`2026-03-01T10:04:05Z`), for records of the state
/// directory.
pub fn now_text() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_directory_is_private_and_files_are_replaced_whole() {
        let base = tempfile::tempdir().unwrap();
        let state = StateDir::new(&base.path().join("a/state"));
        assert_eq!(state.read("x").unwrap(), None);
        state.write("x", b"one").unwrap();
        state.write("x", b"two").unwrap();
        assert_eq!(state.read("x").unwrap().as_deref(), Some("two"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(state.path()), 0o700);
        assert_eq!(mode(&state.file("x")), 0o600);
        let _lock = state.lock("x").unwrap();
        assert_eq!(mode(&state.file("x.lock")), 0o600);
        // Only x and its lock: no temporary file is left.
        assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 2);
        assert!(state.remove("x").unwrap());
        assert!(!state.remove("x").unwrap());
        assert!(now_text().ends_with('Z'));
    }
}
