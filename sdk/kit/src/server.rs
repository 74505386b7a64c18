//! Facts about the local server that several job types need: its version and vendor, and
//! its data directory. Read through the host's plugin session, each with an error that says
//! what could not be read.

use std::path::PathBuf;

use dbjobs_sdk::{Host, JobError};

/// Which family the server belongs to: it decides the backup tool and the `vendor` of a
/// position payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// MariaDB: `mariadb-backup`/`mariabackup`, `mbstream`.
    MariaDb,
    /// Percona Server or MySQL: `xtrabackup`, `xbstream`.
    MySql,
}

impl Vendor {
    /// From `@@version` (MariaDB versions say `MariaDB`).
    pub fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            Vendor::MariaDb
        } else {
            Vendor::MySql
        }
    }

    /// Backup tool names to look for, preferred first.
    pub fn backup_tools(self) -> &'static [&'static str] {
        match self {
            Vendor::MariaDb => &["mariadb-backup", "mariabackup"],
            Vendor::MySql => &["xtrabackup"],
        }
    }

    /// The `vendor` value replication-manager expects in a position payload
    /// (PROTOCOL.md §6.1: `mariadb` or `mysql`).
    pub fn payload_name(self) -> &'static str {
        match self {
            Vendor::MariaDb => "mariadb",
            Vendor::MySql => "mysql",
        }
    }
}

/// `@@version` and `@@datadir` of the local server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFacts {
    /// `@@version`, e.g. `10.11.19-MariaDB-log`.
    pub version: String,
    /// The vendor the version says.
    pub vendor: Vendor,
    /// `@@datadir`, without a trailing `/`.
    pub datadir: PathBuf,
}

impl ServerFacts {
    /// Read them in one statement.
    pub fn read(host: &Host<'_>) -> Result<Self, JobError> {
        let row = host
            .query("SELECT @@version, @@datadir", &[])
            .map_err(|e| e.context("cannot read the server's version and datadir"))?
            .into_iter()
            .next()
            .unwrap_or_default();
        let version = row.first().cloned().flatten().unwrap_or_default();
        let datadir = row
            .get(1)
            .cloned()
            .flatten()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| JobError::sql("the server reports no @@datadir"))?;
        Ok(ServerFacts {
            vendor: Vendor::from_version(&version),
            version,
            datadir: PathBuf::from(datadir.trim_end_matches('/')),
        })
    }

    /// `major.minor` of the version, e.g. `10.11`, to compare with a tool's.
    pub fn major_minor(&self) -> Option<String> {
        major_minor(&self.version)
    }
}

/// The host's state directory (its setting `state_dir`, which the host declares and resolves
/// to its default when unset): where a plugin keeps what must outlive a run (a restore's
/// journal, a generated certificate). Plugins do not declare it again.
pub fn state_dir(host: &Host<'_>) -> Result<PathBuf, JobError> {
    host.setting("state_dir")
        .filter(|d| !d.trim().is_empty())
        .map(|d| PathBuf::from(d.trim()))
        .ok_or_else(|| {
            JobError::config("the host gives no state_dir")
                .with_hint("set state_dir in [dbjobs] (default /var/lib/dbjobs)")
        })
}

/// `major.minor` of the first version-looking word of `text`: `10.11` for `10.11.19-MariaDB`
/// and for `mariadb-backup based on MariaDB server 10.11.19-MariaDB`.
pub fn major_minor(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|w| {
            let mut parts = w.split('.').filter(|p| !p.is_empty());
            let (a, b) = (parts.next()?, parts.next()?);
            Some(format!("{a}.{b}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_and_versions() {
        assert_eq!(Vendor::from_version("10.11.6-MariaDB-log"), Vendor::MariaDb);
        assert_eq!(Vendor::from_version("8.0.35-27"), Vendor::MySql);
        assert_eq!(Vendor::MariaDb.backup_tools()[0], "mariadb-backup");
        assert_eq!(Vendor::MySql.payload_name(), "mysql");
        assert_eq!(
            major_minor("10.11.19-MariaDB-log").as_deref(),
            Some("10.11")
        );
        assert_eq!(
            major_minor(
                "mariadb-backup based on MariaDB server 10.11.19-MariaDB debian-linux-gnu (x86_64)"
            )
            .as_deref(),
            Some("10.11")
        );
        assert_eq!(major_minor("no version"), None);
    }
}
