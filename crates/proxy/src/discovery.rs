//! Upstream pools kept current from Eureka.
//!
//! One task per upstream with `discovery`: a full fetch, then either
//! lameduck registry's change feed (a long poll that answers the moment the
//! registry changes, so a DOWN reaches the pool in well under a second) or, on
//! any other Eureka server, delta polling every `interval`. Either way the local
//! copy is checked against the server's reconcile hashcode after each delta,
//! and fetched whole again when they differ, as Eureka clients do.
//!
//! The pool becomes the UP instances of the app. It changes through the same
//! in-memory update as `PUT /upstreams/NAME`, so an endpoint that leaves the
//! pool finishes the requests already sent to it.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use lameduck_eureka::client::{Changes, Client, Snapshot};
use tokio::task::JoinHandle;

use crate::config::Discovery;

/// What discovery needs of the proxy's state: the upstreams to follow and
/// their endpoints. A trait, so that this module does not use the state
/// module that owns it (`State` implements it).
pub(crate) trait Pools: Send + Sync + 'static {
    /// The discovery settings of every upstream that has them, by name.
    fn discovered(&self) -> HashMap<String, Discovery>;
    /// An upstream's endpoints, if it exists.
    fn endpoints(&self, upstream: &str) -> Option<Vec<SocketAddr>>;
    /// Replaces an upstream's endpoints (as `PUT /upstreams/NAME` does).
    fn set_endpoints(&self, upstream: &str, endpoints: Vec<SocketAddr>) -> Result<(), String>;
}

/// How long one change-feed request may wait for a change.
const FEED_WAIT: Duration = Duration::from_secs(25);
/// Pause after a failed call before the next one.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The discovery tasks, by upstream name.
#[derive(Debug, Default)]
pub(crate) struct Discoveries {
    tasks: std::sync::Mutex<HashMap<String, (Discovery, JoinHandle<()>)>>,
}

impl Discoveries {
    /// Starts, restarts or stops tasks so that they match `pools`' config.
    pub(crate) fn sync<P: Pools>(&self, pools: &Arc<P>) {
        let wanted = pools.discovered();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|name, (d, task)| {
            let keep = wanted.get(name) == Some(d);
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, d) in wanted {
            if tasks.contains_key(&name) {
                continue;
            }
            // Restarted after a panic: a follower keeps nothing the next run
            // needs (it reads the app's instances afresh). It returns only
            // when its Eureka address is unusable, which it logs, and
            // which another run would not change.
            let (n, dd, st) = (name.clone(), d.clone(), Arc::clone(pools));
            let task = lameduck_drain::spawn_restarting(
                format!("discovery of upstream {name}"),
                lameduck_drain::Ends::WhenDone,
                move || follow(n.clone(), dd.clone(), Arc::clone(&st)),
            );
            tasks.insert(name, (d, task));
        }
    }
}

impl Discoveries {
    /// Ends every discovery task (the proxy has stopped).
    pub(crate) fn stop(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for (_, (_, task)) in tasks.drain() {
            task.abort();
        }
    }
}

/// Keeps one upstream's endpoints equal to the UP instances of its app.
async fn follow<P: Pools>(upstream: String, d: Discovery, state: Arc<P>) {
    let client = match Client::new(&d.eureka, Duration::from_secs(5)) {
        Ok(c) => c,
        Err(e) => return tracing::error!(%upstream, "discovery disabled: {e}"),
    };
    let mut feed = d.feed;
    loop {
        let Some(mut snapshot) = full(&client, &upstream, &d, &*state).await else {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        loop {
            let next = if feed {
                match client.changes(snapshot.version, FEED_WAIT).await {
                    Ok(Changes::Delta(delta)) => Ok(Some(delta)),
                    Ok(Changes::Gone) => Ok(None),
                    Err(lameduck_eureka::Error::Status { status: 404, .. }) => {
                        tracing::info!(%upstream, "the Eureka server has no change feed; polling deltas every {:?}", d.interval);
                        feed = false;
                        continue;
                    }
                    Err(e) => Err(e),
                }
            } else {
                tokio::time::sleep(d.interval).await;
                client.fetch_delta().await.map(Some)
            };
            match next {
                Ok(Some(delta)) => {
                    let consistent = snapshot.apply(&delta);
                    if !consistent {
                        tracing::debug!(%upstream, "hashcode mismatch after a delta; fetching the full registry");
                        break;
                    }
                    publish(&upstream, &d, &snapshot, &*state);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%upstream, "discovery: {e}; the pool keeps its endpoints");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    break;
                }
            }
        }
    }
}

async fn full<P: Pools>(
    client: &Client,
    upstream: &str,
    d: &Discovery,
    state: &P,
) -> Option<Snapshot> {
    match client.fetch_full().await {
        Ok(apps) => {
            let snapshot = Snapshot::full(apps);
            publish(upstream, d, &snapshot, state);
            Some(snapshot)
        }
        Err(e) => {
            tracing::warn!(%upstream, "discovery: {e}; the pool keeps its endpoints");
            None
        }
    }
}

/// Sets the pool to the app's UP instances if they changed.
fn publish<P: Pools>(upstream: &str, d: &Discovery, snapshot: &Snapshot, state: &P) {
    let mut endpoints: Vec<SocketAddr> = snapshot
        .up(&d.app)
        .filter(|i| i.port.enabled)
        .filter_map(|i| format!("{}:{}", i.ip_addr, i.port.port).parse().ok())
        .collect();
    endpoints.sort();
    if state.endpoints(upstream).as_ref() == Some(&endpoints) {
        return;
    }
    tracing::info!(%upstream, app = %d.app, endpoints = ?endpoints, "discovery: pool changed");
    if let Err(e) = state.set_endpoints(upstream, endpoints) {
        tracing::warn!(%upstream, "discovery: {e}");
    }
}
