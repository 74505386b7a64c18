//! Shipping a server log file to replication-manager without losing a line.
//!
//! The bash agent ran `cat log | socat - TCP:server:port` and then truncated the log: every
//! line the server wrote between the `cat` and the truncation was lost, and so was the whole
//! log when the send failed. This module does it the safe way:
//!
//! 1. connect to `server:port` (retrying until `connect_timeout`, default 120 s), so a
//!    listener that is not there yet leaves the log untouched;
//! 2. rename the log aside to `<log>.dbjobs-sending` and make the server reopen its log by
//!    name (`FLUSH ERROR LOGS`, `FLUSH SLOW LOGS`, re-assigning `server_audit_file_path`,
//!    `sql_error_log_rotate`), so new lines go to a fresh file while the renamed one is sent;
//! 3. send the renamed file, shut the socket down, wait for the peer to close, and only then
//!    delete it.
//!
//! When a send fails the renamed file stays where it is; the next job finds it and sends it
//! first, followed by the part of the log written since (renamed to
//! `<log>.dbjobs-sending.next`), in order, on the same connection. At most these two files
//! exist: if a send with both fails, the next job first appends the newer to the older one.
//!
//! The plugins `errorlog` (tasks `error`, `errorlog`, `auditlog`, `sqlerrorlog`) and `slowlog`
//! (task `slowquery`) are declarations over [`ship`] with one [`LogSpec`] per log; the
//! settings they declare are [`settings_for`] their logs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dbjobs_kit::copy::{copy_with_progress, human_bytes, human_rate, Cancellable};
use dbjobs_kit::net::{connect_to_manager, OutboundSettings};
use dbjobs_sdk::settings::{read_setting, SettingDecl, SettingType};
use dbjobs_sdk::{declare_settings, Host, Job, JobError, Outcome, ServerState, SettingKind};

declare_settings! {
    /// How a log is handed over.
    pub struct ShipSettings {
        /// Seconds to wait, after the last byte, for replication-manager to close its side (it does once it has read everything).
        pub close_timeout: u64 = "30",
    }
}

/// Suffix of the renamed log being sent; it stays on disk until a send succeeded.
pub const SENDING_SUFFIX: &str = ".dbjobs-sending";

/// Suffix of the part rotated while an older `.dbjobs-sending` file was still pending.
pub const NEXT_SUFFIX: &str = ".dbjobs-sending.next";

/// How the server is made to close its log file and open a new one by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reopen {
    /// Run this statement: the server closes the file and reopens the configured path.
    Statement(&'static str),
    /// The `sql_errlog` plugin: `SET GLOBAL sql_error_log_rotate=1` reopens the file, but only
    /// when `sql_error_log_rotations` (read-only) is above 0; with 0 it does nothing, so the
    /// plugin would keep writing into the renamed file and those lines would be lost.
    SqlErrlogRotate,
}

/// Everything that differs between the logs dbjobs ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSpec {
    /// Words for messages, e.g. `error log`.
    pub what: &'static str,
    /// The `[dbjobs]` setting that overrides the path, e.g. `error_log`.
    pub setting: SettingDecl,
    /// The server variable holding the path, e.g. `log_error`.
    pub variable: &'static str,
    /// The file name (in the datadir) used when the variable is empty; `None` when an empty
    /// value means there is no file at all (the error log going to stderr).
    pub default_name: Option<&'static str>,
    /// What the server or plugin must be told to load before the variable exists, for the
    /// error message when it does not.
    pub needs: Option<&'static str>,
    /// How the server is made to reopen the file.
    pub reopen: Reopen,
}

/// The declaration of a log's path override.
const fn path_setting(name: &'static str, doc: &'static str) -> SettingDecl {
    SettingDecl {
        name,
        ty: SettingType::of(SettingKind::Path),
        default: "",
        doc,
    }
}

/// The settings a plugin shipping `specs` reads: each log's path override, the outbound
/// connection and the hand-over.
pub fn settings_for(specs: &[&LogSpec]) -> Vec<SettingDecl> {
    let mut decls: Vec<SettingDecl> = specs.iter().map(|s| s.setting).collect();
    decls.extend_from_slice(OutboundSettings::DECLS);
    decls.extend_from_slice(ShipSettings::DECLS);
    decls
}

