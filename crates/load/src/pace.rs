//! Open loop: waiting for a request's intended send time, to the microsecond.
//!
//! Why not `tokio::time::sleep_until`: tokio's timer counts in whole
//! milliseconds and rounds a deadline up to the next one, and the poll that
//! waits for it rounds its timeout up too. A request due 0.3 ms from now went
//! out 1–2 ms late, and since open-loop latency counts from the intended time
//! (so that a stalled server cannot hide its stall), that lateness was counted
//! as the server's: against an nginx answering in 35 µs, `--rate 1000` showed
//! a p50 of 1.6 ms, and half the requests were flagged as sent late.
//!
//! Each worker has its own `timerfd` (`CLOCK_MONOTONIC`, the clock of
//! [`Instant`]), armed for the time left and awaited through the runtime's
//! epoll like a socket; the worker threads ask the kernel for a timer slack of
//! 1 µs instead of the default 50 µs. A deadline already past returns at once.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, RawFd},
};

use nix::sys::{
    time::TimeSpec,
    timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags},
};
use tokio::{io::unix::AsyncFd, time::Instant};

/// One worker's precise timer.
pub(crate) struct Pacer {
    fd: AsyncFd<Timer>,
}

/// `AsyncFd` wants `AsRawFd`, which nix's `TimerFd` does not implement.
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Pacer {
    /// A timer for the current runtime (it registers with its I/O driver).
    pub(crate) fn new() -> io::Result<Pacer> {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, flags)?;
        // `AsyncFd::new` is deprecated for types whose `as_raw_fd` could
        // change or close under it (the safe replacement is `unsafe`, which
        // this crate forbids); `Timer` owns its fd and always returns it.
        #[allow(deprecated)]
        let fd = AsyncFd::new(Timer(timer))?;
        Ok(Pacer { fd })
    }

    /// Returns at `at` (or at once if it has passed).
    pub(crate) async fn until(&self, at: Instant) -> io::Result<()> {
        let left = at.saturating_duration_since(Instant::now());
        // Past (a zero `it_value` would disarm the timer, not fire it).
        if left.is_zero() {
            return Ok(());
        }
        // Re-arming also clears an expiry left unread by a cancelled wait.
        let timer = &self.fd.get_ref().0;
        let left = TimeSpec::from_duration(left);
        timer.set(Expiration::OneShot(left), TimerSetTimeFlags::empty())?;
        loop {
            let mut ready = self.fd.readable().await?;
            // The read returns the expiry count; EAGAIN means not yet (the
            // readiness was from an earlier expiry).
            match ready.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Asks for a timer slack of 1 µs on the calling thread (the default, 50 µs,
/// would be the pacing error). Best effort: pacing still works without it.
pub(crate) fn tighten_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Lateness of `n` waits for `ahead` from now, sorted.
    async fn lateness(n: usize, ahead: Duration) -> Vec<Duration> {
        let pacer = Pacer::new().unwrap();
        let mut late = Vec::with_capacity(n);
        for _ in 0..n {
            let at = Instant::now() + ahead;
            pacer.until(at).await.unwrap();
            let now = Instant::now();
            assert!(now >= at, "returned {:?} early", at - now);
            late.push(now - at);
        }
        late.sort();
        late
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waits_to_the_microsecond_not_the_millisecond() {
        tighten_timer_slack();
        let late = lateness(40, Duration::from_micros(300)).await;
        // tokio's millisecond timer would be 0.2–1.7 ms late here, 0.7 ms in
        // the median; a timerfd is late by the wake-up alone.
        let median = late[late.len() / 2];
        assert!(
            median < Duration::from_micros(250),
            "median lateness {median:?}, all: {late:?}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_wait_leaves_nothing_behind() {
        let pacer = Pacer::new().unwrap();
        // Expires unread while the wait is cancelled...
        tokio::select! {
            _ = pacer.until(Instant::now() + Duration::from_millis(20)) => panic!("not yet"),
            () = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        // ...and must not end the next wait early (checked in `lateness`).
        let late = lateness(3, Duration::from_millis(3)).await;
        assert!(late[1] < Duration::from_millis(2), "{late:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_time_already_past_returns_at_once() {
        let pacer = Pacer::new().unwrap();
        let past = Instant::now() - Duration::from_millis(5);
        let started = std::time::Instant::now();
        pacer.until(past).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(5));
        // The timer still works after a skipped wait.
        let late = lateness(5, Duration::from_micros(200)).await;
        assert!(late[2] < Duration::from_millis(1), "{late:?}");
    }
}
