//! Client-side HTTP/1.x: the proxy's own connection loop, on the
//! `lameduck-http1` crate (parser, encoder, chunked codec, body writer and
//! upstream client).
//!
//! Why not hyper's server here (hyper still serves HTTP/2, and every upstream
//! connection): a proxy holds many idle keepalive connections, and hyper keeps
//! an 8 KiB read buffer, a header-map cache and the largest request future of
//! each one for its whole life. This loop holds nothing while a connection is
//! idle but the socket and a few words: the first read of each request goes to
//! a buffer on the stack, and the heap buffer it is copied to is given back
//! when the exchange ends (to a small per-thread list, [`spare`], for the next
//! request on any connection). Each exchange runs in its own boxed future, so
//! the connection task stays small between requests.
//!
//! One exchange: read and check the head ([`lameduck_http1::parse`]); forward
//! it (the request body, if any, streamed from the socket through a channel of
//! one frame while the response streams back); write the response head and body
//! with the framing the client needs ([`encode`]); then keep the connection for
//! the next request, or close it: on `Connection: close` from either side,
//! after `keepalive_requests`, in the drain, or when a body could not be read
//! or written whole. A `101 Switching Protocols` to a bodyless request that
//! asked for that upgrade turns the connection into a tunnel
//! ([`crate::websocket`]), never parsed as HTTP again; an upgrade request with
//! a body is forwarded without its `Upgrade` and the connection closes after
//! the answer. An HTTP/2 prior-knowledge preface hands the connection to
//! hyper's HTTP/2 server.
//!
//! The upstream side of HTTP/1.1 is the same crate's client
//! ([`client`]), run by the same task; a plain upstream response's fields are
//! copied to the client as they came ([`lameduck_http1::raw`]).

use std::{pin::Pin, sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use hyper::{body::Frame, header, HeaderMap, StatusCode};
use lameduck_drain::Phase;
use lameduck_http1::{
    body::{self as bodies, BoxError},
    channel, chunked, client,
    encode::{self, Exchange, Out},
    parse::{Framing, Head},
    server::{linger, poll_first_read, read_head, write_body, LINGER, READ_CHUNK},
    spare, Prefixed,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    time::Instant,
};

use crate::{
    error::Cause,
    respond::{self, Conn, Reply},
};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a connection's HTTP/1 life ended.
pub(crate) enum Ended {
    /// Closed (or to be closed) by the loop.
    Closed,
    /// The client spoke HTTP/2 with prior knowledge: serve it as HTTP/2,
    /// replaying these bytes first.
    Http2(Bytes),
}

/// Serves HTTP/1.x requests on `io` until the connection ends.
pub(crate) async fn serve<I>(io: &mut I, conn: &Arc<Conn>) -> Ended
where
    I: AsyncRead + AsyncWrite + Unpin + Send,
{
    // Only what the loop needs: the connection's task holds this while idle.
    let (header_read_timeout, keepalive_timeout) = {
        let settings = &conn.state.snapshot().config.proxy;
        (settings.header_read_timeout, settings.keepalive_timeout)
    };
    let mut buf = BytesMut::new();
    let mut phase = conn.state.phase.subscribe();
    let mut served: u64 = 0;
    // The idle timer is armed once and moved on lazily (see `next_request`):
    // a timer wheel entry per request would cost more than the check.
    let mut idle_until = Instant::now() + header_read_timeout.min(keepalive_timeout);
    let idle = tokio::time::sleep_until(idle_until);
    tokio::pin!(idle);
    loop {
        if buf.is_empty() {
            let waiting = next_request(io, &mut buf, &mut phase, idle.as_mut(), idle_until);
            if let Err(why) = waiting.await {
                tracing::debug!(peer = %conn.peer, requests = served, "connection ends: {why}");
                return Ended::Closed;
            }
        }
        if served == 0 && H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())]) {
            return match read_preface(io, &mut buf).await {
                true => Ended::Http2(buf.freeze()),
                false => Ended::Closed,
            };
        }
        let read = tokio::time::timeout(header_read_timeout, read_head(io, &mut buf));
        let head = match read.await {
            Ok(Ok(head)) => head,
            Ok(Err(None)) => return Ended::Closed,
            Ok(Err(Some(reject))) => {
                Box::pin(refuse(io, conn, Cause::from(reject), reject.reason())).await;
                return Ended::Closed;
            }
            Err(_) => {
                Box::pin(refuse(
                    io,
                    conn,
                    Cause::HeadTimeout,
                    "no complete request head in time",
                ))
                .await;
                return Ended::Closed;
            }
        };
        served += 1;
        let keep = Box::pin(exchange(io, &mut buf, head, conn)).await;
        if !keep {
            spare::give(buf);
            let _ = io.shutdown().await;
            return Ended::Closed;
        }
        idle_until = Instant::now() + keepalive_timeout;
        if buf.is_empty() {
            // Idle: give the buffer back, for the next request on any connection.
            spare::give(std::mem::take(&mut buf));
        }
    }
}

