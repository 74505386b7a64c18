//! Connections to the local server, and rows as text.
//!
//! Every session dbjobs opens sets `sql_log_bin=0` first: the queue table and anything a job
//! does through [`dbjobs_sdk::Host::query`] is the node's own business and must never
//! replicate (PROTOCOL.md §1).

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, Params, Value};

use crate::config::ConnectionOptions;
use crate::error::{Error, Result};

/// One row, every value as MariaDB's text form, `None` for NULL.
pub type TextRow = Vec<Option<String>>;

/// The largest packet this side sends or accepts: MariaDB's own ceiling (1 GiB).
const CLIENT_MAX_ALLOWED_PACKET: usize = 1 << 30;

/// Open a session on the local server with `sql_log_bin=0`.
pub fn connect(opts: &ConnectionOptions) -> Result<Conn> {
    let mut conn = open(opts)?;
    conn.query_drop("SET SESSION sql_log_bin=0").map_err(|e| {
        Error::new(format!("cannot disable binary logging for the dbjobs session: {e}")).help(
            "grant the dbjobs user the BINLOG ADMIN (or SUPER) privilege: writes to the job queue must not replicate",
        )
    })?;
    Ok(conn)
}

/// Open a session on the local server as configured, without changing anything in it: for
/// `dbjobs doctor`, which must be able to connect and then say which privilege is missing
/// (every session that writes uses [`connect`]).
pub fn open(opts: &ConnectionOptions) -> Result<Conn> {
    // Connect exactly where the configuration says, in one round trip after the handshake:
    // prefer_socket (the crate's default) asks the server for @@socket on every loopback
    // connection, and an unset max_allowed_packet makes the crate read the server's; the
    // server enforces its own limit on what it receives either way.
    let mut b = OptsBuilder::new()
        .user(Some(opts.user.clone().unwrap_or_else(|| "root".into())))
        .pass(opts.password.clone())
        .tcp_connect_timeout(Some(Duration::from_secs(10)))
        .prefer_socket(false)
        .max_allowed_packet(Some(CLIENT_MAX_ALLOWED_PACKET));
    if opts.uses_socket() {
        b = b.socket(Some(opts.socket_path().display().to_string()));
    } else {
        b = b
            .ip_or_hostname(opts.host.clone())
            .tcp_port(opts.port.unwrap_or(3306));
    }
    Conn::new(b).map_err(|e| {
        Error::new(format!("cannot connect to MariaDB at {}: {e}", opts.describe())).help(
            "check that the server runs, and the socket/host/port and credentials in [client] of --defaults-file (or --socket/--host/--port/--user)",
        )
    })
}

/// Run `sql` with `?` placeholders bound to `params` (text protocol when there are none, so any
/// statement works) and return every row as text.
pub fn query_text(conn: &mut Conn, sql: &str, params: &[String]) -> Result<Vec<TextRow>> {
    let rows: Vec<mysql::Row> = if params.is_empty() {
        conn.query(sql)?
    } else {
        let p: Vec<Value> = params.iter().map(|s| Value::from(s.as_str())).collect();
        conn.exec(sql, Params::Positional(p))?
    };
    Ok(rows
        .into_iter()
        .map(|row| row.unwrap().into_iter().map(value_text).collect())
        .collect())
}

/// MariaDB's text form of a value (what the `mariadb` client would print).
pub fn value_text(v: Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Date(y, mo, d, h, mi, s, us) => Some(if us > 0 {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        } else {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
        }),
        Value::Time(neg, days, h, mi, s, us) => {
            let hours = days * 24 + u32::from(h);
            let sign = if neg { "-" } else { "" };
            Some(if us > 0 {
                format!("{sign}{hours:02}:{mi:02}:{s:02}.{us:06}")
            } else {
                format!("{sign}{hours:02}:{mi:02}:{s:02}")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_like_the_client() {
        assert_eq!(value_text(Value::NULL), None);
        assert_eq!(value_text(Value::Int(-3)).as_deref(), Some("-3"));
        assert_eq!(
            value_text(Value::Date(2026, 11, 26, 7, 5, 9, 0)).as_deref(),
            Some("2026-11-26 07:05:09")
        );
        assert_eq!(
            value_text(Value::Time(true, 1, 2, 3, 4, 0)).as_deref(),
            Some("-26:03:04")
        );
    }
}
