//! The client side of HTTP/1.1: the proxy's upstream connections, the Eureka
//! client's and the rollout engine's probes.
//!
//! Why not hyper's client connection: hyper runs each connection in a task of
//! its own, so every request is handed to that task and its response handed
//! back (channels, wake-ups, a dispatcher), which costs more CPU than the
//! forwarding itself. Here the request's own task writes the request and
//! reads the response, and a pooled connection is just its socket: nothing
//! runs for it while it is idle. The pool is the caller's ([`Pool`]): the
//! proxy keeps one per upstream endpoint, with its own health rules.
//!
//! One exchange ([`send`]): write the request head together with as much of
//! the body as is already there ([`Outgoing`]); stream the rest of the body
//! while waiting for the response head; skip `1xx` responses other than `101`
//! (the client got its own `100 Continue` from the proxy); hand back the
//! response with a body that reads from the connection. The connection goes
//! back to its pool ([`Home`]) only when that body was read to its end,
//! nothing follows it, the request was sent whole, and both sides keep the
//! connection (`Connection: close` and HTTP/1.0 responses do not). A
//! `101 Switching Protocols` gives the connection to the response as an
//! [`Upgraded`] stream.
//!
//! What failed, and when, decides whether the request may be tried again: see
//! [`Failure`] (the proxy's rules are in its `forward` module).

mod request;
pub mod response;

use std::{
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::BytesMut;
use http::{Request, Response};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

pub use request::Outgoing;
pub use response::{BodyError, Upgraded};

use crate::{body::Body, raw::RawFields};

/// The read buffer a connection gets when the one it has runs out of room:
/// it serves the heads (and small bodies) of several responses in a row.
const HEAD_CHUNK: usize = 8 * 1024;
/// Less room than this left in the read buffer, and a new one is taken.
const MIN_READ: usize = 1024;
/// What a response body read asks for at a time.
const BODY_CHUNK: usize = 16 * 1024;

/// An open connection to an upstream, idle between exchanges.
///
/// It keeps the unused end of its read buffer (empty of data: a connection
/// with unread bytes is never pooled): responses are read into it one after
/// the other, and the parts already handed out keep the memory they use, so
/// small responses do not cost an allocation each (and the heap does not
/// grow and shrink, with page faults, at every batch of requests).
#[derive(Debug)]
pub struct Conn {
    io: TcpStream,
    buf: BytesMut,
}

impl Conn {
    pub fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
        }
    }

    /// True when the idle connection can no longer carry a request: a
    /// connection between exchanges has nothing to read, so readable means
    /// the upstream closed it (or sent bytes nobody asked for). Costs no
    /// system call unless the socket was reported readable.
    pub fn is_stale(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            // Readiness can be left over from the last read: look.
            Poll::Ready(Ok(())) => !matches!(
                self.io.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            ),
        }
    }
}

/// Why an exchange failed; when matters as much as why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Writing the request head failed: the server cannot have acted on it.
    #[error("the connection failed before the request was sent")]
    NotSent,
    /// The request was sent (in whole or in part) and the connection ended
    /// before any response byte: on a reused connection, the keepalive race.
    #[error("the connection closed before any response byte")]
    NoResponse,
    /// The connection closed or was reset after part of the response head,
    /// or the request body failed.
    #[error("the connection was reset in the response head")]
    Reset,
    /// The response head did not come in time.
    #[error("no response head in time")]
    Timeout,
    /// The response head is not valid HTTP/1.x.
    #[error("invalid response head")]
    Protocol,
}

/// Where idle connections wait for their next exchange: the caller's pool.
pub trait Pool: Send + Sync + std::fmt::Debug {
    /// Takes `conn` back (after a response read whole), or drops it when
    /// `max_idle` connections wait already.
    fn put_idle(&self, conn: Conn, max_idle: usize);
}

/// Where a connection goes back after its exchange.
#[derive(Debug)]
pub struct Home {
    /// The pool the connection goes back to.
    pub pool: Arc<dyn Pool>,
    /// Passed on to [`Pool::put_idle`].
    pub max_idle: usize,
}

impl Home {
    fn take_back(self, io: TcpStream, buf: BytesMut) {
        self.pool.put_idle(Conn { io, buf }, self.max_idle);
    }
}

