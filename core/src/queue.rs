//! replication-manager's job queue: `replication_manager_schema.jobs` (PROTOCOL.md §1, §3).
//!
//! # Claiming
//! A job must run once, however many `dbjobs` processes (overlapping cron runs, a daemon, a
//! second host) look at the same server. The claim cannot be "mark the row first": for an
//! inbound job replication-manager connects as soon as the row changes, so the row must stay
//! untouched until the plugin listens. dbjobs therefore serialises work per task with a
//! server-side named lock, `GET_LOCK('dbjobs.<task>', 0)`, held by the queue session for the
//! whole job:
//! * whoever holds the lock of a task is the only one that reads, claims or finishes rows of
//!   that task, so a row is never picked twice;
//! * the lock dies with its session, so a killed run never blocks a task; the rows it left
//!   half-done are failed as *abandoned* by the next run that takes the lock (otherwise
//!   replication-manager would refuse new jobs of that task forever);
//! * different tasks run in parallel, in different processes (a long backup does not hold up
//!   the error-log shipping of the next cron run) and in one process, where each worker has
//!   a session of its own (see `crate::source::table`).
//!
//! The writes that mark a row running or waiting are conditional updates whose affected-row
//! count is checked as well, so even a foreign agent ignoring the lock cannot make dbjobs run a
//! job it did not claim.
//!
//! Every write runs on a session with `sql_log_bin=0` (see [`crate::db::connect`]).

use std::time::Duration;

use dbjobs_sdk::{JobError, ServerState, TableVariant};
use mysql::prelude::Queryable;
use mysql::Conn;

use crate::config::ConnectionOptions;
use crate::db::{self, TextRow};
use crate::error::{Error, Result};

/// The schema replication-manager uses.
pub const SCHEMA: &str = "replication_manager_schema";

/// The legacy layout (replication-manager 2.1 to 2.3.41), which every version accepts and
/// later versions migrate themselves: what dbjobs creates on a fresh node.
pub const CREATE_LEGACY_TABLE: &str = "CREATE TABLE IF NOT EXISTS replication_manager_schema.jobs(\
 id INT NOT NULL auto_increment PRIMARY KEY, task VARCHAR(20), port INT, server VARCHAR(255),\
 done TINYINT not null default 0, result VARCHAR(1000), start DATETIME, end DATETIME,\
 KEY idx1(task,done), KEY idx2(result(1),task)) engine=innodb";

/// Seconds a progress write may wait for a lock before it is skipped: none. A progress write
/// that waited would hold the queue session, and with it the job's end: with 2 s, every backup
/// job ended up to 2 s late, because mariadb-backup holds the backup lock until its very end
/// (measured: a 30 MB backup took 2.5 s instead of 1.3 s).
pub const PROGRESS_LOCK_WAIT: u32 = 0;

/// Result text while a job runs.
pub const RESULT_PROCESSING: &str = "processing";

/// What the table looks like on this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    /// Legacy, state or payload (PROTOCOL.md §1).
    pub variant: TableVariant,
    /// Size of the `result` column in characters; results are cut to it, keeping the end.
    pub result_max_chars: usize,
    /// Whether `result` can store any Unicode text; if not, non-ASCII is replaced by `?`
    /// (a strict-mode server refuses unconvertible characters).
    pub result_unicode: bool,
}

/// A pending row as read from the table, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// `id`.
    pub id: u64,
    /// `task`.
    pub task: String,
    /// `server`, as text; `None` when NULL.
    pub server: Option<String>,
    /// `port`; `None` when NULL.
    pub port: Option<i64>,
}

/// A row no agent has finished, as the first query of a pass sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// `id`.
    pub id: u64,
    /// `task`, `None` when NULL.
    pub task: Option<String>,
    /// Seconds since `start` (`None` when `start` is NULL).
    pub age: Option<i64>,
}

/// How a job ended, as the queue records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The plugin succeeded: result text and optional JSON payload.
    Success {
        /// Text for `result`.
        result: String,
        /// JSON for `payload` (payload variant only).
        payload: Option<String>,
    },
    /// The job failed: its kind, the server's state, what happened and what to do.
    Failure(JobError),
}

/// The queue session: one connection, with the named locks of the tasks it works on.
pub struct Queue {
    conn: Conn,
    opts: ConnectionOptions,
    layout: TableLayout,
}

