//! A request on its way to an HTTP/1.1 upstream.
//!
//! The head is encoded once, together with the body frames that are already
//! there (a small body usually is), into one buffer that goes out in one
//! write. That buffer is kept: a request that must be tried again on another
//! connection is replayed from it, as long as no body byte beyond it was
//! sent. The rest of the body is streamed, `Content-Length` bytes as they
//! are, or in the chunked coding (trailers included) when its length is
//! unknown.

use std::{
    pin::Pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::{body::Body, encode};

/// Body bytes gathered into the first write at most.
const GATHER: usize = 16 * 1024;

/// The request, encoded as far as it could be.
#[derive(Debug)]
pub struct Outgoing {
    /// The head and the body bytes gathered behind it.
    first: Vec<u8>,
    /// The body not gathered yet; `None` once it ended.
    rest: Option<Body>,
    chunked: bool,
    /// Body bytes beyond `first` were sent: the request cannot be replayed.
    streamed: bool,
    /// The client's body failed: the request cannot be sent whole.
    failed: bool,
    pub(crate) head_request: bool,
    pub(crate) upgrade: bool,
}

/// Why the rest of a body could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadError {
    /// The client's body failed.
    Body,
    /// Writing to the upstream failed.
    Write,
}

impl Outgoing {
    /// Encodes `req` (already in origin-form, hop-by-hop headers removed).
    pub fn new(req: Request<Body>, upgrade: bool) -> Outgoing {
        let (parts, body) = req.into_parts();
        let ends = body.is_end_stream();
        let length = body.size_hint().exact().filter(|_| !ends);
        let chunked =
            !ends && length.is_none() && !parts.headers.contains_key(header::CONTENT_LENGTH);
        let mut first = Vec::with_capacity(512);
        encode::request_head(&mut first, &parts, length, chunked);
        let mut out = Outgoing {
            first,
            rest: (!ends).then_some(body),
            chunked,
            streamed: false,
            failed: false,
            head_request: parts.method == Method::HEAD,
            upgrade,
        };
        out.gather();
        out
    }

    /// Appends the body frames that are ready to `first`.
    fn gather(&mut self) {
        while self.first.len() < GATHER {
            let Some(body) = &mut self.rest else { return };
            let mut cx = Context::from_waker(Waker::noop());
            match Pin::new(body).poll_frame(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Some(Ok(frame))) => {
                    if put_frame(&mut self.first, frame, self.chunked) {
                        self.rest = None;
                    }
                }
                Poll::Ready(None) => {
                    self.rest = None;
                    put_end(&mut self.first, self.chunked);
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!("request body failed: {e}");
                    self.rest = None;
                    self.failed = true;
                }
            }
        }
    }

    /// The head and the body bytes gathered with it.
    pub(crate) fn first(&self) -> &[u8] {
        &self.first
    }

    /// True while body frames are left to send after [`Outgoing::first`].
    pub(crate) fn has_more(&self) -> bool {
        self.rest.is_some()
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// True when the request can be sent again from the start: no body byte
    /// beyond the first write has been sent.
    pub fn replayable(&self) -> bool {
        !self.streamed && !self.failed
    }

    /// Sends the rest of the body.
    pub(crate) async fn upload<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
    ) -> Result<(), UploadError> {
        let mut out = Vec::new();
        while let Some(body) = &mut self.rest {
            out.clear();
            match body.frame().await {
                None => {
                    self.rest = None;
                    put_end(&mut out, self.chunked);
                }
                Some(Err(e)) => {
                    tracing::debug!("request body failed: {e}");
                    self.rest = None;
                    self.failed = true;
                    return Err(UploadError::Body);
                }
                Some(Ok(frame)) if !self.chunked && frame.is_data() => {
                    // Content-Length data goes out as it is, not copied.
                    let data = frame.into_data().unwrap_or_default();
                    self.streamed = true;
                    wr.write_all(&data).await.map_err(|_| UploadError::Write)?;
                }
                Some(Ok(frame)) => {
                    if put_frame(&mut out, frame, self.chunked) {
                        self.rest = None;
                    }
                }
            }
            if !out.is_empty() {
                self.streamed = true;
                wr.write_all(&out).await.map_err(|_| UploadError::Write)?;
            }
        }
        Ok(())
    }
}

/// Encodes one frame; true when it ended the body (trailers).
fn put_frame(out: &mut Vec<u8>, frame: Frame<Bytes>, chunked: bool) -> bool {
    match frame.into_data() {
        Ok(data) if data.is_empty() => false,
        Ok(data) if chunked => {
            encode::chunk_prefix(out, data.len());
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
            false
        }
        Ok(data) => {
            out.extend_from_slice(&data);
            false
        }
        Err(frame) => {
            if let (true, Ok(trailers)) = (chunked, frame.into_trailers()) {
                put_trailers(out, &trailers);
            }
            true
        }
    }
}

/// The end of the body: the last chunk, when chunked.
fn put_end(out: &mut Vec<u8>, chunked: bool) {
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
}

fn put_trailers(out: &mut Vec<u8>, trailers: &HeaderMap) {
    out.extend_from_slice(b"0\r\n");
    encode::trailers(out, trailers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;

    fn request(body: Body) -> Request<Body> {
        let mut req = Request::post("/up").body(body).unwrap();
        req.headers_mut().insert("host", "a".parse().unwrap());
        req
    }

    #[test]
    fn a_body_that_is_there_goes_with_the_head() {
        let out = Outgoing::new(request(body::full("abc")), false);
        assert_eq!(
            String::from_utf8_lossy(out.first()),
            "POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc"
        );
        assert!(!out.has_more() && out.replayable());
    }

    #[test]
    fn a_body_of_unknown_length_is_chunked_with_its_trailers() {
        let (tx, rx) = crate::channel::RequestBody::channel(None);
        tx.try_send(Ok(Frame::data(Bytes::from("hello")))).unwrap();
        let mut out = Outgoing::new(request(body::boxed(rx)), false);
        assert!(out.has_more(), "the body has not ended yet");
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        tx.try_send(Ok(Frame::trailers(trailers))).unwrap();
        let mut wire = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(out.upload(&mut wire)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(out.first()),
            "POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&wire),
            "0\r\ngrpc-status: 0\r\n\r\n"
        );
        assert!(
            !out.replayable(),
            "body bytes went out after the first write"
        );
    }
}
