//! When the last request arrived: what `--until-quiet` watches in a part that
//! sees its own traffic (the proxy, the registry).
//!
//! One atomic store per request or connection (milliseconds since the
//! activity was created), so it costs the hot path nothing measurable; the
//! quiet wait reads it only when its own timer fires.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

// tokio's clock, so that tests with paused time see the same time as the
// code they drive.
use tokio::time::Instant;

/// The time of the last request or connection a part has seen.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

impl Activity {
    /// No activity yet (the last one counts as the creation time).
    pub fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// A request or connection arrived now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When the last request or connection arrived.
    pub fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Returns once nothing has arrived for `quiet`, counted from the call at
    /// the earliest (activity before the lame-duck phase does not count).
    pub async fn until_quiet(&self, quiet: Duration) {
        let started = Instant::now();
        loop {
            let quiet_at = self.last().max(started) + quiet;
            if Instant::now() >= quiet_at {
                return;
            }
            tokio::time::sleep_until(quiet_at).await;
        }
    }
}
