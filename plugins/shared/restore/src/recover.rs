//! Recovery at start-up: finish or roll back the restores whose run died.
//!
//! The host calls the reseed and flashback plugins' `recover` at every `dbjobs run` and
//! `dbjobs daemon` start, before any job is claimed ([`dbjobs_sdk::Plugin::recover`]). For
//! every job of the plugin's [`Intent`] with a lock file or a journal in
//! `<state_dir>/restore` whose lock no live run holds ([`crate::journal`]):
//! 1. its temporary server is stopped (found by the pid file in its staging directory and
//!    checked to run on a datadir inside it, never the live server) and its staging
//!    directory removed;
//! 2. by the journal's phase: before the switch the restore is rolled back
//!    ([`shadow::roll_back`]: shadows dropped, live data untouched); after it, it is rolled
//!    forward (the backup's objects created again, the old tables dropped); a full restore
//!    killed while the datadir was being replaced gets the old datadir back and the server
//!    started on it;
//! 3. the job's outcome says what the recovery did, and the host writes it to the row.
//!
//! A step that fails leaves the journal for the next start and is reported as the
//! recovery's error; the host logs it and goes on.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use dbjobs_kit::tool::find_tool;
use dbjobs_sdk::{Host, JobError, ServerState};

use crate::journal::{self, AfterSwitch, JobLock, Journal, JournalPhase, JournalRecord};
use crate::logical::apply::{self, Client};
use crate::objects;
use crate::physical::catalog::Catalog;
use crate::physical::full;
use crate::settings::Settings;
use crate::shadow;
use crate::Intent;

/// Recover every dead restore of `intent` (see the module docs): the outcome of each.
pub fn recover(intent: Intent, host: &Host<'_>) -> Result<Vec<(u64, JobError)>, JobError> {
    let dir = journal::journal_dir(host)?;
    let mut outcomes = Vec::new();
    for id in journal::locked_jobs(&dir) {
        let Some(lock) = JobLock::try_take(&dir, id)? else {
            host.debug(&format!("job {id}: its run is alive, left alone"));
            continue;
        };
        let journal = Journal::open(&dir, id)?;
        let task = journal
            .as_ref()
            .map(|j| j.record().task)
            .or_else(|| lock.info().map(|i| i.task))
            .unwrap_or_default();
        if intent_of(&task) != Some(intent) {
            continue;
        }
        host.info(&format!("job {id} ({task}): its run died, recovering"));
        let (outcome, settled) = recover_job(host, &lock, journal.as_ref());
        host.info(&format!("job {id}: {}", outcome.result_text()));
        if settled {
            lock.release();
        }
        outcomes.push((id, outcome));
    }
    Ok(outcomes)
}

/// The intent of a restore task name.
fn intent_of(task: &str) -> Option<Intent> {
    let t = task.to_ascii_lowercase();
    if t.starts_with("reseed") {
        Some(Intent::Reseed)
    } else if t.starts_with("flashback") {
        Some(Intent::Flashback)
    } else {
        None
    }
}

/// One dead job: its leftovers cleaned, its journal finished or rolled back. The job's
/// final error, and whether it is settled (`false`: the journal stays, the next start
/// tries again).
fn recover_job(host: &Host<'_>, lock: &JobLock, journal: Option<&Journal>) -> (JobError, bool) {
    let mut done = Vec::new();
    if let Some(info) = lock.info() {
        done.extend(clean_staging(host, &info.staging));
    }
    let Some(journal) = journal else {
        done.push("the run had not changed the server".into());
        return (died(done, ServerState::Untouched), true);
    };
    let record = journal.record();
    match settle_journal(host, &record) {
        Ok((what, state)) => {
            journal.done();
            done.push(what);
            (died(done, state), true)
        }
        Err(e) => {
            done.push(format!(
                "finishing its restore ({}) failed, the next start tries again: {}",
                record.phase.as_str(),
                e.result_text()
            ));
            (died(done, ServerState::Partial), false)
        }
    }
}

/// The outcome of a dead job: what the recovery did.
fn died(done: Vec<String>, state: ServerState) -> JobError {
    JobError::tool(format!("the run died; recovery: {}", done.join("; "))).with_state(state)
}

