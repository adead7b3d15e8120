//! Upstream pools: endpoints, their connections, and ejection.
//!
//! A [`Pool`] lives as long as its upstream's *name* exists in the config: a
//! reload that changes its endpoints updates the pool in place, so connections
//! to endpoints that stay are kept, and requests already sent to an endpoint
//! that was removed finish (they hold an `Arc` to it). Endpoints that keep
//! failing are skipped for `eject_for`; when every endpoint is ejected they are
//! all tried anyway, since refusing everything helps nobody.
//!
//! HTTP/1.1 connections are `lameduck-http1`'s ([`lameduck_http1::client`]): checked
//! out for one request, back in the idle list when the response body has been
//! read to the end, checked for staleness (closed by the upstream while idle)
//! when taken again. HTTP/2 connections are hyper's, one task each, and one
//! is shared by all requests to the endpoint.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU32, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use arc_swap::ArcSwap;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use lameduck_http1::{body::Body, client};

use crate::{config::Upstream, error::Cause};

/// One upstream address and its connections.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    idle: Mutex<Vec<client::Conn>>,
    h2: Mutex<Option<http2::SendRequest<Body>>>,
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
}

impl Endpoint {
    fn new(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            idle: Mutex::default(),
            h2: Mutex::default(),
            failures: AtomicU32::new(0),
            ejected_until: Mutex::default(),
        }
    }

    fn is_ejected(&self, now: Instant) -> bool {
        lock(&self.ejected_until).is_some_and(|until| until > now)
    }

    /// An idle HTTP/1.1 connection that is still open, if any.
    pub(crate) fn take_idle(&self) -> Option<client::Conn> {
        let mut idle = lock(&self.idle);
        while let Some(c) = idle.pop() {
            if !c.is_stale() {
                return Some(c);
            }
        }
        None
    }

    /// The endpoint's HTTP/2 connection, if it is open.
    pub(crate) fn take_h2(&self) -> Option<http2::SendRequest<Body>> {
        let mut h2 = lock(&self.h2);
        match h2.as_ref() {
            Some(c) if !c.is_closed() => Some(c.clone()),
            _ => {
                *h2 = None;
                None
            }
        }
    }

    /// Opens a new HTTP/1.1 connection.
    pub(crate) async fn connect_h1(&self, settings: &Upstream) -> Result<client::Conn, Cause> {
        Ok(client::Conn::new(self.dial(settings).await?))
    }

    /// Opens a new HTTP/2 connection, which becomes the endpoint's shared one.
    pub(crate) async fn connect_h2(
        &self,
        settings: &Upstream,
    ) -> Result<http2::SendRequest<Body>, Cause> {
        let io = TokioIo::new(self.dial(settings).await?);
        let (send, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|_| Cause::UpstreamConnectFailed)?;
        tokio::spawn(conn);
        *lock(&self.h2) = Some(send.clone());
        Ok(send)
    }

    async fn dial(&self, settings: &Upstream) -> Result<TcpStream, Cause> {
        let connect = TcpStream::connect(self.addr);
        let stream = match tokio::time::timeout(settings.connect_timeout, connect).await {
            Err(_) => return Err(Cause::UpstreamConnectTimeout),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(Cause::UpstreamConnectRefused)
            }
            Ok(Err(_)) => return Err(Cause::UpstreamConnectFailed),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Counts a failure; ejects the endpoint after `eject_after` in a row.
    pub(crate) fn failed(&self, settings: &Upstream, cause: Cause) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= settings.eject_after {
            let mut until = lock(&self.ejected_until);
            if until.is_none_or(|u| u <= Instant::now()) {
                tracing::warn!(
                    upstream = %settings.name, endpoint = %self.addr, failures = n, cause = %cause,
                    "ejecting endpoint for {:?}", settings.eject_for
                );
                *until = Some(Instant::now() + settings.eject_for);
            }
        }
    }

    /// Counts a failed connect (see [`Endpoint::failed`]) and logs it; the
    /// caller goes on to the next endpoint.
    pub(crate) fn connect_failed(&self, settings: &Upstream, cause: Cause) {
        self.failed(settings, cause);
        tracing::debug!(upstream = %settings.name, endpoint = %self.addr, %cause, "connect failed; trying the next endpoint");
    }

    /// Clears the failure count after a success.
    pub(crate) fn succeeded(&self) {
        if self.failures.swap(0, Ordering::Relaxed) > 0 {
            *lock(&self.ejected_until) = None;
        }
    }
}

impl client::Pool for Endpoint {
    /// Gives an HTTP/1.1 connection back after its response was read whole.
    fn put_idle(&self, conn: client::Conn, max_idle: usize) {
        let mut idle = lock(&self.idle);
        if idle.len() < max_idle {
            idle.push(conn);
        }
    }
}

