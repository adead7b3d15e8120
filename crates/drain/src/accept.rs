//! What an accept loop does when `accept` fails, shared by every listener.
//!
//! `accept` fails mostly when the process is out of file descriptors
//! (`EMFILE`), and then the connection stays in the kernel's queue: retrying
//! at once fails again at once, burning a core and, if every failure is
//! logged, flooding the log (measured before: 179 warnings in 2 s with 64
//! descriptors and 150 connections queued). [`AcceptBackoff`] waits 10 ms
//! after the first failure, doubling to 1 s, and logs at most one warning per
//! five seconds with the number of failures since the last one. Connections
//! already open are served all along: only the accept loop waits.
//!
//! [`Refusals`] is the same rule for connections a listener accepts only to
//! refuse them (over its connection limit): one warning per five seconds with
//! the count refused since the last one, however fast they come.
//!
//! It holds no runtime: the caller sleeps for the [`Duration`] it returns.

use std::time::{Duration, Instant};

/// The wait after the first failure in a row.
pub(crate) const FIRST_WAIT: Duration = Duration::from_millis(10);
/// The longest wait between two attempts.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(1);
/// At most one warning per this long.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(5);

/// Events counted between two log lines, at most one per [`LOG_EVERY`].
#[derive(Debug, Default)]
struct RateLog {
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl RateLog {
    /// Counts one event at `now`; the count to log, if a line is due.
    fn count(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        let due = self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        due.then(|| {
            self.logged_at = Some(now);
            std::mem::take(&mut self.unlogged)
        })
    }
}

/// The backoff state of one accept loop.
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: String,
    wait: Duration,
    log: RateLog,
}

impl AcceptBackoff {
    /// The state for the listener named `listener` in the log.
    pub fn new(listener: impl Into<String>) -> AcceptBackoff {
        AcceptBackoff {
            listener: listener.into(),
            wait: FIRST_WAIT,
            log: RateLog::default(),
        }
    }

    /// An accept succeeded: the next failure waits [`FIRST_WAIT`] again.
    pub fn accepted(&mut self) {
        self.wait = FIRST_WAIT;
    }

    /// An accept failed with `error`: logs when it is time to, and returns how
    /// long to wait before the next attempt.
    pub fn failed(&mut self, error: &std::io::Error) -> Duration {
        let (wait, log) = self.next(Instant::now());
        if let Some(failures) = log {
            tracing::warn!(
                listener = %self.listener,
                failures,
                retry_in = ?wait,
                "accept failed: {error} (out of file descriptors? see ulimit -n); backing off"
            );
        }
        wait
    }

    /// The wait after a failure at `now`, and the failure count to log, if a
    /// warning is due.
    fn next(&mut self, now: Instant) -> (Duration, Option<u64>) {
        let log = self.log.count(now);
        let wait = self.wait;
        self.wait = (self.wait * 2).min(MAX_WAIT);
        (wait, log)
    }
}

/// Connections one listener refused over its limit, for the log.
#[derive(Debug)]
pub struct Refusals {
    listener: String,
    log: RateLog,
}

impl Refusals {
    /// The count for the listener named `listener` in the log.
    pub fn new(listener: impl Into<String>) -> Refusals {
        Refusals {
            listener: listener.into(),
            log: RateLog::default(),
        }
    }

    /// A connection was refused because `limit` connections were open;
    /// logs when it is time to.
    pub fn refused(&mut self, limit: usize, key: &str) {
        if let Some(refused) = self.log.count(Instant::now()) {
            tracing::warn!(
                listener = %self.listener,
                refused,
                limit,
                "refused connections over the limit of {limit} open ({key})"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_a_second_and_start_over_after_a_success() {
        let mut b = AcceptBackoff::new("web");
        let now = Instant::now();
        let waits: Vec<u64> = (0..9).map(|_| b.next(now).0.as_millis() as u64).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.accepted();
        assert_eq!(b.next(now).0, FIRST_WAIT);
    }

    #[test]
    fn logs_once_per_interval_with_the_count_of_failures() {
        let mut b = AcceptBackoff::new("web");
        let start = Instant::now();
        assert_eq!(b.next(start).1, Some(1), "the first failure is logged");
        let logged: Vec<Option<u64>> = (1..=4)
            .map(|i| b.next(start + Duration::from_secs(i)).1)
            .collect();
        assert_eq!(logged, [None, None, None, None]);
        assert_eq!(b.next(start + LOG_EVERY).1, Some(5), "then a count");
        assert_eq!(b.next(start + LOG_EVERY).1, None);
    }

    #[test]
    fn refusals_log_once_per_interval_with_the_count() {
        let mut log = RateLog::default();
        let start = Instant::now();
        let lines: Vec<Option<u64>> = (0..100)
            .map(|i| log.count(start + Duration::from_millis(i * 100)))
            .collect();
        // 0 s, then 5 s with the 50 since, over 10 s: two lines.
        assert_eq!(lines.iter().flatten().collect::<Vec<_>>(), [&1, &50]);
    }
}
