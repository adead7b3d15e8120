//! The registry's clock, injectable so tests can move time by hand.
//!
//! Leases last 90 s and self-preservation looks at whole minutes; a test that
//! waited for those would take minutes. The registry asks a [`Clock`] for the
//! time instead of the system, so a test gives it a [`ManualClock`] and jumps.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::registry::Millis;

/// Gives the time in milliseconds since the Unix epoch, never going back.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time now.
    fn now_ms(&self) -> Millis;
}

/// The system's clock, read once at start and then moved by the monotonic
/// clock, so a wall-clock step never expires every lease at once.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    epoch_ms_at_start: Millis,
    start: Instant,
}

impl SystemClock {
    /// A clock that starts at the system's time now.
    pub fn new() -> SystemClock {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        SystemClock {
            epoch_ms_at_start: since_epoch.as_millis() as Millis,
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        self.epoch_ms_at_start + self.start.elapsed().as_millis() as Millis
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `start_ms`.
    pub fn new(start_ms: Millis) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(start_ms)))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}
