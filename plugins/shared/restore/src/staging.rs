//! The job's private staging directory: where a received backup waits to be restored.
//!
//! `<backup_dir>/job-<id>`, where the setting `backup_dir` defaults to
//! `<datadir>/#sql-dbjobs-staging`: the same file system as the datadir, so a physical
//! restore moves files instead of copying them, under a name the server skips when it
//! lists databases (it takes `#sql...` entries for its own temporary files), so it never
//! shows up as a database nor makes information_schema scans log "Invalid (old?) table or
//! database name", as the bash agent's `<datadir>/.system/backup` did. The directory is
//! created mode 0700 (it holds a copy of the data), emptied first if a crashed attempt left
//! it behind, and removed when the [`Staging`] is dropped, whatever happened: a full copy of
//! the data must not pile up after failed attempts.

use std::path::{Path, PathBuf};

use dbjobs_kit::private::create_private_dir;
use dbjobs_kit::server::ServerFacts;
use dbjobs_sdk::JobError;

use crate::settings::RestoreSettings;

/// The default staging directory's name inside the datadir.
pub const DEFAULT_SUBDIR: &str = "#sql-dbjobs-staging";

/// A job's staging directory, removed on drop.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Create the staging directory of job `job_id` (see the module documentation).
    pub fn create(
        settings: &RestoreSettings,
        facts: &ServerFacts,
        job_id: u64,
    ) -> Result<Self, JobError> {
        let base = Self::base(settings, facts);
        create_private_dir(&base).map_err(|e| {
            e.with_hint(format!(
                "create {} or set backup_dir to a directory dbjobs may write",
                base.display()
            ))
        })?;
        let dir = base.join(format!("job-{job_id}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| {
                JobError::io(format!(
                    "cannot remove {} left by an earlier attempt: {e}",
                    dir.display()
                ))
                .with_hint("remove it by hand and retry the job")
            })?;
        }
        create_private_dir(&dir)?;
        Ok(Staging { dir })
    }

    /// Where the staging directories of every job go: `backup_dir`, or
    /// `<datadir>/#sql-dbjobs-staging` ([`DEFAULT_SUBDIR`]).
    pub fn base(settings: &RestoreSettings, facts: &ServerFacts) -> PathBuf {
        settings
            .backup_dir()
            .unwrap_or_else(|| facts.datadir.join(DEFAULT_SUBDIR))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbjobs_kit::server::Vendor;
    use std::os::unix::fs::PermissionsExt;

    fn facts(datadir: &Path) -> ServerFacts {
        ServerFacts {
            version: "10.11.6-MariaDB".into(),
            vendor: Vendor::MariaDb,
            datadir: datadir.to_path_buf(),
        }
    }

    #[test]
    fn private_emptied_and_removed() {
        let datadir = tempfile::tempdir().unwrap();
        let settings = RestoreSettings::read(&|_: &str| None).unwrap();
        let base = datadir.path().join(DEFAULT_SUBDIR);
        std::fs::create_dir_all(base.join("job-7")).unwrap();
        std::fs::write(base.join("job-7/left-over"), b"x").unwrap();
        let staging = Staging::create(&settings, &facts(datadir.path()), 7).unwrap();
        assert_eq!(staging.path(), base.join("job-7"));
        assert!(!staging.path().join("left-over").exists());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(staging.path()), 0o700);
        let dir = staging.path().to_path_buf();
        drop(staging);
        assert!(!dir.exists());
        assert!(base.exists());
    }

    #[test]
    fn backup_dir_moves_it() {
        let elsewhere = tempfile::tempdir().unwrap();
        let settings = RestoreSettings::read(&|n: &str| {
            (n == "backup_dir").then(|| elsewhere.path().display().to_string())
        })
        .unwrap();
        let staging = Staging::create(&settings, &facts(Path::new("/nonexistent")), 3).unwrap();
        assert_eq!(staging.path(), elsewhere.path().join("job-3"));
    }
}
