//! Each plugin directory and file: owner, mode, and what loaded or was refused and why.
//!
//! The loader refuses a directory or file an unprivileged user could write (loading a
//! library runs its code, often as root); this check shows the same verdicts one line each,
//! with the owner and mode that led to them.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::report::Check;
use crate::loader::{check_owner_and_mode, Registry, DEFAULT_PLUGIN_DIR};

/// A line per directory and per library file, then a failure when nothing loaded.
pub fn check(dirs: &[PathBuf], registry: &Registry) -> Vec<Check> {
    let mut checks = Vec::new();
    for dir in dirs {
        checks.push(directory(dir, registry));
        for file in library_files(dir) {
            checks.push(library(&file, registry));
        }
    }
    if registry.plugins.is_empty() {
        checks.push(Check::fail(
            "plugins",
            "no plugin loaded, so no job would run",
            format!("install the dbjobs package (plugins in {DEFAULT_PLUGIN_DIR}) or pass --plugin-dir; the lines above say why files were refused"),
        ));
    }
    checks
}

/// The directory's owner and mode, or why it was not read.
fn directory(dir: &Path, registry: &Registry) -> Check {
    let name = format!("plugin-dir {}", dir.display());
    if !dir.exists() {
        if dir == Path::new(DEFAULT_PLUGIN_DIR) && !registry.plugins.is_empty() {
            return Check::ok(name, "not present (the plugins come from --plugin-dir)");
        }
        return Check::fail(
            name,
            "does not exist",
            "install the dbjobs package, or give an existing directory to --plugin-dir",
        );
    }
    if let Err(reason) = check_owner_and_mode(dir) {
        return Check::fail(name, format!("refused ({})", owner_and_mode(dir)), reason);
    }
    let files = library_files(dir).len();
    Check::ok(
        name,
        format!("{}, {files} library file(s)", owner_and_mode(dir)),
    )
}

/// What became of one library file.
fn library(file: &Path, registry: &Registry) -> Check {
    let name = format!("plugin {}", file.display());
    if let Some(refused) = registry.refused.iter().find(|r| r.file == file) {
        return Check::fail(
            name,
            format!("refused ({})", owner_and_mode(file)),
            refused.reason.clone(),
        );
    }
    match registry.plugins.iter().find(|p| p.file == file) {
        Some(p) => Check::ok(
            name,
            format!(
                "{} {} (dbjobs-sdk {}), {}, tasks {}",
                p.name,
                p.version,
                p.sdk_version,
                owner_and_mode(file),
                p.tasks
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        None => Check::fail(
            name,
            "not loaded, and no reason recorded",
            "run `dbjobs plugins` with RUST_LOG=debug to see what happened to it",
        ),
    }
}

/// The `*.so` files of a directory the loader read, in its order; none for a directory it
/// refused (its files were never looked at).
fn library_files(dir: &Path) -> Vec<PathBuf> {
    if check_owner_and_mode(dir).is_err() {
        return Vec::new();
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "so"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// `owner root, mode 0644`.
fn owner_and_mode(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let owner = match meta.uid() {
                0 => "root".to_string(),
                uid => format!("uid {uid}"),
            };
            format!(
                "owner {owner}, mode {:04o}",
                meta.permissions().mode() & 0o7777
            )
        }
        Err(e) => format!("cannot stat: {e}"),
    }
}
