//! Fixtures for the physical reseed tests: a real `mariadb-backup` xbstream of a server, the
//! stale padding replication-manager's sender appends, and service stop/start scripts that
//! stop and relaunch a throwaway server the way `systemctl` would stop and start a node's.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::binaries::mariadb_tool;
use crate::server::MariaDb;

/// The size of replication-manager's send buffer (PROTOCOL.md §2).
pub const SENDER_BUFFER: usize = 16 * 1024;

/// `mariadb-backup --backup --stream=xbstream` of `server`, captured to bytes, and the
/// server's `gtid_binlog_pos` just before (nothing writes in between, so it is the backup's
/// GTID).
///
/// # Panics
/// When the backup fails, showing the tool's stderr.
pub fn xbstream_backup(server: &MariaDb) -> (Vec<u8>, String) {
    xbstream_backup_of(server, server.datadir())
}

/// [`xbstream_backup`] of a server that runs on `datadir` (one given with `--datadir` in
/// [`crate::ServerOptions::extra_args`], not its own copy of the template).
///
/// # Panics
/// When the backup fails, showing the tool's stderr.
pub fn xbstream_backup_of(server: &MariaDb, datadir: &Path) -> (Vec<u8>, String) {
    let gtid = server
        .query_value("SELECT @@gtid_binlog_pos")
        .unwrap_or_default();
    let target = tempfile::tempdir().expect("a temp dir for mariadb-backup");
    let out = Command::new(mariadb_tool("mariadb-backup"))
        .arg("--no-defaults")
        .args(["--backup", "--stream=xbstream", "--user=root"])
        .arg(format!("--socket={}", server.socket().display()))
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--target-dir={}", target.path().display()))
        .output()
        .expect("run mariadb-backup");
    assert!(
        out.status.success(),
        "mariadb-backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"XBSTCK01"), "not an xbstream");
    (out.stdout, gtid)
}

/// What replication-manager's sender (up to 3.0.1-rc) appends to `stream`: it reads the
/// backup file in [`SENDER_BUFFER`] pieces and sends the whole buffer on its last write, so
/// the bytes after the real end are the rest of the previous piece, i.e. a copy of the
/// stream from `len - 16384`. Empty when the length is a multiple of the buffer.
pub fn repman_padding(stream: &[u8]) -> Vec<u8> {
    let last = stream.len() % SENDER_BUFFER;
    if last == 0 || stream.len() < SENDER_BUFFER {
        return Vec::new();
    }
    let start = stream.len() - SENDER_BUFFER;
    stream[start..start + (SENDER_BUFFER - last)].to_vec()
}

/// Executable stop and start scripts for a [`MariaDb`], for `service_stop_command` and
/// `service_start_command`.
///
/// `stop` shuts the server down with `mariadb-admin shutdown` and waits until the process is
/// gone; `start` relaunches `mariadbd` in the background with the command line it was started
/// with (read from `/proc/<pid>/cmdline` when the fixture is made). The relaunched server is
/// not a child of the harness: dropping this value kills it (via its pid file), so declare it
/// after the [`MariaDb`] so that it drops first.
pub struct ServiceScripts {
    dir: TempDir,
    pid_file: PathBuf,
    /// Path of the stop script.
    pub stop: PathBuf,
    /// Path of the start script.
    pub start: PathBuf,
}

/// Quote `s` for a POSIX shell script (single quotes).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl ServiceScripts {
    /// Write the scripts for the running `server`.
    ///
    /// # Panics
    /// When the server does not run or the scripts cannot be written.
    pub fn new(server: &MariaDb) -> ServiceScripts {
        let pid = server.pid().expect("the server runs");
        let raw = fs::read(format!("/proc/{pid}/cmdline")).expect("read the server's cmdline");
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let pid_file = args
            .iter()
            .find_map(|a| a.strip_prefix("--pid-file="))
            .map(PathBuf::from)
            .expect("the harness passes --pid-file");
        let dir = tempfile::tempdir().expect("a temp dir for the scripts");
        let admin = mariadb_tool("mariadb-admin");
        let stop = dir.path().join("stop.sh");
        let start = dir.path().join("start.sh");
        let log = server.base_dir().join("relaunched.out");
        write_script(
            &stop,
            &format!(
                "#!/bin/sh\n\
                 pid=$(cat {pidf} 2>/dev/null)\n\
                 {admin} --no-defaults --socket={sock} -uroot shutdown || exit 1\n\
                 i=0\n\
                 while [ -n \"$pid\" ] && [ -d /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; do\n\
                   i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.1\n\
                 done\n\
                 exit 0\n",
                pidf = sh_quote(&pid_file.display().to_string()),
                admin = sh_quote(&admin.display().to_string()),
                sock = sh_quote(&server.socket().display().to_string()),
            ),
        );
        let quoted: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
        write_script(
            &start,
            &format!(
                "#!/bin/sh\n{} </dev/null >>{} 2>&1 &\nexit 0\n",
                quoted.join(" "),
                sh_quote(&log.display().to_string())
            ),
        );
        ServiceScripts {
            dir,
            pid_file,
            stop,
            start,
        }
    }

    /// The directory holding the scripts.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn write_script(path: &Path, text: &str) {
    fs::write(path, text).expect("write a script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod a script");
}

impl Drop for ServiceScripts {
    fn drop(&mut self) {
        // Kill a server the start script relaunched (the harness does not know it).
        let Ok(text) = fs::read_to_string(&self.pid_file) else {
            return;
        };
        let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
            return;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("mariadbd") {
            return;
        }
        // SAFETY: plain kill(2) of the server this fixture started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..600 {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if status.is_empty()
                || status
                    .lines()
                    .any(|l| l.starts_with("State:") && l.contains('Z'))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
