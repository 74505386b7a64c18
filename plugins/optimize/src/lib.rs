//! The `optimize` task: rebuild every user table of the local server, without replicating.
//!
//! replication-manager queues `optimize` on each node on its own; each node optimizes its own
//! tables, so nothing may reach the binary log (a replicated OPTIMIZE would make the replicas
//! rebuild their tables a second time, at the master's moment rather than theirs). Every
//! statement is `OPTIMIZE NO_WRITE_TO_BINLOG TABLE`, on the host's plugin session, which also
//! runs with `sql_log_bin=0`.
//!
//! The tables are the base tables (and system-versioned tables) of every schema except the
//! system ones ([`dbjobs_kit::sql::is_system_schema`]: `mysql`, `sys`, the job queue, ...);
//! views and sequences are skipped. One table at a time, so the load on the node stays that
//! of a single rebuild; the row's `result` shows `k/n schema.table` while it runs (the host
//! rate-limits these writes; the log gets every line).
//!
//! OPTIMIZE does not fail as a statement when a table cannot be optimized: it returns rows
//! with `Msg_type` `error`/`status`/`note`. They are read per table: a table with an `error`
//! row (or whose statement failed) is a failure, one whose engine "doesn't support optimize"
//! (CSV, MEMORY) is counted as skipped. The job fails when any table failed, with the
//! per-table errors in the result; otherwise the result is a summary.

use std::time::Instant;

use dbjobs_kit::sql::{is_system_schema, qualified};
use dbjobs_sdk::{
    export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo, ServerState,
};

/// The optimize plugin.
#[derive(Default)]
pub struct Optimize;

/// What happened to one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableOutcome {
    /// Optimized (or recreated and analyzed, for InnoDB).
    Done,
    /// The engine has no OPTIMIZE (CSV, MEMORY, ...): nothing was done.
    NotSupported,
    /// An error, with the server's messages.
    Failed(String),
}

/// Classify the rows of one `OPTIMIZE TABLE` (`Table`, `Op`, `Msg_type`, `Msg_text`).
pub fn classify(rows: &[Vec<Option<String>>]) -> TableOutcome {
    let text = |row: &Vec<Option<String>>, i: usize| row.get(i).cloned().flatten();
    let errors: Vec<String> = rows
        .iter()
        .filter(|r| text(r, 2).is_some_and(|t| t.eq_ignore_ascii_case("error")))
        .filter_map(|r| text(r, 3))
        .collect();
    if !errors.is_empty() {
        return TableOutcome::Failed(errors.join("; "));
    }
    let status_failed = rows.iter().any(|r| {
        text(r, 2).is_some_and(|t| t.eq_ignore_ascii_case("status"))
            && text(r, 3).is_some_and(|m| m.to_ascii_lowercase().contains("failed"))
    });
    if status_failed {
        return TableOutcome::Failed("Operation failed".into());
    }
    let unsupported = rows.iter().any(|r| {
        text(r, 3).is_some_and(|m| m.contains("doesn't support optimize"))
            && !rows
                .iter()
                .any(|r| text(r, 2).is_some_and(|t| t.eq_ignore_ascii_case("status")))
    });
    if unsupported {
        TableOutcome::NotSupported
    } else {
        TableOutcome::Done
    }
}

impl Plugin for Optimize {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "optimize",
            env!("CARGO_PKG_VERSION"),
            "OPTIMIZE every user table, one at a time, without writing to the binlog",
        )
        .task(
            "optimize",
            Direction::Local,
            "OPTIMIZE NO_WRITE_TO_BINLOG every table outside the system schemas",
        )
    }

    fn run(&self, _job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
        // OPTIMIZE rebuilds a table with the same rows: whatever fails, the data is as it was.
        optimize_all(host).map_err(|e| e.or_state(ServerState::Untouched))
    }
}