impl Queue {
    /// Connect, create the schema and table when missing, and detect the layout.
    pub fn open(opts: &ConnectionOptions) -> Result<Self> {
        let mut conn = db::connect(opts)?;
        let layout = ensure_table(&mut conn)?;
        Ok(Queue {
            conn,
            opts: opts.clone(),
            layout,
        })
    }

    /// Whether the session still answers: an idle session kept for the next worker may have
    /// been closed by the server meanwhile (a restart, `wait_timeout`).
    pub fn alive(&mut self) -> bool {
        self.conn.ping().is_ok()
    }

    /// The layout found.
    pub fn layout(&self) -> &TableLayout {
        &self.layout
    }

    /// Run a statement on the queue session.
    fn rows(&mut self, sql: &str, params: &[String]) -> Result<Vec<TextRow>> {
        db::query_text(&mut self.conn, sql, params)
    }

    /// Run a write and return the affected rows. If the session died (the server restarted
    /// under a long job), reconnect for up to a minute and write again: the outcome of a job
    /// must reach the table.
    fn write(&mut self, sql: &str, params: &[String]) -> Result<u64> {
        match db::query_text(&mut self.conn, sql, params) {
            Ok(_) => Ok(self.conn.affected_rows()),
            Err(first) => {
                if self.conn.ping().is_ok() {
                    return Err(first);
                }
                log::warn!("queue session lost ({first}); reconnecting to write the job row");
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                loop {
                    match db::connect(&self.opts) {
                        Ok(conn) => {
                            self.conn = conn;
                            db::query_text(&mut self.conn, sql, params)?;
                            return Ok(self.conn.affected_rows());
                        }
                        Err(e) if std::time::Instant::now() > deadline => return Err(e),
                        Err(_) => std::thread::sleep(Duration::from_secs(1)),
                    }
                }
            }
        }
    }

    /// Try to become the only worker of `task` (see the module docs). `false`: another run
    /// holds it.
    pub fn lock_task(&mut self, task: &str) -> Result<bool> {
        let v = self.rows("SELECT GET_LOCK(?, 0)", &[lock_name(task)])?;
        Ok(first_value(&v).as_deref() == Some("1"))
    }

    /// Release the lock of `task`.
    pub fn unlock_task(&mut self, task: &str) {
        if let Err(e) = self.rows("SELECT RELEASE_LOCK(?)", &[lock_name(task)]) {
            log::debug!("releasing the lock of task {task}: {e}");
        }
    }

