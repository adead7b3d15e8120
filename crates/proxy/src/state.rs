//! The running configuration, swapped atomically on reload.
//!
//! A request loads the current [`Snapshot`] once and uses it to the end, so a
//! reload never changes a request half-way; the next request sees the new one.
//! Upstream pools are carried over by name (see `upstream`), so a reload keeps
//! warm connections and the ejection state of endpoints that stay.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use arc_swap::ArcSwap;
use fnv::FnvBuildHasher;
use lameduck_admin::{
    collect,
    prometheus_client::{collector::Collector, encoding::DescriptorEncoder},
};
use lameduck_drain::Phase;
use tokio::sync::watch;

use crate::{config::Config, router::Router, upstream::Pool, ConfigError};

/// A map keyed by names from the config, looked up on every request. FNV
/// (the `fnv` crate, which `http` uses for the same reason) instead of the
/// standard SipHash: the keys come from the config, never from a client, so
/// they need no defence against chosen collisions, which SipHash pays for on
/// every lookup.
pub(crate) type NameMap<V> = HashMap<String, V, FnvBuildHasher>;

/// One consistent view of the config.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) config: Config,
    /// The TOML it came from (for `GET /config`), if it came from TOML.
    pub(crate) source: Option<String>,
    pub(crate) routers: NameMap<Router>,
    pub(crate) pools: NameMap<Arc<Pool>>,
}

/// Everything shared by the listeners, the admin API and the drain.
#[derive(Debug)]
pub(crate) struct State {
    current: ArcSwap<Snapshot>,
    reload_lock: Mutex<()>,
    pub(crate) phase: watch::Sender<Phase>,
    pub(crate) metrics: Metrics,
    /// Notified whenever a client connection or an upgraded stream ends.
    pub(crate) closed: tokio::sync::Notify,
    /// Tasks that keep discovered upstreams current.
    pub(crate) discoveries: crate::discovery::Discoveries,
}

impl State {
    pub(crate) fn new(config: Config, source: Option<String>) -> Arc<State> {
        let snapshot = build(config, source, &NameMap::default());
        Arc::new(State {
            current: ArcSwap::from_pointee(snapshot),
            reload_lock: Mutex::new(()),
            phase: watch::Sender::new(Phase::Serving),
            metrics: Metrics::default(),
            closed: tokio::sync::Notify::new(),
            discoveries: crate::discovery::Discoveries::default(),
        })
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub(crate) fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Client connections plus upgraded streams still open.
    pub(crate) fn open(&self) -> usize {
        self.metrics.active_connections.load(Ordering::Relaxed)
            + self.metrics.active_upgrades.load(Ordering::Relaxed)
    }

    /// Swaps in a new config. Listeners cannot change without a restart (their
    /// sockets are bound once); anything else can.
    pub(crate) fn reload(
        self: &Arc<Self>,
        mut config: Config,
        source: Option<String>,
    ) -> Result<(), ConfigError> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.snapshot();
        let addrs = |c: &Config| {
            c.listeners
                .iter()
                .map(|l| (l.name.clone(), l.listen))
                .collect::<Vec<_>>()
        };
        if addrs(&old.config) != addrs(&config) {
            self.metrics
                .reloads_rejected
                .fetch_add(1, Ordering::Relaxed);
            return Err(ConfigError {
                line: None,
                key: "listener".into(),
                message: "listeners cannot change on reload (their sockets stay bound); restart the proxy to change them".into(),
            });
        }
        if old.config.admin != config.admin {
            tracing::warn!("admin.listen changed: it takes effect at the next restart");
        }
        if old.config.probe != config.probe {
            tracing::warn!("probe.listen changed: it takes effect at the next restart");
        }
        keep_discovered_endpoints(&mut config, &old.config);
        let snapshot = build(config, source, &old.pools);
        self.current.store(Arc::new(snapshot));
        self.metrics.reloads.fetch_add(1, Ordering::Relaxed);
        self.discoveries.sync(self);
        Ok(())
    }

    /// Replaces the endpoints of one upstream (`PUT /upstreams/NAME`).
    pub(crate) fn set_endpoints(
        &self,
        name: &str,
        endpoints: Vec<std::net::SocketAddr>,
    ) -> Result<(), String> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.snapshot();
        let mut config = old.config.clone();
        let upstream = config.upstreams.get_mut(name).ok_or_else(|| {
            let known: Vec<_> = old.config.upstreams.keys().collect();
            format!("no upstream named {name:?} (known: {known:?})")
        })?;
        upstream.endpoints = endpoints;
        let snapshot = build(config, old.source.clone(), &old.pools);
        self.current.store(Arc::new(snapshot));
        self.metrics
            .upstream_updates
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A reload must not empty a discovered pool: while an upstream's discovery
/// settings stay the same, it keeps the endpoints discovery found.
fn keep_discovered_endpoints(config: &mut Config, old: &Config) {
    for (name, upstream) in &mut config.upstreams {
        let Some(previous) = old.upstreams.get(name) else {
            continue;
        };
        if upstream.discovery.is_some() && upstream.discovery == previous.discovery {
            upstream.endpoints = previous.endpoints.clone();
        }
    }
}

impl crate::discovery::Pools for State {
    fn discovered(&self) -> std::collections::HashMap<String, crate::config::Discovery> {
        self.snapshot()
            .config
            .upstreams
            .iter()
            .filter_map(|(name, u)| Some((name.clone(), u.discovery.clone()?)))
            .collect()
    }

