//! Does the account have every privilege the owned tasks and the job queue need?
//!
//! The grants are read with `SHOW GRANTS`, which also lists those of the session's role, and
//! compared with what each task's statements and tools need on MariaDB 10.5 and later
//! (checked on 10.11): a missing privilege is named with the tasks that need it and why, and
//! the fix is the `GRANT` statement that adds them.

use std::collections::{BTreeMap, BTreeSet};

use dbjobs_kit::server::Vendor;

use super::node::{Node, Server};
use super::report::Check;
use crate::queue::SCHEMA;
use crate::settings::JobsMode;

/// A global privilege a task needs.
#[derive(Clone, Copy, Debug)]
struct Need {
    /// Its name as MariaDB 10.11 shows it in `SHOW GRANTS`.
    privilege: &'static str,
    /// Another name that grants the same (MySQL's, or the name before MariaDB 10.5).
    alias: Option<&'static str>,
    /// Whether `SUPER` grants it too (MariaDB before 11.0, MySQL).
    super_covers: bool,
    /// What needs it, for the message.
    why: &'static str,
}

const fn need(privilege: &'static str, why: &'static str) -> Need {
    Need {
        privilege,
        alias: None,
        super_covers: false,
        why,
    }
}

const fn split_from_super(
    privilege: &'static str,
    alias: Option<&'static str>,
    why: &'static str,
) -> Need {
    Need {
        privilege,
        alias,
        super_covers: true,
        why,
    }
}

/// Every dbjobs session sets `sql_log_bin=0`.
const SESSION: &[Need] = &[split_from_super(
    "BINLOG ADMIN",
    Some("BINLOG_ADMIN"),
    "SET sql_log_bin=0 keeps the job table's writes out of the binlog",
)];

/// `mariadb-backup --backup --slave-info` (tasks mariabackup, xtrabackup).
const BACKUP: &[Need] = &[
    need("RELOAD", "the backup's BACKUP STAGE and FLUSH TABLES"),
    need("PROCESS", "the backup reads InnoDB's state"),
    need("LOCK TABLES", "the backup locks non-InnoDB tables"),
    split_from_super(
        "BINLOG MONITOR",
        Some("REPLICATION CLIENT"),
        "the backup reads the binlog position",
    ),
    split_from_super(
        "SLAVE MONITOR",
        Some("REPLICA MONITOR"),
        "--slave-info reads the replication position",
    ),
];

/// `FLUSH ERROR LOGS` / `FLUSH SLOW LOGS` after the log is renamed aside.
const SERVER_LOGS: &[Need] = &[need(
    "RELOAD",
    "FLUSH ERROR/SLOW LOGS reopens the log once it is renamed aside",
)];

/// `SET GLOBAL` of the server_audit or sql_errlog plugin's variable.
const PLUGIN_LOGS: &[Need] = &[need(
    "SUPER",
    "SET GLOBAL of the audit/SQL-error log plugin's variable reopens its log",
)];

/// `OPTIMIZE NO_WRITE_TO_BINLOG TABLE` on every user table.
const OPTIMIZE: &[Need] = &[
    need("SELECT", "OPTIMIZE TABLE on every user table"),
    need("INSERT", "OPTIMIZE TABLE on every user table"),
];

/// A reseed or flashback: rebuild every schema object and set the replication position.
const RESTORE: &[Need] = &[
    need(
        "SELECT",
        "the restore reads and checks the tables it rebuilds",
    ),
    need("INSERT", "the restore writes the rows of a dump"),
    need("CREATE", "the restore creates schemas and tables"),
    need("DROP", "the restore replaces schemas and tables"),
    need("ALTER", "ALTER TABLE .. DISCARD/IMPORT TABLESPACE"),
    need("INDEX", "the restore creates indexes"),
    need("LOCK TABLES", "a dump locks the tables it writes"),
    need("RELOAD", "FLUSH TABLES after files were moved in"),
    need("CREATE VIEW", "the restore rebuilds views"),
    need("SHOW VIEW", "the restore reads view definitions"),
    need("CREATE ROUTINE", "the restore rebuilds routines"),
    need("ALTER ROUTINE", "the restore replaces routines"),
    need("TRIGGER", "the restore rebuilds triggers"),
    need("EVENT", "the restore rebuilds events"),
    split_from_super(
        "SET USER",
        None,
        "objects keep their DEFINER (another account)",
    ),
    split_from_super(
        "REPLICATION SLAVE ADMIN",
        Some("REPLICATION_SLAVE_ADMIN"),
        "STOP/START SLAVE and SET GLOBAL gtid_slave_pos",
    ),
    split_from_super(
        "SLAVE MONITOR",
        Some("REPLICA MONITOR"),
        "SHOW SLAVE STATUS before and after the restore",
    ),
];

