//! Client side: listeners, connections, and the per-request handler.
//!
//! Each accepted connection is served by the proxy's own HTTP/1.x loop
//! ([`crate::h1`]), or by hyper's HTTP/2 server when TLS negotiated `h2` or the
//! client sent the HTTP/2 preface (h2c). Both watch the drain phase:
//!
//! - lame duck: HTTP/1.1 responses carry `Connection: close` (the client closes
//!   after reading it, so no idle connection is ever closed under its feet);
//!   HTTP/2 connections get a graceful GOAWAY (hyper sends the two-step form);
//!   new connections are still accepted;
//! - drain: listeners stop accepting; idle HTTP/1.1 connections close (bytes
//!   of a request that already arrived are still served), in-flight requests
//!   finish, HTTP/2 connections end after their last stream;
//! - terminate: what is left is dropped.
//!
//! `keepalive_requests` and `keepalive_timeout` end a connection the same
//! graceful way, never with a silent close while a request may be on its way.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hyper::{
    body::Incoming,
    header::{self, HeaderValue},
    Request, Response, StatusCode, Version,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use lameduck_drain::{AcceptBackoff, Phase, Refusals};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
};

use crate::{
    body::{self, Body},
    error::Cause,
    forward::{self, Peer},
    h1::{self, raw::RawFields},
    router::request_host,
    state::State,
};

/// Activity the drain watches: accepted connections and requests (the
/// drain crate's, so every part's `--until-quiet` reads the same clock).
pub(crate) use lameduck_drain::Activity;

/// Accepts on one listener until the drain phase.
///
/// Above `max_connections` a new connection is accepted only to be refused
/// (see [`refuse`]): left in the kernel's queue, as it was, a client waits
/// with no answer until its own connect timeout, and a router in front
/// cannot tell an overloaded proxy from a dead one.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    state: Arc<State>,
    activity: Arc<Activity>,
) {
    let mut phase = state.phase.subscribe();
    let mut backoff = AcceptBackoff::new(&*name);
    let mut refusals = Refusals::new(&*name);
    let refusing = Arc::new(AtomicUsize::new(0));
    loop {
        if *phase.borrow() >= Phase::Drain {
            tracing::info!(listener = %name, "stopped accepting");
            return;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff.accepted();
                    activity.touch();
                    let snapshot = state.snapshot();
                    let max = snapshot.config.proxy.max_connections;
                    if state.metrics.active_connections.load(Ordering::Relaxed) >= max {
                        state.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                        refusals.refused(max, "proxy.max_connections");
                        let tls = snapshot.config.listeners.iter().any(|l| *l.name == *name && l.tls.is_some());
                        refuse(stream, tls, max, &refusing);
                        continue;
                    }
                    drop(snapshot);
                    // Counted here, not in the task: the next accept sees it.
                    let active = Active::new(&state);
                    let (name, state, activity) = (Arc::clone(&name), Arc::clone(&state), Arc::clone(&activity));
                    tokio::spawn(serve_connection(stream, peer, name, state, activity, active));
                }
                Err(e) => {
                    // Out of descriptors and the like: wait (open connections
                    // are served meanwhile), and let the drain interrupt it.
                    let wait = tokio::time::sleep(backoff.failed(&e));
                    tokio::select! {
                        () = wait => {}
                        _ = phase.changed() => {}
                    }
                }
            },
            _ = phase.changed() => {}
        }
    }
}

/// Refusals being answered at once, at most; past it a refused connection is
/// closed at once, so a flood of them costs no more than this many tasks.
const MAX_REFUSING: usize = 64;
/// How long a refused connection is kept to read what its client sent.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

/// Refuses a connection over `max_connections`. On a plain listener the
/// client gets `503` with `Retry-After: 1` and `Connection: close`, written
/// before its request is read: the request never reached an upstream, so any
/// client or router may retry it elsewhere, and the status says why. What the
/// client sent is then read and dropped for up to [`REFUSE_LINGER`], so that
/// closing does not reset the connection before the 503 is read. On a TLS
/// listener the connection is closed at once: a handshake, only to say 503,
/// costs the CPU the limit is there to protect.
fn refuse(stream: TcpStream, tls: bool, max: usize, refusing: &Arc<AtomicUsize>) {
    if tls || refusing.load(Ordering::Relaxed) >= MAX_REFUSING {
        return; // dropped: closed
    }
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nContent-Length: {len}\r\n\r\n{body}",
        len = refusal_body(max).len(),
        body = refusal_body(max),
    );
    // An empty send buffer takes the whole reply now, without a task.
    if !matches!(stream.try_write(reply.as_bytes()), Ok(n) if n == reply.len()) {
        return;
    }
    refusing.fetch_add(1, Ordering::Relaxed);
    let refusing = Arc::clone(refusing);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSE_LINGER, linger(stream)).await;
        refusing.fetch_sub(1, Ordering::Relaxed);
    });
}

fn refusal_body(max: usize) -> String {
    format!("lameduck proxy: {max} connections are open (proxy.max_connections); retry later\n")
}

/// Ends the sending side and reads (and drops) up to 64 KiB until the client
/// closes.
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.shutdown().await;
    let mut buf = [0u8; 4096];
    let mut read = 0;
    while read < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => read += n,
        }
    }
}

/// Per-connection facts the handler and the connection task share.
pub(crate) struct Conn {
    listener: Arc<str>,
    pub(crate) peer: SocketAddr,
    /// This client's `X-Forwarded-*` / `Forwarded` values, built once.
    forwarded: Peer,
    pub(crate) state: Arc<State>,
    activity: Arc<Activity>,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    last_request: std::sync::Mutex<Instant>,
    /// Set when the handler wants this connection ended gracefully (HTTP/2).
    goaway: Notify,
}

