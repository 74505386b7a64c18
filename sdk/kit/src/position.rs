//! The one binlog position type: every form dbjobs meets, and the payload it writes.
//!
//! A position reaches dbjobs in four shapes, and leaves it in two:
//! * in: the backup tool's stderr line and `xtrabackup_info`'s `binlog_pos` value
//!   (`filename 'mariadb-bin.000001', position '328', GTID of the last change '0-1-1'`),
//!   `xtrabackup_binlog_info` (`file<TAB>position<TAB>gtid`), and a dump's
//!   `CHANGE MASTER TO MASTER_LOG_FILE='..', MASTER_LOG_POS=..` plus its
//!   `SET GLOBAL gtid_slave_pos='..'`;
//! * out: the line replication-manager parses from a backup's log and result
//!   ([`fmt::Display`]), and the JSON payload of the newest table layout and of API-mode
//!   reports ([`BinlogPosition::payload`], PROTOCOL.md §6.1).
//!
//! Every parser validates before anything can reach SQL: the position is digits, the GTID a
//! GTID list ([`crate::sql::is_gtid_list`]).

use std::fmt;
use std::path::Path;

use dbjobs_sdk::JobError;

use crate::server::Vendor;
use crate::sql::is_gtid_list;

/// A replication position: binlog file and offset, and the GTID list of the last change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BinlogPosition {
    /// Binary log file name, e.g. `mariadb-bin.000001` (empty when only a GTID is known).
    pub file: String,
    /// Offset in that file, digits (empty when only a GTID is known).
    pub position: String,
    /// GTID list, e.g. `0-1-16` or `0-1-16,1-2-5`; empty when the source had no GTID yet.
    pub gtid: String,
}

impl BinlogPosition {
    /// Parse the tool's form, wherever it appears in `line`:
    /// `filename '<file>', position '<pos>'[, GTID of the last change '<gtid>']`.
    /// `None` for any other line, or a position that is not digits or a GTID that is not a
    /// GTID list.
    pub fn from_tool_line(line: &str) -> Option<Self> {
        let file = quoted_after(line, "filename '")?;
        let position = quoted_after(line, "position '")?;
        let gtid = quoted_after(line, "GTID of the last change '").unwrap_or("");
        BinlogPosition {
            file: file.to_string(),
            position: position.to_string(),
            gtid: gtid.to_string(),
        }
        .validated()
        .ok()
        .filter(|p| !p.file.is_empty())
    }

    /// Parse `xtrabackup_binlog_info`: its first non-empty line, `file<TAB>pos[<TAB>gtid]`.
    pub fn from_binlog_info(text: &str) -> Result<Option<Self>, JobError> {
        let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
            return Ok(None);
        };
        let f: Vec<&str> = line.split('\t').map(str::trim).collect();
        if f.len() < 2 {
            return Err(JobError::bad_input(format!(
                "xtrabackup_binlog_info has no position: {line:?}"
            )));
        }
        BinlogPosition {
            file: f[0].to_string(),
            position: f[1].to_string(),
            gtid: f.get(2).map(|s| s.to_string()).unwrap_or_default(),
        }
        .validated()
        .map(Some)
    }

    /// Read the position of a prepared backup: `xtrabackup_binlog_info`, else the
    /// `binlog_pos = ...` line of `xtrabackup_info` (PROTOCOL.md §4; never
    /// `xtrabackup_binlog_pos_innodb`). `None` when the source had no binary log.
    pub fn from_backup_dir(backup: &Path) -> Result<Option<Self>, JobError> {
        if let Ok(text) = std::fs::read_to_string(backup.join("xtrabackup_binlog_info")) {
            if let Some(p) = Self::from_binlog_info(&text)? {
                return Ok(Some(p));
            }
        }
        let Ok(text) = std::fs::read_to_string(backup.join("xtrabackup_info")) else {
            return Ok(None);
        };
        match text
            .lines()
            .find_map(|l| l.trim().strip_prefix("binlog_pos = "))
        {
            None => Ok(None),
            Some(line) => Self::from_tool_line(line).map(Some).ok_or_else(|| {
                JobError::bad_input(format!(
                    "the backup's binlog_pos {line:?} is not a valid position; the backup metadata is damaged"
                ))
            }),
        }
    }

    /// Check the fields before they can reach SQL: the position is digits (or empty with an
    /// empty file), the GTID a GTID list.
    pub fn validated(self) -> Result<Self, JobError> {
        if !is_gtid_list(&self.gtid) {
            return Err(JobError::bad_input(format!(
                "the GTID position {:?} is not a valid GTID list; the backup metadata is damaged",
                self.gtid
            )));
        }
        if !self.position.bytes().all(|b| b.is_ascii_digit())
            || self.position.is_empty() != self.file.is_empty()
        {
            return Err(JobError::bad_input(format!(
                "the binlog position {:?} of file {:?} is not a number",
                self.position, self.file
            )));
        }
        Ok(self)
    }

    /// The JSON replication-manager reads from the `payload` column and from an API-mode
    /// report's `restore` object (all values strings):
    /// `{"vendor":"mariadb","gtid":"0-1-16","binLogFile":"mariadb-bin.000001","binLogPos":"202805504"}`.
    pub fn payload(&self, vendor: Vendor) -> String {
        serde_json::json!({
            "vendor": vendor.payload_name(),
            "gtid": self.gtid,
            "binLogFile": self.file,
            "binLogPos": self.position,
        })
        .to_string()
    }
}