/// The server's error log (tasks `error` and `errorlog`).
pub const ERROR_LOG: LogSpec = LogSpec {
    what: "error log",
    setting: path_setting(
        "error_log",
        "Path of the error log to ship; empty: the server's @@log_error.",
    ),
    variable: "log_error",
    default_name: None,
    needs: None,
    reopen: Reopen::Statement("FLUSH LOCAL ERROR LOGS"),
};

/// The slow-query log (task `slowquery`).
pub const SLOW_LOG: LogSpec = LogSpec {
    what: "slow query log",
    setting: path_setting(
        "slow_query_log",
        "Path of the slow query log to ship; empty: the server's @@slow_query_log_file.",
    ),
    variable: "slow_query_log_file",
    default_name: None,
    needs: None,
    reopen: Reopen::Statement("FLUSH LOCAL SLOW LOGS"),
};

/// The `server_audit` plugin's log (task `auditlog`). Re-assigning the path makes the plugin
/// stop and restart logging, which closes and reopens the file (checked on 10.11); when
/// logging is off the file is not open and the statement only notes it in the error log.
pub const AUDIT_LOG: LogSpec = LogSpec {
    what: "audit log",
    setting: path_setting(
        "audit_log",
        "Path of the server_audit log to ship; empty: the server's @@server_audit_file_path.",
    ),
    variable: "server_audit_file_path",
    default_name: Some("server_audit.log"),
    needs: Some("the server_audit plugin (INSTALL SONAME 'server_audit')"),
    reopen: Reopen::Statement(
        "SET GLOBAL server_audit_file_path = @@GLOBAL.server_audit_file_path",
    ),
};

/// The `sql_errlog` plugin's log (task `sqlerrorlog`).
pub const SQL_ERROR_LOG: LogSpec = LogSpec {
    what: "SQL error log",
    setting: path_setting(
        "sql_error_log",
        "Path of the sql_errlog log to ship; empty: the server's @@sql_error_log_filename.",
    ),
    variable: "sql_error_log_filename",
    default_name: Some("sql_errors.log"),
    needs: Some("the sql_errlog plugin (INSTALL SONAME 'sql_errlog')"),
    reopen: Reopen::SqlErrlogRotate,
};

/// The log a task ships, or `None` for a task that is not a log task.
pub fn spec_for_task(task: &str) -> Option<&'static LogSpec> {
    match task {
        "error" | "errorlog" => Some(&ERROR_LOG),
        "slowquery" => Some(&SLOW_LOG),
        "auditlog" => Some(&AUDIT_LOG),
        "sqlerrorlog" => Some(&SQL_ERROR_LOG),
        _ => None,
    }
}

/// Ship the log `spec` describes to the job's `server:port`; see the module documentation.
///
/// Settings ([`settings_for`]): the spec's path override, `connect_timeout`, `send_timeout`,
/// `close_timeout`. On failure the error says whether the log was touched and where the
/// unsent lines wait; the server's data is never touched.
pub fn ship(job: &Job, host: &Host<'_>, spec: &LogSpec) -> Result<Outcome, JobError> {
    ship_steps(job, host, spec).map_err(|e| e.or_state(ServerState::Untouched))
}

