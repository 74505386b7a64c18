//! The replica's side of a restore: which replication connections the node has, stopping
//! them, the position (`gtid_slave_pos`) and starting them again.
//!
//! A node may replicate over several named connections (multi-source,
//! `CHANGE MASTER 'name' TO ...`); `SHOW ALL SLAVES STATUS` lists them all, the default one
//! (named `''`) among them, and a connection counts as configured when it has a master host.
//! `SET GLOBAL gtid_slave_pos` needs every connection stopped, so they are all stopped
//! before a restore changes the data, and after it, in the legacy and state variants (where
//! dbjobs sets the position itself), every configured connection is started again, not
//! only the default one (replication-manager issue 1706), each from its place: the backup
//! sets the position of the domains it knows, the node keeps its own in the others.
//! `START SLAVE` is only tried on a
//! configured connection: a node without replication is not an error and its result does
//! not say "MASTER_HOST was not set". In the payload variant and in API mode
//! replication-manager applies the position and restarts every channel itself; the callers
//! then leave replication alone.

use dbjobs_kit::position::BinlogPosition;
use dbjobs_sdk::{Host, JobError};

use crate::statement::exec;

/// One replication connection of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Its name; `''` is the default connection.
    pub name: String,
    /// Whether its IO or SQL thread runs.
    pub running: bool,
}

impl Connection {
    /// The name as `START SLAVE` takes it: a quoted string literal.
    fn literal(&self) -> String {
        format!("'{}'", self.name.replace('\\', "\\\\").replace('\'', "''"))
    }

    /// `'m2'` in notes, `the default connection` for `''`.
    fn describe(&self) -> String {
        match self.name.as_str() {
            "" => "the default connection".into(),
            n => format!("connection '{n}'"),
        }
    }
}

/// Columns of `SHOW ALL SLAVES STATUS` (MariaDB 10.0 and later): `Connection_name`,
/// `Slave_SQL_State`, then those of `SHOW SLAVE STATUS`, whose first twelve have not moved
/// since MySQL 5.0.
const NAME: usize = 0;
const MASTER_HOST: usize = 3;
const IO_RUNNING: usize = 12;
const SQL_RUNNING: usize = 13;

/// The configured connections of the node: rows of `SHOW ALL SLAVES STATUS` with a master
/// host.
pub fn connections(host: &Host<'_>) -> Result<Vec<Connection>, JobError> {
    let rows = host
        .query("SHOW ALL SLAVES STATUS", &[])
        .map_err(|e| e.context("cannot read the node's replication connections"))?;
    Ok(configured(&rows))
}

/// [`connections`] from the rows of `SHOW ALL SLAVES STATUS`.
fn configured(rows: &[Vec<Option<String>>]) -> Vec<Connection> {
    let field = |r: &[Option<String>], i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    rows.iter()
        .filter(|r| !field(r, MASTER_HOST).trim().is_empty())
        .map(|r| Connection {
            name: field(r, NAME),
            running: ["Yes", "Connecting"].contains(&field(r, IO_RUNNING).as_str())
                || field(r, SQL_RUNNING) == "Yes",
        })
        .collect()
}

/// Whether the node has any configured replication connection. An error reading it
/// (privileges) counts as "not configured", logged.
pub fn replica_configured(host: &Host<'_>) -> bool {
    match connections(host) {
        Ok(c) => !c.is_empty(),
        Err(e) => {
            host.warn(&format!("{e}; treating the node as having no replication"));
            false
        }
    }
}

/// `STOP ALL SLAVES` before a restore; nothing was changed yet when it fails.
pub fn stop_for_restore(host: &Host<'_>) -> Result<(), JobError> {
    host.info("stopping replication (every connection) for the restore");
    exec(host, "STOP ALL SLAVES", &[])
        .map_err(|e| e.context("cannot stop replication before the restore"))
}

/// Stop every connection that runs, before a restore changes the data; the configured
/// connections, as they were before (`running` says which were stopped).
pub fn stop_running(host: &Host<'_>) -> Result<Vec<Connection>, JobError> {
    let connections = connections(host)?;
    if connections.iter().any(|c| c.running) {
        stop_for_restore(host)?;
    }
    Ok(connections)
}

/// The note of a restore that replaced the node's replication configuration (a full
/// restore: `master.info` and its kind are files of the datadir, which the backup's
/// replaced) when the node had connections `before` and has none `now`.
pub fn lost_connections_note(before: &[Connection], now: &[Connection]) -> Option<String> {
    if before.is_empty() || !now.is_empty() {
        return None;
    }
    let names: Vec<String> = before.iter().map(Connection::literal).collect();
    Some(format!(
        "the node's replication connections ({}) are not in the restored datadir (a full restore replaces master.info): set them up again with CHANGE MASTER, then START SLAVE",
        names.join(", ")
    ))
}

