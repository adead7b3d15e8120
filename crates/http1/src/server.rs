//! The server side of a connection, the parts that are not the proxy's: the
//! first read of a request into a stack buffer, reading a head whole, writing
//! a response body with the framing [`crate::encode::head`] chose, and the
//! lingering close after a refusal.
//!
//! Why the first read goes to the stack: a server that holds many idle
//! keepalive connections (a proxy does) should hold nothing for each but the
//! socket. The heap buffer the bytes are copied to comes from, and goes back
//! to, a per-thread list ([`crate::spare`]) when the exchange ends.

use std::{
    io::IoSlice,
    mem::MaybeUninit,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::{
    body::{Body, BoxError},
    encode::{self, Out},
    parse::{self, Head, Reject},
    spare,
};

/// What a read asks for when more of a head or body is needed.
pub const READ_CHUNK: usize = 16 * 1024;
/// The stack buffer the first read of each request goes to.
pub const FIRST_READ: usize = 4096;
/// Response bytes gathered before a write; larger data frames go out directly.
const GATHER: usize = 16 * 1024;
/// How long [`linger`] reads what a client still sends.
pub const LINGER: Duration = Duration::from_secs(2);

/// Reads into a buffer on the stack and copies what came to `buf`, so that a
/// pending read costs no heap memory.
pub fn poll_first_read<I: AsyncRead>(
    io: Pin<&mut I>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<std::io::Result<usize>> {
    let mut stack = [MaybeUninit::<u8>::uninit(); FIRST_READ];
    let mut read = ReadBuf::uninit(&mut stack);
    match io.poll_read(cx, &mut read) {
        Poll::Ready(Ok(())) => {
            let filled = read.filled();
            if !filled.is_empty() {
                if buf.capacity() == 0 {
                    *buf = spare::take(FIRST_READ.max(filled.len()));
                }
                buf.extend_from_slice(filled);
            }
            Poll::Ready(Ok(filled.len()))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

/// Reads until a whole head is buffered. `Err(None)`: the client went away.
pub async fn read_head<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
) -> Result<Head, Option<Reject>> {
    loop {
        if let Some(head) = parse::parse(buf).map_err(Some)? {
            return Ok(head);
        }
        buf.reserve(READ_CHUNK);
        match io.read_buf(buf).await {
            Ok(n) if n > 0 => {}
            _ => return Err(None),
        }
    }
}

/// After answering and shutting down the write side, reads and drops what the
/// client still sends, for a moment, so that closing with unread bytes (which
/// makes the kernel send a reset) does not destroy the answer before the
/// client has read it (nginx's `lingering_close`).
pub async fn linger<I: AsyncRead + Unpin>(io: &mut I) {
    let until = tokio::time::Instant::now() + LINGER;
    let mut left = 1 << 20;
    let mut sink = [0u8; 4096];
    while left > 0 {
        match tokio::time::timeout_at(until, io.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left -= n.min(left),
            _ => return,
        }
    }
}

/// Why a response body could not be written whole.
#[derive(Debug, thiserror::Error)]
#[error("the response body could not be written whole")]
pub struct Broken;

impl From<std::io::Error> for Broken {
    fn from(_: std::io::Error) -> Broken {
        Broken
    }
}

/// Streams the body after the head already in `out`. Frames that are ready go
/// out together with the head in one write.
pub async fn write_body<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut out: Vec<u8>,
    mut body: Body,
    framing: Out,
) -> Result<(), Broken> {
    let mut left = match framing {
        Out::Length(n) => n,
        _ => 0,
    };
    loop {
        let frame = match now_or_later(&mut body) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                w.write_all(&out).await?;
                out.clear();
                w.flush().await?;
                body.frame().await
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::debug!("response body failed: {e}");
                w.write_all(&out).await?;
                return Err(Broken);
            }
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let (Out::Chunked, Ok(trailers)) = (framing, frame.into_trailers()) {
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in &trailers {
                        out.extend_from_slice(name.as_str().as_bytes());
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(value.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                    w.write_all(&out).await?;
                    return Ok(());
                }
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        if matches!(framing, Out::Length(_)) && data.len() as u64 > left {
            w.write_all(&out).await?;
            return Err(Broken); // more than the declared length
        }
        left = left.saturating_sub(data.len() as u64);
        put_data(w, &mut out, data, framing).await?;
    }
    match framing {
        Out::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        Out::Length(_) if left > 0 => {
            w.write_all(&out).await?;
            return Err(Broken); // the body ended short
        }
        _ => {}
    }
    w.write_all(&out).await?;
    Ok(())
}

/// Adds one data frame: copied after what is gathered when small, written
/// straight from the frame when large.
async fn put_data<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &mut Vec<u8>,
    data: Bytes,
    framing: Out,
) -> Result<(), Broken> {
    let chunked = framing == Out::Chunked;
    if chunked {
        encode::chunk_prefix(out, data.len());
    }
    if out.len() + data.len() <= GATHER {
        out.extend_from_slice(&data);
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        return Ok(());
    }
    let tail: &[u8] = if chunked { b"\r\n" } else { b"" };
    write_all_vectored(
        w,
        &mut [IoSlice::new(out), IoSlice::new(&data), IoSlice::new(tail)],
    )
    .await?;
    out.clear();
    Ok(())
}

/// The next frame if it is already there, without waiting.
fn now_or_later(body: &mut Body) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    http_body::Body::poll_frame(Pin::new(body), &mut cx)
}

async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = w.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}
