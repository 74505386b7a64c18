//! The `xtrabackup` and `mariabackup` tasks: a physical backup streamed to replication-manager.
//!
//! replication-manager opens a listener on its own host, inserts the row with its address in
//! `server` and the listener's port in `port`, and expects one TCP connection carrying an
//! xbstream (PROTOCOL.md §2). This plugin:
//!
//! 1. finds the backup tool: `mariadb-backup` (or `mariabackup`) on MariaDB, `xtrabackup` on
//!    Percona/MySQL, or the path in the setting `backup_tool`;
//! 2. connects to `server:port`, retrying until `connect_timeout` seconds (default 120, the
//!    listener's own deadline in replication-manager 2.1 to 2.3.4) have passed; no backup is
//!    taken when nobody listens;
//! 3. runs `<tool> --defaults-file=<host option file> --backup --stream=xbstream
//!    --databases-exclude=.system --slave-info --target-dir=<private temp dir>
//!    --datadir=<@@datadir> --log-copy-interval=100` and copies its stdout into the socket
//!    (nothing touches the disk), a thread reading the pipe up to 16 MiB ahead so that the
//!    tool's disk reads and the network overlap, reporting the bytes sent as progress. The short log copy interval (the tools default to 1 s)
//!    shortens the two waits for the redo log copy, one of them with commits blocked (see
//!    [`DEFAULT_LOG_COPY_INTERVAL_MS`]);
//! 4. succeeds only when every byte was written, the tool exited 0 and printed
//!    `completed OK!`.
//!
//! The result names the bytes sent, the duration, the rate and the binlog position in the form
//! replication-manager parses: `filename '<file>', position '<pos>', GTID of the last change
//! '<gtid>'` (taken from the tool's `MySQL binlog position:` stderr line). In the payload
//! variant of the jobs table the same position also goes into `payload` as
//! `{"vendor":"mariadb","gtid":..,"binLogFile":..,"binLogPos":..}`.
//!
//! When the connection breaks (the listener closed, the network failed, a write stalled for
//! `send_timeout` seconds, default 600) or the operator cancels the job, the tool is killed
//! with its whole process group and the job fails with the network error and the tool's last
//! stderr lines.
//!
//! Settings: `backup_tool`, `backup_log_copy_interval`, `connect_timeout`, `send_timeout`.

use std::net::Shutdown;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dbjobs_sdk::copy::{human_bytes, human_rate, relay_with_progress, CopyError};
use dbjobs_sdk::net::connect_to_manager;
use dbjobs_sdk::tool::{find_tool, ToolCommand};
use dbjobs_sdk::{export_plugin, Direction, Host, Job, Outcome, Plugin, PluginInfo, TableVariant};

/// What the backup tools print last when the backup is complete.
pub const COMPLETED_OK: &str = "completed OK!";

/// The backup plugin.
#[derive(Default)]
pub struct Xtrabackup;

