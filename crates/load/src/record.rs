//! Recording outcomes and latencies without slowing the load down.
//!
//! Each worker owns a [`Recorder`]: its own outcome counts, its own latency
//! histogram and the timeline bucket it is filling. Nothing is shared per
//! request except three relaxed atomic counters for the live progress line.
//! When a worker's requests move on to the next timeline bucket, it merges the
//! finished bucket into the shared [`Timeline`] under a lock (once per bucket per
//! worker, not per request). At the end the workers' recorders are merged.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use hdrhistogram::Histogram;

use crate::{Outcome, OutcomeCounts};

/// Latencies are recorded in microseconds, up to this (auto-resizing beyond).
const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds with `sigfig` significant digits.
pub(crate) fn histogram<C: hdrhistogram::Counter>(sigfig: u8) -> Histogram<C> {
    let mut h = Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

/// Counters every worker updates, read by the progress line.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests sent (or about to be).
    pub started: AtomicU64,
    /// Requests that have an outcome.
    pub ended: AtomicU64,
    /// Requests that ended in a failure.
    pub failed: AtomicU64,
}

impl Live {
    fn end(&self, outcome: Outcome) {
        self.ended.fetch_add(1, Ordering::Relaxed);
        if outcome.is_failure() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One time slice of the run: what ended in it, and how fast.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub(crate) counts: OutcomeCounts,
    /// Latencies of responses that ended in this bucket: 2 significant digits
    /// and 32-bit counters keep one bucket near 10 KiB, the timeline of an hour
    /// of 1 s buckets near 36 MiB (use a wider `--bucket` for long soaks).
    pub(crate) latency: Histogram<u32>,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            counts: OutcomeCounts::default(),
            latency: histogram(2),
        }
    }

    fn merge(&mut self, other: &Bucket) {
        self.counts.merge(&other.counts);
        self.latency
            .add(&other.latency)
            .expect("auto-resizing histograms always merge");
    }
}

/// The shared per-bucket record of the run, indexed by bucket number.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    pub(crate) buckets: Vec<Bucket>,
}

impl Timeline {
    fn merge(&mut self, index: usize, bucket: &Bucket) {
        while self.buckets.len() <= index {
            self.buckets.push(Bucket::new());
        }
        self.buckets[index].merge(bucket);
    }
}

/// One worker's record of its requests.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) counts: OutcomeCounts,
    /// Attempts that ended unprocessed and were sent again, by outcome.
    pub(crate) retried: OutcomeCounts,
    /// Requests that succeeded after at least one retry.
    pub(crate) saved: u64,
    /// WebSocket exchanges cut by a clean close and sent again.
    pub(crate) ws_clean_closes: u64,
    /// Open loop: requests sent more than 1 ms after their intended time.
    pub(crate) sent_late: u64,
    /// Outcomes per target (by index in the config's targets).
    pub(crate) per_target: Vec<OutcomeCounts>,
    /// Latencies of every response (success or unexpected status), 3 digits.
    pub(crate) latency: Histogram<u64>,
    bucket_width: Duration,
    current: Option<(usize, Bucket)>,
    timeline: Arc<Mutex<Timeline>>,
    live: Arc<Live>,
}

impl Recorder {
    pub(crate) fn new(
        bucket_width: Duration,
        timeline: Arc<Mutex<Timeline>>,
        live: Arc<Live>,
    ) -> Self {
        Recorder {
            counts: OutcomeCounts::default(),
            retried: OutcomeCounts::default(),
            saved: 0,
            ws_clean_closes: 0,
            sent_late: 0,
            per_target: Vec::new(),
            latency: histogram(3),
            bucket_width,
            current: None,
            timeline,
            live,
        }
    }

    /// Counts that a request is starting.
    pub(crate) fn start(&self) {
        self.live.started.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a request to target `target` that ended `at` (since the run
    /// started) in `outcome` after `latency`.
    pub(crate) fn record(
        &mut self,
        target: usize,
        outcome: Outcome,
        latency: Duration,
        at: Duration,
    ) {
        self.counts.add(outcome);
        if self.per_target.len() <= target {
            self.per_target
                .resize_with(target + 1, OutcomeCounts::default);
        }
        self.per_target[target].add(outcome);
        let index = (at.as_nanos() / self.bucket_width.as_nanos().max(1)) as usize;
        if self.current.as_ref().is_some_and(|(i, _)| *i != index) {
            self.flush();
        }
        let (_, bucket) = self.current.get_or_insert_with(|| (index, Bucket::new()));
        bucket.counts.add(outcome);
        if outcome.has_response() {
            let us = latency.as_micros().min(u64::MAX as u128) as u64;
            self.latency.saturating_record(us.max(1));
            bucket.latency.saturating_record(us.max(1));
        }
        self.live.end(outcome);
    }

    /// Hands the bucket being filled to the shared timeline.
    pub(crate) fn flush(&mut self) {
        if let Some((index, bucket)) = self.current.take() {
            let mut timeline = self.timeline.lock().unwrap_or_else(|e| e.into_inner());
            timeline.merge(index, &bucket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_histogram_stays_near_10_kib() {
        let h = histogram::<u32>(2);
        let bytes = h.distinct_values() * std::mem::size_of::<u32>();
        assert!((8 * 1024..12 * 1024).contains(&bytes), "{bytes} bytes");
    }

    #[test]
    fn a_worker_moving_on_hands_its_bucket_to_the_timeline() {
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let mut r = Recorder::new(Duration::from_secs(1), timeline.clone(), Arc::default());
        r.record(
            0,
            Outcome::Success,
            Duration::from_millis(2),
            Duration::from_millis(100),
        );
        r.record(
            0,
            Outcome::ConnectRefused,
            Duration::ZERO,
            Duration::from_millis(900),
        );
        assert!(
            timeline.lock().unwrap().buckets.is_empty(),
            "still filling bucket 0"
        );
        r.record(
            0,
            Outcome::Success,
            Duration::from_millis(3),
            Duration::from_millis(2100),
        );
        r.flush();
        let t = timeline.lock().unwrap();
        assert_eq!(t.buckets.len(), 3);
        assert_eq!(t.buckets[0].counts.total(), 2);
        assert_eq!(t.buckets[0].counts.failures(), 1);
        assert_eq!(t.buckets[1].counts.total(), 0);
        assert_eq!(t.buckets[2].counts.total(), 1);
    }
}
