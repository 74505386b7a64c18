//! The plugin files whose ABI layout already passed abi_stable's check, so that a cron pass
//! does not check the same unchanged libraries again every minute.
//!
//! abi_stable's layout check of a plugin compares the whole tree of types reachable from its
//! root module with the host's and keeps nothing across libraries: measured on the 0.2 ABI,
//! checking 9 plugins is 2.5 ms of a 6.8 ms idle `dbjobs run` (`dbjobs plugins`: 5.3 ms
//! with the checks, 2.8 ms without). `dbjobs run` and `dbjobs daemon` therefore remember, in
//! `checked-plugins.json` in the state directory, the files that passed, and skip the check
//! for a file whose identity is unchanged; every other command checks every file.
//!
//! A file's identity is its path, device, inode, size, modification time and change time,
//! together with the identity of the dbjobs binary itself (path, device, inode, size, change
//! time) and the host's SDK version: replacing or rewriting a library changes its change
//! time, which no process can set back, and a new dbjobs checks everything again. The cache
//! only ever skips a check for a file that passed it; what it holds is written whole (0600,
//! renamed into place) by [`crate::state_dir::StateDir`], a directory only dbjobs' user can
//! write, whose plugin directories the loader already refuses when anyone else could.
//! Refusals are never cached: a refused file is checked, and refused, again each time.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dbjobs_sdk::SDK_VERSION;

use crate::state_dir::StateDir;

/// The file's name in the state directory.
const FILE: &str = "checked-plugins.json";

/// The checked files of this pass and of the last one.
#[derive(Debug, Default)]
pub struct LayoutCache {
    /// Where it is kept; `None`: check every file, remember nothing.
    dir: Option<StateDir>,
    /// The identities read from the state directory.
    known: BTreeSet<String>,
    /// The identities of this pass's files that passed (checked now, or known).
    passed: Mutex<BTreeSet<String>>,
}

impl LayoutCache {
    /// No cache: every file is checked (the commands other than `run` and `daemon`).
    pub fn none() -> Self {
        LayoutCache::default()
    }

    /// The cache kept in `state_dir`; an unreadable or missing one is empty.
    pub fn in_state_dir(state_dir: &Path) -> Self {
        let dir = StateDir::new(state_dir);
        let known = dir
            .read(FILE)
            .ok()
            .flatten()
            .and_then(|text| serde_json::from_str::<Vec<String>>(&text).ok())
            .map(BTreeSet::from_iter)
            .unwrap_or_default();
        LayoutCache {
            dir: Some(dir),
            known,
            passed: Mutex::default(),
        }
    }

    /// Whether `file`, as it is now, passed the check before (and so counts as passing now).
    pub fn passed_before(&self, file: &Path) -> bool {
        let Some(id) = self.dir.as_ref().and_then(|_| identity(file)) else {
            return false;
        };
        let known = self.known.contains(&id);
        if known {
            self.lock().insert(id);
        }
        known
    }

    /// `file` passed the check now.
    pub fn record(&self, file: &Path) {
        if let Some(id) = self.dir.as_ref().and_then(|_| identity(file)) {
            self.lock().insert(id);
        }
    }

    /// Keep this pass's files for the next one, when they differ from what was read (best
    /// effort: a cache that cannot be written only costs the next pass the checks).
    pub fn save(&self) {
        let Some(dir) = &self.dir else { return };
        let passed = self.lock().clone();
        if passed == self.known {
            return;
        }
        let text =
            serde_json::to_string(&passed.iter().collect::<Vec<_>>()).expect("strings encode");
        if let Err(e) = dir.create().and_then(|()| dir.write(FILE, text.as_bytes())) {
            log::debug!("the checked plugins are not remembered: {e}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.passed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The identity of `file` for the cache (see the module docs), `None` when it cannot be
/// read (the file is then checked).
fn identity(file: &Path) -> Option<String> {
    let host = host_identity()?;
    let m = std::fs::metadata(file).ok()?;
    Some(format!(
        "{host}|{}|{}:{}|{}|{}.{}|{}.{}",
        file.display(),
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// The host's SDK version and its binary's identity: a new dbjobs checks every file again.
fn host_identity() -> Option<String> {
    static HOST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let exe: PathBuf = std::env::current_exe().ok()?;
        let m = std::fs::metadata(&exe).ok()?;
        Some(format!(
            "dbjobs-sdk {SDK_VERSION} {}|{}:{}|{}|{}.{}",
            exe.display(),
            m.dev(),
            m.ino(),
            m.size(),
            m.ctime(),
            m.ctime_nsec()
        ))
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_passed_is_known_until_it_changes() {
        let state = tempfile::tempdir().unwrap();
        let lib = state.path().join("libx.so");
        std::fs::write(&lib, b"one").unwrap();

        let first = LayoutCache::in_state_dir(state.path());
        assert!(!first.passed_before(&lib));
        first.record(&lib);
        first.save();

        let second = LayoutCache::in_state_dir(state.path());
        assert!(second.passed_before(&lib));
        second.save();

        // Rewritten in place (same inode): the change time moves, the check runs again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&lib, b"two").unwrap();
        let third = LayoutCache::in_state_dir(state.path());
        assert!(!third.passed_before(&lib));
    }

    #[test]
    fn no_cache_and_a_damaged_cache_check_everything() {
        let state = tempfile::tempdir().unwrap();
        let lib = state.path().join("libx.so");
        std::fs::write(&lib, b"one").unwrap();
        let none = LayoutCache::none();
        none.record(&lib);
        assert!(!none.passed_before(&lib));
        none.save();
        assert!(!state.path().join(FILE).exists());

        std::fs::write(state.path().join(FILE), b"{not json").unwrap();
        assert!(!LayoutCache::in_state_dir(state.path()).passed_before(&lib));
    }

    #[test]
    fn only_this_pass_files_are_kept() {
        let state = tempfile::tempdir().unwrap();
        let (a, b) = (state.path().join("a.so"), state.path().join("b.so"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let first = LayoutCache::in_state_dir(state.path());
        first.record(&a);
        first.record(&b);
        first.save();
        std::fs::remove_file(&b).unwrap();
        let second = LayoutCache::in_state_dir(state.path());
        assert!(second.passed_before(&a));
        second.save();
        let kept: Vec<String> =
            serde_json::from_str(&std::fs::read_to_string(state.path().join(FILE)).unwrap())
                .unwrap();
        assert_eq!(kept.len(), 1);
    }
}
