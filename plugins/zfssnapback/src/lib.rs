//! The `zfssnapback` task: roll the server's ZFS dataset back to its newest matching snapshot.
//!
//! On nodes whose datadir lives on ZFS (the OpenSVC module sets of replication-manager),
//! replication-manager can ask a node to return to its last daily snapshot. The plugin:
//!
//! 1. lists the snapshots with `zfs list -H -p -t snapshot -o name,creation` (`-p`: creation
//!    as seconds since the epoch, so it sorts as a number);
//! 2. keeps those of the dataset (setting `zfs_dataset`, exact name; or `zfs_dataset_filter`,
//!    a substring of the dataset name such as the shipped script's `zp<service>_pod01`, which
//!    must then match exactly one dataset) whose snapshot name contains `zfs_snapshot_filter`
//!    (default `daily`), and picks the newest **by creation time**, not by name
//!    (`daily-9` sorts after `daily-10` by name);
//! 3. stops the database service (`service_stop_command`, default `systemctl stop mariadb`),
//!    runs `zfs rollback -r <snapshot>`, starts the service again (`service_start_command`,
//!    default `systemctl start mariadb`), and waits until the server answers
//!    (`service_wait_timeout`, default 120 s), so the host can write the outcome: the job's
//!    queue session died with the server and the host reconnects for 60 s only.
//!
//! The service is started again whatever failed after it was stopped (a failed rollback
//! leaves the data as it was); the job then fails, saying what failed. Commands are split on
//! whitespace and run without a shell. `zfs` is looked up on `PATH` unless the setting
//! `zfs_command` names it.

use std::time::Instant;

use dbjobs_sdk::service::{
    wait_timeout, wait_until_answers, ServiceCommand, DEFAULT_START_COMMAND, DEFAULT_STOP_COMMAND,
};
use dbjobs_sdk::tool::{find_tool, ToolCommand};
use dbjobs_sdk::{export_plugin, Direction, Host, Job, Outcome, Plugin, PluginInfo};

/// Default of `zfs_snapshot_filter`.
pub const DEFAULT_SNAPSHOT_FILTER: &str = "daily";

/// The zfssnapback plugin.
#[derive(Default)]
pub struct ZfsSnapback;

/// One line of `zfs list -H -p -o name,creation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `dataset@snapshot`.
    pub name: String,
    /// Seconds since the epoch.
    pub creation: u64,
}

impl Snapshot {
    /// The dataset part (before `@`).
    pub fn dataset(&self) -> &str {
        self.name.split_once('@').map_or("", |(d, _)| d)
    }

    /// The snapshot part (after `@`).
    pub fn short_name(&self) -> &str {
        self.name.split_once('@').map_or("", |(_, s)| s)
    }
}

/// Which dataset to roll back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetSelector {
    /// This exact dataset.
    Exact(String),
    /// The one dataset whose name contains this text.
    Filter(String),
}

/// Parse `zfs list -H -p -o name,creation` output; lines that are not `name<TAB>seconds` with
/// an `@` in the name are errors (an unexpected format must not pick a wrong snapshot).
pub fn parse_list(text: &str) -> Result<Vec<Snapshot>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut cols = line.split('\t');
            let (name, creation) = (cols.next().unwrap_or("").trim(), cols.next());
            let creation = creation
                .and_then(|c| c.trim().parse::<u64>().ok())
                .filter(|_| name.contains('@'))
                .ok_or_else(|| format!("unexpected line in the output of zfs list: {line:?}"))?;
            Ok(Snapshot {
                name: name.to_string(),
                creation,
            })
        })
        .collect()
}

