//! The router in front of the pods: a `lameduck proxy` (in this process), fed
//! with endpoint changes as an ingress controller is fed from EndpointSlices.
//!
//! The endpoints controller's view changes at once (a pod is ready, a pod is
//! deleted); the router learns of each change only after a propagation lag,
//! drawn per change from the configured spread. That lag is the race the
//! whole project is about: a pod deleted now is still sent new requests until
//! its removal reaches the router. Changes of one pod arrive in order.
//!
//! Conditions are kept as EndpointSlices carry them: `ready` (serving and not
//! terminating), `serving`, `terminating`. The router sends traffic to ready
//! endpoints; when none is ready it falls back to serving and terminating ones,
//! as kube-proxy does.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use lameduck_drain::StopKind;
use lameduck_http1::{body, client::send_once};
use lameduck_proxy::{
    config::{Discovery, Listener, Route, Upstream, UpstreamProtocol},
    Config, Control, Source,
};
use tokio::{sync::mpsc, time::Instant};

use crate::timeline::{Kind, Timeline};

/// An endpoint's conditions, as an EndpointSlice has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conditions {
    pub(crate) ready: bool,
    pub(crate) serving: bool,
    pub(crate) terminating: bool,
}

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("the proxy could not start: {0}")]
    Proxy(#[from] lameduck_proxy::Error),
    #[error("the proxy has no admin address")]
    NoAdmin,
}

/// The upstream pools the proxy has: HTTP/1.1 for plain requests and
/// WebSocket, HTTP/2 for gRPC (trailers).
/// How long the proxy's admin API may take to answer an update (it is on
/// loopback and answers at once; a stuck one fails the update).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

const POOLS: [(&str, UpstreamProtocol); 2] = [
    ("app", UpstreamProtocol::Http1),
    ("app-h2", UpstreamProtocol::Http2),
];

/// gRPC services sent to the HTTP/2 pool: the standard health check and the
/// sample app's echo.
const GRPC_SERVICES: [&str; 2] = ["grpc.health.v1.Health", "lameduck.demo.Echo"];

/// The running router.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    /// Where clients send traffic.
    pub(crate) ingress: SocketAddr,
    admin: SocketAddr,
    control: mpsc::UnboundedSender<Control>,
    feed: Arc<Mutex<Feed>>,
    timeline: Timeline,
    lag: (Duration, Duration),
    /// Registry mode: the router discovers the pods itself.
    discovers: bool,
    /// Held while one delivery reaches the proxy.
    puts: Arc<tokio::sync::Mutex<()>>,
    /// The proxy's task, awaited at the end.
    task: Arc<Mutex<Option<tokio::task::JoinHandle<lameduck_proxy::Exit>>>>,
}

/// Registry mode: where and how the router discovers the pods.
#[derive(Debug, Clone)]
pub(crate) struct Discover {
    pub(crate) eureka: String,
    pub(crate) app: String,
    /// Poll this often instead of following the change feed.
    pub(crate) cache: Option<Duration>,
}

#[derive(Debug)]
struct Feed {
    rng: fastrand::Rng,
    /// Per pod: (address, latest conditions delivered, last delivery time).
    view: BTreeMap<String, (SocketAddr, Option<Conditions>)>,
    due: BTreeMap<String, Instant>,
    /// The endpoints last sent to the proxy.
    routed: Vec<SocketAddr>,
    /// How many endpoints the proxy took in its last update.
    applied: usize,
}

