//! Can dbjobs reach the local server with the configured credentials?

use std::path::PathBuf;

use dbjobs_kit::server::{ServerFacts, Vendor};

use super::node::Server;
use super::report::Check;
use crate::config::ConnectionOptions;
use crate::db;

/// Connect without changing the session (no `sql_log_bin`: the privileges check names what
/// is missing), and read the server's version, datadir and the account.
pub fn check(opts: &ConnectionOptions) -> (Check, Option<Server>) {
    let mut conn = match db::open(opts) {
        Ok(conn) => conn,
        Err(e) => {
            let fix = e
                .help
                .clone()
                .unwrap_or_else(|| "check the [client] section of --defaults-file".to_string());
            return (Check::fail("connection", e.message, fix), None);
        }
    };
    let row = db::query_text(
        &mut conn,
        "SELECT @@version, @@datadir, CURRENT_USER()",
        &[],
    )
    .ok()
    .and_then(|rows| rows.into_iter().next())
    .unwrap_or_default();
    let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let (version, datadir, account) = (text(0), text(1), text(2));
    let facts = ServerFacts {
        vendor: Vendor::from_version(&version),
        datadir: PathBuf::from(datadir.trim_end_matches('/')),
        version,
    };
    let message = format!("{} as {account}, server {}", opts.describe(), facts.version);
    (
        Check::ok("connection", message),
        Some(Server::new(conn, facts, account)),
    )
}