/// Roll the journal's restore back or forward, by its phase: what was done, and the
/// server's state.
fn settle_journal(
    host: &Host<'_>,
    record: &JournalRecord,
) -> Result<(String, ServerState), JobError> {
    let switched = match record.phase {
        JournalPhase::Building => false,
        JournalPhase::Switching => shadow::is_switched(host, &record.set)?,
        JournalPhase::Switched | JournalPhase::ObjectsCreated => true,
        JournalPhase::FullReplacing => return put_back_datadir(host, record),
    };
    let ended = shadow::end_sessions_in(host, &record.set)?;
    if ended > 0 {
        host.info(&format!(
            "killed {ended} session(s) of the dead run still working in its aside databases"
        ));
    }
    if !switched {
        shadow::roll_back(host, record)?;
        return Ok((
            format!(
                "rolled back while {}: the shadow databases dropped, the live data untouched",
                record.phase.as_str()
            ),
            ServerState::Untouched,
        ));
    }
    if record.phase != JournalPhase::ObjectsCreated {
        create_objects_again(host, record)?;
    }
    shadow::finish(host, &record.set)?;
    Ok((
        format!(
            "rolled forward (it died after the switch): the node holds the backup{}, its views, triggers, routines and events created, the old tables dropped; replication was not set up: retry the job",
            match record.gtid.as_str() {
                "" => String::new(),
                g => format!(" (GTID {g})"),
            }
        ),
        ServerState::Unknown,
    ))
}

/// After the switch: the live databases' objects replaced by the backup's, from the
/// catalog (physical) or the objects script (logical) kept beside the journal.
fn create_objects_again(host: &Host<'_>, record: &JournalRecord) -> Result<(), JobError> {
    shadow::clear_live_objects(host, &record.set)?;
    match &record.after_switch {
        Some(AfterSwitch::Catalog(path)) => {
            let text = fs::read(path)
                .map_err(|e| JobError::io(format!("cannot read {}: {e}", path.display())))?;
            let catalog: Catalog = serde_json::from_slice(&text).map_err(|e| {
                JobError::bad_input(format!("the catalog {} is unreadable: {e}", path.display()))
            })?;
            objects::create_objects(host, &catalog)
        }
        Some(AfterSwitch::Script(path)) => replay(host, path),
        None => Ok(()),
    }
}

/// Replay an objects script through the `mariadb` client.
fn replay(host: &Host<'_>, script: &Path) -> Result<(), JobError> {
    let settings = Settings::read(host)?;
    let program = find_tool(
        &["mariadb", "mysql"],
        Some(&settings.restore.mariadb_client),
    )?;
    let client = Client {
        program: &program,
        option_file: host.client_option_file()?,
    };
    let replay = apply::Replay {
        path: script,
        total: fs::metadata(script).map(|m| m.len()).unwrap_or(0),
        origin: apply::Origin::Named("objects.sql"),
        half_point: None,
    };
    // As the run would have: the events the script creates are disabled on the slave.
    let since = objects::server_now(host)?;
    apply::one_session(host, &client, &replay)?;
    objects::disable_events_created_since(host, &since).map(|_| ())
}

/// A full restore that died while replacing the datadir.
fn put_back_datadir(
    host: &Host<'_>,
    record: &JournalRecord,
) -> Result<(String, ServerState), JobError> {
    let Some(moved) = &record.full else {
        return Ok(("nothing to put back".into(), ServerState::Unknown));
    };
    let settings = Settings::read(host)?;
    let what = full::put_back_after_crash(host, &settings.service, moved, record.job_id)?;
    Ok((what, ServerState::RolledBack))
}

/// Stop the temporary server of a dead job's staging directory `staging` and remove the
/// directory: what was done, for the outcome.
fn clean_staging(host: &Host<'_>, staging: &Path) -> Vec<String> {
    let mut done = Vec::new();
    if let Some(pid) = temp_server_pid(staging) {
        stop_process(pid);
        done.push(format!("stopped its temporary server (pid {pid})"));
    }
    if staging.exists() {
        match fs::remove_dir_all(staging) {
            Ok(()) => done.push(format!(
                "removed its staging directory {}",
                staging.display()
            )),
            Err(e) => host.warn(&format!("cannot remove {}: {e}", staging.display())),
        }
    }
    done
}

/// The pid of a temporary server still running on a datadir inside `staging`: the pid file
/// it wrote there, checked against the process's command line.
fn temp_server_pid(staging: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(staging.join("temp.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let datadir = format!("--datadir={}", staging.display());
    let runs_there = cmdline
        .split(|b| *b == 0)
        .any(|arg| arg.starts_with(datadir.as_bytes()));
    (pid > 1 && runs_there).then_some(pid)
}

/// SIGTERM, up to 30 s for it to go, then SIGKILL.
fn stop_process(pid: i32) {
    // SAFETY: kill has no memory preconditions; `pid` was checked to be a temporary server.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    if alive() {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_have_an_intent() {
        assert_eq!(intent_of("reseedmariabackup"), Some(Intent::Reseed));
        assert_eq!(intent_of("flashbackmysqldump"), Some(Intent::Flashback));
        assert_eq!(intent_of("optimize"), None);
    }

    #[test]
    fn a_pid_file_of_another_process_is_not_a_temporary_server() {
        let staging = tempfile::tempdir().unwrap();
        fs::write(
            staging.path().join("temp.pid"),
            std::process::id().to_string(),
        )
        .unwrap();
        assert_eq!(temp_server_pid(staging.path()), None);
    }
}
