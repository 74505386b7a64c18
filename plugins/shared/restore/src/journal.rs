//! The journal of a restore: what a run that dies leaves for the next one to finish or roll
//! back.
//!
//! Two files per restore job in `<state_dir>/restore/`:
//! * `job-<id>.lock` is taken (`flock`) by the run when the job starts ([`JobLock::take`])
//!   and held until it ends; the kernel lets go of it when the process dies, so a lock that
//!   can be taken belongs to a dead run. It names the job's task and staging directory, so
//!   the recovery also cleans up after a run that died before it changed anything.
//! * `job-<id>.json` ([`JournalRecord`]) is written before the first change to the live
//!   server ([`Journal::begin`]) and again at every phase boundary ([`Journal::record`]):
//!   written aside, fsynced, renamed over the last one and the directory fsynced, so after
//!   a crash it is either the previous record or the new one, never a torn one.
//!
//! [`crate::recover`] reads both at the next start.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use dbjobs_kit::private::create_private_dir;
use dbjobs_sdk::{Host, JobError};
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::physical::catalog::ObjectDef;
use crate::shadow::names::ShadowSet;

/// Where a restore stands, as its journal says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JournalPhase {
    /// The shadow databases are being built; the live data is untouched.
    Building,
    /// The one `RENAME TABLE` is about to run (or ran: the server says which).
    Switching,
    /// The live names hold the backup's tables; the objects are being created.
    Switched,
    /// Everything is in place; the old tables are being dropped.
    ObjectsCreated,
    /// Full mode: the server is stopped and its datadir is being replaced.
    FullReplacing,
}

impl JournalPhase {
    /// The phase's name in logs and results.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalPhase::Building => "building the shadow databases",
            JournalPhase::Switching => "switching",
            JournalPhase::Switched => "creating the objects after the switch",
            JournalPhase::ObjectsCreated => "dropping the old tables",
            JournalPhase::FullReplacing => "replacing the datadir (full mode)",
        }
    }
}

/// How the objects of the backup (views, triggers, routines, events, sequence values) are
/// created after the switch, kept so that a recovery can create them again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AfterSwitch {
    /// A physical restore's catalog, as JSON ([`crate::physical::catalog::Catalog`]).
    Catalog(PathBuf),
    /// A logical restore's SQL script, replayed through the `mariadb` client.
    Script(PathBuf),
}

/// Full mode: where the live datadir was moved, to be put back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullMove {
    /// The live datadir.
    pub datadir: PathBuf,
    /// Where the live datadir's content waits while the backup's is in place.
    pub old: PathBuf,
}

/// The journal's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The job.
    pub job_id: u64,
    /// Its task, for the recovery of the plugin that owns it.
    pub task: String,
    /// The phase reached.
    pub phase: JournalPhase,
    /// The databases being replaced, their shadow and old names.
    pub set: ShadowSet,
    /// Databases the restore created on the live server (absent before): dropped again
    /// when the restore is rolled back.
    #[serde(default)]
    pub created_live: Vec<String>,
    /// The live triggers the switch drops (a table with triggers cannot move to another
    /// database), put back when a run died before its `RENAME`.
    #[serde(default)]
    pub live_triggers: Vec<ObjectDef>,
    /// The replication connections the restore stopped, started again on a rollback.
    #[serde(default)]
    pub stopped_replication: Vec<String>,
    /// How the objects are created after the switch.
    pub after_switch: Option<AfterSwitch>,
    /// The backup's GTID, for the recovery's result.
    #[serde(default)]
    pub gtid: String,
    /// Full mode: the datadirs.
    #[serde(default)]
    pub full: Option<FullMove>,
}

/// The directory of journals and locks: `<state_dir>/restore`.
pub fn journal_dir(host: &Host<'_>) -> Result<PathBuf, JobError> {
    Ok(dbjobs_kit::server::state_dir(host)?.join("restore"))
}

/// A file kept beside job `job_id`'s journal (`job-<id>.<name>`): what a recovery needs and
/// the staging directory does not outlive, e.g. the catalog or the objects script the
/// objects are created from after the switch. Removed by [`Journal::done`].
pub fn side_file(host: &Host<'_>, job_id: u64, name: &str) -> Result<PathBuf, JobError> {
    let dir = journal_dir(host)?;
    create_private_dir(&dir)?;
    Ok(dir.join(format!("job-{job_id}.{name}")))
}

/// The lock a restore run holds for its job while it lives (see the module docs).
#[derive(Debug)]
pub struct JobLock {
    file: File,
    path: PathBuf,
}

/// What a lock file says about its job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The job.
    pub job_id: u64,
    /// Its task.
    pub task: String,
    /// Its staging directory.
    pub staging: PathBuf,
}

impl JobLock {
    /// Take the lock of job `info.job_id` in `dir`, or fail when another live run holds it.
    pub fn take(dir: &Path, info: &LockInfo) -> Result<JobLock, JobError> {
        create_private_dir(dir)?;
        let lock = Self::try_take(dir, info.job_id)?.ok_or_else(|| {
            JobError::refused(format!(
                "another dbjobs process is restoring job {} right now",
                info.job_id
            ))
        })?;
        let text = serde_json::to_vec(info).map_err(|e| JobError::internal(e.to_string()))?;
        (&lock.file)
            .write_all(&text)
            .and_then(|()| lock.file.set_len(text.len() as u64))
            .and_then(|()| lock.file.sync_all())
            .map_err(|e| JobError::io(format!("cannot write {}: {e}", lock.path.display())))?;
        Ok(lock)
    }

