//! The programs the owned tasks start: found where a job would look (the same settings and
//! `PATH`), each with its version, and the backup tool matching the server's major.minor
//! (a mariadb-backup of another version refuses or damages the server's files).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dbjobs_kit::server::{major_minor, Vendor};
use dbjobs_kit::service::ServiceSettings;
use dbjobs_kit::tool::{find_tool, BackupToolSettings};
use dbjobs_sdk::JobError;

use super::node::Node;
use super::report::Check;

/// How long a tool may take to print its version.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A program some tasks start, looked up as those tasks do.
struct ToolSpec {
    /// The check's name.
    role: &'static str,
    /// Names looked up on `PATH`, preferred first.
    names: &'static [&'static str],
    /// The setting that names its path instead.
    setting: &'static str,
    /// Which tasks start it.
    used_by: fn(&str) -> bool,
    /// The argument that makes it print its version first (`--help` for mbstream, which has
    /// no `--version`); `None` for programs that act on the system, like zfs.
    version_arg: Option<&'static str>,
    /// How to install it.
    install: &'static str,
    /// Why a node may well do without it; `None`: the tasks that start it fail without it.
    optional: Option<&'static str>,
}

fn physical_restore(task: &str) -> bool {
    (task.starts_with("reseed") || task.starts_with("flashback")) && task.ends_with("backup")
}

fn any_restore(task: &str) -> bool {
    task.starts_with("reseed") || task.starts_with("flashback")
}

fn physical_backup_or_restore(task: &str) -> bool {
    matches!(task, "mariabackup" | "xtrabackup") || physical_restore(task)
}

/// Every tool but the backup tool (checked against the server) and the service commands.
const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        role: "stream-extractor",
        names: &["mbstream", "xbstream"],
        setting: "mbstream_tool",
        used_by: physical_restore,
        version_arg: Some("--help"),
        install: "apt-get install mariadb-backup (it ships mbstream)",
        optional: None,
    },
    ToolSpec {
        role: "temporary-server",
        names: &["mariadbd", "mysqld"],
        setting: "mariadbd_tool",
        used_by: physical_restore,
        version_arg: Some("--version"),
        install: "apt-get install mariadb-server-core",
        optional: None,
    },
    ToolSpec {
        role: "mariadb-client",
        names: &["mariadb", "mysql"],
        setting: "mariadb_client",
        used_by: any_restore,
        version_arg: Some("--version"),
        install: "apt-get install mariadb-client",
        optional: None,
    },
    ToolSpec {
        role: "zfs",
        names: &["zfs"],
        setting: "zfs_command",
        used_by: |t| t == "zfssnapback",
        version_arg: None,
        install: "apt-get install zfsutils-linux",
        optional: Some("replication-manager only queues zfssnapback for a datadir on ZFS"),
    },
];

/// One line per tool some owned task starts.
pub fn check(node: &Node<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(backup_tool(node));
    for spec in TOOLS {
        let users = users(node, spec.used_by);
        if users.is_empty() {
            continue;
        }
        let forced = node.plugin_setting(spec.setting);
        let lookup = Lookup {
            role: spec.role.to_string(),
            names: spec.names.to_vec(),
            forced: forced.as_deref(),
            setting: spec.setting,
            version_arg: spec.version_arg,
            install: spec.install,
            optional: spec.optional,
        };
        checks.push(lookup.check(&users));
    }
    checks.extend(service_commands(node));
    checks
}

/// The owned tasks that start a tool.
fn users(node: &Node<'_>, used_by: fn(&str) -> bool) -> Vec<String> {
    node.tasks()
        .map(|t| t.name.clone())
        .filter(|t| used_by(t))
        .collect()
}

/// How one tool is looked for, as the tasks that start it do.
struct Lookup<'a> {
    /// The check's name after `tool `.
    role: String,
    /// Names looked up on `PATH`, preferred first.
    names: Vec<&'a str>,
    /// The configured path, which wins when not empty.
    forced: Option<&'a str>,
    /// The setting that configures it, for the fix.
    setting: &'a str,
    /// The argument that prints its version; `None`: do not run it.
    version_arg: Option<&'a str>,
    /// How to install it, for the fix.
    install: &'a str,
    /// Why a missing one is only a warning (see [`ToolSpec::optional`]).
    optional: Option<&'a str>,
}

/// A tool as a job would find it.
struct Located {
    path: PathBuf,
    /// The first line it printed for its version argument, when it was run.
    version: Option<String>,
}

impl Located {
    /// `/usr/bin/mbstream: mbstream Ver 1.0 ...`.
    fn describe(&self) -> String {
        match &self.version {
            Some(v) => format!("{}: {v}", self.path.display()),
            None => format!("{}: found", self.path.display()),
        }
    }
}