    fn endpoints(&self, upstream: &str) -> Option<Vec<std::net::SocketAddr>> {
        let snapshot = self.snapshot();
        snapshot
            .config
            .upstreams
            .get(upstream)
            .map(|u| u.endpoints.clone())
    }

    fn set_endpoints(
        &self,
        upstream: &str,
        endpoints: Vec<std::net::SocketAddr>,
    ) -> Result<(), String> {
        State::set_endpoints(self, upstream, endpoints)
    }
}

/// Starts the discovery tasks the current config asks for.
pub(crate) fn start_discovery(state: &Arc<State>) {
    state.discoveries.sync(state);
}

fn build(config: Config, source: Option<String>, old_pools: &NameMap<Arc<Pool>>) -> Snapshot {
    let routers = config
        .listeners
        .iter()
        .map(|l| (l.name.clone(), Router::new(&config.routes, &l.name)))
        .collect();
    let pools = config
        .upstreams
        .iter()
        .map(|(name, u)| {
            let pool = match old_pools.get(name) {
                Some(p) => {
                    p.update(u.clone());
                    Arc::clone(p)
                }
                None => Pool::new(u.clone()),
            };
            (name.clone(), pool)
        })
        .collect();
    Snapshot {
        config,
        source,
        routers,
        pools,
    }
}

/// Listener, upstream (none when no route matched), status.
type RequestKey = (Arc<str>, Option<Arc<str>>, u16);

/// Counters behind `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Requests by (listener, upstream, status).
    pub(crate) requests: Mutex<HashMap<RequestKey, u64, FnvBuildHasher>>,
    pub(crate) active_connections: AtomicUsize,
    pub(crate) active_upgrades: AtomicUsize,
    pub(crate) connections_total: AtomicU64,
    /// Connections accepted only to be refused (over `max_connections`).
    pub(crate) connections_refused: AtomicU64,
    pub(crate) reloads: AtomicU64,
    pub(crate) reloads_rejected: AtomicU64,
    pub(crate) upstream_updates: AtomicU64,
    pub(crate) upstream_retries: AtomicU64,
    pub(crate) errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub(crate) fn count_request(
        &self,
        listener: &Arc<str>,
        upstream: Option<&Arc<str>>,
        status: u16,
    ) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((Arc::clone(listener), upstream.cloned(), status))
            .or_default() += 1;
    }

    pub(crate) fn count_error(&self, cause: crate::Cause) {
        let mut map = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(cause.name()).or_default() += 1;
    }
}

/// The proxy's counters as `/metrics` shows them: read from its own atomics
/// at each scrape, so that counting on the hot path stays one atomic add.
#[derive(Debug)]
pub(crate) struct Collect(pub(crate) Arc<State>);

impl Collector for Collect {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let m = &self.0.metrics;
        collect::counters(
            &mut enc,
            "requests",
            "Requests answered, by listener, upstream and status",
            m.request_rows(),
        )?;
        let errors: Vec<_> = {
            let map = m.errors.lock().unwrap_or_else(|e| e.into_inner());
            map.iter().map(|(c, v)| ([("cause", *c)], *v)).collect()
        };
        collect::counters(
            &mut enc,
            "errors",
            "Requests the proxy answered itself, by cause",
            errors,
        )?;
        let open = |a: &AtomicUsize| i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        collect::gauge(
            &mut enc,
            "open_connections",
            "Client connections open now",
            open(&m.active_connections),
        )?;
        collect::gauge(
            &mut enc,
            "open_upgraded_streams",
            "Upgraded streams (WebSocket and other tunnels) open now",
            open(&m.active_upgrades),
        )?;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, help, value) in [
            (
                "connections",
                "Client connections accepted",
                get(&m.connections_total),
            ),
            (
                "connections_refused",
                "Client connections refused over proxy.max_connections (503 or closed)",
                get(&m.connections_refused),
            ),
            ("reloads", "Configs swapped in", get(&m.reloads)),
            (
                "reloads_rejected",
                "Configs rejected as invalid",
                get(&m.reloads_rejected),
            ),
            (
                "upstream_updates",
                "PUT /upstreams/NAME applied",
                get(&m.upstream_updates),
            ),
            (
                "upstream_retries",
                "Upstream attempts retried (connect failures, dead keepalive connections)",
                get(&m.upstream_retries),
            ),
        ] {
            collect::counter(&mut enc, name, help, value)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// The request counts as label sets, sorted (a scrape reads the same
    /// order every time).
    fn request_rows(&self) -> Vec<([(&'static str, String); 3], u64)> {
        let mut rows: Vec<_> = {
            let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .map(|((l, u, s), v)| {
                    let upstream = u.as_deref().unwrap_or("-").to_string();
                    ((l.to_string(), upstream, *s), *v)
                })
                .collect()
        };
        rows.sort();
        rows.into_iter()
            .map(|((l, u, s), v)| {
                (
                    [("listener", l), ("upstream", u), ("status", s.to_string())],
                    v,
                )
            })
            .collect()
    }
}
