//! What the registry's listeners share: the registry behind its mutex, the
//! version that wakes the change feed, the drain phase, and the counters.
//!
//! Its own file so that the API server (`server`), the admin listener
//! (`admin`) and the drain (`stop`) each use it without using each other.

use std::sync::{Arc, Mutex};

use lameduck_drain::{Activity, Phase, Status};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry as MetricsRegistry,
};
use tokio::sync::watch;

use crate::registry::{Millis, Registry};
use crate::Config;

/// The shutdown trigger: the caller moves it through the drain phases.
/// Dropping the sender counts as the drain phase.
pub type Shutdown = watch::Receiver<Phase>;

/// What the server shares between connections.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Config,
    registry: Mutex<Registry>,
    /// Bumped after every change, so change-feed requests wake up.
    pub(crate) version: watch::Sender<u64>,
    /// The drain phase, as the caller sets it.
    pub(crate) phase: Shutdown,
    /// The drain's phase and budget, when a drain driver runs it (for
    /// `/metrics`); without one only the phase is known.
    pub(crate) drain: Option<watch::Receiver<Status>>,
    /// When the last API request arrived (`--until-quiet`).
    pub(crate) activity: Activity,
    pub(crate) counters: Counters,
}

/// Totals and gauges for `/metrics` (prometheus-client metrics: an atomic
/// each).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) registrations: Counter,
    pub(crate) renewals: Counter,
    pub(crate) renewals_not_found: Counter,
    pub(crate) cancels: Counter,
    pub(crate) evictions: Counter,
    pub(crate) eviction_passes: Counter,
    pub(crate) full_fetches: Counter,
    pub(crate) delta_fetches: Counter,
    pub(crate) bad_requests: Counter,
    /// Connections being served.
    pub(crate) open_connections: Gauge,
    /// Change-feed requests waiting for a change.
    pub(crate) feed_waiters: Gauge,
    /// Requests being handled.
    pub(crate) requests_in_flight: Gauge,
}

impl Counters {
    /// Registers every counter and gauge under its documented name.
    pub(crate) fn register(&self, r: &mut MetricsRegistry) {
        for (name, help, c) in [
            (
                "registrations",
                "Registrations accepted",
                &self.registrations,
            ),
            ("renewals", "Renewal requests", &self.renewals),
            (
                "renewals_not_found",
                "Renewals answered 404 (the client registers again)",
                &self.renewals_not_found,
            ),
            ("cancels", "Cancellations", &self.cancels),
            (
                "evictions",
                "Instances evicted for an expired lease",
                &self.evictions,
            ),
            (
                "eviction_passes",
                "Eviction passes run",
                &self.eviction_passes,
            ),
            ("full_fetches", "GET /apps requests", &self.full_fetches),
            (
                "delta_fetches",
                "GET /apps/delta requests",
                &self.delta_fetches,
            ),
            (
                "bad_requests",
                "Requests refused with 400",
                &self.bad_requests,
            ),
        ] {
            r.register(name, help, c.clone());
        }
        for (name, help, g) in [
            (
                "open_connections",
                "API connections being served",
                &self.open_connections,
            ),
            (
                "requests_in_flight",
                "API requests being handled",
                &self.requests_in_flight,
            ),
            (
                "feed_waiters",
                "Change-feed requests waiting for a change",
                &self.feed_waiters,
            ),
        ] {
            r.register(name, help, g.clone());
        }
    }
}

/// Adds one to a gauge for as long as it lives.
pub(crate) struct Held<'a>(&'a Gauge);

impl<'a> Held<'a> {
    pub(crate) fn up(gauge: &'a Gauge) -> Held<'a> {
        gauge.inc();
        Held(gauge)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl State {
    pub(crate) fn new(
        config: Config,
        phase: Shutdown,
        drain: Option<watch::Receiver<Status>>,
    ) -> Arc<State> {
        let registry = Registry::new(config.rules.clone(), config.clock.now_ms());
        Arc::new(State {
            config,
            registry: Mutex::new(registry),
            version: watch::channel(0).0,
            phase,
            drain,
            activity: Activity::new(),
            counters: Counters::default(),
        })
    }

    /// Runs `f` on the registry with the time now, and wakes change-feed
    /// requests if it changed something.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Registry, Millis) -> T) -> T {
        let now = self.config.clock.now_ms();
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let before = registry.version();
        let out = f(&mut registry, now);
        let after = registry.version();
        drop(registry);
        if after != before {
            self.version.send_replace(after);
        }
        out
    }

    pub(crate) fn draining(&self) -> bool {
        self.phase.borrow().is_draining()
    }

    /// The drain's status for `/metrics`.
    pub(crate) fn drain_status(&self) -> Status {
        match &self.drain {
            Some(status) => *status.borrow(),
            None => Status {
                phase: *self.phase.borrow(),
                ..Status::default()
            },
        }
    }
}
