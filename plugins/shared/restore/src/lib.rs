//! Reseed and flashback: receive a stream from replication-manager and restore it.
//!
//! Both inbound families do the same work on the node (PROTOCOL.md §2): listen on the row's
//! port, accept replication-manager's one connection, receive a backup and restore it into
//! the local server. Reseed rebuilds the node from another node's backup, flashback restores
//! the node's own older backup; only the wording of logs and results differs ([`Intent`]).
//! The backup format follows from the task name ([`Method`]): `*mysqldump` is a gzip'd SQL
//! dump ([`logical`]), `*xtrabackup`/`*mariabackup` an xbstream ([`physical`]).
//!
//! [`run`] is the whole job: a private staging directory ([`staging_dir`]), the accepted
//! connection ([`receive::accept`]), then the restore of the matching method. The staging
//! directory is removed when the job ends, successful or not.

pub mod logical;
pub mod physical;
pub mod receive;
pub mod settings;
pub mod xbstream;

use std::path::PathBuf;

use dbjobs_sdk::{Host, Job, JobError, Outcome};

pub use settings::{Mode, RestoreSettings};

/// Every setting the restore engine reads, for the plugins' declarations.
pub fn declared_settings() -> Vec<dbjobs_sdk::SettingDecl> {
    [
        RestoreSettings::DECLS,
        dbjobs_kit::tool::BackupToolSettings::DECLS,
        dbjobs_kit::service::ServiceSettings::DECLS,
    ]
    .concat()
}

/// Transitional: most of the engine's internal errors are still text, to be typed phase by
/// phase; errors of the kit and the host become text where the engine calls them.
pub(crate) trait Text<T> {
    /// The error as text.
    fn text(self) -> Result<T, String>;
}

impl<T> Text<T> for Result<T, JobError> {
    fn text(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Why the node restores a backup. The work is the same; logs and results say which it was,
/// so an operator reading the row knows whether the node was rebuilt from another node
/// (reseed) or rolled back to its own backup (flashback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// `reseed*` tasks: rebuild from the master's (or backup server's) backup.
    Reseed,
    /// `flashback*` tasks: restore the node's own last backup.
    Flashback,
}

impl Intent {
    /// `reseed` or `flashback`, for results and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Reseed => "reseed",
            Intent::Flashback => "flashback",
        }
    }
}

/// How the backup is restored, which follows from what replication-manager sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// A gzip'd SQL dump (`*mysqldump`), replayed through the `mariadb` client.
    Logical,
    /// An xbstream of a physical backup (`*xtrabackup`, `*mariabackup`).
    Physical,
}

/// The restore method of an inbound task name, or `None` for a task that is not a restore.
/// Matching on the suffix keeps `reseed` and `flashback` (and any future prefix) in one place.
pub fn method_of(task: &str) -> Option<Method> {
    let t = task.to_ascii_lowercase();
    if t.ends_with("mysqldump") {
        Some(Method::Logical)
    } else if t.ends_with("xtrabackup") || t.ends_with("mariabackup") {
        Some(Method::Physical)
    } else {
        None
    }
}

/// Run one reseed or flashback job: staging directory, accept the sender, restore.
///
/// The staging directory is removed afterwards whatever happened: it may hold a full copy of
/// the data, which must not pile up after failed attempts.
pub fn run(intent: Intent, job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
    run_text(intent, job, host).map_err(|e| JobError::new(dbjobs_sdk::ErrorKind::Internal, e))
}

fn run_text(intent: Intent, job: &Job, host: &Host<'_>) -> Result<Outcome, String> {
    let method = method_of(&job.task).ok_or_else(|| {
        format!(
            "task {:?} is not a restore task (expected a name ending in mysqldump, xtrabackup or mariabackup)",
            job.task
        )
    })?;
    let staging = staging_dir(host, job)?;
    let _cleanup = RemoveOnDrop(staging.clone());
    host.info(&format!(
        "{} job {}: staging in {}",
        intent.as_str(),
        job.id,
        staging.display()
    ));
    let received = receive::accept(job, host)?;
    match method {
        Method::Logical => logical::restore(host, job, intent, received, &staging),
        Method::Physical => {
            let mut stream = received.stream;
            physical::restore(host, job, intent, &mut stream, &staging)
        }
    }
}

/// The job's private staging directory: `<backup_dir>/job-<id>`, where the setting
/// `backup_dir` defaults to `<@@datadir>/.system/backup` as in the shipped bash agent (the same
/// file system as the datadir, so a physical restore can move files instead of copying them).
///
/// The directory is created mode 0700 (it will hold a copy of the data) and emptied first if a
/// crashed earlier attempt left it behind. [`run`] removes it when the job ends.
pub fn staging_dir(host: &Host<'_>, job: &Job) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let configured = RestoreSettings::read(host).text()?.backup_dir;
    let base = match Some(configured).filter(|s| !s.trim().is_empty()) {
        Some(dir) => PathBuf::from(dir.trim()),
        None => {
            let datadir = host
                .query_value("SELECT @@datadir", &[])
                .map_err(|e| {
                    format!(
                        "cannot read @@datadir to place the backup directory: {e}; set backup_dir"
                    )
                })?
                .ok_or("the server reports no @@datadir; set backup_dir")?;
            PathBuf::from(datadir).join(".system").join("backup")
        }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&base)
        .map_err(|e| {
            format!(
                "cannot create the backup directory {}: {e}; create it or set backup_dir",
                base.display()
            )
        })?;
    let dir = base.join(format!("job-{}", job.id));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| {
            format!(
                "cannot remove {} left by an earlier attempt: {e}",
                dir.display()
            )
        })?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create the staging directory {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Removes a directory tree when dropped (the staging directory of a job).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_follow_the_task_suffix() {
        assert_eq!(method_of("reseedmysqldump"), Some(Method::Logical));
        assert_eq!(method_of("flashbackmysqldump"), Some(Method::Logical));
        assert_eq!(method_of("reseedxtrabackup"), Some(Method::Physical));
        assert_eq!(method_of("flashbackmariabackup"), Some(Method::Physical));
        assert_eq!(method_of("optimize"), None);
    }
}