fn ship_steps(job: &Job, host: &Host<'_>, spec: &LogSpec) -> Result<Outcome, JobError> {
    let server = job.require_server()?.to_owned();
    let outbound = OutboundSettings::read(host)?;
    let close_timeout = ShipSettings::read(host)?.close_timeout;
    let log = log_path(host, spec)?;
    if spec.reopen == Reopen::SqlErrlogRotate {
        check_sql_errlog_rotations(host)?;
    }
    let pending = Pending::new(&log);
    pending.normalize()?;
    let leftover = pending.sending.exists();
    if leftover {
        host.info(&format!(
            "{} is left from an earlier failed send: it goes first",
            pending.sending.display()
        ));
    }

    let mut stream = connect_to_manager(job, host, &outbound).map_err(|e| {
        let kept = if leftover {
            format!("unsent lines stay in {}", pending.sending.display())
        } else {
            format!("{} was left as it is", log.display())
        };
        JobError {
            message: format!(
                "{}; the {} was not sent (nothing lost: {kept})",
                e.message, spec.what
            ),
            ..e
        }
        .with_hint("check that replication-manager listens there, or raise connect_timeout")
    })?;

    let files = pending.rotate(host, spec)?;
    let total_size: u64 = files.iter().map(|f| file_len(f)).sum();
    let start = Instant::now();
    let mut sent = 0u64;
    for file in &files {
        sent += send_file(file, &mut stream, host, sent, total_size).map_err(|e| {
            JobError {
                message: format!(
                    "sending the {} to {server}:{} failed: {}; nothing lost: the unsent lines stay in {} and go first next time",
                    spec.what,
                    job.port,
                    e.message,
                    pending.sending.display()
                ),
                ..e
            }
        })?;
    }
    finish_stream(&mut stream, Duration::from_secs(close_timeout.max(1)), host).map_err(|e| {
        JobError::network(format!(
            "the {} was written to {server}:{} but the connection did not close cleanly: {}; nothing lost: it stays in {} and is sent again next time",
            spec.what,
            job.port,
            e.message,
            pending.sending.display()
        ))
    })?;
    pending.remove_sent()?;
    let elapsed = start.elapsed();
    let mut text = format!(
        "sent {} ({sent} bytes) of the {} {} to {server}:{} in {:.1} s ({})",
        human_bytes(sent),
        spec.what,
        log.display(),
        job.port,
        elapsed.as_secs_f64(),
        human_rate(sent, elapsed)
    );
    if leftover {
        text.push_str(", starting with the part left from an earlier failed send");
    }
    host.info(&text);
    Ok(Outcome::new(text))
}

/// The log's path: the setting when set, else the server variable; relative paths are
/// relative to `@@datadir`.
fn log_path(host: &Host<'_>, spec: &LogSpec) -> Result<PathBuf, JobError> {
    let configured: String = read_setting(host, &spec.setting)?;
    let configured = match configured.trim() {
        "" => server_log_value(host, spec)?,
        v => v.to_owned(),
    };
    let path = PathBuf::from(&configured);
    if path.is_absolute() {
        return Ok(path);
    }
    let datadir = host
        .query_value("SELECT @@GLOBAL.datadir", &[])
        .map_err(|e| e.context(format!("cannot read @@datadir to place the {}", spec.what)))?
        .ok_or_else(|| {
            JobError::sql("@@datadir is NULL")
                .with_hint(format!("set {}=<absolute path>", spec.setting.name))
        })?;
    Ok(resolve_relative(&configured, Path::new(&datadir)))
}

/// The server variable's value, or the spec's default name when it is empty.
fn server_log_value(host: &Host<'_>, spec: &LogSpec) -> Result<String, JobError> {
    // The variable name is a constant of this module, never job input.
    let value = host
        .query_value(&format!("SELECT @@GLOBAL.{}", spec.variable), &[])
        .map_err(|e| {
            let why = match spec.needs {
                Some(needs) => format!("it exists only with {needs}"),
                None => "the server did not answer".to_owned(),
            };
            JobError::config(format!(
                "cannot find the {}: reading @@{} failed ({}); {why}",
                spec.what, spec.variable, e.message
            ))
            .with_hint(format!(
                "load it, or set {}=<path of the log file>",
                spec.setting.name
            ))
        })?;
    match (value.filter(|v| !v.trim().is_empty()), spec.default_name) {
        (Some(v), _) => Ok(v),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(JobError::config(format!(
            "the server has no {} file (@@{} is empty: it writes to stderr or syslog)",
            spec.what, spec.variable,
        ))
        .with_hint(format!(
            "start it with --{}=<file>, or set {}=<path of the log file>",
            spec.variable.replace('_', "-"),
            spec.setting.name
        ))),
    }
}

/// `name` as the server reads it: absolute as is, otherwise inside `datadir`.
pub fn resolve_relative(name: &str, datadir: &Path) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        datadir.join(p)
    }
}

/// Refuse to rotate an SQL error log the plugin cannot reopen (see [`Reopen::SqlErrlogRotate`]).
fn check_sql_errlog_rotations(host: &Host<'_>) -> Result<(), JobError> {
    let rotations = host
        .query_value("SELECT @@GLOBAL.sql_error_log_rotations", &[])
        .map_err(|e| e.context("cannot read @@sql_error_log_rotations"))?
        .unwrap_or_default();
    if rotations.trim() == "0" {
        return Err(JobError::refused("sql_error_log_rotations is 0: the sql_errlog plugin then cannot reopen its file, so lines written after the send would be lost")
            .with_hint("start the server with --sql-error-log-rotations=1 or more"));
    }
    Ok(())
}

