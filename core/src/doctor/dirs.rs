//! The directories jobs write: the server's datadir, `backup_dir` (where a reseed stages
//! what it receives) and `state_dir` (what must outlive a run). Each must be writable and
//! keep the floor `min_free_mb` free that a receive keeps while it writes.
//!
//! A directory that does not exist yet is judged by its nearest existing parent, where a
//! job would create it; doctor creates nothing.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use dbjobs_kit::copy::human_bytes;

use super::node::Node;
use super::report::Check;

/// Where a reseed stages a received backup when `backup_dir` is empty (as the restore
/// engine does, and the bash agent did): under the datadir.
const DEFAULT_BACKUP_SUBDIR: &str = "#sql-dbjobs-staging";

/// One line per directory.
pub fn check(node: &Node<'_>) -> Vec<Check> {
    let floor = match floor(node) {
        Ok(floor) => floor,
        Err(check) => return vec![check],
    };
    let datadir = node.server.as_ref().map(|s| s.facts.datadir.clone());
    let mut dirs: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(d) = &datadir {
        dirs.push(("datadir", d.clone()));
    }
    if let Some(configured) = node.plugin_setting("backup_dir") {
        match (configured.trim(), &datadir) {
            ("", Some(d)) => dirs.push(("backup_dir", d.join(DEFAULT_BACKUP_SUBDIR))),
            ("", None) => {}
            (path, _) => dirs.push(("backup_dir", PathBuf::from(path))),
        }
    }
    dirs.push(("state_dir", node.host.state_dir.clone()));
    dirs.into_iter()
        .map(|(name, path)| directory(name, &path, floor))
        .collect()
}

/// `min_free_mb` in bytes when a loaded plugin declares it (the restore engine does).
fn floor(node: &Node<'_>) -> Result<Option<u64>, Check> {
    match node.plugin_setting("min_free_mb") {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<u64>()
            .map(|mb| Some(mb << 20))
            .map_err(|_| {
                Check::fail(
                    "dir floor",
                    format!("min_free_mb={text:?} is not a number of MiB"),
                    "set min_free_mb in [dbjobs] to a whole number",
                )
            }),
    }
}

/// Writable, with room above the floor.
fn directory(name: &str, path: &Path, floor: Option<u64>) -> Check {
    let label = format!("dir {name}");
    let Some(existing) = path.ancestors().find(|p| p.exists()) else {
        return Check::fail(
            label,
            format!("{} has no existing parent", path.display()),
            "fix the path",
        );
    };
    let place = if existing == path {
        path.display().to_string()
    } else {
        format!(
            "{} (not there yet; created in {})",
            path.display(),
            existing.display()
        )
    };
    if !existing.is_dir() {
        return Check::fail(
            label,
            format!("{} is not a directory", existing.display()),
            format!("point {name} at a directory"),
        );
    }
    if let Err(e) = writable(existing) {
        return Check::fail(
            label,
            format!("{place}: not writable by this user ({e})"),
            format!(
                "make {} writable for the user running dbjobs, or point {name} elsewhere",
                existing.display()
            ),
        );
    }
    let free = match dbjobs_kit::disk::free_bytes(existing) {
        Ok(free) => free,
        Err(e) => {
            return Check::fail(
                label,
                format!("{place}: cannot read the free space ({e})"),
                "check the file system",
            )
        }
    };
    match floor {
        Some(floor) if free < floor => Check::fail(
            label,
            format!(
                "{place}: only {} free, under the floor min_free_mb ({})",
                human_bytes(free),
                human_bytes(floor)
            ),
            format!("free space on that file system, or point {name} at a larger one"),
        ),
        Some(floor) => Check::ok(
            label,
            format!(
                "{place}: writable, {} free (floor {})",
                human_bytes(free),
                human_bytes(floor)
            ),
        ),
        None => Check::ok(
            label,
            format!("{place}: writable, {} free", human_bytes(free)),
        ),
    }
}

/// `access(W_OK)`: the kernel's verdict for this user, read-only mounts included.
pub(super) fn writable(dir: &Path) -> Result<(), std::io::Error> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("the path holds a NUL byte"))?;
    // SAFETY: access reads a NUL-terminated path and changes nothing.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_judged_by_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let check = directory("state_dir", &dir.path().join("a/b"), Some(0));
        assert_eq!(check.status, super::super::Status::Ok, "{check}");
        assert!(check.message.contains("not there yet"), "{check}");
    }

    #[test]
    fn a_floor_above_the_free_space_fails() {
        let dir = tempfile::tempdir().unwrap();
        let check = directory("backup_dir", dir.path(), Some(u64::MAX));
        assert_eq!(check.status, super::super::Status::Fail, "{check}");
        assert!(check.message.contains("under the floor"), "{check}");
    }
}
