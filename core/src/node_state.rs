//! Whether this node's data can be trusted: the mark a job leaves when it failed with the
//! server [`dbjobs_sdk::ServerState::Partial`].
//!
//! A restore that stopped half-way and could not put the old data back leaves a server that
//! answers queries but holds part of the old data and part of the new. Restoring over it
//! again would bury what an operator needs to look at, so while the mark exists
//! (`partial.json` in `state_dir`: job id, task, time, message) the host refuses every task
//! declared to replace the server's data (`PluginInfo::restore_task`: reseed, flashback),
//! before its plugin runs or anything listens. `dbjobs clear-partial` removes the mark once
//! the operator has checked the data; `dbjobs jobs` shows it.

use std::path::Path;

use dbjobs_sdk::{JobError, ServerState};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::loader::Task;
use crate::state_dir::StateDir;

const MARK: &str = "partial.json";

/// The job that left the node partial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialMark {
    /// Its id.
    pub job_id: u64,
    /// Its task.
    pub task: String,
    /// When it failed (RFC 3339, UTC).
    pub time: String,
    /// Its error message.
    pub message: String,
}

impl PartialMark {
    /// `job 12 (reseedmysqldump, 2026-03-01T10:04:05Z: <message>)`.
    pub fn describe(&self) -> String {
        format!(
            "job {} ({}, {}: {})",
            self.job_id, self.task, self.time, self.message
        )
    }

    fn from_json(text: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(text).ok()?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(PartialMark {
            job_id: v.get("job_id")?.as_u64()?,
            task: text("task")?,
            time: text("time").unwrap_or_default(),
            message: text("message").unwrap_or_default(),
        })
    }
}

/// The mark, if the node has one. A mark file that cannot be read or parsed is an error
/// (the caller must not take it for "no mark").
pub fn read(state_dir: &Path) -> Result<Option<PartialMark>> {
    let dir = StateDir::new(state_dir);
    match dir.read(MARK)? {
        None => Ok(None),
        Some(text) => PartialMark::from_json(&text).map(Some).ok_or_else(|| {
            Error::new(format!(
                "{} is not a partial mark dbjobs can read",
                dir.file(MARK).display()
            ))
            .help("check the data, then remove it with dbjobs clear-partial")
        }),
    }
}

/// Mark the node partial. An existing mark is kept: the node has been partial since that
/// job, and its message is what the operator must see first.
pub fn mark(state_dir: &Path, mark: &PartialMark) -> Result<()> {
    let dir = StateDir::new(state_dir);
    let _lock = dir.lock(MARK)?;
    if let Some(earlier) = read(state_dir).ok().flatten() {
        log::warn!(
            "the node was already left partial by {}; the mark keeps that job",
            earlier.describe()
        );
        return Ok(());
    }
    let text = json!({
        "job_id": mark.job_id,
        "task": mark.task,
        "time": mark.time,
        "message": mark.message,
    });
    dir.write(MARK, format!("{text}\n").as_bytes())
}

/// Remove the mark; the mark removed (`None`: there was none). An unreadable mark file is
/// removed too.
pub fn clear(state_dir: &Path) -> Result<Option<Result<PartialMark>>> {
    let dir = StateDir::new(state_dir);
    let _lock = dir.lock(MARK)?;
    let found = match read(state_dir) {
        Ok(None) => return Ok(None),
        Ok(Some(mark)) => Ok(mark),
        Err(e) => Err(e),
    };
    dir.remove(MARK)?;
    Ok(Some(found))
}

/// The refusal of `task` while the node is marked partial: `None` for a task that does not
/// replace data, or when there is no mark.
pub fn refusal(state_dir: &Path, task: &Task) -> Option<JobError> {
    if !task.replaces_data {
        return None;
    }
    let left_by = match read(state_dir) {
        Ok(None) => return None,
        Ok(Some(mark)) => mark.describe(),
        Err(e) => format!("a job; its mark cannot be read: {}", e.message),
    };
    Some(
        JobError::refused(format!("this node was left partial by {left_by}"))
            .with_hint("check the data, then run dbjobs clear-partial")
            .with_state(ServerState::Untouched),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbjobs_sdk::Direction;

    fn task(replaces_data: bool) -> Task {
        Task {
            name: "reseedmysqldump".into(),
            direction: Direction::Inbound,
            description: String::new(),
            replaces_data,
        }
    }

    #[test]
    fn a_mark_refuses_restores_only_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(refusal(dir.path(), &task(true)), None);
        let first = PartialMark {
            job_id: 12,
            task: "partial".into(),
            time: "2026-03-01T10:04:05Z".into(),
            message: "half-way".into(),
        };
        mark(dir.path(), &first).unwrap();
        mark(
            dir.path(),
            &PartialMark {
                job_id: 13,
                ..first.clone()
            },
        )
        .unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(first.clone()));
        assert_eq!(refusal(dir.path(), &task(false)), None);
        let e = refusal(dir.path(), &task(true)).unwrap();
        assert_eq!(
            e.result_text(),
            "failed, server untouched: this node was left partial by job 12 (partial, 2026-03-01T10:04:05Z: half-way) - hint: check the data, then run dbjobs clear-partial"
        );
        assert_eq!(clear(dir.path()).unwrap().unwrap().unwrap(), first);
        assert!(clear(dir.path()).unwrap().is_none());
        assert_eq!(refusal(dir.path(), &task(true)), None);
    }

    #[test]
    fn an_unreadable_mark_still_refuses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MARK), "garbage").unwrap();
        assert!(read(dir.path()).is_err());
        let e = refusal(dir.path(), &task(true)).unwrap();
        assert!(e.message.contains("cannot be read"), "{e}");
        assert!(clear(dir.path()).unwrap().unwrap().is_err());
        assert!(read(dir.path()).unwrap().is_none());
    }
}
