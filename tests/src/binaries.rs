//! Locating the binaries under test and the MariaDB tools.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What to tell someone whose build output is missing.
const BUILD_HINT: &str = "run `cargo build --workspace` first (scripts/test.sh does)";

/// The cargo profile directory the running test binary was built into, e.g. `target/debug`.
///
/// Derived from [`std::env::current_exe`]: integration tests live in
/// `target/debug/deps/<test>-<hash>`, so the profile directory is two levels up. This follows
/// `CARGO_TARGET_DIR`, `--target-dir` and the profile without reading any of them, which an
/// environment variable read at compile time would not.
///
/// # Panics
/// When the path of the running executable cannot be determined.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running test executable");
    let dir = exe
        .parent()
        .expect("the test executable has a parent directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Returns `path` if it exists, otherwise panics telling what to build.
fn built(path: PathBuf, what: &str) -> PathBuf {
    if !path.exists() {
        panic!("{what} {} is missing: {BUILD_HINT}", path.display());
    }
    path
}

/// The real `dbjobs` binary, `<target>/debug/dbjobs`.
///
/// Cargo builds a workspace binary only for its own package's tests, so the e2e tests rely
/// on a prior workspace build rather than building it themselves (which would deadlock on
/// the cargo lock held by the running `cargo test`).
///
/// # Panics
/// When the binary is missing, with the command to run.
pub fn dbjobs_bin() -> PathBuf {
    built(target_dir().join("dbjobs"), "the dbjobs binary")
}

/// The shared library of the job-type plugin `name`, `<target>/debug/libdbjobs_plugin_<name>.so`.
///
/// `name` is the part after `dbjobs-plugin-` in the package name; dashes become underscores,
/// as cargo does for library file names.
///
/// # Panics
/// When the library is missing, with the command to run.
pub fn plugin_file(name: &str) -> PathBuf {
    let file = format!("libdbjobs_plugin_{}.so", name.replace('-', "_"));
    built(target_dir().join(file), "the plugin library")
}

/// A test fixture cdylib, `<target>/debug/lib<lib_name>.so`.
///
/// Fixtures are deliberately broken or unusual plugins (one that panics, one built against a
/// newer SDK) used to prove that dbjobs refuses or survives them. Dashes in `lib_name`
/// become underscores, as cargo does.
///
/// # Panics
/// When the library is missing, with the command to run.
pub fn fixture_file(lib_name: &str) -> PathBuf {
    let file = format!("lib{}.so", lib_name.replace('-', "_"));
    built(target_dir().join(file), "the test fixture library")
}

/// A fresh private plugin directory holding copies of `files` (same file names).
///
/// dbjobs loads every plugin in its plugin directory, so each test gets a directory with
/// exactly the plugins it wants. The directory is mode 0700 and owned by the current user
/// and the copies are 0755, because a plugin loader that runs code as root should refuse
/// directories or files that others can write. The directory is removed when the returned
/// [`tempfile::TempDir`] is dropped: keep it alive as long as dbjobs may use it.
///
/// # Panics
/// When a file cannot be copied.
pub fn plugin_dir(files: &[PathBuf]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("dbjobs-plugins-")
        .tempdir()
        .expect("create a temporary plugin directory");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .expect("make the plugin directory private");
    for file in files {
        let name = file
            .file_name()
            .unwrap_or_else(|| panic!("plugin path {} has no file name", file.display()));
        let dest = dir.path().join(name);
        fs::copy(file, &dest).unwrap_or_else(|e| {
            panic!("cannot copy {} to {}: {e}", file.display(), dest.display())
        });
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))
            .expect("set plugin file permissions");
    }
    dir
}

/// The path of a MariaDB tool such as `mariadbd`, `mariadb-install-db` or `mariadb-backup`.
///
/// `mariadbd` lives in `/usr/sbin`, which is not on a non-root user's `PATH`, so this looks in
/// `PATH` and then in the usual sbin/libexec directories. Tests that run tools themselves
/// (to inspect a backup, say) should use it too, so they find the same installation.
///
/// # Panics
/// When the tool is not installed.
pub fn mariadb_tool(name: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let fixed = [
        "/usr/sbin",
        "/usr/local/sbin",
        "/usr/libexec",
        "/usr/bin",
        "/sbin",
    ];
    path_dirs
        .iter()
        .map(PathBuf::as_path)
        .chain(fixed.iter().map(Path::new))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("MariaDB tool `{name}` not found in PATH or /usr/sbin"))
}