/// Waits for the first bytes of the next request, without holding a buffer
/// while none come. Ends the connection when the client closes it, when idle
/// until `until`, or once the drain begins (bytes that already arrived are
/// served). `idle` may be due earlier than `until` (it was armed for an
/// earlier request): then it is moved to `until` and the wait goes on.
async fn next_request<I>(
    io: &mut I,
    buf: &mut BytesMut,
    phase: &mut tokio::sync::watch::Receiver<Phase>,
    mut idle: Pin<&mut tokio::time::Sleep>,
    until: Instant,
) -> Result<(), &'static str>
where
    I: AsyncRead + Unpin,
{
    let mut read = std::future::poll_fn(|cx| poll_first_read(Pin::new(&mut *io), cx, buf));
    loop {
        tokio::select! {
            biased;
            read = &mut read => return match read {
                Ok(0) => Err("closed by the client"),
                Ok(_) => Ok(()),
                Err(_) => Err("read error"),
            },
            _ = phase.wait_for(|p| *p >= Phase::Drain) => return Err("idle in the drain"),
            () = idle.as_mut() => {
                if Instant::now() >= until {
                    return Err("idle timeout");
                }
                idle.as_mut().reset(until);
            }
        }
    }
}

/// Reads until the buffer holds the whole HTTP/2 preface, or shows it is not one.
async fn read_preface<I: AsyncRead + Unpin>(io: &mut I, buf: &mut BytesMut) -> bool {
    while buf.len() < H2_PREFACE.len() {
        buf.reserve(H2_PREFACE.len());
        match io.read_buf(buf).await {
            Ok(n) if n > 0 => {}
            _ => return false,
        }
    }
    buf.starts_with(H2_PREFACE)
}

/// Answers a request the proxy refuses before forwarding it; the connection
/// closes after. Callers box it: its linger buffer must not take room in every
/// connection's task.
async fn refuse<I>(io: &mut I, conn: &Conn, cause: Cause, reason: &str)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    tracing::debug!(peer = %conn.peer, %cause, "refused a request: {reason}");
    conn.state.metrics.count_error(cause);
    let status = cause.status();
    let body = format!("{} {}: {reason}\n", status.as_u16(), cause.name());
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\nlameduck-error: {}\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        cause.name()
    );
    let _ = io.write_all(format!("{head}{body}").as_bytes()).await;
    let _ = io.shutdown().await;
    linger(io).await;
}

/// One request and its response; true when the connection can be kept.
async fn exchange<I>(io: &mut I, buf: &mut BytesMut, head: Head, conn: &Arc<Conn>) -> bool
where
    I: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Head {
        mut request,
        framing,
        keep_alive,
        expect_continue,
    } = head;
    let unhonoured = refuse_upgrade_with_body(&mut request, framing);
    let (method, version) = (request.method().clone(), request.version());
    let ex = |closing: bool| Exchange::new(&method, version, closing || !keep_alive || unhonoured);
    if framing == Framing::None {
        let upgrade = respond::is_upgrade(&request);
        let websocket = upgrade && is_websocket(request.headers());
        let reply = respond::respond(request.map(|()| bodies::empty()), conn).await;
        if upgrade && reply.response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let mut response = reply.into_response();
            let upstream = response.extensions_mut().remove::<client::Upgraded>();
            let Some(upstream) = upstream.and_then(|u| u.take()) else {
                return false;
            };
            let mut out = Vec::with_capacity(256);
            encode::head(&mut out, &response, None, ex(false));
            if io.write_all(&out).await.is_ok() && io.flush().await.is_ok() {
                let client = Prefixed::new(buf.split().freeze(), io);
                // Boxed, so that every exchange's future (moved into its box
                // once per request) carries no room for a tunnel.
                let state = Arc::clone(&conn.state);
                Box::pin(crate::websocket::tunnel(client, upstream, websocket, state)).await;
            }
            return false;
        }
        let closing = reply.closing;
        return write_response(io, reply, ex(closing)).await;
    }
    if expect_continue
        && io
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
    {
        return false;
    }
    let length = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    if let Some(body) = length.and_then(|n| buffered_body(buf, n)) {
        // The whole body came with the head (a small one usually does): no
        // channel, and the upstream client can send it with the head.
        let reply = respond::respond(request.map(|()| bodies::full(body)), conn).await;
        let closing = reply.closing;
        return write_response(io, reply, ex(closing)).await;
    }
    // Boxed: the two halves run at once and each needs its own room, which
    // every exchange's future (moved into its box once per request) would
    // otherwise carry.
    Box::pin(streamed(io, buf, request, framing, conn, ex(false))).await
}

