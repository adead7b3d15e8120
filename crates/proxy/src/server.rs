//! Client side: listeners and connections (the per-request handler is
//! [`crate::respond`]).
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
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use hyper::{body::Incoming, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use lameduck_drain::{AcceptBackoff, Activity, Phase, Refusals};
use lameduck_http1::{body, body::Body, Prefixed};
use tokio::net::{TcpListener, TcpStream};

use crate::{
    h1,
    respond::{respond, Conn},
    state::State,
};

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
        Box::pin(serve_h2(TokioIo::new(Prefixed::new(preface, io)), conn)).await;
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

/// hyper's HTTP/2 service: one stream.
async fn handle(req: Request<Incoming>, conn: Arc<Conn>) -> Result<Response<Body>, Infallible> {
    let reply = respond(req.map(body::boxed), &conn).await;
    if reply.closing {
        conn.goaway.notify_one();
    }
    Ok(reply.into_response())
}