/// Optimize every user table, one at a time; see the crate docs.
fn optimize_all(host: &Host<'_>) -> Result<Outcome, JobError> {
    {
        let start = Instant::now();
        let rows = host
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME",
                &[],
            )
            .map_err(|e| e.context("cannot list the tables"))?;
        let tables: Vec<(String, String)> = rows
            .into_iter()
            .filter_map(|r| {
                let mut it = r.into_iter();
                Some((it.next()??, it.next()??))
            })
            .filter(|(schema, _)| !is_system_schema(schema))
            .collect();
        let n = tables.len();
        let mut done = 0usize;
        let mut unsupported = Vec::new();
        let mut failures = Vec::new();
        let mut schemas = std::collections::BTreeSet::new();
        for (k, (schema, table)) in tables.iter().enumerate() {
            if host.cancelled() {
                return Err(JobError::cancelled(format!(
                    "cancelled after {k} of {n} tables ({done} optimized)"
                )));
            }
            let name = format!("{schema}.{table}");
            let line = format!("{}/{n} {name}", k + 1);
            host.progress(&line);
            host.info(&format!("optimizing {line}"));
            schemas.insert(schema.clone());
            let sql = format!(
                "OPTIMIZE NO_WRITE_TO_BINLOG TABLE {}",
                qualified(schema, table)
            );
            let outcome = match host.query(&sql, &[]) {
                Ok(rows) => classify(&rows),
                Err(e) => TableOutcome::Failed(e.message),
            };
            match outcome {
                TableOutcome::Done => done += 1,
                TableOutcome::NotSupported => unsupported.push(name),
                TableOutcome::Failed(e) => {
                    host.warn(&format!("{name}: {e}"));
                    failures.push(format!("{name}: {e}"));
                }
            }
        }
        let mut summary = format!(
            "optimized {done} of {n} tables in {} schemas in {:.1} s",
            schemas.len(),
            start.elapsed().as_secs_f64()
        );
        if !unsupported.is_empty() {
            summary.push_str(&format!(
                "; {} not supported by their engine: {}",
                unsupported.len(),
                unsupported.join(", ")
            ));
        }
        if failures.is_empty() {
            host.info(&summary);
            Ok(Outcome::new(summary))
        } else {
            Err(JobError::sql(format!(
                "{} of {n} tables failed: {}; {summary}",
                failures.len(),
                failures.join("; ")
            )))
        }
    }
}

export_plugin!(Optimize);

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[(&str, &str)]) -> Vec<Vec<Option<String>>> {
        v.iter()
            .map(|(t, m)| {
                vec![
                    Some("s.t".into()),
                    Some("optimize".into()),
                    Some(t.to_string()),
                    Some(m.to_string()),
                ]
            })
            .collect()
    }

    #[test]
    fn innodb_recreate_is_done() {
        let r = rows(&[
            (
                "note",
                "Table does not support optimize, doing recreate + analyze instead",
            ),
            ("status", "OK"),
        ]);
        assert_eq!(classify(&r), TableOutcome::Done);
        assert_eq!(
            classify(&rows(&[("status", "Table is already up to date")])),
            TableOutcome::Done
        );
    }

    #[test]
    fn engines_without_optimize_are_skipped() {
        let r = rows(&[(
            "note",
            "The storage engine for the table doesn't support optimize",
        )]);
        assert_eq!(classify(&r), TableOutcome::NotSupported);
    }

    #[test]
    fn error_rows_fail_the_table() {
        let r = rows(&[
            (
                "note",
                "Table does not support optimize, doing recreate + analyze instead",
            ),
            ("error", "Not allowed for system-versioned `s`.`t`."),
            ("status", "Operation failed"),
        ]);
        assert_eq!(
            classify(&r),
            TableOutcome::Failed("Not allowed for system-versioned `s`.`t`.".into())
        );
        let r = rows(&[
            ("Error", "File './s/m.MYD' not found"),
            ("error", "Corrupt"),
        ]);
        assert_eq!(
            classify(&r),
            TableOutcome::Failed("File './s/m.MYD' not found; Corrupt".into())
        );
    }
}