    /// SQL condition of a row no agent has touched yet.
    fn pending_condition(&self) -> &'static str {
        match self.layout.variant {
            TableVariant::Legacy => "done=0 AND result IS NULL",
            _ => "done=0 AND state=0",
        }
    }

    /// With the task's lock held: fail the rows of `task` a previous run claimed but never
    /// finished (it was killed), saying `state` of the server (what the task may have left
    /// it in). Returns their ids.
    pub fn fail_abandoned(&mut self, task: &str, state: ServerState) -> Result<Vec<u64>> {
        let cond = match self.layout.variant {
            TableVariant::Legacy => "done=0 AND result IS NOT NULL",
            _ => "done=0 AND state IN (1,2)",
        };
        let ids = self.ids(
            &format!("SELECT id FROM {SCHEMA}.jobs WHERE task=? AND {cond} ORDER BY id"),
            task,
        )?;
        for id in &ids {
            self.finish(
                *id,
                &Ending::Failure(
                    JobError::internal(
                        "abandoned: the dbjobs run that claimed this job ended before finishing it (killed or crashed)",
                    )
                    .with_hint("submit the job again")
                    .with_state(state),
                ),
            )?;
        }
        Ok(ids)
    }

    fn ids(&mut self, sql: &str, task: &str) -> Result<Vec<u64>> {
        Ok(self
            .rows(sql, &[task.to_string()])?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .filter_map(|v| v.parse().ok())
            .collect())
    }

    /// With the task's lock held: the newest pending row of `task`, after marking the older
    /// pending rows superseded (replication-manager only wants the latest request).
    pub fn take_pending(&mut self, task: &str) -> Result<Option<JobRow>> {
        let cond = self.pending_condition();
        let rows = self.rows(
            &format!(
                "SELECT id, task, server, port FROM {SCHEMA}.jobs WHERE task=? AND {cond} ORDER BY id DESC"
            ),
            &[task.to_string()],
        )?;
        let mut rows = rows.into_iter().map(parse_job_row);
        let Some(newest) = rows.next().transpose()? else {
            return Ok(None);
        };
        for older in rows {
            let older = older?;
            self.finish(
                older.id,
                &Ending::Failure(
                    JobError::refused(format!("superseded by job {}", newest.id))
                        .with_state(ServerState::Untouched),
                ),
            )?;
            log::info!("job {} ({task}) superseded by job {}", older.id, newest.id);
        }
        Ok(Some(newest))
    }

    /// Mark a claimed row as running (outbound and local jobs, at once). `false`: the row is
    /// no longer pending (deleted or taken by a foreign agent), so the job must not run.
    pub fn mark_running(&mut self, id: u64) -> Result<bool> {
        let set = match self.layout.variant {
            TableVariant::Legacy => "result=?",
            _ => "state=1, result=?",
        };
        let cond = self.pending_condition();
        let n = self.write(
            &format!("UPDATE {SCHEMA}.jobs SET {set} WHERE id=? AND {cond}"),
            &[RESULT_PROCESSING.into(), id.to_string()],
        )?;
        Ok(n == 1)
    }

    /// Mark an inbound row as waiting for the sender: this is what makes replication-manager
    /// connect (legacy: `result='Waiting backup.'`; state: `state=2, result='waiting'`).
    pub fn mark_waiting(&mut self, id: u64) -> Result<bool> {
        let (set, text) = match self.layout.variant {
            TableVariant::Legacy => ("result=?", "Waiting backup."),
            _ => ("state=2, result=?", "waiting"),
        };
        let cond = self.pending_condition();
        let n = self.write(
            &format!("UPDATE {SCHEMA}.jobs SET {set} WHERE id=? AND {cond}"),
            &[text.into(), id.to_string()],
        )?;
        Ok(n == 1)
    }

    /// Write a progress text into `result` of a running row.
    ///
    /// Progress is best effort and must never hold up the job: the statement gives up at once
    /// when it would wait for a lock ([`PROGRESS_LOCK_WAIT`]; a running `mariadb-backup` holds
    /// the backup lock, which blocks writes to InnoDB tables), and a lost session is not
    /// reconnected here (the outcome write does that).
    pub fn progress(&mut self, id: u64, text: &str) -> Result<()> {
        let text = self.fit(text);
        self.rows(
            &format!(
                "SET STATEMENT lock_wait_timeout={PROGRESS_LOCK_WAIT}, innodb_lock_wait_timeout={PROGRESS_LOCK_WAIT} FOR \
                 UPDATE {SCHEMA}.jobs SET result=? WHERE id=? AND done=0"
            ),
            &[text, id.to_string()],
        )?;
        Ok(())
    }

    /// Record how a job ended, in the variant's form (PROTOCOL.md §3), with `end=NOW()`.
    pub fn finish(&mut self, id: u64, ending: &Ending) -> Result<()> {
        self.finish_where(id, ending, "TRUE").map(|_| ())
    }

    /// Fail a row only if no agent touched it yet (see [`Queue::unfinished`]); `false` when it
    /// was taken meanwhile.
    pub fn fail_if_pending(&mut self, id: u64, reason: &JobError) -> Result<bool> {
        let cond = self.pending_condition();
        Ok(self.finish_where(id, &Ending::Failure(reason.clone()), cond)? == 1)
    }

    fn finish_where(&mut self, id: u64, ending: &Ending, condition: &str) -> Result<u64> {
        let variant = self.layout.variant;
        let (sql, params) = match (ending, variant) {
            (Ending::Success { result, .. }, TableVariant::Legacy) => (
                "done=1, end=NOW(), result=?".to_string(),
                vec![self.fit(result)],
            ),
            (Ending::Failure(e), TableVariant::Legacy) => (
                "done=1, end=NOW(), result=?".to_string(),
                vec![self.fit(&e.result_text())],
            ),
            (Ending::Success { result, payload }, _) => match payload {
                Some(p) if variant == TableVariant::Payload => (
                    "state=3, done=1, end=NOW(), result=?, payload=?".to_string(),
                    vec![self.fit(result), p.clone()],
                ),
                _ => (
                    "state=3, done=1, end=NOW(), result=?".to_string(),
                    vec![self.fit(result)],
                ),
            },
            (Ending::Failure(e), _) => (
                "state=5, done=0, end=NOW(), result=?".to_string(),
                vec![self.fit(&e.result_text())],
            ),
        };
        let mut params = params;
        params.push(id.to_string());
        self.write(
            &format!("UPDATE {SCHEMA}.jobs SET {sql} WHERE id=? AND {condition}"),
            &params,
        )
    }

    /// Every row no agent has finished: `(id, task, seconds since start)`. In the state
    /// variants a failed row (state 5) waits with `done=0` for replication-manager to
    /// acknowledge it; it is finished for dbjobs and not listed. This is the one query of an
    /// idle pass.
    pub fn unfinished(&mut self) -> Result<Vec<Unfinished>> {
        let cond = match self.layout.variant {
            TableVariant::Legacy => "done=0",
            _ => "done=0 AND state<3",
        };
        Ok(self
            .rows(
                &format!(
                    "SELECT id, task, TIMESTAMPDIFF(SECOND, start, NOW()) FROM {SCHEMA}.jobs WHERE {cond}"
                ),
                &[],
            )?
            .into_iter()
            .filter_map(|r| {
                let id = r.first()?.as_ref()?.parse().ok()?;
                let task = r.get(1).cloned().flatten();
                let age = r.get(2).cloned().flatten().and_then(|a| a.parse().ok());
                Some(Unfinished { id, task, age })
            })
            .collect())
    }

    /// Cut `text` to the result column, keeping the end (where errors say what failed).
    fn fit(&self, text: &str) -> String {
        fit_result(
            text,
            self.layout.result_max_chars,
            self.layout.result_unicode,
        )
    }

    /// Insert a job the way replication-manager does: `(task, port, server, start=NOW())`. In
    /// the state variants (one row per task) the previous row of the task is deleted first,
    /// and a new row is refused while that one is still pending or running, as
    /// replication-manager refuses it.
    pub fn submit(&mut self, task: &str, server: Option<&str>, port: i64) -> Result<u64> {
        if self.layout.variant != TableVariant::Legacy {
            let busy = self.rows(
                &format!("SELECT id FROM {SCHEMA}.jobs WHERE task=? AND state<=3 AND done=0"),
                &[task.to_string()],
            )?;
            if let Some(id) = first_value(&busy) {
                return Err(Error::new(format!(
                    "job {id} of task {task} is still pending or running"
                ))
                .help("wait until it is finished, as replication-manager does"));
            }
            self.write(
                &format!("DELETE FROM {SCHEMA}.jobs WHERE task=?"),
                &[task.to_string()],
            )?;
        }
        let server_param = server.map(str::to_string);
        self.conn.exec_drop(
            format!(
                "INSERT INTO {SCHEMA}.jobs (task, port, server, start) VALUES (?, ?, ?, NOW())"
            ),
            (task, port, server_param),
        )?;
        Ok(self.conn.last_insert_id())
    }

    /// The `end` of row `id` as MariaDB prints it (`2026-03-01 10:04:05`), read back after
    /// [`Queue::finish`] wrote it with the server's clock: what an outcome kept in the state
    /// directory is matched to the row by (see `crate::outcomes`).
    pub fn end_of(&mut self, id: u64) -> Result<Option<String>> {
        let rows = self.rows(
            &format!("SELECT end FROM {SCHEMA}.jobs WHERE id=?"),
            &[id.to_string()],
        )?;
        Ok(first_value(&rows))
    }

    /// The newest `limit` rows, every column, as JSON objects (for `dbjobs jobs`).
    pub fn recent(
        &mut self,
        limit: u64,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
        let result = self.conn.query_iter(format!(
            "SELECT * FROM {SCHEMA}.jobs ORDER BY id DESC LIMIT {limit}"
        ))?;
        let mut out = Vec::new();
        for row in result {
            let row = row?;
            let columns = row.columns();
            let mut obj = serde_json::Map::new();
            for (i, value) in row.unwrap().into_iter().enumerate() {
                let name = columns[i].name_str().to_string();
                let v = match db::value_text(value) {
                    None => serde_json::Value::Null,
                    Some(s) => match name.as_str() {
                        "id" | "port" | "done" | "state" => s
                            .parse::<i64>()
                            .map(serde_json::Value::from)
                            .unwrap_or(serde_json::Value::String(s)),
                        _ => serde_json::Value::String(s),
                    },
                };
                obj.insert(name, v);
            }
            out.push(obj);
        }
        Ok(out)
    }
}