impl Lookup<'_> {
    /// Find the tool and ask its version.
    fn locate(&self) -> Result<Located, JobError> {
        let path = find_tool(&self.names, self.forced)?;
        let version = self
            .version_arg
            .map(|arg| version_of(&path, arg).unwrap_or_else(|e| format!("no version ({e})")));
        Ok(Located { path, version })
    }

    /// The line: where the tool is and its version, or why it was not found.
    fn check(&self, users: &[String]) -> Check {
        match self.locate() {
            Ok(tool) => Check::ok(
                format!("tool {}", self.role),
                format!("{} (for {})", tool.describe(), users.join(", ")),
            ),
            Err(e) => self.not_found(&e, users),
        }
    }

    fn not_found(&self, e: &JobError, users: &[String]) -> Check {
        let name = format!("tool {}", self.role);
        let fix = format!("{}, or set {} to its path", self.install, self.setting);
        match self.optional {
            Some(why) => Check::warn(
                name,
                format!("{} ({} would fail; {why})", e.message, users.join(", ")),
                fix,
            ),
            None => Check::fail(
                name,
                format!("{} (needed by {})", e.message, users.join(", ")),
                fix,
            ),
        }
    }
}

/// The physical backup tool: found, and of the server's major.minor.
fn backup_tool(node: &Node<'_>) -> Option<Check> {
    let users = users(node, physical_backup_or_restore);
    if users.is_empty() {
        return None;
    }
    let vendor = node
        .server
        .as_ref()
        .map(|s| s.facts.vendor)
        .unwrap_or(Vendor::MariaDb);
    let forced = BackupToolSettings::read(node.settings)
        .map(|s| s.backup_tool)
        .unwrap_or_default();
    let lookup = Lookup {
        role: "backup".into(),
        names: vendor.backup_tools().to_vec(),
        forced: Some(&forced),
        setting: "backup_tool",
        version_arg: Some("--version"),
        install: "apt-get install mariadb-backup (percona-xtrabackup for MySQL)",
        optional: None,
    };
    let tool = match lookup.locate() {
        Ok(tool) => tool,
        Err(e) => return Some(lookup.not_found(&e, &users)),
    };
    Some(against_server(node, &tool, &users))
}

/// The backup tool's verdict: of the server's major.minor or not.
fn against_server(node: &Node<'_>, tool: &Located, users: &[String]) -> Check {
    let found = format!("{} (for {})", tool.describe(), users.join(", "));
    let Some(server) = &node.server else {
        return Check::ok("tool backup", found);
    };
    let wanted = server.facts.major_minor();
    if tool.version.as_deref().and_then(major_minor) == wanted {
        return Check::ok(
            "tool backup",
            format!("{found}, of the server's {}", server.facts.version),
        );
    }
    Check::fail(
        "tool backup",
        format!(
            "{found}, but the server is {}: a backup or prepare by another major.minor fails or damages the files",
            server.facts.version
        ),
        format!(
            "install the backup tool of the server's version {} (mariadb-backup from the server's own repository), or set backup_tool to it",
            wanted.unwrap_or_else(|| "?".into())
        ),
    )
}

/// The programs of the service commands, for the tasks that stop or start the server.
fn service_commands(node: &Node<'_>) -> Vec<Check> {
    let full_restore = node.plugin_setting("restore_mode").as_deref() == Some("full");
    let stops_server: fn(&str) -> bool = if full_restore {
        |t| matches!(t, "stop" | "start" | "restart" | "zfssnapback") || any_restore(t)
    } else {
        |t| matches!(t, "stop" | "start" | "restart" | "zfssnapback")
    };
    let users = users(node, stops_server);
    if users.is_empty() {
        return Vec::new();
    }
    let settings = match ServiceSettings::read(node.settings) {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::fail(
                "tool service-command",
                e.message,
                e.hint
                    .unwrap_or_else(|| "fix the service commands in [dbjobs]".into()),
            )]
        }
    };
    [
        ("service_stop_command", settings.stop()),
        ("service_start_command", settings.start()),
        ("service_restart_command", settings.restart()),
    ]
    .into_iter()
    .map(|(setting, command)| match command {
        Ok(c) => Lookup {
            role: format!("service-command {setting}"),
            names: vec![c.program.as_str()],
            forced: None,
            setting,
            version_arg: None,
            install: "install the program the command names",
            optional: (!full_restore).then_some(
                "only the service tasks need it, which replication-manager queues in its API mode",
            ),
        }
        .check(&users),
        Err(e) => Check::fail(
            format!("tool service-command {setting}"),
            e.message,
            e.hint
                .unwrap_or_else(|| format!("fix {setting} in [dbjobs]")),
        ),
    })
    .collect()
}

/// The first line `<tool> <arg>` prints (on stdout or stderr) within a deadline, without
/// the program's own path in front (`/usr/bin/mariadb Ver 15.1 ...`).
fn version_of(tool: &Path, arg: &str) -> Result<String, String> {
    let mut child = Command::new(tool)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let deadline = Instant::now() + VERSION_TIMEOUT;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{arg} did not answer within {VERSION_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| format!("{arg} printed nothing"))?;
    let own_path = tool.display().to_string();
    Ok(line
        .strip_prefix(own_path.as_str())
        .unwrap_or(line)
        .trim()
        .to_string())
}
