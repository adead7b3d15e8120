//! Test support shared by lameduck's black-box tests: waiting for a condition
//! with a deadline (never a bare sleep), reading `/proc`, and a failure-injection
//! HTTP server ([`inject`]).

pub mod corpus;
pub mod inject;

use std::time::{Duration, Instant};

/// Polls `cond` every few milliseconds until it returns `Some`, or panics with
/// `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, cond: impl FnMut() -> Option<T>) -> T {
    try_wait_for(what, timeout, cond).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`wait_for`], for tools rather than tests: returns an error naming
/// `what` after `timeout` instead of panicking.
pub fn try_wait_for<T>(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `Z`, …), or `None` if gone.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// The parent PID from `/proc/PID/stat`, or `None` if gone.
pub fn proc_ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Monotonic clock in nanoseconds, the same clock across processes
/// (`CLOCK_MONOTONIC`), so a test can order events another process logged.
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}
