//! `mariadb-backup --prepare --export`: apply the redo log and write a `.cfg` beside each
//! `.ibd`, so an online restore can import the tablespaces.

use std::path::Path;

use dbjobs_kit::tool::ToolCommand;
use dbjobs_sdk::{Host, JobError};

/// Prepare the extracted backup in `backup` with `tool`; its stderr lines go to the host's
/// log (and so to replication-manager's live job log).
pub fn prepare(host: &Host<'_>, tool: &Path, backup: &Path) -> Result<(), JobError> {
    // The backup's own settings (page size, undo and redo layout), as the temporary server
    // reads them: with --no-defaults, a backup of a server with 8 KiB pages was refused
    // ("wrong space ID").
    let settings = backup.join("backup-my.cnf");
    let cmd = match settings.is_file() {
        true => ToolCommand::new(tool, Some(&settings)),
        false => ToolCommand::new(tool, None).arg("--no-defaults"),
    };
    let exit = cmd
        .arg("--prepare")
        .arg("--export")
        .arg(format!("--target-dir={}", backup.display()))
        .run_logged(host)?;
    if !exit.success() {
        return Err(exit.error("preparing the backup failed").with_hint(
            "check that the backup tool is the server's version (setting backup_tool)",
        ));
    }
    Ok(())
}