/// `START SLAVE` each connection of `names` (`''` is the default one), ignoring failures:
/// a rolled-back restore gives back the replication it stopped, as well as it can.
pub fn start_again(host: &Host<'_>, names: &[String]) {
    for name in names {
        let c = Connection {
            name: name.clone(),
            running: false,
        };
        let _ = host.query(&format!("START SLAVE {}", c.literal()), &[]);
    }
}

/// A restore's error, saying that replication stays stopped when the restore `stopped` it.
pub fn left_stopped(e: JobError, stopped: bool) -> JobError {
    if !stopped {
        return e;
    }
    JobError {
        message: format!(
            "{} (replication was stopped for the restore and left stopped)",
            e.message
        ),
        ..e
    }
}

/// Start every configured connection after the restore. A failure is logged; callers make
/// it a note of the result, not a failure: the data is restored, replication-manager or the
/// operator can start the replica.
pub fn start_after_restore(host: &Host<'_>) -> Result<(), JobError> {
    let failed: Vec<String> = start_all(host, &connections(host)?)
        .into_iter()
        .filter_map(|(c, r)| r.err().map(|e| format!("{}: {e}", c.describe())))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(JobError::sql(format!(
        "START SLAVE failed on {}",
        failed.join("; ")
    )))
}

/// `START SLAVE '<name>'` for each of `connections`, each with its outcome (a failure is
/// logged).
fn start_all(
    host: &Host<'_>,
    connections: &[Connection],
) -> Vec<(Connection, Result<(), JobError>)> {
    connections
        .iter()
        .map(|c| {
            let result = exec(host, &format!("START SLAVE {}", c.literal()), &[]);
            if let Err(e) = &result {
                host.warn(&format!(
                    "START SLAVE failed after the restore on {}: {e}",
                    c.describe()
                ));
            }
            (c.clone(), result)
        })
        .collect()
}

/// The node's `gtid_slave_pos`.
pub fn slave_pos(host: &Host<'_>) -> Result<String, JobError> {
    Ok(host
        .query_value("SELECT @@GLOBAL.gtid_slave_pos", &[])?
        .unwrap_or_default())
}

/// The replication position after a restore: the backup's GTID list, and for each
/// replication domain it does not mention, the node's own position (`node`). A node that
/// replicates from several masters in several domains keeps its place in the others: the
/// backup says nothing about them (its source never applied a transaction of theirs, or
/// its position would list them), and without it each other connection would replay its
/// master's whole binary log. Sorted by domain, as the server prints it.
pub fn merged_position(backup: &str, node: &str) -> String {
    let domain = |gtid: &str| gtid.split('-').next().and_then(|d| d.parse::<u32>().ok());
    let mut by_domain: std::collections::BTreeMap<u32, &str> = std::collections::BTreeMap::new();
    for g in node.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        if let Some(d) = domain(g) {
            by_domain.insert(d, g);
        }
    }
    for g in backup.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        if let Some(d) = domain(g) {
            by_domain.insert(d, g);
        }
    }
    by_domain.into_values().collect::<Vec<_>>().join(",")
}

/// After a dump set its own `gtid_slave_pos`: give back the node's position (`before`, read
/// before the replay) in the domains the dump does not mention (see [`merged_position`]).
/// Replication is stopped (the logical restore stopped it, or none is configured).
pub fn keep_other_domains(host: &Host<'_>, before: &str) -> Result<(), JobError> {
    let now = slave_pos(host)?;
    let merged = merged_position(&now, before);
    if merged == now {
        return Ok(());
    }
    exec(host, "SET GLOBAL gtid_slave_pos=?", &[&merged])
        .map_err(|e| e.context("keeping the node's position in the domains the dump does not set"))
}

/// Set the backup's GTID as `gtid_slave_pos` (every connection stopped first; the node's
/// position kept in the domains the backup does not mention, [`merged_position`]) and
/// start every configured connection: the result's notes, the position first.
pub fn set_position_and_start(
    host: &Host<'_>,
    p: &BinlogPosition,
) -> Result<Vec<String>, JobError> {
    if p.gtid.is_empty() {
        return Ok(vec![
            "the backup has no GTID; replication position not set".into()
        ]);
    }
    let connections = connections(host)?;
    if connections.iter().any(|c| c.running) {
        stop_for_restore(host)?;
    }
    let position = merged_position(&p.gtid, &slave_pos(host)?);
    exec(host, "SET GLOBAL gtid_slave_pos=?", &[&position]).map_err(|e| {
        e.context(format!(
            "the data was restored but gtid_slave_pos could not be set to {position}"
        ))
        .with_hint(format!(
            "set it by hand (SET GLOBAL gtid_slave_pos='{position}') and start the replica"
        ))
    })?;
    if connections.is_empty() {
        return Ok(vec![format!(
            "gtid_slave_pos={position}; no replication configured, nothing started"
        )]);
    }
    Ok(start_notes(&position, start_all(host, &connections)))
}