    /// Take the lock of job `job_id` if no live run holds it (`None` when one does).
    pub fn try_take(dir: &Path, job_id: u64) -> Result<Option<JobLock>, JobError> {
        let path = dir.join(format!("job-{job_id}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| JobError::io(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        Ok((rc == 0).then_some(JobLock { file, path }))
    }

    /// What the lock file says, if it says anything readable.
    pub fn info(&self) -> Option<LockInfo> {
        serde_json::from_slice(&fs::read(&self.path).ok()?).ok()
    }

    /// The job is over: remove the lock file (while still holding it).
    pub fn release(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The ids of the jobs with a lock file or a journal in `dir`.
pub fn locked_jobs(dir: &Path) -> Vec<u64> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ids: Vec<u64> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_prefix("job-")?;
            let id = rest
                .strip_suffix(".lock")
                .or_else(|| rest.strip_suffix(".json"))?;
            id.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A restore's journal, kept on disk from [`Journal::begin`] to [`Journal::done`].
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    record: RefCell<JournalRecord>,
}

impl Journal {
    /// Write the journal of `record` (phase as given) before the first change to the live
    /// server, and announce that change (`what`) to the context: from here a failure is
    /// not "untouched" unless the restore says so.
    pub fn begin(
        ctx: &Context<'_, '_>,
        record: JournalRecord,
        what: &str,
    ) -> Result<Journal, JobError> {
        let journal = Journal {
            path: journal_dir(ctx.host)?.join(format!("job-{}.json", record.job_id)),
            record: RefCell::new(record),
        };
        journal.write()?;
        ctx.changes.begin(ctx.host, what)?;
        Ok(journal)
    }

    /// Read the journal of job `job_id` in `dir`, `None` when there is none.
    pub fn open(dir: &Path, job_id: u64) -> Result<Option<Journal>, JobError> {
        let path = dir.join(format!("job-{job_id}.json"));
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(JobError::io(format!("cannot read {}: {e}", path.display()))),
        };
        let record = serde_json::from_slice(&text).map_err(|e| {
            JobError::bad_input(format!("the journal {} is unreadable: {e}", path.display()))
                .with_hint("look at the databases named #dbjobs... and remove the file by hand")
        })?;
        Ok(Some(Journal {
            path,
            record: RefCell::new(record),
        }))
    }

    /// The record as it is now.
    pub fn record(&self) -> JournalRecord {
        self.record.borrow().clone()
    }

    /// Change the record (`change`) and write it, fsynced, before going on.
    pub fn update(&self, change: impl FnOnce(&mut JournalRecord)) -> Result<(), JobError> {
        change(&mut self.record.borrow_mut());
        self.write()
    }

    /// A phase boundary: record `phase`, fsynced.
    pub fn enter(&self, phase: JournalPhase) -> Result<(), JobError> {
        self.update(|r| r.phase = phase)
    }

    /// The restore is over (finished or rolled back): remove the journal.
    pub fn done(&self) {
        if let Some(AfterSwitch::Catalog(f) | AfterSwitch::Script(f)) =
            &self.record.borrow().after_switch
        {
            let _ = fs::remove_file(f);
        }
        let _ = fs::remove_file(&self.path);
        sync_dir(self.path.parent());
    }

    /// Write aside, fsync, rename over, fsync the directory.
    fn write(&self) -> Result<(), JobError> {
        let text = serde_json::to_vec_pretty(&*self.record.borrow())
            .map_err(|e| JobError::internal(format!("cannot encode the journal: {e}")))?;
        let dir = self.path.parent().expect("a journal path has a directory");
        create_private_dir(dir)?;
        let aside = self.path.with_extension("json.new");
        let io = |e: std::io::Error| {
            JobError::io(format!(
                "cannot write the journal {}: {e}",
                self.path.display()
            ))
            .with_hint("the state directory (setting state_dir) must be writable and have room")
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&aside)
            .map_err(io)?;
        f.write_all(&text).and_then(|()| f.sync_all()).map_err(io)?;
        fs::rename(&aside, &self.path).map_err(io)?;
        sync_dir(Some(dir));
        Ok(())
    }
}

/// fsync a directory, so a rename or removal in it survives a crash.
fn sync_dir(dir: Option<&Path>) {
    if let Some(d) = dir.and_then(|d| File::open(d).ok()) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_cannot_be_taken_twice_and_its_info_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let info = LockInfo {
            job_id: 7,
            task: "reseedmariabackup".into(),
            staging: "/s/job-7".into(),
        };
        let held = JobLock::take(dir.path(), &info).unwrap();
        assert!(JobLock::try_take(dir.path(), 7).unwrap().is_none());
        assert!(JobLock::take(dir.path(), &info).is_err());
        assert_eq!(held.info(), Some(info));
        assert_eq!(locked_jobs(dir.path()), vec![7]);
        drop(held);
        let again = JobLock::try_take(dir.path(), 7)
            .unwrap()
            .expect("free after drop");
        again.release();
        assert!(locked_jobs(dir.path()).is_empty());
        // A journal whose lock file was removed is found too.
        fs::write(dir.path().join("job-9.json"), b"{}").unwrap();
        assert_eq!(locked_jobs(dir.path()), vec![9]);
    }

    #[test]
    fn the_record_round_trips_through_json() {
        let record = JournalRecord {
            job_id: 3,
            task: "reseedmysqldump".into(),
            phase: JournalPhase::Switched,
            set: ShadowSet::new(3, vec!["app".into(), "my db".into()]),
            created_live: vec!["my db".into()],
            live_triggers: Vec::new(),
            stopped_replication: vec![String::new()],
            after_switch: Some(AfterSwitch::Script("/s/objects.sql".into())),
            gtid: "0-1-5".into(),
            full: None,
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(
            serde_json::from_str::<JournalRecord>(&text).unwrap(),
            record
        );
    }
}