/// Counts a connection in the active-connection gauge until dropped, however
/// its task ends.
struct Active(Arc<State>);

impl Active {
    fn new(state: &Arc<State>) -> Active {
        state
            .metrics
            .active_connections
            .fetch_add(1, Ordering::Relaxed);
        state
            .metrics
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        Active(Arc::clone(state))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0
            .metrics
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
        self.0.closed.notify_waiters();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    state: Arc<State>,
    activity: Arc<Activity>,
    _active: Active,
) {
    let _ = stream.set_nodelay(true);
    let snapshot = state.snapshot();
    let tls = snapshot
        .config
        .listeners
        .iter()
        .find(|l| *l.name == *listener)
        .and_then(|l| l.tls.as_ref())
        .map(|t| Arc::clone(&t.server));
    let handshake_timeout = snapshot.config.proxy.header_read_timeout;
    drop(snapshot);
    let conn = Arc::new(Conn::new(listener, peer, tls.is_some(), state, activity));
    let Some(server) = tls else {
        return serve(stream, conn).await;
    };
    // Boxed: a TLS session is large, and the plain connection's task should
    // not carry room for one.
    Box::pin(serve_tls(stream, server, handshake_timeout, conn)).await;
}

async fn serve_tls(
    stream: TcpStream,
    server: Arc<rustls::ServerConfig>,
    handshake_timeout: Duration,
    conn: Arc<Conn>,
) {
    let peer = conn.peer;
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
            serve_h2(TokioIo::new(stream), conn).await
        }
        Ok(Ok(stream)) => serve(stream, conn).await,
        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// HTTP/1.x by the proxy's own loop, and HTTP/2 when the client opens with the
/// HTTP/2 preface (h2c with prior knowledge).
async fn serve<I>(mut io: I, conn: Arc<Conn>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut phase = conn.state.phase.subscribe();
    let ended = tokio::select! {
        ended = h1::serve(&mut io, &conn) => ended,
        // At the deadline whatever is left is dropped, which closes it.
        _ = phase.wait_for(|p| *p == Phase::Terminate) => return,
    };
    if let h1::Ended::Http2(preface) = ended {
        // Boxed, so that HTTP/1 connections' tasks carry no room for it.
        Box::pin(serve_h2(TokioIo::new(h1::Prefixed::new(preface, io)), conn)).await;
    }
}

/// HTTP/2 limits, set here rather than left to hyper's defaults (the same
/// values today) so that an upgrade of hyper cannot loosen them: streams open
/// at once on one connection; the decoded header list of one request (HTTP/2
/// headers and CONTINUATION frames together, so a CONTINUATION flood is cut
/// there); streams the client resets before the proxy saw them (rapid reset,
/// CVE-2023-44487: past it the connection gets GOAWAY); and streams the proxy
/// itself resets for protocol errors.
const H2_MAX_STREAMS: u32 = 200;
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;
const H2_MAX_PENDING_RESETS: usize = 20;
const H2_MAX_LOCAL_RESETS: usize = 1024;

/// Serves HTTP/2 on one client connection until it ends, by hyper's server.
async fn serve_h2<I>(io: I, conn: Arc<Conn>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let state = Arc::clone(&conn.state);
    let settings = state.snapshot().config.proxy.clone();
    let c = Arc::clone(&conn);
    let service = hyper::service::service_fn(move |req| handle(req, Arc::clone(&c)));
    let server = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS)
        .serve_connection(io, service);
    tokio::pin!(server);
    let mut phase = state.phase.subscribe();
    let mut ending = false;
    loop {
        let current = *phase.borrow_and_update();
        if current == Phase::Terminate {
            return; // dropping the connection closes it
        }
        if !ending && current >= Phase::LameDuck {
            server.as_mut().graceful_shutdown();
            ending = true;
        }
        tokio::select! {
            _ = server.as_mut() => return,
            _ = phase.changed() => {}
            () = conn.goaway.notified(), if !ending => {
                server.as_mut().graceful_shutdown();
                ending = true;
            }
            () = tokio::time::sleep_until(conn.idle_deadline(&settings).into()), if !ending => {
                let no_request = conn.requests.load(Ordering::Relaxed) == 0;
                if no_request && conn.idle_for() >= settings.header_read_timeout {
                    // No request within header_read_timeout: nothing to lose.
                    tracing::debug!(peer = %conn.peer, "no request within header_read_timeout; closing");
                    return;
                }
                if !no_request && conn.idle_for() >= settings.keepalive_timeout {
                    server.as_mut().graceful_shutdown();
                    ending = true;
                }
            }
        }
    }
}

impl Conn {
    fn new(
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
    fn idle_deadline(&self, s: &crate::config::ProxySettings) -> Instant {
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

    fn idle_for(&self) -> Duration {
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

/// hyper's HTTP/2 service: one stream.
async fn handle(req: Request<Incoming>, conn: Arc<Conn>) -> Result<Response<Body>, Infallible> {
    let reply = respond(req.map(body::boxed), &conn).await;
    if reply.closing {
        conn.goaway.notify_one();
    }
    Ok(reply.into_response())
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
    let declared = match crate::h1::content_length(req.headers()) {
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
    forward::strip_hop_by_hop(&mut parts.headers, upgrade);
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
                (false, _) => forward::strip_hop_by_hop(fwd.response.headers_mut(), false),
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