/// The files of one log's shipping state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The live log the server writes.
    pub log: PathBuf,
    /// `<log>.dbjobs-sending`: the oldest unsent part.
    pub sending: PathBuf,
    /// `<log>.dbjobs-sending.next`: the part rotated while `sending` was still pending.
    pub next: PathBuf,
}

impl Pending {
    /// The state files of `log`.
    pub fn new(log: &Path) -> Self {
        let with = |suffix: &str| {
            let mut s = log.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        Pending {
            log: log.to_path_buf(),
            sending: with(SENDING_SUFFIX),
            next: with(NEXT_SUFFIX),
        }
    }

    /// Bring an earlier failed job's files down to at most `sending`: a lone `next` becomes
    /// `sending`; when both exist `next` is appended to `sending` (a crash in the middle of
    /// that append could duplicate lines, never lose them).
    pub fn normalize(&self) -> Result<(), JobError> {
        if !self.next.exists() {
            return Ok(());
        }
        if !self.sending.exists() {
            return rename(&self.next, &self.sending);
        }
        let mut from = File::open(&self.next)
            .map_err(|e| JobError::io(format!("cannot open {}: {e}", self.next.display())))?;
        let mut to = OpenOptions::new()
            .append(true)
            .open(&self.sending)
            .map_err(|e| JobError::io(format!("cannot open {}: {e}", self.sending.display())))?;
        io::copy(&mut from, &mut to)
            .and_then(|_| to.sync_all())
            .map_err(|e| {
                JobError::io(format!(
                    "cannot append {} to {}: {e}",
                    self.next.display(),
                    self.sending.display()
                ))
            })?;
        fs::remove_file(&self.next)
            .map_err(|e| JobError::io(format!("cannot remove {}: {e}", self.next.display())))
    }

    /// Move the live log aside (to `sending`, or to `next` when `sending` is pending) and make
    /// the server reopen it; returns the files to send, oldest first.
    fn rotate(&self, host: &Host<'_>, spec: &LogSpec) -> Result<Vec<PathBuf>, JobError> {
        let target = if self.sending.exists() {
            &self.next
        } else {
            &self.sending
        };
        if self.log.exists() {
            rename(&self.log, target)?;
            if let Err(e) = reopen(host, spec) {
                // The server still writes into the renamed file: put it back, so that what it
                // writes next is not deleted with the sent part.
                let back = if self.log.exists() {
                    String::new()
                } else {
                    match fs::rename(target, &self.log) {
                        Ok(()) => format!("; {} was renamed back", self.log.display()),
                        Err(re) => format!(
                            "; renaming it back failed too ({re}): move {} to {} by hand",
                            target.display(),
                            self.log.display()
                        ),
                    }
                };
                return Err(JobError::sql(format!(
                    "the server did not reopen its {} after it was renamed to {}: {}{back}; nothing was sent",
                    spec.what,
                    target.display(),
                    e.message
                )));
            }
        } else {
            host.info(&format!(
                "{} does not exist (nothing logged yet): nothing new to send",
                self.log.display()
            ));
        }
        Ok([&self.sending, &self.next]
            .into_iter()
            .filter(|p| p.exists())
            .cloned()
            .collect())
    }

    /// Delete what was sent, after the peer got all of it.
    fn remove_sent(&self) -> Result<(), JobError> {
        for p in [&self.sending, &self.next] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(JobError::io(format!(
                        "the log was sent, but {} cannot be removed: {e}",
                        p.display()
                    ))
                    .with_hint("remove it by hand, or it is sent again next time"))
                }
            }
        }
        Ok(())
    }
}

/// Tell the server to reopen the log by name.
fn reopen(host: &Host<'_>, spec: &LogSpec) -> Result<(), JobError> {
    let sql = match spec.reopen {
        Reopen::Statement(sql) => sql,
        Reopen::SqlErrlogRotate => "SET GLOBAL sql_error_log_rotate = 1",
    };
    host.query(sql, &[])
        .map(|_| ())
        .map_err(|e| e.context(format!("{sql} failed")))
}

