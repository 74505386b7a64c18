//! Playing replication-manager for inbound jobs (reseed, flashback).
//!
//! An inbound job only means something with a sender on the other end of the TCP connection.
//! These helpers do what replication-manager does (PROTOCOL.md §1-3): create the queue table
//! in a given layout, wait until the node says it listens, connect and write the backup, then
//! watch the row until the job is finished. Checksums let a test compare data between a
//! source and a restored target.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use crate::server::MariaDb;

/// How often the helpers poll the job row.
const POLL: Duration = Duration::from_millis(50);

/// One row of `replication_manager_schema.jobs`, every layout folded into one shape
/// (`state` and `payload` are `None` where the column does not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    /// `id`.
    pub id: u64,
    /// `done` (0 or 1).
    pub done: i64,
    /// `state`, when the layout has it.
    pub state: Option<i64>,
    /// `result`.
    pub result: Option<String>,
    /// `end`, as text.
    pub end: Option<String>,
    /// `payload`, when the layout has it.
    pub payload: Option<String>,
}

impl JobRow {
    /// Whether the row is finished: `done=1`, or `state` 3 (success) or 5 (failure).
    pub fn finished(&self) -> bool {
        self.done == 1 || matches!(self.state, Some(3) | Some(5))
    }

    /// Whether the job succeeded in the row's layout: `state=3` in the state layouts,
    /// `done=1` with a result not starting with `failed` in the legacy one.
    pub fn succeeded(&self) -> bool {
        match self.state {
            Some(s) => s == 3 && self.done == 1,
            None => self.done == 1 && !self.result_text().starts_with("failed"),
        }
    }

    /// `result` as text, empty when it is NULL: what most assertions search.
    pub fn result_text(&self) -> &str {
        self.result.as_deref().unwrap_or_default()
    }
}

/// Which optional columns the jobs table has on `conn`'s server (`state`, `payload`), or an
/// error while the table does not exist yet.
fn columns(conn: &mut mysql::Conn) -> Result<(bool, bool), mysql::Error> {
    let cols: Vec<String> = conn.query(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA='replication_manager_schema' AND TABLE_NAME='jobs'",
    )?;
    Ok((
        cols.iter().any(|c| c.eq_ignore_ascii_case("state")),
        cols.iter().any(|c| c.eq_ignore_ascii_case("payload")),
    ))
}

/// Reads row `job_id`, or `None` when the table or the row does not exist (yet).
fn read_row(target: &MariaDb, job_id: u64) -> Option<JobRow> {
    let mut conn = target.conn();
    let (has_state, has_payload) = columns(&mut conn).ok()?;
    let sql = format!(
        "SELECT id, done, {}, result, CAST(`end` AS CHAR), {} \
         FROM replication_manager_schema.jobs WHERE id={job_id}",
        if has_state { "state" } else { "NULL" },
        if has_payload { "payload" } else { "NULL" },
    );
    type Row = (
        u64,
        i64,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = conn.query_first(sql).ok()?;
    row.map(|(id, done, state, result, end, payload)| JobRow {
        id,
        done,
        state,
        result,
        end,
        payload,
    })
}

/// Reads row `id` of the jobs table on `server`, in whatever layout the table has, for a
/// test to assert on once a job ran (or while it runs).
///
/// # Panics
/// When the table or the row does not exist, or the server does not answer.
pub fn job_row(server: &MariaDb, id: u64) -> JobRow {
    read_row(server, id).unwrap_or_else(|| {
        panic!("job {id}: cannot read its row of replication_manager_schema.jobs (no such table or row?)")
    })
}

/// Whether the row says the node listens: legacy `result='Waiting backup.'`, state `state=2`.
fn is_waiting(row: &JobRow) -> bool {
    match row.state {
        Some(s) => s == 2,
        None => row.result.as_deref() == Some("Waiting backup.") && row.done == 0,
    }
}

/// Plays replication-manager for an inbound job: waits until the job row on `target` says
/// the node listens (legacy: `result='Waiting backup.'`; state: `state=2`), then connects
/// from `from` (an address of the loopback range, e.g. 127.0.0.2 to play a stranger) to
/// `127.0.0.1:port`, writes `bytes` and closes. Returns the number of bytes written.
///
/// A sender that is refused may see its write succeed (the kernel buffers it) or fail with a
/// reset; either is returned as is. Waiting longer than `timeout` is an `io::ErrorKind::TimedOut`
/// error, not a panic, so a test can call this from a thread.
pub fn send_when_waiting(
    target: &MariaDb,
    job_id: u64,
    port: u16,
    from: IpAddr,
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        if read_row(target, job_id).is_some_and(|r| is_waiting(&r)) {
            break;
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("job {job_id} did not start waiting within {timeout:?}"),
            ));
        }
        std::thread::sleep(POLL);
    }
    send_to(port, from, bytes)
}