impl Plugin for Xtrabackup {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "xtrabackup",
            env!("CARGO_PKG_VERSION"),
            "physical backup (mariadb-backup/xtrabackup) streamed as xbstream to replication-manager",
        )
        .task(
            "xtrabackup",
            Direction::Outbound,
            "stream a physical backup to server:port (xbstream)",
        )
        .task(
            "mariabackup",
            Direction::Outbound,
            "stream a physical backup to server:port (xbstream)",
        )
    }

    fn run(&self, job: &Job, host: &Host<'_>) -> Result<Outcome, String> {
        let server = job.require_server()?;

        let version = host
            .query_value("SELECT @@version", &[])
            .map_err(|e| format!("cannot read the server version: {e}"))?
            .unwrap_or_default();
        let vendor = Vendor::from_version(&version);
        let tool = find_tool(vendor.tool_names(), host.setting("backup_tool").as_deref())
            .map_err(|e| format!("{e} (setting backup_tool)"))?;
        let datadir = host
            .query_value("SELECT @@datadir", &[])
            .map_err(|e| format!("cannot read @@datadir: {e}"))?
            .ok_or("the server reports no @@datadir")?;
        let option_file = host.client_option_file();
        if option_file.as_os_str().is_empty() {
            return Err(
                "the host has no client option file for the backup tool; see the dbjobs log".into(),
            );
        }
        let log_copy_interval =
            host.setting_or("backup_log_copy_interval", DEFAULT_LOG_COPY_INTERVAL_MS)?;
        let target = tempfile::Builder::new()
            .prefix("dbjobs-backup-")
            .tempdir()
            .map_err(|e| format!("cannot create a private temporary directory: {e}"))?;

        let stream = connect_to_manager(job, host)
            .map_err(|e| format!("{e}; is replication-manager listening for this backup?"))?;
        host.info(&format!(
            "connected to {server}:{}; starting {}",
            job.port,
            tool.display()
        ));

        let position_line: Arc<Mutex<Option<String>>> = Arc::default();
        let seen = Arc::clone(&position_line);
        let mut running = ToolCommand::new(&tool, Some(&option_file))
            .args(backup_args(target.path(), &datadir, log_copy_interval))
            .piped_stdout()
            .spawn(move |line| {
                if parse_position(line).is_some() {
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(line.to_string());
                }
            })?;
        let stdout = running.take_stdout().ok_or("the tool has no stdout pipe")?;

        let start = Instant::now();
        // A thread reads the tool's pipe ahead (up to 16 MiB) while this one sends, so the
        // tool reads its next chunk from disk while the last one goes out (see
        // relay_with_progress). host.progress() never blocks (the host writes the row from a
        // thread of its own), so reporting from the copy cannot stall the stream while the
        // tool holds its backup lock, which also blocks writes to the job row.
        let mut out = &stream;
        let copied = relay_with_progress(
            stdout,
            &mut out,
            || host.cancelled(),
            |n| {
                host.progress(&format!(
                    "{} sent to {server}:{} ({})",
                    human_bytes(n),
                    job.port,
                    human_rate(n, start.elapsed())
                ))
            },
        );
        if copied.is_err() {
            running.kill();
        }
        let sent = match copied {
            Ok(n) => n,
            Err(e) => {
                // Dropping the running tool reaps it (it was killed above).
                drop(running);
                return Err(match e {
                    CopyError::Write { .. } => format!(
                        "sending the backup to {server}:{} failed: {e}; the backup tool was stopped",
                        job.port
                    ),
                    CopyError::Read { .. } => format!(
                        "reading the backup stream from {} failed: {e}; the backup tool was stopped",
                        tool.display()
                    ),
                });
            }
        };
        // End of stream for the listener: the tool closed its stdout, everything was written.
        let _ = stream.shutdown(Shutdown::Write);
        let exit = running.wait()?;
        let elapsed = start.elapsed();
        if !exit.success() || !exit.stderr_contains(COMPLETED_OK) {
            let why = if exit.success() {
                format!(
                    "{} exited without printing {COMPLETED_OK:?}: {}",
                    exit.name,
                    exit.last_lines(5)
                )
            } else {
                exit.failure()
            };
            return Err(format!(
                "the backup failed after sending {}: {why}",
                human_bytes(sent)
            ));
        }
        let position = position_line
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| {
                exit.stderr_tail
                    .iter()
                    .rev()
                    .find(|l| parse_position(l).is_some())
                    .cloned()
            })
            .and_then(|l| parse_position(&l));
        let mut result = format!(
            "backup sent to {server}:{}: {} in {:.1} s ({})",
            job.port,
            human_bytes(sent),
            elapsed.as_secs_f64(),
            human_rate(sent, elapsed)
        );
        match &position {
            Some(p) => {
                result.push_str("; ");
                result.push_str(&p.to_string());
            }
            None => result.push_str("; no binlog position (is the binary log off?)"),
        }
        host.info(&result);
        let mut outcome = Outcome::new(result);
        if job.variant == TableVariant::Payload {
            if let Some(p) = &position {
                outcome = outcome.with_payload(p.payload(vendor));
            }
        }
        Ok(outcome)
    }
}

/// Which backup tool fits the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// MariaDB: `mariadb-backup`/`mariabackup`.
    MariaDb,
    /// Percona Server or MySQL: `xtrabackup`.
    Percona,
}

impl Vendor {
    /// From `@@version` (MariaDB versions say `MariaDB`).
    pub fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            Vendor::MariaDb
        } else {
            Vendor::Percona
        }
    }

    /// Tool names to look for, preferred first.
    pub fn tool_names(self) -> &'static [&'static str] {
        match self {
            Vendor::MariaDb => &["mariadb-backup", "mariabackup"],
            Vendor::Percona => &["xtrabackup"],
        }
    }

    /// The `vendor` value of the payload.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::MariaDb => "mariadb",
            Vendor::Percona => "percona",
        }
    }
}

/// Default of the setting `backup_log_copy_interval`, in milliseconds.
///
/// Why not the tools' own 1000 ms: at two points of a backup (entering `BACKUP STAGE
/// BLOCK_DDL` and, with commits blocked, `BLOCK_COMMIT`) mariadb-backup waits until its redo
/// log copying thread has read up to the server's current LSN, and that thread only looks
/// every interval. With 1000 ms each wait is 0 to 1 s (up to 0.9 s per wait measured on the
/// benchmark's source), and commits on the node stay blocked for the second one. A 300 MB
/// backup into /dev/null took 1.4 s (median of 4) with 1000 ms and 0.8 s with 100 ms; the
/// thread's extra wake-ups cost nothing measurable.
pub const DEFAULT_LOG_COPY_INTERVAL_MS: u64 = 100;

