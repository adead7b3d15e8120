//! A request head (request line and header fields) into an `http::Request`,
//! and the framing of the body that follows.
//!
//! The rules are RFC 9112's, held strictly where a lenient proxy would let two
//! parties disagree on where a request ends (request smuggling): one body length
//! only (`Transfer-Encoding` and `Content-Length` together are refused, as are
//! differing `Content-Length` values), `chunked` as the only transfer coding, no
//! obsolete line folding (httparse refuses it), and exactly one `Host` in
//! HTTP/1.1. Header values are not copied: they are slices of the head's buffer.

use bytes::{Bytes, BytesMut};
use http::{
    header::{self, HeaderMap, HeaderName, HeaderValue},
    Method, Request, Uri, Version,
};

/// Header fields accepted in one head (hyper's default too).
pub const MAX_HEADERS: usize = 100;
/// The largest head accepted, request line included.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed head.
#[derive(Debug)]
pub struct Head {
    pub request: Request<()>,
    pub framing: Framing,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` first.
    pub expect_continue: bool,
}

/// Why a head was refused; the server answers with the status each variant
/// names, and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Malformed request line or header field (400).
    Malformed(&'static str),
    /// Head larger than [`MAX_HEAD_BYTES`] or more than [`MAX_HEADERS`] (431).
    TooLarge,
    /// A transfer coding other than `chunked` (501).
    UnsupportedCoding,
    /// A method a reverse proxy does not serve (`CONNECT`, 405).
    MethodNotAllowed,
}

impl Reject {
    /// A short reason for the response body and the log.
    pub fn reason(self) -> &'static str {
        match self {
            Reject::Malformed(why) => why,
            Reject::TooLarge => "request head too large",
            Reject::UnsupportedCoding => "transfer coding other than chunked",
            Reject::MethodNotAllowed => "CONNECT is not served",
        }
    }
}

/// Where a header's name and value lie in the head buffer.
#[derive(Clone, Copy, Default)]
pub(crate) struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

/// The spans of httparse's `headers`, which point into `buf` (at most
/// [`MAX_HEAD_BYTES`] long, so offsets fit in `u32`), written to `spans`.
pub(crate) fn spans(buf: &[u8], headers: &[httparse::Header<'_>], spans: &mut [Span]) {
    for (span, h) in spans.iter_mut().zip(headers) {
        *span = Span {
            name: offset(buf, h.name.as_bytes()),
            value: offset(buf, h.value),
        };
    }
}

/// Where `part`, a slice of `buf`, lies in it.
pub(crate) fn offset(buf: &[u8], part: &[u8]) -> (u32, u32) {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

/// The header fields at `spans` of `head`, the values sharing its memory;
/// `room` more fields fit without growing the map.
pub(crate) fn header_map(head: &Bytes, spans: &[Span], room: usize) -> Result<HeaderMap, Reject> {
    let mut headers = HeaderMap::with_capacity(spans.len() + room);
    for s in spans {
        let name = HeaderName::from_bytes(&head[s.name.0 as usize..s.name.1 as usize])
            .map_err(|_| Reject::Malformed("invalid header name"))?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(s.value.0 as usize..s.value.1 as usize))
                .map_err(|_| Reject::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Parses the head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// On success the head's bytes are taken out of `buf`; what follows (a body or
/// a pipelined request) stays.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Head>, Reject> {
    // httparse fills the slots it uses; nothing needs initialising first.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut span_of = [Span::default(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut headers,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => {
            return Err(Reject::TooLarge)
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(Reject::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::TooLarge),
        Err(e) => return Err(Reject::Malformed(malformed(e))),
    };
    let method = req.method.unwrap_or_default();
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| Reject::Malformed("bad method"))?;
    let target = offset(buf, req.path.unwrap_or_default().as_bytes());
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let count = req.headers.len();
    spans(buf, req.headers, &mut span_of);
    let head = buf.split_to(len).freeze();
    build(&head, method, target, version, &span_of[..count]).map(Some)
}

fn malformed(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status | httparse::Error::Token => "invalid request line",
        httparse::Error::Version => "unsupported HTTP version",
        httparse::Error::TooManyHeaders => "too many header fields",
    }
}

fn build(
    head: &Bytes,
    method: Method,
    target: (u32, u32),
    version: Version,
    spans: &[Span],
) -> Result<Head, Reject> {
    if method == Method::CONNECT {
        return Err(Reject::MethodNotAllowed);
    }
    let uri = Uri::from_maybe_shared(head.slice(target.0 as usize..target.1 as usize))
        .map_err(|_| Reject::Malformed("invalid request target"))?;
    check_target_form(&method, &uri)?;
    // Room for the forwarding headers the proxy adds, so that adding them does
    // not grow (and rehash) the map.
    let headers = header_map(head, spans, FORWARDING_HEADERS)?;
    let framing = framing(&headers, version)?;
    check_host(&headers, &uri, version)?;
    let keep_alive = keep_alive(&headers, version);
    let expect_continue = version == Version::HTTP_11
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Head {
        request,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// The body's framing; refuses every ambiguous combination.
/// `X-Forwarded-For`, `-Proto`, `-Host` and `Forwarded`.
const FORWARDING_HEADERS: usize = 4;

fn framing(headers: &HeaderMap, version: Version) -> Result<Framing, Reject> {
    let has_te = headers.contains_key(header::TRANSFER_ENCODING);
    let length = content_length(headers)?;
    if !has_te {
        return Ok(match length {
            None | Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
        });
    }
    if length.is_some() {
        return Err(Reject::Malformed(
            "both Transfer-Encoding and Content-Length",
        ));
    }
    if version == Version::HTTP_10 {
        return Err(Reject::Malformed(
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
        _ => Err(Reject::UnsupportedCoding),
    }
}

/// Every `Content-Length` value (several fields, or a list) must be the same
/// decimal number. The one reader of `Content-Length` in lameduck: requests
/// from HTTP/1 and HTTP/2 clients, responses from upstreams and servers.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Reject> {
    let mut found = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        add_content_length(&mut found, value.as_bytes())?;
    }
    Ok(found)
}

/// Adds one `Content-Length` field value (a list, possibly) to what was
/// `found` in earlier ones.
pub fn add_content_length(found: &mut Option<u64>, value: &[u8]) -> Result<(), Reject> {
    for part in value.split(|b| *b == b',') {
        let part = part.trim_ascii();
        let n = std::str::from_utf8(part)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(Reject::Malformed("invalid Content-Length"))?;
        if found.is_some_and(|f| f != n) {
            return Err(Reject::Malformed("conflicting Content-Length values"));
        }
        *found = Some(n);
    }
    Ok(())
}

/// RFC 9112 §3.2: origin-form (`/path`) or absolute-form (`http://h/path`);
/// asterisk-form (`*`) only for `OPTIONS`; authority-form (`host:port`) only
/// for `CONNECT`, which is refused before. An authority-form target was
/// routed by the host in it and forwarded as `/`, whatever `Host` said.
fn check_target_form(method: &Method, uri: &Uri) -> Result<(), Reject> {
    if uri.scheme().is_none() && uri.authority().is_some() {
        return Err(Reject::Malformed("authority-form target without CONNECT"));
    }
    if uri.path() == "*" && uri.authority().is_none() && method != Method::OPTIONS {
        return Err(Reject::Malformed("asterisk-form target without OPTIONS"));
    }
    Ok(())
}

fn check_host(headers: &HeaderMap, uri: &Uri, version: Version) -> Result<(), Reject> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(Reject::Malformed("more than one Host")),
        (None, None) if version == Version::HTTP_11 && uri.authority().is_none() => {
            Err(Reject::Malformed("no Host in an HTTP/1.1 request"))
        }
        (Some(host), None) if !valid_host(host.as_bytes()) => {
            Err(Reject::Malformed("invalid Host"))
        }
        _ => Ok(()),
    }
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2), or empty; anything else is
/// a 400 (RFC 9112 §3.2). The value is forwarded and written into the
/// `Forwarded` header's quoted `host=`, so a quote or a space in it could
/// forge that header's parameters.
fn valid_host(host: &[u8]) -> bool {
    if host.is_empty() {
        return true;
    }
    if host.contains(&b'@') || http::uri::Authority::try_from(host).is_err() {
        return false;
    }
    // The port, if any, follows the last `:` after an IPv6 literal's `]`.
    let after_ip = host.iter().rposition(|b| *b == b']').map_or(0, |i| i + 1);
    let Some(colon) = host[after_ip..].iter().position(|b| *b == b':') else {
        return true;
    };
    let port = &host[after_ip + colon + 1..];
    port.is_empty() || std::str::from_utf8(port).is_ok_and(|p| p.parse::<u16>().is_ok())
}

/// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 only
/// with `Connection: keep-alive`.
pub(crate) fn keep_alive(headers: &HeaderMap, version: Version) -> bool {
    let has = |token: &[u8]| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    };
    if version == Version::HTTP_10 {
        has(b"keep-alive") && !has(b"close")
    } else {
        !has(b"close")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Option<Head>, Reject> {
        parse(&mut BytesMut::from(s))
    }

    #[test]
    fn a_simple_get_and_what_follows_it_stays_buffered() {
        let mut buf =
            BytesMut::from("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\n\r\nNEXT");
        let head = parse(&mut buf).unwrap().unwrap();
        assert_eq!(head.request.method(), Method::GET);
        assert_eq!(head.request.uri(), "/a?b=1");
        assert_eq!(head.request.version(), Version::HTTP_11);
        assert_eq!(head.request.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(head.framing, Framing::None);
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"NEXT");
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        assert!(parse_str("GET / HTTP/1.1\r\nHost: x\r\n")
            .unwrap()
            .is_none());
        assert!(parse_str("GE").unwrap().is_none());
    }

    #[test]
    fn body_framing() {
        let h = parse_str("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.unwrap().unwrap().framing, Framing::Length(5));
        let h = parse_str("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(h.unwrap().unwrap().framing, Framing::Length(5));
        let h = parse_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.unwrap().unwrap().framing, Framing::Chunked);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let cases = [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for c in cases {
            assert!(matches!(parse_str(c), Err(Reject::Malformed(_))), "{c}");
        }
        let gzip = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(parse_str(gzip).unwrap_err(), Reject::UnsupportedCoding);
    }

    #[test]
    fn host_rules() {
        assert!(parse_str("GET / HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_str("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").is_err());
        assert!(parse_str("GET http://a/ HTTP/1.1\r\n\r\n")
            .unwrap()
            .is_some());
        assert!(parse_str("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn targets_in_a_form_the_method_does_not_allow_are_refused() {
        let bad = [
            "GET host:80 HTTP/1.1\r\nHost: host\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        ];
        for req in bad {
            assert!(matches!(parse_str(req), Err(Reject::Malformed(_))), "{req}");
        }
        assert!(parse_str("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_host_that_is_not_host_and_port_is_refused() {
        // Written into `Forwarded: ...;host="HOST"`, a quote in a Host could
        // forge a `for=` parameter there.
        for bad in [
            "x\";for=1.2.3.4",
            "a b",
            "a/b",
            "user@h",
            "h:port",
            "h:1:2",
            "h:65536",
        ] {
            let req = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(
                parse_str(&req).unwrap_err(),
                Reject::Malformed("invalid Host"),
                "{bad}"
            );
        }
        for good in ["", "a.example", "a.example:8080", "[::1]:80", "127.0.0.1"] {
            let req = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
            assert!(parse_str(&req).unwrap().is_some(), "{good}");
        }
    }

    #[test]
    fn keep_alive_by_version() {
        let h = |s: &str| parse_str(s).unwrap().unwrap().keep_alive;
        assert!(!h("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        assert!(!h("GET / HTTP/1.0\r\n\r\n"));
        assert!(h("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn bad_heads_are_refused_with_their_status() {
        assert_eq!(
            parse_str("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err(),
            Reject::MethodNotAllowed
        );
        assert!(matches!(
            parse_str("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"),
            Err(Reject::Malformed(_))
        ));
        let many = (0..=MAX_HEADERS)
            .map(|i| format!("h{i}: v\r\n"))
            .collect::<String>();
        let req = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        assert_eq!(parse_str(&req).unwrap_err(), Reject::TooLarge);
        let huge = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nA: {}",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(parse_str(&huge).unwrap_err(), Reject::TooLarge);
    }
}