impl fmt::Display for BinlogPosition {
    /// The form replication-manager parses from a backup's log lines and result.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "filename '{}', position '{}', GTID of the last change '{}'",
            self.file, self.position, self.gtid
        )
    }
}

/// The quoted value after `key` (which ends with the opening quote) in `line`.
fn quoted_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    let end = rest.find('\'')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_line_in_every_wrapping() {
        let line = "[00] 2024-01-01 10:00:00 MySQL binlog position: filename 'mariadb-bin.000001', position '328', GTID of the last change '0-1-1'";
        let p = BinlogPosition::from_tool_line(line).unwrap();
        assert_eq!(
            p,
            BinlogPosition {
                file: "mariadb-bin.000001".into(),
                position: "328".into(),
                gtid: "0-1-1".into()
            }
        );
        assert_eq!(
            p.to_string(),
            "filename 'mariadb-bin.000001', position '328', GTID of the last change '0-1-1'"
        );
        let p = BinlogPosition::from_tool_line("filename 'bin.000002', position '157'").unwrap();
        assert_eq!(p.gtid, "");
        assert!(
            BinlogPosition::from_tool_line("[00] Streaming ./mysql/gtid_slave_pos.ibd").is_none()
        );
        assert!(BinlogPosition::from_tool_line("filename 'x', position 'abc'").is_none());
        assert!(BinlogPosition::from_tool_line("filename '', position '1'").is_none());
        assert!(BinlogPosition::from_tool_line(
            "filename 'f', position '1', GTID of the last change '0-1-1'; DROP'"
        )
        .is_some_and(|p| p.gtid == "0-1-1"));
        assert!(BinlogPosition::from_tool_line(
            "filename 'f', position '1', GTID of the last change '0-1-1); DROP'"
        )
        .is_none());
    }

    #[test]
    fn both_backup_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(BinlogPosition::from_backup_dir(dir.path()).unwrap(), None);
        std::fs::write(
            dir.path().join("xtrabackup_info"),
            "tool_name = mariadb-backup\nbinlog_pos = filename 'mariadb-bin.000001', position '202805504', GTID of the last change '0-1-16'\n",
        )
        .unwrap();
        let p = BinlogPosition::from_backup_dir(dir.path())
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.file.as_str(), p.position.as_str(), p.gtid.as_str()),
            ("mariadb-bin.000001", "202805504", "0-1-16")
        );
        std::fs::write(
            dir.path().join("xtrabackup_binlog_info"),
            "mariadb-bin.000002\t2716\t0-1-12,1-2-3\n",
        )
        .unwrap();
        let p = BinlogPosition::from_backup_dir(dir.path())
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.file.as_str(), p.gtid.as_str()),
            ("mariadb-bin.000002", "0-1-12,1-2-3")
        );
        std::fs::write(
            dir.path().join("xtrabackup_binlog_info"),
            "f\t1\t0-1-1'; DROP\n",
        )
        .unwrap();
        assert!(BinlogPosition::from_backup_dir(dir.path()).is_err());
    }

    #[test]
    fn payload_is_the_json_replication_manager_reads() {
        let p = BinlogPosition {
            file: "mariadb-bin.000001".into(),
            position: "202805504".into(),
            gtid: "0-1-16".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&p.payload(Vendor::MariaDb)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"vendor":"mariadb","gtid":"0-1-16","binLogFile":"mariadb-bin.000001","binLogPos":"202805504"})
        );
        let v: serde_json::Value = serde_json::from_str(&p.payload(Vendor::MySql)).unwrap();
        assert_eq!(v["vendor"], "mysql");
    }
}
