//! The files of tables in database directories: finding them, moving them into the live
//! datadir, giving them to the server's user.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use dbjobs_sdk::JobError;

/// Files of a table in a database directory: `<stem>.<ext>` and partitions `<stem>#P#...`.
pub fn table_files(dir: &Path, stem: &str, exts: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((base, ext)) = name.rsplit_once('.') else {
            continue;
        };
        if !exts.iter().any(|x| x.eq_ignore_ascii_case(ext)) {
            continue;
        }
        let part = base.strip_prefix(stem).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with("#P#") || rest.starts_with("#p#")
        });
        if part {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

/// The `.frm` stems in a directory (the file-system names of its tables).
pub fn frm_stems(dir: &Path) -> BTreeSet<String> {
    names_in(dir, |n| n.strip_suffix(".frm").map(str::to_string))
}

/// The partitions of InnoDB table `stem` in a backup directory (`<stem>#P#<name>.ibd`).
pub fn partition_names(dir: &Path, stem: &str) -> Vec<String> {
    let prefix = format!("{stem}#P#");
    names_in(dir, |n| {
        n.strip_suffix(".ibd")
            .and_then(|b| b.strip_prefix(&prefix))
            .map(str::to_string)
    })
    .into_iter()
    .collect()
}

/// What `pick` makes of the names of the entries of `dir`, sorted (nothing when `dir`
/// cannot be listed).
fn names_in(dir: &Path, pick: impl Fn(&str) -> Option<String>) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| pick(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

/// The directories in `dir`.
pub fn subdirs(dir: &Path) -> Result<BTreeSet<String>, JobError> {
    Ok(fs::read_dir(dir)
        .map_err(|e| JobError::io(format!("cannot list {}: {e}", dir.display())))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

/// Move `from` to `to` (rename, or copy and delete across file systems) and give it the
/// live server's owner.
pub fn move_in(from: &Path, to: &Path, owner: &fs::Metadata) -> Result<(), JobError> {
    if fs::rename(from, to).is_err() {
        fs::copy(from, to)
            .and_then(|_| fs::remove_file(from))
            .map_err(|e| {
                JobError::io(format!(
                    "cannot move {} to {}: {e}",
                    from.display(),
                    to.display()
                ))
            })?;
    }
    std::os::unix::fs::chown(to, Some(owner.uid()), Some(owner.gid())).map_err(|e| {
        JobError::io(format!(
            "cannot give {} to the server's user: {e}",
            to.display()
        ))
    })
}

/// Give a whole tree to the live server's user.
pub fn chown_tree(dir: &Path, owner: &fs::Metadata) -> Result<(), JobError> {
    let chown = |p: &Path| {
        std::os::unix::fs::lchown(p, Some(owner.uid()), Some(owner.gid()))
            .map_err(|e| JobError::io(format!("cannot chown {}: {e}", p.display())))
    };
    let list_error =
        |e: std::io::Error| JobError::io(format!("cannot list {}: {e}", dir.display()));
    chown(dir)?;
    for e in fs::read_dir(dir).map_err(list_error)? {
        let e = e.map_err(list_error)?;
        if e.file_type().map_err(list_error)?.is_dir() {
            chown_tree(&e.path(), owner)?;
        } else {
            chown(&e.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_files_include_partitions_only() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "t.ibd",
            "t.cfg",
            "t#P#p0.ibd",
            "t#P#p1.ibd",
            "t2.ibd",
            "t.frm",
            "m.MYD",
        ] {
            fs::write(dir.path().join(f), b"").unwrap();
        }
        let names: Vec<String> = table_files(dir.path(), "t", &["ibd", "cfg"])
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["t#P#p0.ibd", "t#P#p1.ibd", "t.cfg", "t.ibd"]);
        assert_eq!(table_files(dir.path(), "m", &["MYD", "MYI"]).len(), 1);
        assert_eq!(partition_names(dir.path(), "t"), ["p0", "p1"]);
        assert_eq!(frm_stems(dir.path()).into_iter().collect::<Vec<_>>(), ["t"]);
        assert!(subdirs(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn files_move_in_with_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let owner = fs::metadata(dir.path()).unwrap();
        let (from, to) = (dir.path().join("a.ibd"), dir.path().join("b.ibd"));
        fs::write(&from, b"data").unwrap();
        move_in(&from, &to, &owner).unwrap();
        assert!(!from.exists());
        assert_eq!(fs::read(&to).unwrap(), b"data");
        chown_tree(dir.path(), &owner).unwrap();
        let err = move_in(&from, &to, &owner).unwrap_err();
        assert_eq!(err.kind, dbjobs_sdk::ErrorKind::Io);
    }
}
