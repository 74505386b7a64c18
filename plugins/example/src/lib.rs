//! The `example` task: the smallest useful dbjobs plugin.
//!
//! It waits `port` milliseconds (0..=60000, taken from the row so tests can make a job slow),
//! reporting progress while it waits, appends `<job id> <pid>` as a line to the file named by
//! the setting `example_log` when set (tests count these lines to prove a job ran exactly
//! once), logs `example_log_lines` numbered lines through the host, and finishes with the
//! result `example job <id> done`. The setting `example_payload`,
//! when set, is returned as the job's JSON payload (tests use it to check payload writes).
//!
//! Read it as the template for a new plugin: a `Default` type, [`Plugin::info`] declaring the
//! tasks, [`Plugin::run`] doing the work, and `export_plugin!` for the glue.

use std::io::Write;
use std::time::{Duration, Instant};

use dbjobs_sdk::{
    declare_settings, export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo,
    ServerState,
};

declare_settings! {
    /// What the example task does besides waiting.
    pub struct ExampleSettings {
        /// File the example task appends "<job id> <pid>" to (tests count the lines); empty: none.
        pub example_log: String = "",
        /// JSON the example task returns as its payload; empty: none.
        pub example_payload: String = "",
        /// Lines the example task logs through the host before it ends (tests of the live job log); 0: none.
        pub example_log_lines: u32 = "0",
    }
}

/// The longest wait a row may ask for, in milliseconds.
pub const MAX_WAIT_MS: u16 = 60_000;

/// The example plugin.
#[derive(Default)]
pub struct Example;

impl Plugin for Example {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "example",
            env!("CARGO_PKG_VERSION"),
            "sample plugin: waits `port` ms, logs the job to `example_log`",
        )
        .task(
            "example",
            Direction::Local,
            "wait `port` milliseconds, append the job id to the file named by `example_log`",
        )
        .settings(ExampleSettings::DECLS)
    }

    fn run(&self, job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
        let settings = ExampleSettings::read(host)?;
        if job.port > MAX_WAIT_MS {
            return Err(JobError::invalid_job(format!(
                "port {} is out of range for the example task: it is a wait in milliseconds, 0..={MAX_WAIT_MS}",
                job.port
            ))
            .with_state(ServerState::Untouched));
        }
        let wait = Duration::from_millis(u64::from(job.port));
        let start = Instant::now();
        while start.elapsed() < wait {
            if host.cancelled() {
                return Err(JobError::cancelled("cancelled").with_state(ServerState::Untouched));
            }
            host.progress(&format!(
                "waited {} of {} ms",
                start.elapsed().as_millis(),
                wait.as_millis()
            ));
            std::thread::sleep(
                wait.saturating_sub(start.elapsed())
                    .min(Duration::from_millis(50)),
            );
        }
        if !settings.example_log.is_empty() {
            let path = &settings.example_log;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| JobError::io(format!("cannot open example_log {path}: {e}")))?;
            // One write per line: O_APPEND keeps concurrent writers' lines whole.
            file.write_all(format!("{} {}\n", job.id, std::process::id()).as_bytes())
                .map_err(|e| JobError::io(format!("cannot write example_log {path}: {e}")))?;
        }
        for n in 1..=settings.example_log_lines {
            // Quotes, a backslash and a tab: the live job log must escape them as JSON.
            host.info(&format!(
                "example line {n} of {} \"quoted\" back\\slash\ttab",
                settings.example_log_lines
            ));
        }
        host.info(&format!("waited {} ms", wait.as_millis()));
        let outcome = Outcome::new(format!("example job {} done", job.id));
        Ok(match settings.example_payload.as_str() {
            "" => outcome,
            json => outcome.with_payload(json),
        })
    }
}

export_plugin!(Example);