impl Router {
    /// Binds the proxy on `ingress` (port 0: any) and starts it.
    pub(crate) async fn start(
        ingress: SocketAddr,
        lag: (Duration, Duration),
        seed: u64,
        timeline: Timeline,
        discover: Option<Discover>,
    ) -> Result<Router, RouterError> {
        let mut config = Config::quick(ingress, Vec::new());
        config.admin = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.listeners = vec![Listener {
            name: "ingress".into(),
            listen: ingress,
            tls: None,
        }];
        let template = config.upstreams.values().next().cloned();
        config.upstreams.clear();
        config.routes.clear();
        for (name, protocol) in POOLS {
            if let Some(t) = &template {
                let mut u: Upstream = t.clone();
                u.name = name.into();
                u.protocol = protocol;
                u.endpoints.clear();
                u.discovery = discover.as_ref().map(|d| Discovery {
                    eureka: d.eureka.clone(),
                    app: d.app.clone(),
                    interval: d.cache.unwrap_or(Duration::from_secs(1)),
                    feed: d.cache.is_none(),
                });
                config.upstreams.insert(name.into(), u);
            }
        }
        // gRPC by service (the router matches whole path segments).
        for service in GRPC_SERVICES {
            config.routes.push(route(&format!("/{service}/"), "app-h2"));
        }
        config.routes.push(route("/", "app"));
        let bound = lameduck_proxy::bind(Source::Inline(Box::new(config))).await?;
        let ingress = bound
            .listener_addrs()
            .first()
            .map(|(_, a)| *a)
            .unwrap_or(ingress);
        let admin = bound.admin_addr().ok_or(RouterError::NoAdmin)?;
        let (control, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(bound.run(rx));
        Ok(Router {
            ingress,
            admin,
            control,
            feed: Arc::new(Mutex::new(Feed {
                rng: fastrand::Rng::with_seed(seed),
                view: BTreeMap::new(),
                due: BTreeMap::new(),
                routed: Vec::new(),
                applied: 0,
            })),
            timeline,
            lag,
            discovers: discover.is_some(),
            task: Arc::new(Mutex::new(Some(task))),
            puts: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The endpoints controller's view of `pod` changed now; the router learns
    /// of it after the propagation lag (`immediate`: at once, for the pods
    /// that were there before the run started). `None`: the pod is gone.
    pub(crate) fn publish(
        &self,
        pod: (String, u32),
        addr: SocketAddr,
        cond: Option<Conditions>,
        immediate: bool,
    ) {
        if self.discovers {
            return;
        }
        let at = {
            let Ok(mut f) = self.feed.lock() else { return };
            let lag = if immediate {
                Duration::ZERO
            } else {
                let (lo, hi) = self.lag;
                let span = hi.saturating_sub(lo).as_secs_f64();
                lo + Duration::from_secs_f64(span * f.rng.f64())
            };
            let at =
                (Instant::now() + lag).max(f.due.get(&pod.0).copied().unwrap_or_else(Instant::now));
            f.due.insert(pod.0.clone(), at);
            at
        };
        let router = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            router.deliver(pod, addr, cond).await;
        });
    }

    /// Applies one change to the router's view and sends the proxy the
    /// endpoints. One delivery at a time, so the proxy gets them in order.
    async fn deliver(&self, pod: (String, u32), addr: SocketAddr, cond: Option<Conditions>) {
        let _one = self.puts.lock().await;
        let (before, after) = {
            let Ok(mut f) = self.feed.lock() else { return };
            match cond {
                Some(c) => f.view.insert(pod.0.clone(), (addr, Some(c))),
                None => f.view.remove(&pod.0),
            };
            let after = routed(&f.view);
            let before = std::mem::replace(&mut f.routed, after.clone());
            (before, after)
        };
        if before == after {
            return;
        }
        match self.put(&after).await {
            Ok(()) => {
                if let Ok(mut f) = self.feed.lock() {
                    f.applied = after.len();
                }
            }
            Err(e) => self.timeline.run(
                Kind::Warning,
                format!("the router did not take the endpoints: {e}"),
            ),
        }
        match (before.contains(&addr), after.contains(&addr)) {
            (false, true) => self.timeline.pod(
                &pod,
                Kind::RouterAdded,
                format!("{} endpoint(s)", after.len()),
            ),
            (true, false) => self.timeline.pod(
                &pod,
                Kind::RouterRemoved,
                format!("{} endpoint(s) left", after.len()),
            ),
            _ => {}
        }
    }

    /// `PUT /upstreams/NAME` on the proxy's admin API, for every pool.
    async fn put(&self, endpoints: &[SocketAddr]) -> Result<(), String> {
        let body = serde_json::json!({ "endpoints": endpoints.iter().map(|a| a.to_string()).collect::<Vec<_>>() }).to_string();
        for (name, _) in POOLS {
            let req = http::Request::put(format!("/upstreams/{name}"))
                .header("host", self.admin.to_string())
                .header("content-type", "application/json")
                .body(body::full(body.clone()))
                .map_err(|e| e.to_string())?;
            let resp = send_once(self.admin, req, ADMIN_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("PUT /upstreams/{name}: {}", resp.status()));
            }
        }
        Ok(())
    }

    /// How many endpoints the proxy took in its last update.
    pub(crate) fn routed(&self) -> usize {
        self.feed.lock().map(|f| f.applied).unwrap_or(0)
    }

    /// Stops the proxy (after the traffic has stopped) and waits until it has.
    pub(crate) async fn stop(&self) {
        let _ = self.control.send(Control::Stop(StopKind::Fast));
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

fn route(prefix: &str, upstream: &str) -> Route {
    Route {
        listener: "ingress".into(),
        host: "*".into(),
        path_prefix: prefix.into(),
        upstream: upstream.into(),
    }
}

/// Ready endpoints; if there are none, the serving terminating ones.
fn routed(view: &BTreeMap<String, (SocketAddr, Option<Conditions>)>) -> Vec<SocketAddr> {
    let pick = |f: &dyn Fn(&Conditions) -> bool| -> Vec<SocketAddr> {
        view.values()
            .filter(|(_, c)| c.as_ref().is_some_and(f))
            .map(|(a, _)| *a)
            .collect()
    };
    let ready = pick(&|c| c.ready);
    if ready.is_empty() {
        pick(&|c| c.serving && c.terminating)
    } else {
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(ready: bool, serving: bool, terminating: bool) -> Option<Conditions> {
        Some(Conditions {
            ready,
            serving,
            terminating,
        })
    }

    #[test]
    fn ready_endpoints_first_then_serving_terminating_ones() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut view = BTreeMap::new();
        view.insert("a".to_string(), (a, cond(true, true, false)));
        view.insert("b".to_string(), (b, cond(false, true, true)));
        assert_eq!(routed(&view), vec![a]);
        view.insert("a".to_string(), (a, cond(false, false, false)));
        assert_eq!(routed(&view), vec![b]);
        view.insert("b".to_string(), (b, cond(false, false, true)));
        assert!(routed(&view).is_empty());
    }
}