/// The newest snapshot (by creation time, then name) of the selected dataset whose snapshot
/// name contains `snapshot_filter`.
pub fn pick(
    snapshots: &[Snapshot],
    dataset: &DatasetSelector,
    snapshot_filter: &str,
) -> Result<Snapshot, String> {
    let of_dataset: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| match dataset {
            DatasetSelector::Exact(d) => s.dataset() == d,
            DatasetSelector::Filter(f) => s.dataset().contains(f.as_str()),
        })
        .collect();
    let mut datasets: Vec<&str> = of_dataset.iter().map(|s| s.dataset()).collect();
    datasets.sort_unstable();
    datasets.dedup();
    let described = match dataset {
        DatasetSelector::Exact(d) => format!("dataset {d}"),
        DatasetSelector::Filter(f) => format!("datasets matching {f:?}"),
    };
    if datasets.len() > 1 {
        return Err(format!(
            "{described} are several: {}; set zfs_dataset to the one to roll back",
            datasets.join(", ")
        ));
    }
    of_dataset
        .into_iter()
        .filter(|s| s.short_name().contains(snapshot_filter))
        .max_by(|a, b| {
            a.creation
                .cmp(&b.creation)
                .then_with(|| a.name.cmp(&b.name))
        })
        .cloned()
        .ok_or_else(|| {
            format!(
                "no snapshot of {described} has {snapshot_filter:?} in its name; \
                 check zfs list -t snapshot and the settings zfs_dataset/zfs_dataset_filter/zfs_snapshot_filter"
            )
        })
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (for the result).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Plugin for ZfsSnapback {
    fn info(&self) -> PluginInfo {
        PluginInfo::new(
            "zfssnapback",
            env!("CARGO_PKG_VERSION"),
            "roll the datadir's ZFS dataset back to its newest daily snapshot",
        )
        .task(
            "zfssnapback",
            Direction::Local,
            "stop the service, zfs rollback -r to the newest matching snapshot, start the service",
        )
    }

    fn run(&self, _job: &Job, host: &Host<'_>) -> Result<Outcome, String> {
        let dataset = match (
            host.setting("zfs_dataset"),
            host.setting("zfs_dataset_filter"),
        ) {
            (Some(d), _) if !d.trim().is_empty() => DatasetSelector::Exact(d.trim().to_string()),
            (_, Some(f)) if !f.trim().is_empty() => DatasetSelector::Filter(f.trim().to_string()),
            _ => return Err(
                "no dataset configured: set zfs_dataset (e.g. zfs_dataset=tank/zpmariadb_pod01) \
                     or zfs_dataset_filter (e.g. zfs_dataset_filter=zpmariadb_pod01) in [dbjobs]"
                    .into(),
            ),
        };
        let snapshot_filter = host
            .setting("zfs_snapshot_filter")
            .unwrap_or_else(|| DEFAULT_SNAPSHOT_FILTER.to_string());
        let stop =
            ServiceCommand::from_setting(host, "service_stop_command", DEFAULT_STOP_COMMAND)?;
        let start =
            ServiceCommand::from_setting(host, "service_start_command", DEFAULT_START_COMMAND)?;
        let wait = wait_timeout(host)?;
        let zfs = find_tool(&["zfs"], host.setting("zfs_command").as_deref())
            .map_err(|e| format!("{e} (setting zfs_command)"))?;

        let list = ToolCommand::new(&zfs, None)
            .args(["list", "-H", "-p", "-t", "snapshot", "-o", "name,creation"])
            .piped_stdout()
            .spawn(|_| {})?;
        let (listing, exit) = read_all_and_wait(list)?;
        if !exit.success() {
            return Err(format!("listing the snapshots failed: {}", exit.failure()));
        }
        let snapshot = pick(&parse_list(&listing)?, &dataset, snapshot_filter.trim())?;
        let when = utc(snapshot.creation);
        host.info(&format!(
            "rolling back to {} (created {when})",
            snapshot.name
        ));
        // The last row update while the server is up; nothing may touch it until it is back.
        host.progress(&format!(
            "stopping the service to roll back to {}",
            snapshot.name
        ));
        let started = Instant::now();

        if let Err(e) = stop.run() {
            let restart = start_again(host, &start, wait);
            return Err(format!(
                "stopping the service failed, nothing was rolled back: {e}; {restart}"
            ));
        }
        host.info(&format!(
            "service stopped; zfs rollback -r {}",
            snapshot.name
        ));
        let rollback = ToolCommand::new(&zfs, None)
            .args(["rollback", "-r", snapshot.name.as_str()])
            .run();
        let rollback_error = match rollback {
            Ok(exit) if exit.success() => None,
            Ok(exit) => Some(exit.failure()),
            Err(e) => Some(e),
        };
        if let Some(e) = rollback_error {
            let restart = start_again(host, &start, wait);
            return Err(format!(
                "zfs rollback -r {} failed: {e}; the data was not rolled back; {restart}",
                snapshot.name
            ));
        }
        host.info(&format!("rolled back; starting the service: {start}"));
        start.run().map_err(|e| {
            format!(
                "rolled back to {} but starting the service failed: {e}; start it by hand",
                snapshot.name
            )
        })?;
        let took = wait_until_answers(host, wait)
            .map_err(|e| format!("rolled back to {}, service started, but {e}", snapshot.name))?;
        let result = format!(
            "rolled back to snapshot {} (created {when}); service stopped and started, the server answered after {:.1} s (down {:.1} s)",
            snapshot.name,
            took.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        host.info(&result);
        Ok(Outcome::new(result))
    }
}

/// After a failure with the service stopped: start it and wait for the server, and say how
/// that went (for the job's error text).
fn start_again(host: &Host<'_>, start: &ServiceCommand, wait: std::time::Duration) -> String {
    host.warn(&format!("starting the service again: {start}"));
    match start.run() {
        Err(e) => format!("starting the service again failed too: {e}; start it by hand"),
        Ok(_) => match wait_until_answers(host, wait) {
            Ok(_) => "the service was started again".to_string(),
            Err(e) => format!("the service was started again, but {e}"),
        },
    }
}

/// Read a tool's whole stdout, then wait for it.
fn read_all_and_wait(
    mut tool: dbjobs_sdk::tool::RunningTool,
) -> Result<(String, dbjobs_sdk::tool::ToolExit), String> {
    use std::io::Read;
    let mut out = String::new();
    if let Some(mut stdout) = tool.take_stdout() {
        stdout
            .read_to_string(&mut out)
            .map_err(|e| format!("reading the output of zfs list failed: {e}"))?;
    }
    Ok((out, tool.wait()?))
}

export_plugin!(ZfsSnapback);

#[cfg(test)]
mod tests {
    use super::*;

    fn snaps() -> Vec<Snapshot> {
        parse_list(
            "tank/zpdb_pod01@daily-9\t1700000900\n\
             tank/zpdb_pod01@daily-10\t1700001000\n\
             tank/zpdb_pod01@weekly-1\t1700009999\n\
             tank/zpdb_pod01@daily-2\t1699990000\n\
             tank/other@daily-11\t1800000000\n",
        )
        .unwrap()
    }

    #[test]
    fn newest_by_creation_not_by_name() {
        let s = pick(
            &snaps(),
            &DatasetSelector::Exact("tank/zpdb_pod01".into()),
            "daily",
        )
        .unwrap();
        assert_eq!(s.name, "tank/zpdb_pod01@daily-10");
        let s = pick(
            &snaps(),
            &DatasetSelector::Filter("zpdb_pod".into()),
            "weekly",
        )
        .unwrap();
        assert_eq!(s.name, "tank/zpdb_pod01@weekly-1");
    }

    #[test]
    fn ambiguous_or_empty_selections_are_errors() {
        let err = pick(&snaps(), &DatasetSelector::Filter("tank/".into()), "daily").unwrap_err();
        assert!(err.contains("tank/other, tank/zpdb_pod01"), "{err}");
        let err = pick(&snaps(), &DatasetSelector::Exact("tank/x".into()), "daily").unwrap_err();
        assert!(err.contains("no snapshot"), "{err}");
    }

    #[test]
    fn bad_list_lines_are_refused() {
        assert!(parse_list("tank/a@x\tnot-a-number\n").is_err());
        assert!(parse_list("tank/a\t123\n").is_err());
        assert_eq!(parse_list("\n").unwrap(), vec![]);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
