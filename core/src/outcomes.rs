//! How finished jobs ended, kept in the state directory: the typed facts (kind, the server's
//! state, hint) that the job table's `result` text only spells out.
//!
//! The table has no column for them and belongs to replication-manager, so the host keeps a
//! record per finished job (`outcomes.jsonl` in `state_dir`, the last [`KEEP`]) and
//! `dbjobs jobs --json` adds `kind` and `server_state` to the rows it matches. A record
//! matches a row by id, task and `end` together: replication-manager deletes rows and inserts
//! new ones, which may get an id an older job had.

use std::path::Path;

use dbjobs_sdk::{JobError, ServerState};
use serde_json::{json, Map, Value};

use crate::error::Result;
use crate::node_state::{self, PartialMark};
use crate::queue::Ending;
use crate::state_dir::{now_text, StateDir};

/// How many records the file keeps (the newest).
pub const KEEP: usize = 1000;

const FILE: &str = "outcomes.jsonl";

/// How one job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRecord {
    /// The row's id.
    pub id: u64,
    /// The task.
    pub task: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The error's kind (`config`, `network`, ...); `None` for a success.
    pub kind: Option<String>,
    /// What a failure left the server in (`untouched`, `partial`, ...); `None` for a success.
    pub server_state: Option<String>,
    /// The result text of a success, the error's message of a failure.
    pub message: String,
    /// What to do, when the error says.
    pub hint: Option<String>,
    /// The row's `end` as the server wrote it (`2026-03-01 10:04:05`), to match the row.
    pub end: Option<String>,
    /// When the host recorded it (RFC 3339, UTC).
    pub recorded_at: String,
}

impl OutcomeRecord {
    /// The record of job `id` of `task` that ended with `ending` at the row's `end`.
    pub fn new(id: u64, task: &str, ending: &Ending, end: Option<String>) -> Self {
        let (ok, kind, server_state, message, hint) = match ending {
            Ending::Success { result, .. } => (true, None, None, result.clone(), None),
            Ending::Failure(e) => (
                false,
                Some(e.kind.as_str().to_string()),
                Some(e.state.as_str().to_string()),
                e.message.clone(),
                e.hint.clone(),
            ),
        };
        OutcomeRecord {
            id,
            task: task.to_string(),
            ok,
            kind,
            server_state,
            message,
            hint,
            end,
            recorded_at: now_text(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "task": self.task,
            "ok": self.ok,
            "kind": self.kind,
            "server_state": self.server_state,
            "message": self.message,
            "hint": self.hint,
            "end": self.end,
            "recorded_at": self.recorded_at,
        })
    }

    fn from_json(v: &Value) -> Option<Self> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(OutcomeRecord {
            id: v.get("id")?.as_u64()?,
            task: text("task")?,
            ok: v.get("ok")?.as_bool()?,
            kind: text("kind"),
            server_state: text("server_state"),
            message: text("message").unwrap_or_default(),
            hint: text("hint"),
            end: text("end"),
            recorded_at: text("recorded_at").unwrap_or_default(),
        })
    }
}

/// The outcome records of one state directory.
pub struct OutcomeStore {
    dir: StateDir,
    keep: usize,
}

impl OutcomeStore {
    /// The records in `state_dir`, keeping the newest [`KEEP`].
    pub fn new(state_dir: &Path) -> Self {
        Self::keeping(state_dir, KEEP)
    }

    /// The records in `state_dir`, keeping the newest `keep`.
    pub fn keeping(state_dir: &Path, keep: usize) -> Self {
        OutcomeStore {
            dir: StateDir::new(state_dir),
            keep,
        }
    }

    /// Add `record`, keeping the newest ones (see [`OutcomeStore::keeping`]).
    pub fn record(&self, record: &OutcomeRecord) -> Result<()> {
        let _lock = self.dir.lock(FILE)?;
        let mut records = self.load()?;
        records.push(record.clone());
        let skip = records.len().saturating_sub(self.keep);
        let mut text = String::new();
        for r in &records[skip..] {
            text.push_str(&r.to_json().to_string());
            text.push('\n');
        }
        self.dir.write(FILE, text.as_bytes())
    }