fn rename(from: &Path, to: &Path) -> Result<(), JobError> {
    fs::rename(from, to).map_err(|e| {
        JobError::io(format!(
            "cannot rename {} to {}: {e}",
            from.display(),
            to.display()
        ))
        .with_hint("dbjobs needs write access to the log's directory")
    })
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Send one file; `before` bytes of `total` went out already (for the progress text).
fn send_file(
    path: &Path,
    stream: &mut TcpStream,
    host: &Host<'_>,
    before: u64,
    total: u64,
) -> Result<u64, JobError> {
    let file = File::open(path)
        .map_err(|e| JobError::io(format!("cannot open {}: {e}", path.display())))?;
    let mut reader = Cancellable::new(file, || host.cancelled());
    copy_with_progress(&mut reader, stream, |n| {
        host.progress(&format!(
            "sent {} of {}",
            human_bytes(before + n),
            human_bytes(total)
        ))
    })
    .map_err(|e| e.into_job_error("sending"))
}

/// End the stream: shut the sending side down (the peer sees the end of the data), then wait
/// for the peer to close its side, which replication-manager does once it has read
/// everything. A reset is a failure (the peer may not have read it all); a peer that stays
/// open past `wait` is logged and accepted, since every byte was handed over.
fn finish_stream(stream: &mut TcpStream, wait: Duration, host: &Host<'_>) -> Result<(), JobError> {
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| JobError::network(format!("shutting the connection down failed: {e}")))?;
    stream
        .set_read_timeout(Some(wait))
        .map_err(|e| JobError::network(format!("cannot set a read timeout: {e}")))?;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            // The protocol has no answer; whatever the peer says is ignored.
            Ok(_) if Instant::now() < deadline => continue,
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                break
            }
            Err(e) => {
                return Err(JobError::network(format!(
                    "the peer reset the connection: {e}"
                )))
            }
        }
    }
    host.warn(&format!(
        "the peer did not close the connection within {} s after the end of the data; taking the log as delivered",
        wait.as_secs()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_map_to_their_logs() {
        assert_eq!(spec_for_task("error"), Some(&ERROR_LOG));
        assert_eq!(spec_for_task("errorlog"), Some(&ERROR_LOG));
        assert_eq!(spec_for_task("slowquery"), Some(&SLOW_LOG));
        assert_eq!(spec_for_task("auditlog"), Some(&AUDIT_LOG));
        assert_eq!(spec_for_task("sqlerrorlog"), Some(&SQL_ERROR_LOG));
        assert_eq!(spec_for_task("mariabackup"), None);
    }

    #[test]
    fn relative_paths_are_in_the_datadir() {
        let d = Path::new("/var/lib/mysql/");
        assert_eq!(
            resolve_relative("server_audit.log", d),
            PathBuf::from("/var/lib/mysql/server_audit.log")
        );
        assert_eq!(
            resolve_relative("/var/log/mysql/err.log", d),
            PathBuf::from("/var/log/mysql/err.log")
        );
    }

    #[test]
    fn pending_names() {
        let p = Pending::new(Path::new("/x/err.log"));
        assert_eq!(p.sending, PathBuf::from("/x/err.log.dbjobs-sending"));
        assert_eq!(p.next, PathBuf::from("/x/err.log.dbjobs-sending.next"));
    }

    #[test]
    fn normalize_merges_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pending::new(&dir.path().join("l.log"));
        // A lone `next` becomes `sending`.
        fs::write(&p.next, "b\n").unwrap();
        p.normalize().unwrap();
        assert_eq!(fs::read_to_string(&p.sending).unwrap(), "b\n");
        assert!(!p.next.exists());
        // Both: `next` is appended after `sending`.
        fs::write(&p.sending, "a\n").unwrap();
        fs::write(&p.next, "b\n").unwrap();
        p.normalize().unwrap();
        assert_eq!(fs::read_to_string(&p.sending).unwrap(), "a\nb\n");
        assert!(!p.next.exists());
        // Nothing pending: nothing happens.
        fs::remove_file(&p.sending).unwrap();
        p.normalize().unwrap();
        assert!(!p.sending.exists());
    }
}
