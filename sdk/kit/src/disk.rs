//! Disk space: how much a restore, a staging directory or a doctor check may still write.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Free space for unprivileged writers on the file system holding `path`, in bytes
/// (`statvfs`'s `f_bavail`: what the server's user may still write, not the root reserve).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path contains a NUL byte"))?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// The bytes of the regular files under `dir` (not following symbolic links).
pub fn tree_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += tree_bytes(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// Whether `a` and `b` are on the same file system (a rename between them moves, not copies).
pub fn same_file_system(a: &Path, b: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(a)?.dev() == std::fs::metadata(b)?.dev())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_counts_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("a"), b"12345").unwrap();
        std::fs::write(dir.path().join("d/b"), b"123").unwrap();
        assert_eq!(tree_bytes(dir.path()).unwrap(), 8);
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(same_file_system(dir.path(), &dir.path().join("d")).unwrap());
    }
}