/// The tool's arguments after `--defaults-file`. `--target-dir` is a private empty directory
/// for the tool's temporary files (it writes nothing else there when streaming); `--datadir`
/// is the running server's, so a datadir in the option file or the tool's default cannot
/// point it at the wrong files; `--log-copy-interval` (both vendors' tools have it) is left
/// out when `log_copy_interval_ms` is 0, i.e. the tool's default is wanted.
pub fn backup_args(target_dir: &Path, datadir: &str, log_copy_interval_ms: u64) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--backup".into(),
        "--stream=xbstream".into(),
        "--databases-exclude=.system".into(),
        "--slave-info".into(),
        format!("--target-dir={}", target_dir.display()),
        format!("--datadir={datadir}"),
    ];
    if log_copy_interval_ms > 0 {
        args.push(format!("--log-copy-interval={log_copy_interval_ms}"));
    }
    args
}

/// A binlog position as the backup tool prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinlogPosition {
    /// Binlog file name, e.g. `mariadb-bin.000001`.
    pub file: String,
    /// Offset in that file.
    pub position: String,
    /// GTID of the last change (may be empty).
    pub gtid: String,
}

impl BinlogPosition {
    /// The payload JSON replication-manager reads in the payload variant.
    pub fn payload(&self, vendor: Vendor) -> String {
        serde_json::json!({
            "vendor": vendor.name(),
            "gtid": self.gtid,
            "binLogFile": self.file,
            "binLogPos": self.position,
        })
        .to_string()
    }
}

impl std::fmt::Display for BinlogPosition {
    /// The form replication-manager parses from the result.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "filename '{}', position '{}', GTID of the last change '{}'",
            self.file, self.position, self.gtid
        )
    }
}

/// The quoted value after `key '` in `line`.
fn quoted_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    let end = rest.find('\'')?;
    Some(&rest[..end])
}

/// Parse a line such as `MySQL binlog position: filename 'mariadb-bin.000001', position
/// '328', GTID of the last change '0-1-1'` (the GTID part is optional).
pub fn parse_position(line: &str) -> Option<BinlogPosition> {
    let file = quoted_after(line, "filename '")?;
    let position = quoted_after(line, "position '")?;
    if file.is_empty() || position.is_empty() || !position.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let gtid = quoted_after(line, "GTID of the last change '").unwrap_or("");
    Some(BinlogPosition {
        file: file.to_string(),
        position: position.to_string(),
        gtid: gtid.to_string(),
    })
}

export_plugin!(Xtrabackup);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_mariadb_backup_line() {
        let line = "[00] 2024-01-01 10:00:00 MySQL binlog position: filename 'mariadb-bin.000001', position '328', GTID of the last change '0-1-1'";
        let p = parse_position(line).unwrap();
        assert_eq!(
            p,
            BinlogPosition {
                file: "mariadb-bin.000001".into(),
                position: "328".into(),
                gtid: "0-1-1".into()
            }
        );
        assert_eq!(
            p.to_string(),
            "filename 'mariadb-bin.000001', position '328', GTID of the last change '0-1-1'"
        );
    }

    #[test]
    fn position_without_gtid_and_non_position_lines() {
        let p = parse_position("filename 'bin.000002', position '157'").unwrap();
        assert_eq!(p.gtid, "");
        assert!(parse_position("[00] Streaming ./mysql/gtid_slave_pos.ibd").is_none());
        assert!(parse_position("filename 'x', position 'abc'").is_none());
        assert!(parse_position("filename '', position '1'").is_none());
    }

    #[test]
    fn payload_is_the_json_replication_manager_reads() {
        let p = BinlogPosition {
            file: "mariadb-bin.000001".into(),
            position: "202805504".into(),
            gtid: "0-1-16".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&p.payload(Vendor::MariaDb)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"vendor":"mariadb","gtid":"0-1-16","binLogFile":"mariadb-bin.000001","binLogPos":"202805504"})
        );
    }

    #[test]
    fn vendor_and_tools() {
        assert_eq!(Vendor::from_version("10.11.6-MariaDB-log"), Vendor::MariaDb);
        assert_eq!(Vendor::from_version("8.0.35-27"), Vendor::Percona);
        assert_eq!(Vendor::MariaDb.tool_names()[0], "mariadb-backup");
        assert_eq!(Vendor::Percona.tool_names(), &["xtrabackup"]);
        let args = backup_args(Path::new("/tmp/t"), "/var/lib/mysql/", 100);
        assert_eq!(&args[..2], &["--backup", "--stream=xbstream"]);
        assert!(args.contains(&"--target-dir=/tmp/t".to_string()));
        assert!(args.contains(&"--datadir=/var/lib/mysql/".to_string()));
        assert!(args.contains(&"--log-copy-interval=100".to_string()));
        let tool_default = backup_args(Path::new("/tmp/t"), "/var/lib/mysql/", 0);
        assert!(!tool_default
            .iter()
            .any(|a| a.starts_with("--log-copy-interval")));
    }
}