/// What a task needs, by its name in the job table; nothing for tasks whose work is a
/// service command or a ZFS call, and for tasks of plugins this host does not know.
fn needs_of(task: &str) -> &'static [Need] {
    match task {
        "mariabackup" | "xtrabackup" => BACKUP,
        "error" | "errorlog" | "slowquery" => SERVER_LOGS,
        "auditlog" | "sqlerrorlog" => PLUGIN_LOGS,
        "optimize" => OPTIMIZE,
        t if t.starts_with("reseed") || t.starts_with("flashback") => RESTORE,
        _ => &[],
    }
}

/// The privileges on the job table's schema every dbjobs session uses.
const QUEUE_SCHEMA: &[&str] = &["SELECT", "INSERT", "UPDATE"];

/// One line: everything present, or each missing privilege with who needs it and the GRANT.
pub fn check(node: &Node<'_>) -> Vec<Check> {
    let Some(server) = &node.server else {
        return vec![Check::not_connected("privileges")];
    };
    let grants = match server.query("SHOW GRANTS") {
        Ok(rows) => Grants::parse(
            rows.into_iter()
                .filter_map(|r| r.into_iter().next().flatten()),
        ),
        Err(e) => {
            return vec![Check::fail(
                "privileges",
                format!("cannot read the account's grants: {}", e.message),
                "connect as an account that may run SHOW GRANTS",
            )]
        }
    };
    let super_covers = super_covers_split_privileges(server);
    let mut missing: Missing = BTreeMap::new();
    let mut checked = BTreeSet::new();
    let tasks: Vec<(&str, &[Need])> = std::iter::once(("every dbjobs session", SESSION))
        .chain(node.tasks().map(|t| (t.name.as_str(), needs_of(&t.name))))
        .collect();
    for (who, needs) in tasks {
        for n in needs {
            checked.insert(n.privilege);
            if !grants.has_global(n, super_covers) {
                missing
                    .entry(n.privilege)
                    .or_default()
                    .entry(n.why)
                    .or_default()
                    .push(who);
            }
        }
    }
    // In API mode there is no job table to write.
    let schema_missing: Vec<&str> = QUEUE_SCHEMA
        .iter()
        .copied()
        .filter(|p| node.host.jobs_mode == JobsMode::Sql && !grants.has_on_queue_schema(p))
        .collect();
    verdict(
        server,
        &checked,
        &missing,
        &schema_missing,
        node.tasks().count(),
        node.host.jobs_mode == JobsMode::Sql,
    )
}

/// Missing privilege -> why it is needed -> the tasks that need it for that.
type Missing<'a> = BTreeMap<&'static str, BTreeMap<&'static str, Vec<&'a str>>>;

/// The check's line from what is missing.
fn verdict(
    server: &Server,
    checked: &BTreeSet<&str>,
    missing: &Missing,
    schema_missing: &[&str],
    tasks: usize,
    uses_table: bool,
) -> Vec<Check> {
    if missing.is_empty() && schema_missing.is_empty() {
        let table = if uses_table {
            format!(", and {} on {SCHEMA}", QUEUE_SCHEMA.join(", "))
        } else {
            String::new()
        };
        return vec![Check::ok(
            "privileges",
            format!(
                "{} has what the {tasks} owned task(s) and dbjobs' sessions need: {}{table}",
                server.account,
                checked.iter().copied().collect::<Vec<_>>().join(", "),
            ),
        )];
    }
    let mut lacks: Vec<String> = missing
        .iter()
        .map(|(p, whys)| {
            let whys: Vec<String> = whys
                .iter()
                .map(|(why, who)| format!("{}: {why}", who.join(", ")))
                .collect();
            format!("{p} ({})", whys.join("; "))
        })
        .collect();
    let mut fixes = Vec::new();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.keys().copied().collect();
        fixes.push(format!(
            "GRANT {} ON *.* TO {}",
            names.join(", "),
            server.grantee()
        ));
    }
    if !schema_missing.is_empty() {
        lacks.push(format!(
            "{} on {SCHEMA} (the job table)",
            schema_missing.join(", ")
        ));
        fixes.push(format!(
            "GRANT {} ON {SCHEMA}.* TO {}",
            schema_missing.join(", "),
            server.grantee()
        ));
    }
    vec![Check::fail(
        "privileges",
        format!("{} lacks {}", server.account, lacks.join(", ")),
        fixes.join("; "),
    )]
}

/// `SUPER` still grants BINLOG ADMIN, SLAVE MONITOR, ... on MariaDB before 11.0 and on MySQL;
/// MariaDB 11.0 split them off for good.
fn super_covers_split_privileges(server: &Server) -> bool {
    let major = server
        .facts
        .major_minor()
        .and_then(|v| v.split('.').next().and_then(|m| m.parse::<u32>().ok()));
    server.facts.vendor == Vendor::MySql || major.is_some_and(|m| m < 11)
}

/// The account's privileges, from `SHOW GRANTS`: global ones and those on the job table's
/// schema (or its table).
#[derive(Debug, Default, PartialEq, Eq)]
struct Grants {
    global: BTreeSet<String>,
    queue_schema: BTreeSet<String>,
}