/// The endpoints of one upstream, with round-robin choice.
#[derive(Debug)]
pub(crate) struct Pool {
    name: Arc<str>,
    settings: ArcSwap<Upstream>,
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    update_lock: Mutex<()>,
    next: AtomicUsize,
}

impl Pool {
    pub(crate) fn new(settings: Upstream) -> Arc<Pool> {
        let endpoints = settings
            .endpoints
            .iter()
            .map(|a| Arc::new(Endpoint::new(*a)))
            .collect();
        Arc::new(Pool {
            name: Arc::from(settings.name.as_str()),
            settings: ArcSwap::from_pointee(settings),
            endpoints: ArcSwap::from_pointee(endpoints),
            update_lock: Mutex::new(()),
            next: AtomicUsize::new(0),
        })
    }

    /// The upstream's name, which a pool keeps for life.
    pub(crate) fn name(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    pub(crate) fn settings(&self) -> Arc<Upstream> {
        self.settings.load_full()
    }

    /// Takes new settings; endpoints that stay keep their connections and state.
    pub(crate) fn update(&self, settings: Upstream) {
        let _one_at_a_time = lock(&self.update_lock);
        let old: HashMap<SocketAddr, Arc<Endpoint>> = self
            .endpoints
            .load()
            .iter()
            .map(|e| (e.addr, Arc::clone(e)))
            .collect();
        let endpoints = settings
            .endpoints
            .iter()
            .map(|a| {
                old.get(a)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Endpoint::new(*a)))
            })
            .collect();
        self.endpoints.store(Arc::new(endpoints));
        self.settings.store(Arc::new(settings));
    }

    /// The endpoints to try, in order: round-robin over those not ejected, then
    /// the ejected ones (so that an all-ejected pool is still tried). Lazy: the
    /// common case looks at one endpoint and allocates nothing.
    pub(crate) fn candidates(&self) -> Candidates {
        let list = self.endpoints.load_full();
        let start = if list.is_empty() {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % list.len()
        };
        Candidates {
            list,
            start,
            i: 0,
            now: Instant::now(),
        }
    }

    /// The current endpoint addresses.
    #[cfg(test)]
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.endpoints.load().iter().map(|e| e.addr).collect()
    }
}

/// Endpoints in the order to try them (see [`Pool::candidates`]).
pub(crate) struct Candidates {
    list: Arc<Vec<Arc<Endpoint>>>,
    start: usize,
    i: usize,
    now: Instant,
}

impl Candidates {
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl Iterator for Candidates {
    type Item = Arc<Endpoint>;

    fn next(&mut self) -> Option<Arc<Endpoint>> {
        let n = self.list.len();
        while self.i < 2 * n {
            let healthy_pass = self.i < n;
            let e = &self.list[(self.start + self.i) % n];
            self.i += 1;
            if healthy_pass != e.is_ejected(self.now) {
                return Some(Arc::clone(e));
            }
        }
        None
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(addrs: &[&str]) -> Upstream {
        let mut u = crate::config::Config::quick("127.0.0.1:1".parse().unwrap(), vec![]).upstreams
            ["app"]
            .clone();
        u.endpoints = addrs.iter().map(|a| a.parse().unwrap()).collect();
        u
    }

    #[test]
    fn round_robin_and_ejection() {
        let pool = Pool::new(upstream(&["127.0.0.1:1", "127.0.0.1:2"]));
        let first: Vec<_> = (0..4)
            .map(|_| pool.candidates().next().unwrap().addr.port())
            .collect();
        assert_eq!(first, [1, 2, 1, 2]);
        let settings = pool.settings();
        let one = pool
            .candidates()
            .into_iter()
            .find(|e| e.addr.port() == 1)
            .unwrap();
        for _ in 0..settings.eject_after {
            one.failed(&settings, Cause::UpstreamConnectRefused);
        }
        for _ in 0..4 {
            let c: Vec<_> = pool.candidates().collect();
            assert_eq!(c[0].addr.port(), 2, "ejected endpoint comes last");
            assert_eq!(c.len(), 2, "but is still there to try");
        }
        one.succeeded();
        assert!(!one.is_ejected(Instant::now()));
    }

    #[test]
    fn update_keeps_endpoints_that_stay() {
        let pool = Pool::new(upstream(&["127.0.0.1:1", "127.0.0.1:2"]));
        let kept = pool
            .candidates()
            .into_iter()
            .find(|e| e.addr.port() == 2)
            .unwrap();
        pool.update(upstream(&["127.0.0.1:2", "127.0.0.1:3"]));
        assert_eq!(
            pool.addrs().iter().map(|a| a.port()).collect::<Vec<_>>(),
            [2, 3]
        );
        let after = pool
            .candidates()
            .into_iter()
            .find(|e| e.addr.port() == 2)
            .unwrap();
        assert!(Arc::ptr_eq(&kept, &after));
    }
}