/// The notes of [`set_position_and_start`] for the outcome of each start.
fn start_notes(gtid: &str, outcomes: Vec<(Connection, Result<(), JobError>)>) -> Vec<String> {
    let (started, failed): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(|(_, r)| r.is_ok());
    let names: Vec<String> = started.iter().map(|(c, _)| c.literal()).collect();
    let mut notes = vec![match (names.as_slice(), failed.is_empty()) {
        ([only], true) if only == "''" => format!("gtid_slave_pos={gtid}, replication started"),
        (_, true) => format!(
            "gtid_slave_pos={gtid}, replication started on connections {}",
            names.join(", ")
        ),
        ([], false) => format!("gtid_slave_pos={gtid} (replication not started)"),
        (_, false) => format!(
            "gtid_slave_pos={gtid}, replication started on connections {} only",
            names.join(", ")
        ),
    }];
    notes.extend(failed.into_iter().map(|(c, r)| {
        let e = r.expect_err("a failed start");
        format!("START SLAVE failed on {}: {e}", c.describe())
    }));
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, host: &str, io: &str, sql: &str) -> Vec<Option<String>> {
        let mut r = vec![Some(String::new()); 20];
        r[NAME] = Some(name.into());
        r[MASTER_HOST] = Some(host.into());
        r[IO_RUNNING] = Some(io.into());
        r[SQL_RUNNING] = Some(sql.into());
        r
    }

    #[test]
    fn only_connections_with_a_master_count() {
        let rows = [
            row("", "", "No", "No"),
            row("m2", "10.0.0.2", "Connecting", "Yes"),
            row("m3", "10.0.0.3", "No", "No"),
        ];
        assert_eq!(
            configured(&rows),
            [
                Connection {
                    name: "m2".into(),
                    running: true
                },
                Connection {
                    name: "m3".into(),
                    running: false
                },
            ]
        );
        assert!(configured(&[]).is_empty());
    }

    #[test]
    fn connections_lost_by_a_full_restore_are_named() {
        let c = |n: &str| Connection {
            name: n.into(),
            running: true,
        };
        assert_eq!(lost_connections_note(&[], &[]), None);
        assert_eq!(lost_connections_note(&[c("")], &[c("")]), None);
        let note = lost_connections_note(&[c(""), c("m2")], &[]).unwrap();
        assert!(
            note.starts_with(
                "the node's replication connections ('', 'm2') are not in the restored datadir"
            ),
            "{note}"
        );
    }

    #[test]
    fn the_backup_sets_its_domains_the_node_keeps_the_others() {
        assert_eq!(merged_position("0-1-16", ""), "0-1-16");
        assert_eq!(merged_position("0-1-16", "0-2-99"), "0-1-16");
        assert_eq!(merged_position("0-1-16", "3-3-7,0-1-2"), "0-1-16,3-3-7");
        assert_eq!(
            merged_position("5-1-1,0-1-16", "3-3-7"),
            "0-1-16,3-3-7,5-1-1"
        );
        assert_eq!(merged_position("", "3-3-7"), "3-3-7");
    }

    #[test]
    fn notes_name_the_connections_started() {
        let c = |n: &str| Connection {
            name: n.into(),
            running: false,
        };
        let ok = |n: &str| (c(n), Ok(()));
        let failed = |n: &str| (c(n), Err(JobError::sql("no")));
        assert_eq!(
            start_notes("0-1-5", vec![ok("")]),
            ["gtid_slave_pos=0-1-5, replication started"]
        );
        assert_eq!(
            start_notes("0-1-5", vec![ok(""), ok("it's")]),
            ["gtid_slave_pos=0-1-5, replication started on connections '', 'it''s'"]
        );
        let notes = start_notes("0-1-5", vec![ok(""), failed("m2")]);
        assert_eq!(
            notes[0],
            "gtid_slave_pos=0-1-5, replication started on connections '' only"
        );
        assert!(
            notes[1].starts_with("START SLAVE failed on connection 'm2': "),
            "{notes:?}"
        );
        let notes = start_notes("0-1-5", vec![failed("")]);
        assert_eq!(notes[0], "gtid_slave_pos=0-1-5 (replication not started)");
        assert!(notes[1].contains("the default connection"), "{notes:?}");
    }
}
