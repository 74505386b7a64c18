//! Pause points for the fault-matrix tests: a restore stops for good at a named phase
//! boundary, so a test can `kill -9` dbjobs exactly there and check what the next run does.
//!
//! A point does nothing unless the environment variable `DBJOBS_FAULT_PAUSE_AT` names it;
//! the variable is read by tests only and documented as such in tests/README.md. The names
//! are the constants below, so a test and the restore cannot disagree on one.

use std::time::Duration;

use dbjobs_sdk::Host;

/// The environment variable that names the point to pause at.
pub const PAUSE_AT: &str = "DBJOBS_FAULT_PAUSE_AT";
/// With it, the pause lasts that many seconds and the restore goes on (a test does
/// something to the server meanwhile, e.g. restarts it); without it, the pause lasts until
/// the process is killed.
pub const PAUSE_SECS: &str = "DBJOBS_FAULT_PAUSE_SECS";

/// The backup is received and complete; nothing is prepared yet.
pub const RECEIVED: &str = "received";
/// The shadow databases are being built: half of the tables are in.
pub const SHADOW_HALF_BUILT: &str = "shadow-half-built";
/// Every shadow table is built; the switch is next.
pub const BEFORE_SWITCH: &str = "before-switch";
/// The switch is done; the objects are next.
pub const AFTER_SWITCH: &str = "after-switch";
/// Half of the objects (views, triggers, routines, events) are created.
pub const OBJECTS_HALF_CREATED: &str = "objects-half-created";
/// The temporary server reads the backup's definitions.
pub const TEMP_SERVER_UP: &str = "temp-server-up";
/// Full mode: the server is stopped, the live datadir moved aside and the backup's in
/// its place.
pub const FULL_DATADIR_MOVED: &str = "full-datadir-moved";
/// Full mode: the server runs on the backup's datadir; the old one is not removed yet.
pub const FULL_SERVER_STARTED: &str = "full-server-started";

/// Pause here when `DBJOBS_FAULT_PAUSE_AT` is `name` (after logging `fault point NAME
/// reached`, the line a test waits for): for `DBJOBS_FAULT_PAUSE_SECS` seconds, or until
/// killed. Otherwise return at once.
pub fn point(host: &Host<'_>, name: &str) {
    if std::env::var(PAUSE_AT).ok().as_deref() != Some(name) {
        return;
    }
    host.info(&format!("fault point {name} reached, pausing ({PAUSE_AT})"));
    let secs: Option<u64> = std::env::var(PAUSE_SECS).ok().and_then(|s| s.parse().ok());
    match secs {
        Some(s) => std::thread::sleep(Duration::from_secs(s)),
        None => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
    }
    host.info(&format!("fault point {name}: going on"));
}
