//! Statements a restore runs on the live server, with the statement in the error.
//!
//! Every statement goes through [`Host::query`], whose session has `sql_log_bin=0`, so
//! nothing of the restore reaches the node's binary log.

use dbjobs_sdk::{Host, JobError};

/// Run `sql` on the live server; a failure is an [`dbjobs_sdk::ErrorKind::Sql`] error that
/// quotes the statement (shortened), so the row says which one failed.
pub fn exec(host: &Host<'_>, sql: &str, params: &[&str]) -> Result<(), JobError> {
    host.query(sql, params).map(|_| ()).map_err(|e| JobError {
        message: format!("{} (statement: {})", e.message, shorten(sql)),
        ..e
    })
}

/// `sql` on one line, cut after 200 bytes: enough to recognise a statement in a result.
fn shorten(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.len() > 200 {
        let mut end = 200;
        while !one_line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &one_line[..end])
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_statements_are_shortened_on_a_char_boundary() {
        assert_eq!(shorten("SELECT\n  1,\t2"), "SELECT 1, 2");
        let long = format!("SELECT '{}'", "é".repeat(200));
        let short = shorten(&long);
        assert!(short.ends_with("...") && short.len() <= 203, "{short}");
    }
}
