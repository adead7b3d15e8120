//! A response from an HTTP/1.1 upstream: its head, and a body read from the
//! connection.
//!
//! The body's length follows RFC 9112 §6.3: none for `HEAD`, `1xx`, `204` and
//! `304`; chunked when `Transfer-Encoding` ends in `chunked`; else
//! `Content-Length`; else until the upstream closes. Held strictly where two
//! readings could disagree: `Transfer-Encoding` with `Content-Length`, or
//! differing `Content-Length` values, are refused. A body that ends early
//! (the connection closes before its length or last chunk) is an error, so
//! that the client sees a broken response rather than a short one. A body
//! that is already buffered whole with the head (a small response) gives its
//! connection back at once.

use std::{
    future::Future,
    mem::MaybeUninit,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{ready, Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http::{header::HeaderMap, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::{io::AsyncReadExt, net::TcpStream};

use super::{Home, BODY_CHUNK};
use crate::{
    body::{self, Body},
    chunked,
    hop::{is_hop_by_hop, tokens},
    parse::{self, Span, MAX_HEADERS, MAX_HEAD_BYTES},
    raw::{Lines, RawFields},
    Prefixed,
};

/// A response head, and how its body is delimited.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub fields: Fields,
    pub framing: Framing,
    /// The upstream keeps the connection: HTTP/1.1 without `Connection: close`.
    pub keep_alive: bool,
}

impl Head {
    /// A `1xx` other than `101`, which a final response follows.
    pub(crate) fn is_interim(&self) -> bool {
        self.status.is_informational() && self.status != StatusCode::SWITCHING_PROTOCOLS
    }
}

/// The head's fields: as they came, or (where they cannot be copied as they
/// are, see [`crate::raw`]) in a map.
#[derive(Debug)]
pub enum Fields {
    Raw(RawFields),
    Map(HeaderMap),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

/// A response head the proxy does not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(&'static str);

// Hop-by-hop fields ([`crate::hop`]): the response's map does without them
// (they would be removed before the response goes on), unless `Connection`
// names other fields or the response is a `101`.

/// What the framing and keep-alive decisions need, read from the raw fields
/// before any map is built.
#[derive(Debug, Default)]
struct Raw {
    length: Option<u64>,
    /// `Transfer-Encoding` is present; its last coding is `chunked`.
    coded: bool,
    chunked: bool,
    /// `Connection: close`.
    close: bool,
    /// `Connection` names a field that is not hop-by-hop anyway.
    names_others: bool,
    /// `Content-Length` fields (equal, or refused).
    lengths: usize,
    /// A `Date` field.
    date: bool,
}

impl Raw {
    fn read(fields: &[httparse::Header<'_>]) -> Result<Raw, Malformed> {
        let mut raw = Raw::default();
        for f in fields {
            let name = f.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                raw.lengths += 1;
                parse::add_content_length(&mut raw.length, f.value)
                    .map_err(|_| Malformed("invalid Content-Length"))?;
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                raw.coded = true;
                if let Some(last) = tokens(f.value).last() {
                    raw.chunked = last.eq_ignore_ascii_case(b"chunked");
                }
            } else if name.eq_ignore_ascii_case(b"date") {
                raw.date = true;
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in tokens(f.value) {
                    raw.close |= token.eq_ignore_ascii_case(b"close");
                    raw.names_others |=
                        !token.eq_ignore_ascii_case(b"close") && !is_hop_by_hop(token);
                }
            }
        }
        Ok(raw)
    }
}

/// Parses the head at the start of `buf` (taking it out); `Ok(None)`: read more.
pub fn parse(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, Malformed> {
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut span_of = [Span::default(); MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD_BYTES => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => return Ok(None),
        Ok(_) => return Err(Malformed("response head too large")),
        Err(_) => return Err(Malformed("invalid response head")),
    };
    let status = StatusCode::from_u16(resp.code.unwrap_or_default())
        .map_err(|_| Malformed("invalid status code"))?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let raw = Raw::read(resp.headers)?;
    let framing = framing(status, &raw, head_request)?;
    let keep_all = raw.names_others || status == StatusCode::SWITCHING_PROTOCOLS;
    let copyable = !keep_all
        && raw.lengths <= 1
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT;
    let lines = copyable
        .then(|| Lines::find(&buf[..len], resp.headers, |name| !is_hop_by_hop(name)))
        .flatten();
    // Where the map's fields lie, found while `resp` still borrows `buf`.
    let mut count = 0;
    if lines.is_none() {
        for f in resp.headers.iter() {
            if keep_all || !is_hop_by_hop(f.name.as_bytes()) {
                parse::spans(buf, std::slice::from_ref(f), &mut span_of[count..]);
                count += 1;
            }
        }
    }
    let head = buf.split_to(len).freeze();
    let fields = match lines {
        Some(lines) => Fields::Raw(lines.into_fields(&head, raw.length, raw.date)),
        None => Fields::Map(
            parse::header_map(&head, &span_of[..count], 0)
                .map_err(|_| Malformed("invalid header field"))?,
        ),
    };
    Ok(Some(Head {
        status,
        version,
        fields,
        framing,
        keep_alive: version == Version::HTTP_11 && !raw.close,
    }))
}

fn framing(status: StatusCode, raw: &Raw, head_request: bool) -> Result<Framing, Malformed> {
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::None);
    }
    match (raw.coded, raw.length) {
        (true, Some(_)) => Err(Malformed("both Transfer-Encoding and Content-Length")),
        (true, None) if raw.chunked => Ok(Framing::Chunked),
        (true, None) => Ok(Framing::Close),
        (false, length) => Ok(length.map_or(Framing::Close, Framing::Length)),
    }
}

/// The response for `head`, its body reading on from `buf` and `io`, and its
/// fields as they came when they were kept so (the response's map is then
/// empty). `reusable`: the request went out whole, so the connection may be
/// kept.
pub(crate) fn respond(
    head: Head,
    io: TcpStream,
    mut buf: BytesMut,
    home: Option<Home>,
    reusable: bool,
    upgrade: bool,
) -> (Response<Body>, Option<RawFields>) {
    let Head {
        status,
        version,
        fields,
        framing,
        keep_alive,
    } = head;
    let (headers, raw) = match fields {
        Fields::Map(map) => (map, None),
        Fields::Raw(raw) => (HeaderMap::new(), Some(raw)),
    };
    let build = |body| {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        response
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let mut response = build(body::empty());
        if upgrade {
            // `buf` holds what the upstream sent after its 101.
            let stream = Prefixed::new(buf.freeze(), io);
            response.extensions_mut().insert(Upgraded::new(stream));
        }
        return (response, raw);
    }
    let keep = reusable && keep_alive;
    let body = match framing {
        Framing::None | Framing::Length(0) => {
            if let Some(home) = home.filter(|_| keep && buf.is_empty()) {
                home.take_back(io, buf);
            }
            body::empty()
        }
        Framing::Length(n) if buf.len() as u64 >= n => {
            let data = buf.split_to(n as usize).freeze();
            if let Some(home) = home.filter(|_| keep && buf.is_empty()) {
                home.take_back(io, buf);
            }
            body::full(data)
        }
        Framing::Length(n) => body::boxed(Streamed::new(
            io,
            buf,
            State::Length(n),
            home.filter(|_| keep),
        )),
        Framing::Chunked => {
            let state = State::Chunked(chunked::Decoder::new());
            body::boxed(Streamed::new(io, buf, state, home.filter(|_| keep)))
        }
        Framing::Close => body::boxed(Streamed::new(io, buf, State::Close, None)),
    };
    (build(body), raw)
}

/// The upstream connection after a `101 Switching Protocols`, with the bytes
/// read after the response head, in the response's extensions for the tunnel
/// to take (extensions must be `Clone`, hence the shared slot).
#[derive(Debug, Clone)]
pub struct Upgraded(Arc<Mutex<Option<Prefixed<TcpStream>>>>);

impl Upgraded {
    fn new(stream: Prefixed<TcpStream>) -> Upgraded {
        Upgraded(Arc::new(Mutex::new(Some(stream))))
    }

    /// The stream; `None` if it was taken already.
    pub fn take(&self) -> Option<Prefixed<TcpStream>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Why a response body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the upstream closed the connection in the response body")]
    Truncated,
    #[error("invalid chunked coding from the upstream: {0}")]
    Chunked(&'static str),
    #[error("reading the response body: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug)]
enum State {
    /// This many bytes are left.
    Length(u64),
    Chunked(chunked::Decoder),
    /// Until the upstream closes.
    Close,
    Done,
}

/// What the buffered bytes give.
enum Step {
    Yield(Frame<Bytes>),
    End,
    Read,
}

/// A body still on its way from the upstream.
#[derive(Debug)]
struct Streamed {
    /// `None` once given back.
    io: Option<TcpStream>,
    buf: BytesMut,
    state: State,
    /// Where the connection goes once the body was read whole; `None` when it
    /// cannot be reused.
    home: Option<Home>,
}

impl Streamed {
    fn new(io: TcpStream, buf: BytesMut, state: State, home: Option<Home>) -> Streamed {
        Streamed {
            io: Some(io),
            buf,
            state,
            home,
        }
    }

    /// The next frame from what is buffered, if it holds one.
    fn step(&mut self) -> Result<Step, BodyError> {
        let step = match &mut self.state {
            State::Done => Step::End,
            State::Length(_) | State::Close if self.buf.is_empty() => Step::Read,
            State::Length(left) => {
                let n = (*left).min(self.buf.len() as u64);
                *left -= n;
                Step::Yield(Frame::data(self.buf.split_to(n as usize).freeze()))
            }
            State::Close => Step::Yield(Frame::data(self.buf.split().freeze())),
            State::Chunked(decoder) => match decoder.next(&mut self.buf) {
                Ok(None) => Step::Read,
                Ok(Some(chunked::Piece::Data(data))) => Step::Yield(Frame::data(data)),
                Ok(Some(chunked::Piece::Trailers(t))) => {
                    // Nothing follows trailers, and a client writer stops
                    // polling after them.
                    self.finish();
                    return Ok(Step::Yield(Frame::trailers(t)));
                }
                Ok(Some(chunked::Piece::End)) => Step::End,
                Err(e) => return Err(BodyError::Chunked(e.0)),
            },
        };
        if matches!(step, Step::End) || matches!(self.state, State::Length(0)) {
            self.finish();
        }
        Ok(step)
    }

    /// The body was read whole: the connection goes home if it may.
    fn finish(&mut self) {
        self.state = State::Done;
        if let (Some(home), Some(io), true) =
            (self.home.take(), self.io.take(), self.buf.is_empty())
        {
            home.take_back(io, std::mem::take(&mut self.buf));
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let Some(io) = &mut self.io else {
            return Poll::Ready(Ok(0));
        };
        self.buf.reserve(BODY_CHUNK);
        let read = std::pin::pin!(io.read_buf(&mut self.buf));
        read.poll(cx)
    }
}

impl http_body::Body for Streamed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            match this.step() {
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(Step::Yield(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::Read) => {}
            }
            match ready!(this.poll_read(cx)) {
                Ok(0) if matches!(this.state, State::Close) => {
                    this.state = State::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.io = None;
                    return Poll::Ready(Some(Err(BodyError::Truncated)));
                }
                Ok(_) => {}
                Err(e) => {
                    this.io = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str, head_request: bool) -> Result<Option<Head>, Malformed> {
        parse(&mut BytesMut::from(s), head_request)
    }

    /// All the fields a client would get, in a map.
    fn map(head: &Head) -> HeaderMap {
        match &head.fields {
            Fields::Map(map) => map.clone(),
            Fields::Raw(raw) => {
                let mut map = HeaderMap::new();
                raw.append_to(&mut map);
                map
            }
        }
    }

    fn is_raw(s: &str) -> bool {
        matches!(head(s, false).unwrap().unwrap().fields, Fields::Raw(_))
    }

    fn framing_of(s: &str) -> Framing {
        head(s, false).unwrap().unwrap().framing
    }

    #[test]
    fn framing_by_status_and_headers() {
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n"),
            Framing::Length(6)
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n"),
            Framing::Close
        );
        assert_eq!(framing_of("HTTP/1.1 200 OK\r\n\r\n"), Framing::Close);
        assert_eq!(
            framing_of("HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"),
            Framing::None
        );
        assert_eq!(
            framing_of("HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n"),
            Framing::None
        );
        let to_head = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true);
        assert_eq!(to_head.unwrap().unwrap().framing, Framing::None);
    }

    #[test]
    fn ambiguous_or_broken_heads_are_refused() {
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTTP/1.1 200 OK\r\n\r\n",
        ] {
            assert!(head(bad, false).is_err(), "{bad}");
        }
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le", false)
            .unwrap()
            .is_none());
    }

    #[test]
    fn keepalive_only_for_http_1_1_without_close() {
        let keep = |s: &str| head(s, false).unwrap().unwrap().keep_alive;
        assert!(keep("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(!keep(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!keep(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
        ));
    }

    #[test]
    fn hop_by_hop_fields_are_left_out_unless_connection_names_others() {
        let map = |s: &str| map(&head(s, false).unwrap().unwrap());
        let plain = map("HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\ntransfer-encoding: chunked\r\nx: y\r\n\r\n");
        assert_eq!(plain.keys().collect::<Vec<_>>(), ["x"]);
        let named = map(
            "HTTP/1.1 200 OK\r\nconnection: x-secret\r\nx-secret: 1\r\ncontent-length: 0\r\n\r\n",
        );
        assert!(named.contains_key("connection") && named.contains_key("x-secret"));
        let upgrade = map(
            "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        );
        assert!(upgrade.contains_key("connection") && upgrade.contains_key("upgrade"));
    }

    #[test]
    fn plain_heads_are_kept_as_they_came_and_the_others_get_a_map() {
        assert!(is_raw(
            "HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n"
        ));
        assert!(is_raw("HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n"));
        for mapped in [
            "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nconnection: x-secret\r\nx-secret: 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\nServer: x\n\n",
            "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        ] {
            assert!(!is_raw(mapped), "{mapped}");
        }
        let raw = head(
            "HTTP/1.1 200 OK\r\nDate: then\r\nContent-Length: 7\r\n\r\n",
            false,
        );
        let Fields::Raw(raw) = raw.unwrap().unwrap().fields else {
            panic!("not raw");
        };
        assert_eq!((raw.content_length, raw.has_date), (Some(7), true));
    }

    #[test]
    fn the_head_is_taken_and_the_body_stays() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\nx: y\r\n\r\nhi",
        );
        let first = parse(&mut buf, false).unwrap().unwrap();
        assert!(first.is_interim());
        let second = parse(&mut buf, false).unwrap().unwrap();
        assert!(!second.is_interim());
        assert_eq!(map(&second)["x"], "y");
        assert!(map(&second).contains_key("content-length"));
        assert_eq!(&buf[..], b"hi");
    }
}