/// The named lock of a task (`GET_LOCK` names are at most 64 characters; tasks at most 20).
fn lock_name(task: &str) -> String {
    format!("dbjobs.{task}")
}

fn first_value(rows: &[TextRow]) -> Option<String> {
    rows.first().and_then(|r| r.first().cloned().flatten())
}

fn parse_job_row(row: TextRow) -> Result<JobRow> {
    let mut it = row.into_iter();
    let id = it
        .next()
        .flatten()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::new("job row without an id"))?;
    let task = it.next().flatten().unwrap_or_default();
    let server = it.next().flatten();
    // An INT column always parses; anything else is reported by validation as out of range.
    let port = it
        .next()
        .flatten()
        .map(|p| p.trim().parse::<i64>().unwrap_or(i64::MIN));
    Ok(JobRow {
        id,
        task,
        server,
        port,
    })
}

/// Create the schema and the legacy table when missing, then read the layout.
pub fn ensure_table(conn: &mut Conn) -> Result<TableLayout> {
    let create = |conn: &mut Conn| -> std::result::Result<(), mysql::Error> {
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {SCHEMA}"))?;
        conn.query_drop(CREATE_LEGACY_TABLE)
    };
    let mut layout = detect_layout(conn)?;
    if layout.is_none() {
        create(conn).map_err(|e| {
            Error::new(format!("cannot create {SCHEMA}.jobs: {e}"))
                .help("grant the dbjobs user CREATE on replication_manager_schema, or let replication-manager create it")
        })?;
        log::info!("created {SCHEMA}.jobs (legacy layout)");
        layout = detect_layout(conn)?;
    }
    layout.ok_or_else(|| Error::new(format!("{SCHEMA}.jobs is still missing after creating it")))
}

