//! What a table whose files were just imported or moved in needs before it serves as it
//! did in the backup, measured on MariaDB 10.11:
//!
//! * **Aria**: its pages carry the source server's log sequence numbers; `CHECK TABLE` calls
//!   it "from another system, must be zerofilled or repaired" until the first write opens
//!   it. `REPAIR TABLE` makes it this server's at once.
//! * **FULLTEXT** (InnoDB): `IMPORT TABLESPACE` cannot bring the auxiliary index tables and
//!   marks the index corrupt (`MATCH` then fails, and dropping and re-adding the index in
//!   place crashed the server); a copying rebuild (`ALTER TABLE .. FORCE,
//!   ALGORITHM=COPY`) recreates it from the rows.
//! * **AUTO_INCREMENT**: the import keeps the counter the tablespace persisted; when the
//!   backup's is higher (the definition says so), it is raised to it, so new rows continue
//!   where the backup was.
//!
//! SPATIAL indexes, invisible and generated columns and the history of system-versioned
//! tables come through an import unchanged.

use dbjobs_kit::sql::qualified;
use dbjobs_sdk::{Host, JobError};

use super::catalog::TableDef;
use crate::statement::exec;

/// Finish table `t` of the backup, imported as `schema`.`name` on the live server.
pub fn finish(host: &Host<'_>, schema: &str, name: &str, t: &TableDef) -> Result<(), JobError> {
    let q = qualified(schema, name);
    if t.is_aria() {
        repair(host, &q)?;
    }
    if t.is_innodb() && t.has_fulltext() {
        rebuild(host, &q, t.is_versioned())?;
    }
    if let Some(backup) = t.auto_increment {
        raise_auto_increment(host, schema, name, backup)?;
    }
    Ok(())
}

/// `REPAIR TABLE`, whose failures are rows of its result, not errors.
fn repair(host: &Host<'_>, q: &str) -> Result<(), JobError> {
    let rows = host.query(&format!("REPAIR TABLE {q}"), &[])?;
    // Table, Op, Msg_type, Msg_text.
    let errors: Vec<String> = rows
        .iter()
        .filter(|r| r.get(2).and_then(|t| t.as_deref()) == Some("error"))
        .filter_map(|r| r.get(3).cloned().flatten())
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(JobError::sql(format!(
        "REPAIR TABLE {q} after moving its files in failed: {}",
        errors.join("; ")
    )))
}

/// Rebuild the table by copying its rows, which recreates its FULLTEXT indexes; a
/// system-versioned table keeps its history (`system_versioning_alter_history=KEEP`).
fn rebuild(host: &Host<'_>, q: &str, versioned: bool) -> Result<(), JobError> {
    if versioned {
        exec(
            host,
            "SET SESSION system_versioning_alter_history=KEEP",
            &[],
        )?;
    }
    let result = exec(host, &format!("ALTER TABLE {q} FORCE, ALGORITHM=COPY"), &[])
        .map_err(|e| e.context(format!("rebuilding the FULLTEXT indexes of {q}")));
    if versioned {
        let _ = host.query("SET SESSION system_versioning_alter_history=ERROR", &[]);
    }
    result
}

/// Raise the table's `AUTO_INCREMENT` to `backup` when the import left it lower.
fn raise_auto_increment(
    host: &Host<'_>,
    schema: &str,
    name: &str,
    backup: u64,
) -> Result<(), JobError> {
    let live = host
        .query_value(
            "SELECT auto_increment FROM information_schema.tables WHERE table_schema=? AND table_name=?",
            &[schema, name],
        )?
        .and_then(|v| v.parse::<u64>().ok());
    if live.is_some_and(|live| live >= backup) {
        return Ok(());
    }
    let q = qualified(schema, name);
    exec(
        host,
        &format!("ALTER TABLE {q} AUTO_INCREMENT={backup}"),
        &[],
    )
}
