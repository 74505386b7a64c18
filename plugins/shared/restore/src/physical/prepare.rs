//! `mariadb-backup --prepare --export`: apply the redo log and write a `.cfg` beside each
//! `.ibd`, so an online restore can import the tablespaces; and what is checked around it
//! before the first change: the tool is the server's version, it said `completed OK!`.

use std::path::Path;

use dbjobs_kit::server::{major_minor, ServerFacts};
use dbjobs_kit::tool::ToolCommand;
use dbjobs_sdk::{Host, JobError, ServerState};

/// Refuse a backup tool of another `major.minor` than the server: a backup prepared by
/// another version may not open, or import tablespaces the server then calls corrupt.
pub fn check_tool_version(tool: &Path, facts: &ServerFacts) -> Result<(), JobError> {
    let exit = ToolCommand::new(tool, None).arg("--version").run()?;
    let said = exit.stderr_tail.join(" ");
    let (Some(tool_version), Some(server)) = (major_minor(&said), facts.major_minor()) else {
        return Ok(());
    };
    if tool_version == server {
        return Ok(());
    }
    Err(JobError::refused(format!(
        "{} is version {tool_version}, the server {server} ({})",
        tool.display(),
        facts.version
    ))
    .with_hint(format!(
        "install the backup tool of the server's version (mariadb-backup {server}) or point backup_tool at it"
    ))
    .with_state(ServerState::Untouched))
}

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
    if !exit.stderr_contains("completed OK!") {
        return Err(JobError::tool(format!(
            "preparing the backup exited 0 without saying completed OK! (last lines: {})",
            exit.last_lines(3)
        ))
        .with_state(ServerState::Untouched));
    }
    Ok(())
}
