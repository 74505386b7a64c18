//! Polling with a deadline.

use std::time::{Duration, Instant};

/// How long [`wait_for`] sleeps between two calls of its closure: short enough that tests
/// do not idle, long enough not to hammer a server with connection attempts.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Calls `f` until it returns `Some`, and returns that value.
///
/// End-to-end tests observe other processes (a job row changing state, a port opening, a
/// file appearing), which happens asynchronously; polling with a deadline is the only
/// robust way to wait for it without sleeping for a fixed, either too short or too long,
/// time. `f` is always called at least once, even with a zero timeout.
///
/// # Panics
/// When `timeout` passes without `f` returning `Some`; the message names `what`, so the
/// failure says what the test was waiting for.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        let now = Instant::now();
        if now >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}
