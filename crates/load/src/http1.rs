//! A minimal HTTP/1.1 client on a `TcpStream` (plain or TLS), written for one job: tell
//! exactly how each request ended.
//!
//! General-purpose clients (hyper included) fold "the server closed before
//! answering", "the connection was reset before the answer", "reset in the middle
//! of the body" and "the body was shorter than announced" into one error, or
//! retry some of them silently. Here every read and write result is looked at
//! with one question: had any byte of the response arrived yet? That, plus the
//! I/O error kind, gives the [`Outcome`]. The client renders each request once
//! (see [`crate::Target`]), reads the response head and the chunked coding
//! with `lameduck-http1` (the strict parser the proxy uses: a response two
//! readers could frame two ways is a protocol error) and skips the body
//! without copying it, which keeps it as fast as wrk.

use std::{io, time::Duration};

use bytes::{Buf, BytesMut};
use lameduck_http1::{
    chunked,
    client::response::{self, Framing},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{config::ExpectStatus, stream::Stream, Outcome, Target};

/// One open connection, with what was read but not used yet.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: Stream,
    buf: BytesMut,
    /// Whether any byte of the current response has arrived.
    got_bytes: bool,
}

/// Why reading a response stopped early.
#[derive(Debug)]
enum ReadError {
    /// The peer closed the connection cleanly.
    Eof,
    /// The socket reported an error.
    Io(io::Error),
    /// The bytes are not an HTTP/1.x response.
    Protocol,
}

/// What is known about a response once its head is read.
#[derive(Debug, Clone, Copy)]
struct Head {
    status: u16,
    framing: Framing,
    keepalive: bool,
}

/// Sends one request on `slot`'s connection (opening one if empty) and reads the
/// whole response. Leaves the connection in `slot` only if it can be reused.
pub(crate) async fn exchange(
    slot: &mut Option<Conn>,
    target: &Target,
    connect_timeout: Duration,
    expect: &ExpectStatus,
) -> Outcome {
    let mut conn = match slot.take() {
        Some(conn) => conn,
        None => match connect(target, connect_timeout).await {
            Ok(conn) => conn,
            Err(outcome) => return outcome,
        },
    };
    conn.got_bytes = false;
    let sent = async {
        conn.stream.write_all(&target.request).await?;
        conn.stream.flush().await // TLS buffers; plain TCP does nothing here
    };
    if let Err(e) = sent.await {
        return write_outcome(&e);
    }
    match conn.read_response(target.head).await {
        Ok(head) => {
            if head.keepalive && target.keepalive {
                *slot = Some(conn);
            }
            match expect.contains(head.status) {
                true => Outcome::Success,
                false => Outcome::Status(head.status),
            }
        }
        Err(e) => conn.read_outcome(e),
    }
}

/// Connects (and for `https://`, handshakes) within `timeout`.
async fn connect(target: &Target, timeout: Duration) -> Result<Conn, Outcome> {
    let stream = match tokio::time::timeout(timeout, open(target)).await {
        Err(_elapsed) => return Err(Outcome::ConnectTimeout),
        Ok(result) => result?,
    };
    Ok(Conn {
        stream,
        buf: BytesMut::with_capacity(16 * 1024),
        got_bytes: false,
    })
}

/// Opens the TCP connection (and TLS session) to `target`.
pub(crate) async fn open(target: &Target) -> Result<Stream, Outcome> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| connect_outcome(&e))?;
    // Requests are small and sent in one write; never wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &target.tls else {
        return Ok(Stream::Plain(tcp));
    };
    match tls.connector.connect(tls.name.clone(), tcp).await {
        Ok(tls) => Ok(Stream::Tls(Box::new(tls))),
        Err(e) => Err(handshake_outcome(&e)),
    }
}

/// A handshake cut by the server is not a TLS problem; a refused one is.
fn handshake_outcome(e: &io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::InvalidData => Outcome::TlsError,
        io::ErrorKind::UnexpectedEof => Outcome::ClosedBeforeResponse,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            Outcome::ResetBeforeResponse
        }
        _ => Outcome::TlsError,
    }
}

fn connect_outcome(e: &io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Outcome::ConnectRefused,
        io::ErrorKind::TimedOut => Outcome::ConnectTimeout,
        _ => Outcome::ConnectError,
    }
}

/// A failed write means no response can have started.
fn write_outcome(e: &io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Outcome::ResetBeforeResponse,
        _ => Outcome::OtherError,
    }
}

impl Conn {
    /// Classifies a failed read by whether the response had started.
    fn read_outcome(&self, e: ReadError) -> Outcome {
        let reset = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            )
        };
        match (e, self.got_bytes) {
            (ReadError::Eof, false) => Outcome::ClosedBeforeResponse,
            (ReadError::Eof, true) => Outcome::TruncatedBody,
            (ReadError::Io(e), false) if reset(&e) => Outcome::ResetBeforeResponse,
            (ReadError::Io(e), true) if reset(&e) => Outcome::ResetDuringResponse,
            (ReadError::Io(_), _) => Outcome::OtherError,
            (ReadError::Protocol, _) => Outcome::ProtocolError,
        }
    }

    /// Reads more bytes into the buffer.
    async fn fill(&mut self) -> Result<(), ReadError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(ReadError::Eof),
            // TLS: the peer closed without close_notify; still an end of stream.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ReadError::Eof),
            Ok(_) => {
                self.got_bytes = true;
                Ok(())
            }
            Err(e) => Err(ReadError::Io(e)),
        }
    }

    /// Reads a whole response: head (skipping 1xx), then body.
    async fn read_response(&mut self, head_request: bool) -> Result<Head, ReadError> {
        let head = loop {
            let head = self.read_head(head_request).await?;
            if !(100..200).contains(&head.status) {
                break head;
            }
        };
        match head.framing {
            Framing::None => {}
            Framing::Length(n) => self.skip(n).await?,
            Framing::Chunked => self.skip_chunked().await?,
            Framing::Close => self.skip_until_close().await?,
        }
        Ok(head)
    }

    async fn read_head(&mut self, head_request: bool) -> Result<Head, ReadError> {
        loop {
            if !self.buf.is_empty() {
                match response::parse(&mut self.buf, head_request) {
                    Ok(Some(head)) => {
                        return Ok(Head {
                            status: head.status.as_u16(),
                            framing: head.framing,
                            keepalive: head.keep_alive && head.framing != Framing::Close,
                        })
                    }
                    Ok(None) => {}
                    Err(_) => return Err(ReadError::Protocol),
                }
            }
            self.fill().await?;
        }
    }

    /// Skips `n` body bytes.
    async fn skip(&mut self, mut n: u64) -> Result<(), ReadError> {
        loop {
            let take = n.min(self.buf.len() as u64);
            self.buf.advance(take as usize);
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Skips a chunked body, trailers included.
    async fn skip_chunked(&mut self) -> Result<(), ReadError> {
        let mut decoder = chunked::Decoder::new();
        loop {
            match decoder.next(&mut self.buf) {
                Ok(Some(chunked::Piece::End)) => return Ok(()),
                Ok(Some(_)) => {}
                Ok(None) => self.fill().await?,
                Err(_) => return Err(ReadError::Protocol),
            }
        }
    }

    /// A body without length ends when the server closes: that EOF is success.
    async fn skip_until_close(&mut self) -> Result<(), ReadError> {
        loop {
            self.buf.clear();
            match self.fill().await {
                Ok(()) => {}
                Err(ReadError::Eof) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
