//! Response heads and body framing toward an HTTP/1.x client, and request
//! heads toward an HTTP/1.1 server ([`request_head`]).
//!
//! The upstream's framing headers were removed as hop-by-hop; this module picks
//! the framing anew for the client: the upstream's `Content-Length` when there
//! is one (or the body's exact size), `chunked` for an HTTP/1.1 client
//! otherwise, and for an HTTP/1.0 client a body delimited by closing the
//! connection. Responses that have no body (to `HEAD`, `1xx`, `204`, `304`)
//! get none, whatever the upstream sent.

use std::{cell::RefCell, io::Write as _, time::SystemTime};

use http_body::Body as _;

use http::{
    header::{self, HeaderMap},
    Method, Response, StatusCode, Version,
};

use crate::{body::Body, raw::RawFields};

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    /// No body is written.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked; trailers can be sent.
    Chunked,
    /// Until the connection closes (HTTP/1.0 clients, unknown length).
    Close,
}

/// The request facts the response head depends on.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    pub version: Version,
    pub head_request: bool,
    /// The connection ends after this response.
    pub closing: bool,
}

impl Exchange {
    pub fn new(method: &Method, version: Version, closing: bool) -> Exchange {
        Exchange {
            version,
            head_request: method == Method::HEAD,
            closing,
        }
    }
}

/// Writes the status line and header fields of `resp` into `out` (those in
/// its map, and `raw` ones copied as they came), and returns the body framing
/// and whether the connection must close after it.
pub fn head(
    out: &mut Vec<u8>,
    resp: &Response<Body>,
    raw: Option<&RawFields>,
    ex: Exchange,
) -> (Out, bool) {
    let status = resp.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let headers = resp.headers();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        fields(out, headers, |_| true);
        out.extend_from_slice(b"\r\n");
        // Only the tunnel may go on after a 101: never a next HTTP/1 request.
        return (Out::None, true);
    }
    let no_length = status.is_informational() || status == StatusCode::NO_CONTENT;
    fields(out, headers, |name| {
        !(name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || name == "keep-alive"
            || (no_length && name == header::CONTENT_LENGTH))
    });
    // Raw fields are never kept for a status whose length goes.
    if let Some(raw) = raw {
        raw.write(out);
    }
    let raw_length = raw.and_then(|r| r.content_length);
    let has_length = raw_length.is_some() || headers.contains_key(header::CONTENT_LENGTH);
    let framing = framing(resp, raw_length.or_else(|| declared_length(headers)), ex);
    match framing {
        Out::Length(n) if !has_length => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Out::Chunked => field(out, b"transfer-encoding", b"chunked"),
        _ => {}
    }
    let closing = ex.closing || framing == Out::Close;
    if closing {
        field(out, b"connection", b"close");
    } else if ex.version == Version::HTTP_10 {
        field(out, b"connection", b"keep-alive");
    }
    if !raw.is_some_and(|r| r.has_date) && !headers.contains_key(header::DATE) {
        DATE.with(|d| field(out, b"date", d.borrow_mut().now()));
    }
    out.extend_from_slice(b"\r\n");
    (framing, closing)
}

/// Writes an HTTP/1.1 request head to an upstream: origin-form target, the
/// header fields as they are (hop-by-hop ones were removed), and
/// `transfer-encoding: chunked` when `chunked`. A `content-length` is added
/// when the body's exact size is known but the request does not state it.
pub fn request_head(
    out: &mut Vec<u8>,
    parts: &http::request::Parts,
    length: Option<u64>,
    chunked: bool,
) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    fields(out, &parts.headers, |name| {
        name != header::TRANSFER_ENCODING
    });
    if chunked {
        field(out, b"transfer-encoding", b"chunked");
    } else if let Some(n) = length.filter(|_| !parts.headers.contains_key(header::CONTENT_LENGTH)) {
        let _ = write!(out, "content-length: {n}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a trailer section (after the last chunk's size line).
pub fn trailers(out: &mut Vec<u8>, trailers: &HeaderMap) {
    fields(out, trailers, |_| true);
    out.extend_from_slice(b"\r\n");
}

/// The `Content-Length` in `headers`, if there is a valid one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    crate::parse::content_length(headers).ok().flatten()
}

/// How the body goes to the client; `declared`: the response's
/// `Content-Length`.
fn framing(resp: &Response<Body>, declared: Option<u64>, ex: Exchange) -> Out {
    let status = resp.status();
    if ex.head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Out::None;
    }
    if let Some(n) = declared.or(resp.body().size_hint().exact()) {
        return Out::Length(n);
    }
    if ex.version == Version::HTTP_11 {
        Out::Chunked
    } else {
        Out::Close
    }
}