    /// Every record, oldest first; a line that does not parse is skipped.
    pub fn load(&self) -> Result<Vec<OutcomeRecord>> {
        let text = self.dir.read(FILE)?.unwrap_or_default();
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|v| OutcomeRecord::from_json(&v))
            .collect())
    }
}

/// Add `kind` and `server_state` to every row of `dbjobs jobs` that has a failed outcome on
/// record (same id, task and end; the newest record wins).
pub fn annotate(rows: &mut [Map<String, Value>], records: &[OutcomeRecord]) {
    for row in rows.iter_mut() {
        let id = row.get("id").and_then(Value::as_u64);
        let task = row.get("task").and_then(Value::as_str);
        let end = row.get("end").and_then(Value::as_str);
        let found = records
            .iter()
            .rev()
            .find(|r| Some(r.id) == id && Some(r.task.as_str()) == task && r.end.as_deref() == end);
        if let Some(r) = found.filter(|r| !r.ok) {
            row.insert("kind".into(), json!(r.kind));
            row.insert("server_state".into(), json!(r.server_state));
        }
    }
}

/// After the queue recorded a job's ending in its row (whose `end` the server wrote as
/// `end`): keep the outcome, and mark the node partial when the job left it so. Failures
/// here are logged, never the job's: the row is written already.
pub fn record_ending(state_dir: &Path, id: u64, task: &str, ending: &Ending, end: Option<String>) {
    let record = OutcomeRecord::new(id, task, ending, end);
    if let Err(e) = OutcomeStore::new(state_dir).record(&record) {
        log::error!("job {id} ({task}): outcome not kept: {e}");
    }
    if let Ending::Failure(e) = ending {
        mark_if_partial(state_dir, id, task, e);
    }
}

/// Mark the node partial when `e` says job `id` of `task` left it so (also used by the
/// recovery at start-up, for a dead job's outcome).
pub fn mark_if_partial(state_dir: &Path, id: u64, task: &str, e: &JobError) {
    if e.state != ServerState::Partial {
        return;
    }
    let mark = PartialMark {
        job_id: id,
        task: task.to_string(),
        time: now_text(),
        message: e.message.clone(),
    };
    match node_state::mark(state_dir, &mark) {
        Ok(()) => log::error!(
            "job {id} ({task}) left the node partial: restores are refused until an operator checks the data and runs `dbjobs clear-partial`"
        ),
        Err(err) => log::error!(
            "job {id} ({task}) left the node partial, but the mark could not be written, so restores are NOT refused: {err}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(id: u64, end: &str) -> OutcomeRecord {
        let e = JobError::bad_input("cut")
            .with_hint("send again")
            .with_state(ServerState::RolledBack);
        OutcomeRecord::new(id, "t", &Ending::Failure(e), Some(end.to_string()))
    }

    #[test]
    fn records_are_kept_bounded_newest_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = OutcomeStore::keeping(dir.path(), 10);
        assert!(store.load().unwrap().is_empty());
        for id in 0..15 {
            store.record(&failure(id, "2026-01-01 00:00:00")).unwrap();
        }
        let all = store.load().unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0].id, 5);
        let newest = all.last().unwrap();
        assert_eq!((newest.id, newest.ok), (14, false));
        assert_eq!(newest.hint.as_deref(), Some("send again"));
    }

    #[test]
    fn rows_get_kind_and_state_only_when_id_task_and_end_match() {
        let records = vec![failure(7, "2026-01-01 00:00:09")];
        let row = |id: u64, task: &str, end: &str| {
            json!({"id": id, "task": task, "end": end})
                .as_object()
                .unwrap()
                .clone()
        };
        let mut rows = vec![
            row(7, "t", "2026-01-01 00:00:09"),
            row(7, "t", "2026-02-02 00:00:00"),
            row(7, "other", "2026-01-01 00:00:09"),
        ];
        annotate(&mut rows, &records);
        assert_eq!(rows[0]["kind"], "bad_input");
        assert_eq!(rows[0]["server_state"], "rolled_back");
        assert!(!rows[1].contains_key("kind") && !rows[2].contains_key("kind"));
    }
}