/// An upgrade is only honoured for a request without a body: one with a body
/// is forwarded as a plain request (its `Upgrade` removed, so a `101` to it is
/// a 502) and the connection closes after the answer, so that nothing the
/// client sent after the body (tunnel bytes, or a request hidden as such) is
/// ever parsed as HTTP. True when the upgrade was removed.
fn refuse_upgrade_with_body(request: &mut hyper::Request<()>, framing: Framing) -> bool {
    if framing == Framing::None || !respond::is_upgrade(request) {
        return false;
    }
    request.headers_mut().remove(header::UPGRADE);
    true
}

/// An exchange whose request body is still coming: it is read from the
/// client (and sent on) while the response comes back.
async fn streamed<I>(
    io: &mut I,
    buf: &mut BytesMut,
    request: hyper::Request<()>,
    framing: Framing,
    conn: &Arc<Conn>,
    ex: Exchange,
) -> bool
where
    I: AsyncRead + AsyncWrite + Unpin + Send,
{
    let length = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let (tx, body) = channel::RequestBody::channel(length);
    let request = request.map(|()| bodies::boxed(body));
    let idle = conn.state.snapshot().config.proxy.body_idle_timeout;
    let (mut rd, mut wr) = tokio::io::split(&mut *io);
    let pump = pump_body(&mut rd, buf, framing, tx, idle);
    let respond = async {
        let reply = respond::respond(request, conn).await;
        let ex = Exchange {
            closing: ex.closing || reply.closing,
            ..ex
        };
        write_response(&mut wr, reply, ex).await
    };
    tokio::pin!(pump, respond);
    let (whole, kept) = tokio::select! {
        whole = &mut pump => (whole, respond.await),
        kept = &mut respond => (tokio::time::timeout(LINGER, pump).await.unwrap_or(false), kept),
    };
    whole && kept
}

/// The body of `length` bytes, if `buf` holds all of it.
fn buffered_body(buf: &mut BytesMut, length: u64) -> Option<Bytes> {
    (buf.len() as u64 >= length).then(|| buf.split_to(length as usize).freeze())
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Reads the request body into `tx`, frame by frame; true when it was read
/// whole. Once the upstream stops taking it (it answered, or the body went
/// over `max_body_bytes`, which [`bodies::watch`] counts), the rest is read
/// and dropped, for [`LINGER`] at most after the response. A client that
/// sends nothing for `idle` fails the body ([`bodies::Idle`]: a 408).
async fn pump_body<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    framing: Framing,
    tx: channel::Sender,
    idle: Duration,
) -> bool {
    let mut tx = Some(tx);
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut decoder = chunked::Decoder::new();
    loop {
        let next = match framing {
            Framing::None => return true,
            Framing::Length(_) if left == 0 => return true,
            Framing::Length(_) if buf.is_empty() => None,
            Framing::Length(_) => {
                let n = left.min(buf.len() as u64);
                left -= n;
                Some(Ok(Frame::data(buf.split_to(n as usize).freeze())))
            }
            Framing::Chunked => match decoder.next(buf) {
                Ok(None) => None,
                Ok(Some(chunked::Piece::Data(d))) => Some(Ok(Frame::data(d))),
                Ok(Some(chunked::Piece::Trailers(t))) => Some(Ok(Frame::trailers(t))),
                Ok(Some(chunked::Piece::End)) => return true,
                Err(e) => Some(Err(e.0)),
            },
        };
        let Some(next) = next else {
            buf.reserve(READ_CHUNK);
            match tokio::time::timeout(idle, rd.read_buf(buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => {
                    let why = "the client closed the connection in the request body";
                    fail(tx, why.into()).await;
                    return false;
                }
                Err(_) => {
                    fail(tx, bodies::Idle.into()).await;
                    return false;
                }
            }
            continue;
        };
        let frame = match next {
            Ok(frame) => frame,
            Err(why) => {
                fail(tx, why.into()).await;
                return false;
            }
        };
        if let Some(sender) = &tx {
            if sender.send(Ok(frame)).await.is_err() {
                tx = None;
            }
        }
    }
}

async fn fail(tx: Option<channel::Sender>, why: BoxError) {
    if let Some(tx) = tx {
        let _ = tx.send(Err(why)).await;
    }
}

/// Writes the response; true when it went out whole and the connection can
/// be kept.
async fn write_response<W: AsyncWrite + Unpin>(w: &mut W, reply: Reply, ex: Exchange) -> bool {
    let mut out = Vec::with_capacity(512);
    let (framing, closing) = encode::head(&mut out, &reply.response, reply.raw.as_ref(), ex);
    let body = reply.response.into_body();
    let whole = match framing {
        Out::None => w.write_all(&out).await.is_ok(),
        _ => write_body(w, out, body, framing).await.is_ok(),
    };
    whole && w.flush().await.is_ok() && !closing
}
