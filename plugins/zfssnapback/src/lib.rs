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

use std::cell::Cell;

use dbjobs_kit::service::{ServiceControl, ServiceSettings};
use dbjobs_kit::tool::{find_tool, RunningTool, ToolCommand, ToolExit};
use dbjobs_sdk::{
    declare_settings, export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo,
    ServerState,
};

declare_settings! {
    /// Which ZFS snapshot zfssnapback rolls back to.
    pub struct ZfsSettings {
        /// The dataset to roll back, e.g. tank/zpmariadb_pod01 (or set zfs_dataset_filter).
        pub zfs_dataset: String = "",
        /// Text the one dataset to roll back has in its name, when zfs_dataset is empty.
        pub zfs_dataset_filter: String = "",
        /// Text the snapshot's name must contain: the newest such snapshot is used.
        pub zfs_snapshot_filter: String = "daily",
        /// Path of the zfs command; empty: zfs on PATH.
        pub zfs_command: String = "",
    }
}

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
pub fn parse_list(text: &str) -> Result<Vec<Snapshot>, JobError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut cols = line.split('\t');
            let (name, creation) = (cols.next().unwrap_or("").trim(), cols.next());
            let creation = creation
                .and_then(|c| c.trim().parse::<u64>().ok())
                .filter(|_| name.contains('@'))
                .ok_or_else(|| {
                    JobError::tool(format!(
                        "unexpected line in the output of zfs list: {line:?}"
                    ))
                })?;
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
) -> Result<Snapshot, JobError> {
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
        return Err(
            JobError::config(format!("{described} are several: {}", datasets.join(", ")))
                .with_hint("set zfs_dataset to the one to roll back"),
        );
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
            JobError::refused(format!(
                "no snapshot of {described} has {snapshot_filter:?} in its name"
            ))
            .with_hint("check zfs list -t snapshot and the settings zfs_dataset, zfs_dataset_filter, zfs_snapshot_filter")
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
        // Not a `restore_task`: a rollback to a whole snapshot is how an operator may repair a
        // node an earlier restore left partial, so the host must not refuse it there.
        .task(
            "zfssnapback",
            Direction::Local,
            "stop the service, zfs rollback -r to the newest matching snapshot, start the service",
        )
        .settings(ZfsSettings::DECLS)
        .settings(ServiceSettings::DECLS)
    }

    fn run(&self, _job: &Job, host: &Host<'_>) -> Result<Outcome, JobError> {
        let settings = ZfsSettings::read(host)?;
        let service = ServiceControl::new(host, &ServiceSettings::read(host)?)?;
        let zfs = find_tool(&["zfs"], Some(&settings.zfs_command)).map_err(|e| {
            e.context("setting zfs_command")
                .with_state(ServerState::Untouched)
        })?;
        let snapshot =
            newest_snapshot(&zfs, &settings).map_err(|e| e.or_state(ServerState::Untouched))?;
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
        let rolled_back = Cell::new(false);
        let ((), down) = service.with_server_stopped(
            || {
                rollback(host, &zfs, &snapshot)?;
                rolled_back.set(true);
                Ok(())
            },
            |()| Ok(()),
            || match rolled_back.get() {
                false => Ok(()),
                true => Err(JobError::tool(format!(
                    "the rollback to {} happened and cannot be undone",
                    snapshot.name
                ))
                .with_hint("start the service by hand and check its error log")
                .with_state(ServerState::Unknown)),
            },
        )?;
        let result = format!(
            "rolled back to snapshot {} (created {when}); service stopped and started, the server answered after being down {:.1} s",
            snapshot.name,
            down.as_secs_f64()
        );
        host.info(&result);
        Ok(Outcome::new(result))
    }
}

/// Settings to a dataset selector: `zfs_dataset`, else `zfs_dataset_filter`.
fn dataset_selector(settings: &ZfsSettings) -> Result<DatasetSelector, JobError> {
    match (settings.zfs_dataset.trim(), settings.zfs_dataset_filter.trim()) {
        (d, _) if !d.is_empty() => Ok(DatasetSelector::Exact(d.to_string())),
        (_, f) if !f.is_empty() => Ok(DatasetSelector::Filter(f.to_string())),
        _ => Err(JobError::config("no dataset configured").with_hint(
            "set zfs_dataset (e.g. zfs_dataset=tank/zpmariadb_pod01) or zfs_dataset_filter (e.g. zfs_dataset_filter=zpmariadb_pod01) in [dbjobs]",
        )),
    }
}

/// List the snapshots and pick the newest matching one (nothing is changed).
fn newest_snapshot(zfs: &std::path::Path, settings: &ZfsSettings) -> Result<Snapshot, JobError> {
    let dataset = dataset_selector(settings)?;
    let list = ToolCommand::new(zfs, None)
        .args(["list", "-H", "-p", "-t", "snapshot", "-o", "name,creation"])
        .piped_stdout()
        .spawn(|_| {})?;
    let (listing, exit) = read_all_and_wait(list)?;
    if !exit.success() {
        return Err(exit.error("listing the snapshots failed"));
    }
    pick(
        &parse_list(&listing)?,
        &dataset,
        settings.zfs_snapshot_filter.trim(),
    )
}

/// `zfs rollback -r <snapshot>`, with the service stopped.
fn rollback(host: &Host<'_>, zfs: &std::path::Path, snapshot: &Snapshot) -> Result<(), JobError> {
    host.info(&format!(
        "service stopped; zfs rollback -r {}",
        snapshot.name
    ));
    let exit = ToolCommand::new(zfs, None)
        .args(["rollback", "-r", snapshot.name.as_str()])
        .run()?;
    if exit.success() {
        Ok(())
    } else {
        Err(exit
            .error(&format!("zfs rollback -r {} failed", snapshot.name))
            .context("the data was not rolled back"))
    }
}

/// Read a tool's whole stdout, then wait for it.
fn read_all_and_wait(mut tool: RunningTool) -> Result<(String, ToolExit), JobError> {
    use std::io::Read;
    let mut out = String::new();
    if let Some(mut stdout) = tool.take_stdout() {
        stdout
            .read_to_string(&mut out)
            .map_err(|e| JobError::tool(format!("reading the output of zfs list failed: {e}")))?;
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
        assert!(err.message.contains("tank/other, tank/zpdb_pod01"), "{err}");
        let err = pick(&snaps(), &DatasetSelector::Exact("tank/x".into()), "daily").unwrap_err();
        assert!(err.message.contains("no snapshot"), "{err}");
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
