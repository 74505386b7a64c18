//! The datadir template every throwaway server is copied from.
//!
//! `mariadb-install-db` takes about a second of CPU, copying its result about 40 ms, and many
//! tests start several servers on a 2-core machine. So the template is installed once per
//! build tree and shared by every test binary and every concurrent test process:
//!
//! - it lives in `<target>/dbjobs-test-template/` (`datadir/`, `ready`, `lock`, `install.log`);
//! - creation runs under an exclusive lock on `lock`; copying runs under a shared lock, so
//!   nobody copies a half-built or being-replaced template;
//! - `mariadb-install-db` writes into a temporary name that is renamed to `datadir/`, and
//!   the `ready` marker is written last, so a crash mid-way leaves no marker and the next
//!   run rebuilds;
//! - the marker records the `mariadbd` version and the install arguments: a template made
//!   by another MariaDB version (after an upgrade) is rebuilt rather than reused.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::binaries::{mariadb_tool, target_dir};
use crate::server::{INNODB_BUFFER_POOL_SIZE, INNODB_LOG_FILE_SIZE};

/// The template directory, once it has been checked or built by this process.
static TEMPLATE_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Where the template lives: beside the profile directories in the cargo target directory,
/// so `cargo clean` removes it and separate checkouts do not share it.
fn template_root() -> PathBuf {
    let profile_dir = target_dir();
    let target = profile_dir.parent().unwrap_or(&profile_dir);
    target.join("dbjobs-test-template")
}

/// The arguments given to `mariadb-install-db`, besides `--datadir`.
///
/// The InnoDB sizes match what the servers run with: the default 96 MiB redo log would make
/// every copy 114 MiB instead of 34 MiB, and `mariadbd` would resize it on every first start.
fn install_args() -> Vec<String> {
    let mut args = vec![
        "--no-defaults".to_string(),
        "--auth-root-authentication-method=normal".to_string(),
        "--skip-test-db".to_string(),
        format!("--innodb-log-file-size={INNODB_LOG_FILE_SIZE}"),
        format!("--innodb-buffer-pool-size={INNODB_BUFFER_POOL_SIZE}"),
    ];
    // `--user` is only meaningful (and only allowed) for root: the files then belong to root,
    // matching `mariadbd --user=root`. Others own the files they create anyway.
    if crate::server::running_as_root() {
        args.push("--user=root".to_string());
    }
    args
}

/// The content of the `ready` marker: what the template was built with.
fn marker_text(mariadbd: &Path) -> String {
    let version = Command::new(mariadbd)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| panic!("cannot run {} --version: {e}", mariadbd.display()));
    format!("{version}\ninstall args: {}\n", install_args().join(" "))
}

/// Opens (creating if needed) the lock file of the template directory.
fn lock_file(root: &Path) -> File {
    fs::create_dir_all(root).unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    let path = root.join("lock");
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// Makes sure a valid template exists and returns its root directory.
fn ensure_template() -> &'static Path {
    TEMPLATE_ROOT.get_or_init(|| {
        let root = template_root();
        let lock = lock_file(&root);
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}/lock: {e}", root.display()));
        let marker = root.join("ready");
        let expected = marker_text(&mariadb_tool("mariadbd"));
        let valid = fs::read_to_string(&marker).is_ok_and(|m| m == expected)
            && root.join("datadir").is_dir();
        if !valid {
            build_template(&root, &expected);
        }
        drop(lock); // releases the lock
        root
    })
}

/// Builds the template under `root`; the caller holds the exclusive lock.
fn build_template(root: &Path, marker_content: &str) {
    let marker = root.join("ready");
    let datadir = root.join("datadir");
    remove_if_exists(&marker);
    remove_if_exists(&datadir);
    // Leftovers of an install that crashed.
    for entry in fs::read_dir(root)
        .expect("list the template directory")
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("datadir.tmp-")
        {
            remove_if_exists(&entry.path());
        }
    }
    let tmp = root.join(format!("datadir.tmp-{}", std::process::id()));
    let log_path = root.join("install.log");
    let log = File::create(&log_path).expect("create install.log");
    let status = Command::new(mariadb_tool("mariadb-install-db"))
        .args(install_args())
        .arg(format!("--datadir={}", tmp.display()))
        .stdout(log.try_clone().expect("duplicate the install.log handle"))
        .stderr(log)
        .status()
        .unwrap_or_else(|e| panic!("cannot run mariadb-install-db: {e}"));
    if !status.success() {
        let out = fs::read_to_string(&log_path).unwrap_or_default();
        panic!("mariadb-install-db failed ({status}); output:\n{out}");
    }
    fs::rename(&tmp, &datadir).expect("rename the installed template into place");
    let marker_tmp = root.join("ready.tmp");
    fs::write(&marker_tmp, marker_content).expect("write the template marker");
    fs::rename(&marker_tmp, &marker).expect("rename the template marker into place");
}

/// Removes a file or a directory tree, ignoring "not found".
fn remove_if_exists(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
}

/// Copies the template datadir to `dest`, which must not exist yet.
pub(crate) fn copy_template(dest: &Path) {
    let root = ensure_template();
    let lock = lock_file(root);
    lock.lock_shared()
        .unwrap_or_else(|e| panic!("cannot lock {}/lock: {e}", root.display()));
    copy_tree(&root.join("datadir"), dest).unwrap_or_else(|e| {
        panic!(
            "cannot copy the template {}/datadir to {}: {e}",
            root.display(),
            dest.display()
        )
    });
}

/// Recursively copies a directory, keeping permissions and symlinks.
fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
    fs::create_dir(dest)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_symlink() {
            symlink(fs::read_link(&from)?, &to)?;
        } else if kind.is_file() {
            fs::copy(&from, &to)?;
        }
    }
    let mode = fs::metadata(src)?.permissions().mode();
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))
}
