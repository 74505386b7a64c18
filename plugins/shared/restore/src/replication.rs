//! The replica's side of a restore: whether replication is configured, stopping it, the
//! position (`gtid_slave_pos`) and `START SLAVE`.
//!
//! A dump's `CHANGE MASTER TO MASTER_USE_GTID` and `SET GLOBAL gtid_slave_pos` need the
//! replica threads stopped, so a logical restore stops a configured replica first; a
//! physical restore sets the backup's `gtid_slave_pos` itself. Either way the replica is
//! started again afterwards, unless replication-manager applies the position itself (the
//! payload variant, API mode). A node without replication is not an error.

use dbjobs_kit::position::BinlogPosition;
use dbjobs_sdk::{Host, JobError};

use crate::statement::exec;

/// Whether the node is a configured replica (`SHOW SLAVE STATUS` has a row with a
/// `Master_Host`). An error reading it (privileges) counts as "not configured", logged.
pub fn replica_configured(host: &Host<'_>) -> bool {
    match host.query("SHOW SLAVE STATUS", &[]) {
        Ok(rows) => rows.first().is_some_and(|row| {
            row.get(1)
                .and_then(|h| h.as_deref())
                .is_some_and(|h| !h.trim().is_empty())
        }),
        Err(e) => {
            host.warn(&format!(
                "cannot read SHOW SLAVE STATUS ({e}); treating the node as having no replication"
            ));
            false
        }
    }
}

/// `STOP SLAVE` before a restore; nothing was changed yet when it fails.
pub fn stop_for_restore(host: &Host<'_>) -> Result<(), JobError> {
    host.info("stopping replication for the restore");
    exec(host, "STOP SLAVE", &[])
        .map_err(|e| e.context("cannot stop replication before the restore"))
}

/// `START SLAVE` after the restore. A failure is logged as a warning; callers make it a note
/// of the result, not a failure: the data is restored, replication-manager or the operator
/// can start the replica.
pub fn start_after_restore(host: &Host<'_>) -> Result<(), JobError> {
    host.query("START SLAVE", &[]).map(|_| ()).map_err(|e| {
        host.warn(&format!("START SLAVE failed after the restore: {e}"));
        e
    })
}

/// Set the backup's GTID as `gtid_slave_pos` (stopping a replica first) and start the
/// replica: the result's notes, the position first.
pub fn set_position_and_start(
    host: &Host<'_>,
    p: &BinlogPosition,
) -> Result<Vec<String>, JobError> {
    if p.gtid.is_empty() {
        return Ok(vec![
            "the backup has no GTID; replication position not set".into()
        ]);
    }
    if !host.query("SHOW SLAVE STATUS", &[])?.is_empty() {
        exec(host, "STOP SLAVE", &[])?;
    }
    exec(host, "SET GLOBAL gtid_slave_pos=?", &[&p.gtid]).map_err(|e| {
        e.context(format!(
            "the data was restored but gtid_slave_pos could not be set to {}",
            p.gtid
        ))
        .with_hint(format!(
            "set it by hand (SET GLOBAL gtid_slave_pos='{}') and start the replica",
            p.gtid
        ))
    })?;
    Ok(match start_after_restore(host) {
        Ok(_) => vec![format!("gtid_slave_pos={}, replication started", p.gtid)],
        Err(e) => vec![
            format!(
                "gtid_slave_pos={} (replication not started: no master configured?)",
                p.gtid
            ),
            format!("START SLAVE failed: {e}"),
        ],
    })
}
