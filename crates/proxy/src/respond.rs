//! The per-request handler, shared by the HTTP/1 loop ([`crate::h1`]) and
//! the HTTP/2 server ([`crate::server`]): route, forward, answer, and decide
//! whether the connection should end gracefully after the answer. It also
//! holds what one client connection's requests share ([`Conn`]).
//!
//! Why a module of its own: the connection code calls it and it knows
//! nothing of connections, so the dependency goes one way only.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hyper::{
    header::{self, HeaderValue},
    Request, Response, StatusCode, Version,
};
use lameduck_drain::{Activity, Phase};
use lameduck_http1::{
    body::{self, Body},
    hop::strip_hop_by_hop,
    raw::RawFields,
};
use tokio::sync::Notify;

use crate::{
    error::Cause,
    forward::{self, Peer},
    router::request_host,
    state::State,
};

/// Per-connection facts the handler and the connection task share.
pub(crate) struct Conn {
    listener: Arc<str>,
    pub(crate) peer: SocketAddr,
    /// This client's `X-Forwarded-*` / `Forwarded` values, built once.
    forwarded: Peer,
    pub(crate) state: Arc<State>,
    activity: Arc<Activity>,
    pub(crate) requests: AtomicU64,
    in_flight: AtomicUsize,
    last_request: std::sync::Mutex<Instant>,
    /// Set when the handler wants this connection ended gracefully (HTTP/2).
    pub(crate) goaway: Notify,
}

impl Conn {
    pub(crate) fn new(
        listener: Arc<str>,
        peer: SocketAddr,
        tls: bool,
        state: Arc<State>,
        activity: Arc<Activity>,
    ) -> Conn {
        Conn {
            listener,
            peer,
            forwarded: Peer::new(peer, tls),
            state,
            activity,
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_request: std::sync::Mutex::new(Instant::now()),
            goaway: Notify::new(),
        }
    }

    /// When the connection's next idle check is due. The check is lazy, so that
    /// requests never have to wake the connection task: when it comes due it
    /// closes the connection if it has really been idle, and otherwise computes
    /// the next due time. Until a first request: the sooner of
    /// `header_read_timeout` and `keepalive_timeout` after opening; then
    /// `keepalive_timeout` after the last request ended.
    pub(crate) fn idle_deadline(&self, s: &crate::config::ProxySettings) -> Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Instant::now() + s.keepalive_timeout;
        }
        let last = *self.last_request.lock().unwrap_or_else(|e| e.into_inner());
        if self.requests.load(Ordering::Relaxed) == 0 {
            last + s.header_read_timeout.min(s.keepalive_timeout)
        } else {
            last + s.keepalive_timeout
        }
    }

    pub(crate) fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        self.last_request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

/// Counts a request in flight for the connection's idle timer.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self
            .0
            .last_request
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The answer to one request.
pub(crate) struct Reply {
    pub(crate) response: Response<Body>,
    /// The response's fields as an HTTP/1.1 upstream sent them, when they
    /// were kept so: an HTTP/1 client gets them copied, an HTTP/2 one gets
    /// them added to the response's map ([`Reply::into_response`]).
    pub(crate) raw: Option<RawFields>,
    /// The connection should end gracefully after this response.
    pub(crate) closing: bool,
}

impl Reply {
    /// The response with all its fields in its map.
    pub(crate) fn into_response(self) -> Response<Body> {
        let mut response = self.response;
        if let Some(raw) = self.raw {
            raw.append_to(response.headers_mut());
        }
        response
    }
}

/// Answers one request (HTTP/1 or HTTP/2) and says whether the connection
/// should end gracefully after it: in the lame-duck phase and after
/// `keepalive_requests`.
pub(crate) async fn respond(req: Request<Body>, conn: &Arc<Conn>) -> Reply {
    conn.in_flight.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(Arc::clone(conn));
    conn.activity.touch();
    let n = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let snapshot = conn.state.snapshot();
    let (upstream, response, raw) = proxy(req, conn, &snapshot).await;
    conn.state.metrics.count_request(
        &conn.listener,
        upstream.as_ref(),
        response.status().as_u16(),
    );
    let closing = response.status() != StatusCode::SWITCHING_PROTOCOLS
        && (conn.state.phase() >= Phase::LameDuck || n >= snapshot.config.proxy.keepalive_requests);
    Reply {
        response,
        raw,
        closing,
    }
}

