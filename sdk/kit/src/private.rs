//! Private files and directories: what holds a password or a copy of the data.
//!
//! One way to write them, so none is ever created world-readable for a moment: a file is
//! created with mode 0600 from the start (`O_CREAT` with the mode, never chmod afterwards),
//! a directory with 0700.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use dbjobs_sdk::JobError;

/// Create (or truncate) `path` as a 0600 file and return it for writing.
pub fn create_private_file(path: &Path) -> Result<File, JobError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| JobError::io(format!("cannot create {}: {e}", path.display())))
}

/// Write `text` into a 0600 file at `path` (replacing it) and sync it to disk.
pub fn write_private_file(path: &Path, text: &[u8]) -> Result<(), JobError> {
    let mut f = create_private_file(path)?;
    f.write_all(text)
        .and_then(|()| f.sync_all())
        .map_err(|e| JobError::io(format!("cannot write {}: {e}", path.display())))
}

/// Create `dir` (and missing parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), JobError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            JobError::io(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        })
}

/// Random hex text from the kernel (one-off passwords, names).
pub fn random_hex(bytes: usize) -> Result<String, JobError> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| JobError::io(format!("cannot read /dev/urandom: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_and_dirs_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).unwrap();
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let f = sub.join("secret.cnf");
        write_private_file(&f, b"password=x\n").unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read(&f).unwrap(), b"password=x\n");
        assert_eq!(random_hex(8).unwrap().len(), 16);
    }
}