fn fields(out: &mut Vec<u8>, headers: &HeaderMap, keep: impl Fn(&header::HeaderName) -> bool) {
    for (name, value) in headers {
        if keep(name) {
            field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the chunk-size line for `len` bytes of data.
pub fn chunk_prefix(out: &mut Vec<u8>, len: usize) {
    let _ = write!(out, "{len:x}\r\n");
}

thread_local! {
    static DATE: RefCell<Date> = RefCell::new(Date::default());
}

/// The `Date` value, formatted once per second per thread.
#[derive(Default)]
struct Date {
    second: u64,
    text: String,
}

impl Date {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        self.text.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;

    fn render(resp: Response<Body>, ex: Exchange) -> (String, Out, bool) {
        let mut out = Vec::new();
        let (framing, closing) = head(&mut out, &resp, None, ex);
        (String::from_utf8(out).unwrap(), framing, closing)
    }

    fn ex(version: Version, closing: bool) -> Exchange {
        Exchange::new(&Method::GET, version, closing)
    }

    #[test]
    fn raw_fields_are_copied_with_the_framing_and_connection_the_client_needs() {
        let upstream =
            "HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n";
        let raw = crate::raw::for_test(upstream, Some(5), false).unwrap();
        let render_raw = |ex: Exchange| {
            let mut out = Vec::new();
            let resp = Response::new(body::full("hello"));
            let (framing, closing) = head(&mut out, &resp, Some(&raw), ex);
            (String::from_utf8(out).unwrap(), framing, closing)
        };
        let (text, framing, closing) = render_raw(ex(Version::HTTP_11, false));
        assert_eq!(framing, Out::Length(5));
        assert!(!closing);
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 5\r\ndate: "),
            "{text}"
        );
        assert_eq!(text.matches("ontent-").count(), 1, "{text}");
        assert!(!text.contains("keep-alive"), "{text}");
        let (text, _, closing) = render_raw(ex(Version::HTTP_10, true));
        assert!(closing && text.contains("connection: close\r\n"), "{text}");
        let to_head = Exchange::new(&Method::HEAD, Version::HTTP_11, false);
        let (text, framing, _) = render_raw(to_head);
        assert_eq!(framing, Out::None);
        assert!(text.contains("Content-Length: 5\r\n"), "{text}");
        let dated = crate::raw::for_test("HTTP/1.1 200 OK\r\nDate: then\r\n\r\n", None, true);
        let mut out = Vec::new();
        let resp = Response::new(body::full("hey"));
        head(&mut out, &resp, dated.as_ref(), ex(Version::HTTP_11, false));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nDate: then\r\ncontent-length: 3\r\n\r\n"
        );
    }

    #[test]
    fn known_length_is_kept_and_framing_headers_are_not_copied() {
        let mut r = Response::new(body::full("hello"));
        r.headers_mut()
            .insert("content-length", "5".parse().unwrap());
        r.headers_mut()
            .insert("connection", "keep-alive".parse().unwrap());
        r.headers_mut().insert("date", "then".parse().unwrap());
        let (text, framing, closing) = render(r, ex(Version::HTTP_11, false));
        assert_eq!(framing, Out::Length(5));
        assert!(!closing);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: then\r\n\r\n"
        );
    }

    #[test]
    fn exact_size_hint_gives_a_length_and_a_date_is_added() {
        let (text, framing, _) =
            render(Response::new(body::full("abc")), ex(Version::HTTP_11, true));
        assert_eq!(framing, Out::Length(3));
        assert!(text.contains("content-length: 3\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert!(text.contains("date: "), "{text}");
    }

    #[test]
    fn unknown_length_is_chunked_for_1_1_and_close_delimited_for_1_0() {
        let stream = || {
            let (_tx, body) = crate::channel::RequestBody::channel(None);
            Response::new(body::boxed(body))
        };
        let (text, framing, closing) = render(stream(), ex(Version::HTTP_11, false));
        assert_eq!(framing, Out::Chunked);
        assert!(
            !closing && text.contains("transfer-encoding: chunked"),
            "{text}"
        );
        let (text, framing, closing) = render(stream(), ex(Version::HTTP_10, false));
        assert_eq!(framing, Out::Close);
        assert!(closing && text.contains("connection: close"), "{text}");
    }

    #[test]
    fn no_body_for_head_204_and_304() {
        let mut r = Response::new(body::full("abc"));
        r.headers_mut()
            .insert("content-length", "3".parse().unwrap());
        let head_req = Exchange::new(&Method::HEAD, Version::HTTP_11, false);
        let (text, framing, _) = render(r, head_req);
        assert_eq!(framing, Out::None);
        assert!(
            text.contains("content-length: 3"),
            "HEAD keeps the length: {text}"
        );
        let mut r = Response::new(body::full(""));
        *r.status_mut() = StatusCode::NO_CONTENT;
        r.headers_mut()
            .insert("content-length", "0".parse().unwrap());
        let (text, framing, _) = render(r, ex(Version::HTTP_11, false));
        assert_eq!(framing, Out::None);
        assert!(!text.contains("content-length"), "{text}");
    }

    #[test]
    fn request_heads_for_an_upstream() {
        let req = |uri: &str| {
            let (mut parts, ()) = http::Request::post(uri).body(()).unwrap().into_parts();
            parts.headers.insert("host", "a".parse().unwrap());
            parts
        };
        let mut out = Vec::new();
        request_head(&mut out, &req("/p?q=1"), Some(3), false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /p?q=1 HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\n"
        );
        let mut out = Vec::new();
        request_head(&mut out, &req("/"), None, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn switching_protocols_keeps_connection_and_upgrade() {
        let mut r = Response::new(body::full(""));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        r.headers_mut()
            .insert("upgrade", "websocket".parse().unwrap());
        let (text, framing, _) = render(r, ex(Version::HTTP_11, false));
        assert_eq!(framing, Out::None);
        assert_eq!(
            text,
            "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
        );
    }
}