/// Routes and forwards; returns the upstream's name (if routed), the
/// response, and its fields as they came (see [`Reply::raw`]).
async fn proxy(
    req: Request<Body>,
    conn: &Conn,
    snapshot: &crate::state::Snapshot,
) -> (Option<Arc<str>>, Response<Body>, Option<RawFields>) {
    let version = req.version();
    let router = snapshot.routers.get(&*conn.listener);
    let pool = router
        .and_then(|r| r.pick(request_host(&req), req.uri().path()))
        .and_then(|name| snapshot.pools.get(name))
        .cloned();
    let Some(pool) = pool else {
        return (None, error_response(conn, Cause::NoRoute), None);
    };
    let name = pool.name();
    let max = snapshot.config.proxy.max_body_bytes;
    let declared = match lameduck_http1::content_length(req.headers()) {
        Ok(n) => n,
        Err(_) => return (Some(name), error_response(conn, Cause::BadRequest), None),
    };
    if let Some(max) = max.filter(|m| declared.is_some_and(|n| n > *m)) {
        return (Some(name), too_large(conn, max), None);
    }
    let upgrade = is_upgrade(&req);
    let (mut parts, body) = req.into_parts();
    let idle = snapshot.config.proxy.body_idle_timeout;
    let (body, watch) = watch_body(&mut parts, body, max, idle);
    strip_hop_by_hop(&mut parts.headers, upgrade);
    if upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    forward::add_forwarded(&mut parts.headers, &conn.forwarded, host);
    let req = Request::from_parts(parts, body);
    let sent = forward::send(&pool, req, upgrade).await;
    if let (Ok(_), Some(w)) = (&sent, &watch) {
        w.mark_answered();
    }
    if let Some(refusal) = watch.and_then(|w| body_refusal(conn, &snapshot.config.proxy, &w)) {
        return (Some(name), refusal, None);
    }
    match sent {
        Ok(mut fwd) => {
            conn.state
                .metrics
                .upstream_retries
                .fetch_add(u64::from(fwd.retries), Ordering::Relaxed);
            // A 101 keeps its Connection and Upgrade headers: the HTTP/1 loop
            // answers it and turns the connection into a tunnel.
            match (
                fwd.response.status() == StatusCode::SWITCHING_PROTOCOLS,
                upgrade,
            ) {
                (true, true) => {}
                (true, false) => {
                    tracing::debug!(upstream = %name, "101 to a request that asked for no upgrade");
                    return (
                        Some(name),
                        error_response(conn, Cause::UpstreamProtocol),
                        None,
                    );
                }
                (false, _) => strip_hop_by_hop(fwd.response.headers_mut(), false),
            }
            // The client's protocol, not the upstream's, says how to answer it.
            *fwd.response.version_mut() = version;
            (Some(name), fwd.response, fwd.raw)
        }
        Err((cause, retries)) => {
            conn.state
                .metrics
                .upstream_retries
                .fetch_add(u64::from(retries), Ordering::Relaxed);
            tracing::debug!(upstream = %name, %cause, retries, "request failed");
            (Some(name), error_response(conn, cause), None)
        }
    }
}

pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

const LAMEDUCK_ERROR: header::HeaderName = header::HeaderName::from_static("lameduck-error");

fn error_response(conn: &Conn, cause: Cause) -> Response<Body> {
    let text = format!("{} {}\n", cause.status().as_u16(), cause.name());
    error_with(conn, cause, text)
}

/// Wraps every request body but an empty one in a [`body::BodyWatch`], which
/// counts it against `max` as it streams, ends it after `idle` without data,
/// and tells a client's failure from an upstream's (the forwarding code finds it in the request's extensions).
fn watch_body(
    parts: &mut hyper::http::request::Parts,
    body: Body,
    max: Option<u64>,
    idle: Duration,
) -> (Body, Option<Arc<body::BodyWatch>>) {
    if hyper::body::Body::is_end_stream(&body) {
        return (body, None);
    }
    let (body, watch) = body::watch(body, max, idle);
    parts.extensions.insert(Arc::clone(&watch));
    (body, Some(watch))
}

/// The answer when the client's body, not the upstream, ended the exchange:
/// 413 over `max_body_bytes`, 408 after `body_idle_timeout`.
fn body_refusal(
    conn: &Conn,
    settings: &crate::config::ProxySettings,
    watch: &body::BodyWatch,
) -> Option<Response<Body>> {
    if watch.over_limit() {
        return settings.max_body_bytes.map(|max| too_large(conn, max));
    }
    if !watch.idle() {
        return None;
    }
    let cause = Cause::BodyTimeout;
    let text = format!(
        "{} {}: no request body bytes for body_idle_timeout ({})\n",
        cause.status().as_u16(),
        cause.name(),
        lameduck_drain::format_duration(settings.body_idle_timeout)
    );
    Some(error_with(conn, cause, text))
}

/// The 413 for a body over `max_body_bytes`: it says the limit and the key.
fn too_large(conn: &Conn, max: u64) -> Response<Body> {
    let cause = Cause::BodyTooLarge;
    let text = format!(
        "{} {}: the request body is larger than max_body_bytes ({max} bytes)\n",
        cause.status().as_u16(),
        cause.name()
    );
    error_with(conn, cause, text)
}

fn error_with(conn: &Conn, cause: Cause, text: String) -> Response<Body> {
    conn.state.metrics.count_error(cause);
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = cause.status();
    resp.headers_mut()
        .insert(LAMEDUCK_ERROR, HeaderValue::from_static(cause.name()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