/// Read the layout of the table from `information_schema`; `None` when it does not exist.
pub fn detect_layout(conn: &mut Conn) -> Result<Option<TableLayout>> {
    // Constant text, no placeholder: one round trip instead of prepare, execute and close.
    let rows = db::query_text(
        conn,
        &format!(
            "SELECT COLUMN_NAME, CHARACTER_MAXIMUM_LENGTH, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA='{SCHEMA}' AND TABLE_NAME='jobs'"
        ),
        &[],
    )?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut has_state = false;
    let mut has_payload = false;
    let mut result_max_chars = 1000;
    let mut result_unicode = true;
    for row in rows {
        let name = row[0].clone().unwrap_or_default().to_ascii_lowercase();
        match name.as_str() {
            "state" => has_state = true,
            "payload" => has_payload = true,
            "result" => {
                if let Some(n) = row[1].as_deref().and_then(|v| v.parse::<usize>().ok()) {
                    // MEDIUMTEXT reports 16 MiB; a job result has no business being that big.
                    result_max_chars = n.min(65_535);
                }
                let charset = row[2].clone().unwrap_or_default();
                result_unicode = charset.starts_with("utf8");
            }
            _ => {}
        }
    }
    let variant = match (has_state, has_payload) {
        (true, true) => TableVariant::Payload,
        (true, false) => TableVariant::State,
        (false, _) => TableVariant::Legacy,
    };
    Ok(Some(TableLayout {
        variant,
        result_max_chars,
        result_unicode,
    }))
}

/// Cut `text` to `max` characters keeping the end, prefixed with `...` when cut (a column
/// of fewer than 3 characters gets as many dots as it holds); replace non-ASCII characters
/// when the column cannot store them.
pub fn fit_result(text: &str, max: usize, unicode: bool) -> String {
    let text: String = if unicode {
        text.to_string()
    } else {
        text.chars()
            .map(|c| if c.is_ascii() { c } else { '?' })
            .collect()
    };
    let n = text.chars().count();
    if n <= max {
        return text;
    }
    const MARK: &str = "...";
    if max <= MARK.len() {
        return MARK[..max].to_string();
    }
    let tail: String = text.chars().skip(n - (max - MARK.len())).collect();
    format!("{MARK}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_their_end() {
        assert_eq!(fit_result("short", 10, true), "short");
        let long = format!("{}END", "x".repeat(2000));
        let cut = fit_result(&long, 1000, true);
        assert_eq!(cut.chars().count(), 1000);
        assert!(cut.starts_with("..."));
        assert!(cut.ends_with("xEND"));
        assert_eq!(fit_result("caf\u{e9}", 10, false), "caf?");
        // Every width fits exactly, down to a column of no character.
        for max in 0..=6 {
            let cut = fit_result("failed: a long message", max, true);
            assert_eq!(cut.chars().count(), max, "{max}: {cut:?}");
        }
        assert_eq!(fit_result("abcdef", 4, true), "...f");
        assert_eq!(fit_result("ab", 2, true), "ab");
    }

    #[test]
    fn lock_names_fit_get_lock() {
        assert!(lock_name(&"t".repeat(20)).len() <= 64);
    }
}
