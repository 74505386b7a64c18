//! The server's log files the log tasks ship: found as those tasks find them (the setting,
//! else the server's variable, relative to the datadir), readable, and in a directory the
//! rotation may rename them in.

use std::path::{Path, PathBuf};

use super::node::{Node, Server};
use super::report::Check;

/// A log some tasks ship.
struct LogFile {
    /// The tasks that ship it.
    tasks: &'static [&'static str],
    /// Words for messages.
    what: &'static str,
    /// The setting naming its path.
    setting: &'static str,
    /// The server variable naming its path.
    variable: &'static str,
    /// The file name in the datadir when the variable is empty; `None`: no file at all.
    default_name: Option<&'static str>,
    /// What provides the variable, when a server plugin does.
    provided_by: Option<&'static str>,
}

/// The logs of the log tasks (PROTOCOL.md §2).
const LOGS: &[LogFile] = &[
    LogFile {
        tasks: &["error", "errorlog"],
        what: "error log",
        setting: "error_log",
        variable: "log_error",
        default_name: None,
        provided_by: None,
    },
    LogFile {
        tasks: &["slowquery"],
        what: "slow query log",
        setting: "slow_query_log",
        variable: "slow_query_log_file",
        default_name: None,
        provided_by: None,
    },
    LogFile {
        tasks: &["auditlog"],
        what: "audit log",
        setting: "audit_log",
        variable: "server_audit_file_path",
        default_name: Some("server_audit.log"),
        provided_by: Some("the server_audit plugin (INSTALL SONAME 'server_audit')"),
    },
    LogFile {
        tasks: &["sqlerrorlog"],
        what: "SQL error log",
        setting: "sql_error_log",
        variable: "sql_error_log_filename",
        default_name: Some("sql_errors.log"),
        provided_by: Some("the sql_errlog plugin (INSTALL SONAME 'sql_errlog')"),
    },
];

/// One line per log an owned task ships.
pub fn check(node: &Node<'_>) -> Vec<Check> {
    LOGS.iter()
        .filter_map(|log| {
            let users = node.owned(log.tasks);
            (!users.is_empty()).then(|| one(node, log, &users))
        })
        .collect()
}

fn one(node: &Node<'_>, log: &LogFile, users: &[&str]) -> Check {
    let name = format!("log {}", log.setting);
    let path = match path_of(node, log) {
        Ok(path) => path,
        Err(check) => return check,
    };
    let whose = users.join(", ");
    if !path.exists() {
        return Check::warn(
            name,
            format!(
                "{} does not exist yet ({whose} would fail until the server writes it)",
                path.display()
            ),
            format!(
                "turn the {} on in the server, or set {} to its path",
                log.what, log.setting
            ),
        );
    }
    if let Err(e) = std::fs::File::open(&path) {
        return Check::fail(
            name,
            format!("{}: cannot be read ({e})", path.display()),
            format!(
                "run dbjobs as a user who may read the {} (root, or the server's user)",
                log.what
            ),
        );
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    if let Err(e) = super::dirs::writable(dir) {
        return Check::fail(
            name,
            format!(
                "{}: its directory cannot be written ({e}), so it cannot be rotated aside",
                path.display()
            ),
            format!("run dbjobs as a user who may write {}", dir.display()),
        );
    }
    Check::ok(
        name,
        format!("{}: readable, rotatable (for {whose})", path.display()),
    )
}

/// The path a log task would ship, or the line saying why there is none.
fn path_of(node: &Node<'_>, log: &LogFile) -> Result<PathBuf, Check> {
    let name = format!("log {}", log.setting);
    if let Some(p) = node
        .plugin_setting(log.setting)
        .filter(|p| !p.trim().is_empty())
    {
        return relative_to_datadir(node, PathBuf::from(p.trim()));
    }
    let Some(server) = &node.server else {
        return Err(Check::not_connected(name));
    };
    let value = variable(server, log).map_err(|why| match log.provided_by {
        Some(p) => Check::warn(
            name.clone(),
            format!("the server has no @@{}: it comes with {p}", log.variable),
            format!(
                "load it if replication-manager collects the {}, or set {}",
                log.what, log.setting
            ),
        ),
        None => Check::fail(
            name.clone(),
            format!("cannot read @@{}: {why}", log.variable),
            format!("set {} to the log's path", log.setting),
        ),
    })?;
    match (value, log.default_name) {
        (Some(v), _) => relative_to_datadir(node, PathBuf::from(v)),
        (None, Some(default)) => relative_to_datadir(node, PathBuf::from(default)),
        (None, None) => Err(Check::fail(
            name,
            format!(
                "the server has no {} file (@@{} is empty: it goes to stderr or syslog)",
                log.what, log.variable
            ),
            format!(
                "start the server with --{}=<file>, or set {} to the file",
                log.variable.replace('_', "-"),
                log.setting
            ),
        )),
    }
}

/// `@@GLOBAL.<variable>`, `None` when empty.
fn variable(server: &Server, log: &LogFile) -> Result<Option<String>, String> {
    // The variable name is a constant of this module.
    server
        .value(&format!("SELECT @@GLOBAL.{}", log.variable))
        .map(|v| v.filter(|v| !v.trim().is_empty()))
        .map_err(|e| e.message)
}

/// A relative name is in the datadir, as the server reads it.
fn relative_to_datadir(node: &Node<'_>, path: PathBuf) -> Result<PathBuf, Check> {
    if path.is_absolute() {
        return Ok(path);
    }
    match &node.server {
        Some(s) => Ok(s.facts.datadir.join(path)),
        None => Ok(path),
    }
}
