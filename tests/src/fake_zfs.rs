//! A recording `zfs` executable, the one stand-in the end-to-end tests allow.
//!
//! ZFS cannot run on a test machine, but what `zfssnapback` asks of it can be checked
//! exactly: [`FakeZfs::install`] writes a small `zfs` script into a directory that the test
//! puts first on dbjobs' `PATH`. The script appends each call's arguments as one line to a
//! record file, answers `zfs list ...` with a fixture text (the `name<TAB>creation` lines of
//! `zfs list -H -p -o name,creation`), and can fail `zfs rollback` on demand. The test then
//! asserts the exact calls and their order ([`FakeZfs::calls`]); other recording scripts
//! (the service commands) can append to the same record file with [`install_script`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A `zfs` stand-in installed in a directory.
#[derive(Clone, Debug)]
pub struct FakeZfs {
    dir: PathBuf,
    record: PathBuf,
}

impl FakeZfs {
    /// Write `dir/zfs` answering `list` with `list_output`, recording every call into
    /// `record` as `zfs <args>`; with `fail_rollback`, `zfs rollback` prints an error and
    /// exits 1 (after recording the call).
    ///
    /// # Panics
    /// When the files cannot be written.
    pub fn install(dir: &Path, record: &Path, list_output: &str, fail_rollback: bool) -> FakeZfs {
        let fixture = dir.join("zfs-list.txt");
        fs::write(&fixture, list_output)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", fixture.display()));
        let fail = if fail_rollback {
            "  rollback) echo \"cannot rollback to '$3': fake failure\" >&2; exit 1 ;;\n"
        } else {
            "  rollback) exit 0 ;;\n"
        };
        let body = format!(
            "#!/bin/sh\n\
             # Recording zfs stand-in written by dbjobs-tests (fake_zfs.rs).\n\
             echo \"zfs $*\" >> {record}\n\
             case \"$1\" in\n\
             \x20 list) cat {fixture} ;;\n\
             {fail}\
             \x20 *) echo \"fake zfs: unexpected command $1\" >&2; exit 2 ;;\n\
             esac\n",
            record = sh_quote(&record.display().to_string()),
            fixture = sh_quote(&fixture.display().to_string()),
        );
        install_script(dir, "zfs", &body);
        FakeZfs {
            dir: dir.to_path_buf(),
            record: record.to_path_buf(),
        }
    }

    /// The directory to put first on `PATH`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `PATH` for dbjobs: the fake's directory, then the test process's own `PATH`.
    pub fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        )
    }

    /// Every recorded line (of the fake and of any script sharing the record file), in order.
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Quote `s` for a POSIX shell script (single quotes, `'` written as `'\''`).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Install `body` as the executable `dir/name` (mode 0755) and return its path.
///
/// Goes through `install(1)` so this process never holds a writable descriptor of the file:
/// exec of a file open for writing fails with ETXTBSY when another test thread forks meanwhile.
///
/// # Panics
/// When the script cannot be written.
pub fn install_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let src = dir.join(format!(".{name}.src"));
    let dest = dir.join(name);
    fs::write(&src, body).unwrap_or_else(|e| panic!("cannot write {}: {e}", src.display()));
    let ok = Command::new("install")
        .args(["-m", "0755"])
        .arg(&src)
        .arg(&dest)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "cannot install {}", dest.display());
    dest
}
