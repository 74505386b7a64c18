//! `uptime_check`: a small dbjobs job type built out of tree, as a vendor builds one.
//!
//! The job reads the server's version, uptime and `read_only` through the host
//! ([`Host::query`], on a session dbjobs opens with the node's credentials), and reports them
//! in the job's result, with a JSON payload for the payload variant of the job table. It
//! fails, leaving the server untouched, when the server restarted less than
//! `uptime_check_min_seconds` ago (a crash loop a cron of this job reveals) or is read-only
//! while `uptime_check_require_writable` is set.

use dbjobs_sdk::{
    declare_settings, export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo,
    ServerState,
};

declare_settings! {
    /// What `uptime_check` insists on.
    pub struct UptimeSettings {
        /// uptime_check fails when the server has been up for fewer seconds than this; 0: never.
        pub uptime_check_min_seconds: u64 = "0",
        /// uptime_check fails when the server is read-only (set it on a primary).
        pub uptime_check_require_writable: bool = "false",
    }
}

/// What the server said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// `VERSION()`, e.g. `11.4.5-MariaDB-log`.
    pub version: String,
    /// `Uptime` of `SHOW GLOBAL STATUS`, in seconds.
    pub uptime: u64,
    /// `@@read_only`.
    pub read_only: bool,
}

impl ServerFacts {
    /// Ask the server, through the host.
    pub fn read(host: &Host<'_>) -> Result<Self, JobError> {
        let row = host
            .query("SELECT VERSION(), @@read_only", &[])?
            .into_iter()
            .next()
            .unwrap_or_default();
        let uptime = host
            .query("SHOW GLOBAL STATUS LIKE 'Uptime'", &[])?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().nth(1).flatten())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| JobError::sql("the server did not report its Uptime status"))?;
        Ok(ServerFacts {
            version: row.first().cloned().flatten().unwrap_or_default(),
            uptime,
            read_only: row.get(1).cloned().flatten().as_deref() == Some("1"),
        })
    }

    /// Whether the server meets the settings; the error says which one it does not.
    pub fn check(&self, settings: &UptimeSettings) -> Result<(), JobError> {
        let min = settings.uptime_check_min_seconds;
        if self.uptime < min {
            return Err(JobError::refused(format!(
                "the server has been up for {} only, less than uptime_check_min_seconds={min}",
                human(self.uptime)
            ))
            .with_hint("look for why it restarted in its error log (a crash loop?)"));
        }
        if settings.uptime_check_require_writable && self.read_only {
            return Err(JobError::refused(
                "the server is read-only, and uptime_check_require_writable is set",
            )
            .with_hint("is this node a replica? set the setting on the primary only"));
        }
        Ok(())
    }

    /// The job's result: `11.4.5-MariaDB up 2 h 3 min 4 s, writable`.
    pub fn summary(&self) -> String {
        format!(
            "{} up {}, {}",
            self.version,
            human(self.uptime),
            if self.read_only {
                "read-only"
            } else {
                "writable"
            }
        )
    }

    /// The payload: `{"read_only":false,"uptime_seconds":7384,"version":"..."}`.
    pub fn payload(&self) -> String {
        serde_json::json!({
            "version": self.version,
            "uptime_seconds": self.uptime,
            "read_only": self.read_only,
        })
        .to_string()
    }
}

/// `2 d 3 h 4 min 5 s`, without the leading zero units.
pub fn human(seconds: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")];
    let mut left = seconds;
    let parts: Vec<String> = units
        .iter()
        .filter_map(|&(size, name)| {
            let n = left / size;
            left %= size;
            (n > 0).then(|| format!("{n} {name}"))
        })
        .collect();
    if parts.is_empty() {
        "0 s".to_string()
    } else {
        parts.join(" ")
    }
}

/// The plugin. dbjobs creates it once, with `Default`, when it first calls into the library.
#[derive(Default)]
pub struct UptimeCheck;

impl Plugin for UptimeCheck {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "uptime-check",
            env!("CARGO_PKG_VERSION"),
            "reports the server's version and uptime (a vendor's out-of-tree plugin)",
        )
        .task(
            "uptime_check",
            Direction::Local,
            "report version and uptime; fail on a recent restart or a read-only primary",
        )
        .settings(UptimeSettings::DECLS)
    }

    fn run(&self, _job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
        // Settings first: a bad value fails the job before it does anything.
        let settings = UptimeSettings::read(host)?;
        let facts = ServerFacts::read(host)
            .map_err(|e| e.context("reading the server's version and uptime"))?;
        // The host tags the line with the job's id and task.
        host.info(&facts.summary());
        facts
            .check(&settings)
            .map_err(|e| e.or_state(ServerState::Untouched))?;
        Ok(Outcome::new(facts.summary()).with_payload(facts.payload()))
    }
}

export_plugin!(UptimeCheck);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_as_people_say_it() {
        assert_eq!(human(0), "0 s");
        assert_eq!(human(59), "59 s");
        assert_eq!(human(7_384), "2 h 3 min 4 s");
        assert_eq!(human(86_400 + 60), "1 d 1 min");
    }

    #[test]
    fn a_recent_restart_and_a_read_only_primary_fail_the_check() {
        let facts = ServerFacts {
            version: "11.4.5-MariaDB".into(),
            uptime: 30,
            read_only: true,
        };
        let relaxed = UptimeSettings::read(&|_: &str| None).unwrap();
        assert!(facts.check(&relaxed).is_ok());
        let strict = UptimeSettings::read(&|name: &str| match name {
            "uptime_check_min_seconds" => Some("60".to_string()),
            _ => None,
        })
        .unwrap();
        let e = facts.check(&strict).unwrap_err();
        assert!(e.message.contains("30 s only"), "{e}");
        let writable = UptimeSettings::read(&|name: &str| {
            (name == "uptime_check_require_writable").then(|| "true".to_string())
        })
        .unwrap();
        assert!(facts
            .check(&writable)
            .unwrap_err()
            .message
            .contains("read-only"));
        let payload: serde_json::Value = serde_json::from_str(&facts.payload()).unwrap();
        assert_eq!(
            payload,
            serde_json::json!({"version": "11.4.5-MariaDB", "uptime_seconds": 30, "read_only": true})
        );
    }
}
