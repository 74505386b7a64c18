//! The check after a physical restore: every restored table opens and has the row count the
//! temporary server saw in the backup.

use dbjobs_kit::sql::qualified;
use dbjobs_sdk::{Host, JobError};

use super::catalog::{Catalog, Kind};

/// Count the rows of every base table of `catalog` on the live server and compare.
pub fn tables(host: &Host<'_>, catalog: &Catalog) -> Result<(), JobError> {
    let mut wrong = Vec::new();
    for t in catalog.tables.iter().filter(|t| t.kind == Kind::Table) {
        let q = qualified(&t.schema, &t.name);
        let count = host
            .query_value(&format!("SELECT COUNT(*) FROM {q}"), &[])
            .map_err(|e| e.context(format!("restored table {q} does not open")))?
            .and_then(|v| v.parse::<u64>().ok());
        if count != t.rows {
            wrong.push(differs(&q, count, t.rows));
        }
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(JobError::internal(format!(
        "the restore finished but {} table(s) differ from the backup: {}",
        wrong.len(),
        wrong.join(", ")
    ))
    .with_hint("check that nothing wrote to the node during the restore, then run the job again"))
}

/// `a.t has 3 rows, the backup 4`.
fn differs(q: &str, live: Option<u64>, backup: Option<u64>) -> String {
    let n = |c: Option<u64>| c.map_or("?".into(), |c| c.to_string());
    format!("{q} has {} rows, the backup {}", n(live), n(backup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_both_counts() {
        assert_eq!(
            differs("`a`.`t`", Some(3), Some(4)),
            "`a`.`t` has 3 rows, the backup 4"
        );
        assert_eq!(
            differs("`a`.`t`", None, Some(4)),
            "`a`.`t` has ? rows, the backup 4"
        );
    }
}