/// Connects from `from` to `127.0.0.1:port`, writes `bytes`, half-closes and closes, as
/// replication-manager's sender does. Returns the number of bytes written.
pub fn send_to(port: u16, from: IpAddr, bytes: &[u8]) -> io::Result<usize> {
    let to = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port);
    let mut stream = connect_from(from, to)?;
    stream.write_all(bytes)?;
    stream.flush()?;
    // Half-close, then close: the receiver sees the end of the stream, as with repman.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(bytes.len())
}

/// Connects to `to` from the local address `from` (bound before connecting).
fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    dbjobs_kit::net::connect_from(from, to)
}

/// Waits until row `job_id` on `target` is finished (`done=1`, or `state` 3 or 5) and
/// returns it.
///
/// # Panics
/// When the row is not finished within `timeout`, showing its last state.
pub fn wait_job_finished(target: &MariaDb, job_id: u64, timeout: Duration) -> JobRow {
    let deadline = Instant::now() + timeout;
    loop {
        let row = read_row(target, job_id);
        if let Some(r) = &row {
            if r.finished() {
                return r.clone();
            }
        }
        if Instant::now() >= deadline {
            panic!("job {job_id} not finished after {timeout:?}; last seen: {row:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// Creates the queue table of PROTOCOL.md §1 in the layout `variant` (`"legacy"`, `"state"`
/// or `"payload"`) on `server`, as replication-manager does, before the host would create
/// the legacy one. Runs with `sql_log_bin=0`, like replication-manager.
///
/// # Panics
/// On an unknown variant or an SQL error.
pub fn create_jobs_table(server: &MariaDb, variant: &str) {
    let (state, result, payload, keys) = match variant {
        "legacy" => ("", "VARCHAR(1000)", "", ""),
        "state" => (
            " state TINYINT NOT NULL DEFAULT 0,",
            "VARCHAR(1000)",
            "",
            ", KEY idx3(task,state), UNIQUE(task)",
        ),
        "payload" => (
            " state TINYINT NOT NULL DEFAULT 0,",
            "MEDIUMTEXT",
            " payload MEDIUMTEXT,",
            ", KEY idx3(task,state), UNIQUE(task)",
        ),
        other => panic!("unknown jobs table variant {other:?}"),
    };
    server.exec(&format!(
        "SET SESSION sql_log_bin=0; \
         CREATE DATABASE IF NOT EXISTS replication_manager_schema; \
         CREATE TABLE replication_manager_schema.jobs( \
         id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, task VARCHAR(20), port INT, \
         server VARCHAR(255), done TINYINT NOT NULL DEFAULT 0,{state} result {result},{payload} \
         start DATETIME, end DATETIME, KEY idx1(task,done), KEY idx2(result(1),task){keys}) \
         ENGINE=InnoDB"
    ));
}

/// `CHECKSUM TABLE` of every base table outside the system schemas (and the job queue),
/// keyed `db.table`: two servers with equal maps hold the same data.
pub fn checksums(server: &MariaDb) -> BTreeMap<String, String> {
    let tables = server.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_TYPE='BASE TABLE' AND TABLE_SCHEMA NOT IN \
         ('mysql','performance_schema','information_schema','sys','replication_manager_schema') \
         ORDER BY 1, 2",
    );
    let mut out = BTreeMap::new();
    for row in tables {
        let (db, table) = (row[0].clone().unwrap(), row[1].clone().unwrap());
        let rows = server.query(&format!(
            "CHECKSUM TABLE `{}`.`{}`",
            db.replace('`', "``"),
            table.replace('`', "``")
        ));
        // CHECKSUM TABLE returns (Table, Checksum).
        let checksum = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().nth(1).flatten())
            .unwrap_or_else(|| "NULL".into());
        out.insert(format!("{db}.{table}"), checksum);
    }
    out
}
