//! Is `replication_manager_schema.jobs` there, with a layout dbjobs writes, and readable?
//!
//! Doctor never creates it: a missing table is created by the first `dbjobs run` (or by
//! replication-manager), which needs `CREATE` on the schema.

use super::node::{Node, Server};
use super::report::Check;
use crate::queue::{detect_layout, SCHEMA};
use crate::settings::JobsMode;

/// The columns every layout has and dbjobs reads or writes (PROTOCOL.md §1).
const REQUIRED_COLUMNS: &[&str] = &[
    "id", "task", "port", "server", "done", "result", "start", "end",
];

/// One line: the layout found and the unfinished rows, or what is wrong.
pub fn check(node: &Node<'_>) -> Vec<Check> {
    if node.host.jobs_mode == JobsMode::Api {
        return vec![Check::ok(
            "job-table",
            "not used: jobs come from replication-manager's API (jobs_mode=api)",
        )];
    }
    let Some(server) = &node.server else {
        return vec![Check::not_connected("job-table")];
    };
    vec![table(server)]
}

fn table(server: &Server) -> Check {
    let columns = match server.query(&format!(
        "SELECT LOWER(COLUMN_NAME) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='{SCHEMA}' AND TABLE_NAME='jobs'"
    )) {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect::<Vec<_>>(),
        Err(e) => return read_failure(server, &e.message),
    };
    if columns.is_empty() {
        return Check::warn(
            "job-table",
            format!("{SCHEMA}.jobs does not exist (or this account cannot see it)"),
            format!(
                "the first `dbjobs run` creates it (legacy layout) when the account has CREATE on {SCHEMA}, or let replication-manager create it"
            ),
        );
    }
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|c| !columns.iter().any(|have| have == c))
        .collect();
    if !missing.is_empty() {
        return Check::fail(
            "job-table",
            format!("{SCHEMA}.jobs lacks the column(s) {}", missing.join(", ")),
            "it is not replication-manager's job table: rename it aside and let dbjobs or replication-manager create it again",
        );
    }
    layout_and_rows(server)
}

/// The layout as the queue detects it, and how many rows no agent finished.
fn layout_and_rows(server: &Server) -> Check {
    let layout = {
        let mut conn = server.session();
        detect_layout(&mut conn)
    };
    let layout = match layout {
        Ok(Some(layout)) => layout,
        Ok(None) => return read_failure(server, "the table disappeared while it was read"),
        Err(e) => return read_failure(server, &e.message),
    };
    match server.value(&format!("SELECT COUNT(*) FROM {SCHEMA}.jobs WHERE done=0")) {
        Ok(unfinished) => Check::ok(
            "job-table",
            format!(
                "{SCHEMA}.jobs, {} layout, result up to {} characters, {} unfinished row(s)",
                layout.variant.as_str(),
                layout.result_max_chars,
                unfinished.unwrap_or_else(|| "0".into())
            ),
        ),
        Err(e) => read_failure(server, &e.message),
    }
}

fn read_failure(server: &Server, why: &str) -> Check {
    Check::fail(
        "job-table",
        format!("cannot read {SCHEMA}.jobs: {why}"),
        format!(
            "GRANT SELECT, INSERT, UPDATE ON {SCHEMA}.* TO {}",
            server.grantee()
        ),
    )
}
