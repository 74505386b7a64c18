//! The check after a physical restore: every restored table opens and has the row count the
//! temporary server saw in the backup, every Aria and MyISAM table passes `CHECK TABLE`
//! (their files were moved in, not imported), and every sequence hands out the value the
//! backup would.

use dbjobs_kit::sql::qualified;
use dbjobs_sdk::{Host, JobError};

use super::catalog::{Catalog, Kind, TableDef};

/// Check every table and sequence of `catalog` on the live server.
pub fn tables(host: &Host<'_>, catalog: &Catalog) -> Result<(), JobError> {
    let mut wrong = Vec::new();
    for t in &catalog.tables {
        let q = qualified(&t.schema, &t.name);
        match t.kind {
            Kind::Table => {
                let count = host
                    .query_value(&format!("SELECT COUNT(*) FROM {q}"), &[])
                    .map_err(|e| e.context(format!("restored table {q} does not open")))?
                    .and_then(|v| v.parse::<u64>().ok());
                if count != t.rows {
                    wrong.push(differs(&q, count, t.rows));
                }
                if moved_files(t) {
                    wrong.extend(check_table(host, &q)?);
                }
            }
            Kind::Sequence => wrong.extend(check_sequence(host, t, &q)?),
            Kind::View => {}
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

/// Whether `t`'s data files were moved in rather than imported: Aria and MyISAM.
fn moved_files(t: &TableDef) -> bool {
    t.is_aria() || t.engine.eq_ignore_ascii_case("MyISAM")
}

/// `CHECK TABLE q`: its error lines, if any.
fn check_table(host: &Host<'_>, q: &str) -> Result<Option<String>, JobError> {
    let rows = host.query(&format!("CHECK TABLE {q}"), &[])?;
    // Table, Op, Msg_type, Msg_text; the last row is the verdict.
    let text = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    let ok = rows
        .last()
        .is_some_and(|r| text(r, 2) == "status" && text(r, 3) == "OK");
    if ok {
        return Ok(None);
    }
    let messages: Vec<String> = rows.iter().map(|r| text(r, 3)).collect();
    Ok(Some(format!("CHECK TABLE {q}: {}", messages.join("; "))))
}

/// The sequence's next value on the live server against the backup's.
fn check_sequence(host: &Host<'_>, t: &TableDef, q: &str) -> Result<Option<String>, JobError> {
    let Some(backup) = t.sequence else {
        return Ok(None);
    };
    let live = host
        .query_value(&format!("SELECT next_not_cached_value FROM {q}"), &[])
        .map_err(|e| e.context(format!("restored sequence {q} does not open")))?
        .and_then(|v| v.parse::<i64>().ok());
    Ok((live != Some(backup.next_value)).then(|| {
        format!(
            "sequence {q} would hand out {}, the backup {}",
            live.map_or("?".into(), |v| v.to_string()),
            backup.next_value
        )
    }))
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