/// What `ALL PRIVILEGES` is stored as here.
const ALL: &str = "ALL PRIVILEGES";

impl Grants {
    /// Read `GRANT <privileges> ON <target> TO ...` lines; role grants and column-level
    /// privileges are not what any task needs and are left out.
    fn parse(lines: impl IntoIterator<Item = String>) -> Self {
        let mut grants = Grants::default();
        for line in lines {
            let Some(rest) = line.strip_prefix("GRANT ") else {
                continue;
            };
            let Some((privileges, rest)) = rest.split_once(" ON ") else {
                continue;
            };
            let target = rest.split(" TO ").next().unwrap_or("").replace('`', "");
            let set = if target == "*.*" {
                &mut grants.global
            } else if is_queue_schema(&target) {
                &mut grants.queue_schema
            } else {
                continue;
            };
            for p in split_privileges(privileges) {
                set.insert(p);
            }
        }
        grants
    }

    fn has_global(&self, need: &Need, super_covers: bool) -> bool {
        let has = |p: &str| self.global.contains(ALL) || self.global.contains(&normalize(p));
        has(need.privilege)
            || need.alias.is_some_and(has)
            || (need.super_covers && super_covers && has("SUPER"))
    }

    fn has_on_queue_schema(&self, privilege: &str) -> bool {
        [&self.global, &self.queue_schema]
            .iter()
            .any(|set| set.contains(ALL) || set.contains(privilege))
    }
}

/// `replication_manager_schema.*`, its escaped form, or its `jobs` table.
fn is_queue_schema(target: &str) -> bool {
    let Some((schema, table)) = target.split_once('.') else {
        return false;
    };
    schema.replace('\\', "") == SCHEMA && (table == "*" || table == "jobs")
}

/// `SELECT, INSERT, BINLOG_ADMIN` -> normalised names; `ALL` -> [`ALL`]; column privileges
/// (`SELECT (a, b)`) are dropped.
fn split_privileges(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut word, mut in_columns) = (0, String::new(), false);
    for c in text.chars().chain(std::iter::once(',')) {
        match c {
            '(' => {
                depth += 1;
                in_columns = true;
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                if !in_columns && !word.trim().is_empty() {
                    out.push(normalize(word.trim()));
                }
                word.clear();
                in_columns = false;
            }
            c if depth == 0 => word.push(c),
            _ => {}
        }
    }
    out
}

/// Upper case, `_` as a space (MySQL writes dynamic privileges that way), `ALL` in full.
fn normalize(p: &str) -> String {
    let p = p.trim().to_ascii_uppercase().replace('_', " ");
    if p == "ALL" {
        ALL.to_string()
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(lines: &[&str]) -> Grants {
        Grants::parse(lines.iter().map(|l| l.to_string()))
    }

    #[test]
    fn reads_global_schema_and_role_grants() {
        let g = grants(&[
            "GRANT `r1` TO `ru`@`localhost`",
            "GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO `ru`@`localhost`",
            "GRANT SELECT, INSERT ON `replication_manager_schema`.* TO `ru`@`localhost`",
            "GRANT UPDATE (result) ON `replication_manager_schema`.`jobs` TO `ru`@`localhost`",
            "GRANT SUPER ON *.* TO `r1`",
            "GRANT ALL PRIVILEGES ON `test`.* TO PUBLIC",
        ]);
        assert!(g.global.contains("RELOAD") && g.global.contains("SUPER"));
        assert!(g.has_on_queue_schema("INSERT"));
        assert!(
            !g.has_on_queue_schema("UPDATE"),
            "a column grant is not enough"
        );
        let binlog_admin = SESSION[0];
        assert!(g.has_global(&binlog_admin, true));
        assert!(
            !g.has_global(&binlog_admin, false),
            "SUPER no longer covers it on 11.x"
        );
        assert!(!g.has_global(&need("LOCK TABLES", ""), true));
    }

    #[test]
    fn all_privileges_and_mysql_names() {
        let g = grants(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]);
        assert!(g.has_global(&need("REPLICATION SLAVE ADMIN", ""), false));
        assert!(g.has_on_queue_schema("UPDATE"));
        let g = grants(&[
            "GRANT RELOAD, REPLICATION CLIENT ON *.* TO `u`@`%`",
            "GRANT BINLOG_ADMIN ON *.* TO `u`@`%`",
        ]);
        assert!(
            g.has_global(&BACKUP[3], false),
            "REPLICATION CLIENT is BINLOG MONITOR"
        );
        assert!(g.has_global(&SESSION[0], false));
    }

    #[test]
    fn every_restore_and_backup_task_needs_something() {
        for t in [
            "mariabackup",
            "reseedmariabackup",
            "flashbackmysqldump",
            "errorlog",
            "optimize",
        ] {
            assert!(!needs_of(t).is_empty(), "{t}");
        }
        assert!(needs_of("zfssnapback").is_empty());
    }
}