/// Sends `req` on `conn` and returns the response, whose head came within
/// `timeout`, with its fields as they came when they were kept so (see
/// [`crate::raw`]). `req` stays with the caller, for a retry where one is
/// safe. The connection goes `home` when it can be kept; with no home it is
/// closed after the response.
pub async fn send(
    conn: Conn,
    req: &mut Outgoing,
    timeout: Duration,
    home: Option<Home>,
) -> Result<(Response<Body>, Option<RawFields>), Failure> {
    if req.failed() {
        return Err(Failure::Reset);
    }
    let Conn { mut io, mut buf } = conn;
    let exchange = tokio::time::timeout(timeout, exchange(&mut io, req, &mut buf));
    let (head, sent_whole) = match exchange.await {
        Ok(result) => result?,
        Err(_) => return Err(Failure::Timeout),
    };
    let reusable = sent_whole && !req.failed();
    Ok(response::respond(
        head,
        io,
        buf,
        home,
        reusable,
        req.upgrade,
    ))
}

/// Why a one-off request ([`send_once`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum OnceError {
    /// The connection could not be opened.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed.
    #[error(transparent)]
    Exchange(#[from] Failure),
}

/// Sends `req` on a new connection to `addr`, which closes after the
/// response; its response head must come within `timeout`. The response's
/// fields are all in its map. For callers that send a request now and then
/// (probes, admin calls), where a pool would only hold sockets.
pub async fn send_once(
    addr: SocketAddr,
    req: Request<Body>,
    timeout: Duration,
) -> Result<Response<Body>, OnceError> {
    let io = TcpStream::connect(addr)
        .await
        .map_err(|source| OnceError::Connect { addr, source })?;
    let _ = io.set_nodelay(true);
    let mut out = Outgoing::new(req, false);
    let (mut response, raw) = send(Conn::new(io), &mut out, timeout, None).await?;
    if let Some(raw) = raw {
        raw.append_to(response.headers_mut());
    }
    Ok(response)
}

/// Writes the request and reads the response head; also says whether the
/// request went out whole (a head that comes before the body was sent ends the
/// upload, and the connection cannot be reused).
async fn exchange(
    io: &mut TcpStream,
    req: &mut Outgoing,
    buf: &mut BytesMut,
) -> Result<(response::Head, bool), Failure> {
    if io.write_all(req.first()).await.is_err() {
        return Err(Failure::NotSent);
    }
    let head_request = req.head_request;
    if !req.has_more() {
        return read_head(io, buf, head_request).await.map(|h| (h, true));
    }
    let (mut rd, mut wr) = io.split();
    let upload = req.upload(&mut wr);
    let head = read_head(&mut rd, buf, head_request);
    tokio::pin!(upload, head);
    tokio::select! {
        biased;
        head = &mut head => head.map(|h| (h, false)),
        sent = &mut upload => match sent {
            Ok(()) => head.await.map(|h| (h, true)),
            Err(request::UploadError::Body) => Err(Failure::Reset),
            // The upstream may still have answered before it stopped reading.
            Err(request::UploadError::Write) => head.await.map(|h| (h, false)),
        },
    }
}

/// Reads until a final response head is buffered, skipping `1xx` ones other
/// than `101`.
async fn read_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<response::Head, Failure> {
    let mut answered = false;
    loop {
        if !buf.is_empty() {
            match response::parse(buf, head_request) {
                Ok(Some(head)) if head.is_interim() => continue,
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(why) => {
                    tracing::debug!("response head refused: {why}");
                    return Err(Failure::Protocol);
                }
            }
        }
        if buf.capacity() - buf.len() < MIN_READ {
            buf.reserve(HEAD_CHUNK);
        }
        match rd.read_buf(buf).await {
            Ok(n) if n > 0 => answered = true,
            _ if answered => return Err(Failure::Reset),
            _ => return Err(Failure::NoResponse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair: the proxy's side as a [`Conn`], and the upstream's.
    async fn pair() -> (Conn, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (Conn::new(client.unwrap()), accepted.unwrap().0)
    }

    /// Waits (with a deadline) until the runtime has seen `conn` go stale.
    async fn goes_stale(conn: &Conn) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if conn.is_stale() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    }

    #[tokio::test]
    async fn an_idle_connection_is_stale_once_closed_or_sent_garbage() {
        let (conn, upstream) = pair().await;
        assert!(!conn.is_stale(), "open and quiet");
        drop(upstream);
        assert!(goes_stale(&conn).await, "closed by the upstream");
        let (conn, mut upstream) = pair().await;
        upstream.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        assert!(goes_stale(&conn).await, "bytes nobody asked for");
    }
}
