//! Differential tests of the proxy's HTTP/1 request handling, on generated
//! requests (methods, targets, tricky header sets, bodies framed by
//! `Content-Length` or chunked, and the ambiguous framings of smuggling):
//!
//! - the proxy's head parser accepts exactly what httparse accepts and RFC
//!   9112's framing and `Host` rules allow (written here from the RFC, apart
//!   from the parser), with the same body framing;
//! - what the proxy forwards, read by hyper on a scripted upstream, is the
//!   same method, target, header fields (less the hop-by-hop ones, plus the
//!   forwarding ones) and body as what the client sent.

mod support;

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    header::{HeaderMap, HeaderName, HeaderValue},
    Request, Response,
};
use hyper_util::rt::TokioIo;
use lameduck_http1::fuzzing::{h1_verdict, BodyFraming, Verdict};
use proptest::{
    prelude::*,
    test_runner::{Config as Cases, TestCaseError, TestRunner},
};
use support::{config, proxy_toml, Raw};
use tokio::{net::TcpListener, sync::mpsc};

/// Generated requests checked against the parser (no sockets: fast).
const PARSE_CASES: u32 = 5000;
/// Generated requests sent through a real proxy.
const FORWARD_CASES: u32 = 500;

/// How the body is framed, including what must be refused.
#[derive(Debug, Clone)]
enum Framing {
    None,
    Length,
    /// The same length twice, as two fields and as a list.
    LengthTwice,
    /// Two different lengths.
    LengthDiffering,
    /// `Content-Length: +N`.
    LengthSigned,
    /// `Content-Length` and `Transfer-Encoding: chunked`.
    LengthAndChunked,
    /// Chunked, in pieces of these sizes.
    Chunked(Vec<usize>),
    /// `Transfer-Encoding: chunked` twice.
    ChunkedTwice,
    /// `Transfer-Encoding: gzip, chunked`.
    GzipChunked,
}

/// The `Host` fields.
#[derive(Debug, Clone)]
enum Host {
    One(&'static str),
    /// One that is not `host[:port]`.
    Invalid(&'static str),
    None,
    Two,
}

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    target: &'static str,
    version: &'static str,
    host: Host,
    headers: Vec<(&'static str, &'static [u8])>,
    framing: Framing,
    body: Vec<u8>,
    /// `\r\n`, or a bare `\n` (which RFC 9112 lets a server accept).
    eol: &'static str,
}

/// Header fields a client may send, tricky but valid.
const FIELDS: &[(&str, &[u8])] = &[
    ("Accept", b"*/*"),
    ("X-Empty", b""),
    ("X-Spaces", b"a  b   c"),
    ("X-Tab", b"a\tb"),
    ("x-MiXeD-case", b"V"),
    ("X-Obs-Text", b"caf\xe9"),
    ("X-Quote", b"\"quoted, with comma\""),
    ("Cookie", b"a=b; c=d"),
    ("Cookie", b"e=f"),
    ("X-Forwarded-Ignored", b"1"),
    ("Connection", b"keep-alive"),
    ("Connection", b"x-hop, Keep-Alive"),
    ("X-Hop", b"removed because Connection names it"),
    ("Keep-Alive", b"timeout=5"),
    ("TE", b"trailers"),
    ("TE", b"gzip"),
    ("Proxy-Authorization", b"Basic eDp5"),
    ("Trailer", b"x-t"),
    ("User-Agent", b"Mozilla/5.0 (X11; Linux x86_64)"),
    (
        "X-Long",
        b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ),
];

/// Header fields only the parser test sends (some must be refused).
const ODD_FIELDS: &[(&str, &[u8])] = &[
    ("Bad Name", b"v"),
    ("X-Nul", b"a\x00b"),
    ("X-Del", b"a\x7fb"),
    ("X(paren)", b"v"),
    ("Expect", b"100-continue"),
    ("Upgrade", b"websocket"),
    ("Content-Length", b"0"),
];

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "M-SEARCH", "get",
    ])
}

/// Targets the proxy forwards as they are.
const TARGETS: &[&str] = &[
    "/",
    "/a?b=c",
    "/%20x",
    "/caf%C3%A9?q=1&r",
    "//x",
    "/a/../b;p",
];

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..48)
}

fn chunks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..20, 0..4)
}

/// Any request, the ones to refuse included.
fn any_req() -> impl Strategy<Value = Req> {
    let framing = prop_oneof![
        6 => Just(Framing::None),
        6 => Just(Framing::Length),
        6 => chunks().prop_map(Framing::Chunked),
        1 => Just(Framing::LengthTwice),
        1 => Just(Framing::LengthDiffering),
        1 => Just(Framing::LengthSigned),
        1 => Just(Framing::LengthAndChunked),
        1 => Just(Framing::ChunkedTwice),
        1 => Just(Framing::GzipChunked),
    ];
    let host = prop_oneof![
        12 => prop::sample::select(vec!["test", "test:8080", "[::1]:80", ""]).prop_map(Host::One),
        1 => prop::sample::select(vec!["a b", "x\"y", "a/b", "h@x", "h:port", "h:65536", "h:1:2"])
            .prop_map(Host::Invalid),
        1 => Just(Host::None),
        1 => Just(Host::Two),
    ];
    let target = prop_oneof![
        8 => prop::sample::select(TARGETS.to_vec()),
        1 => prop::sample::select(vec!["*", "http://test/abs?x", "a b", "/\x7f", "host:80"]),
    ];
    let field = prop_oneof![
        12 => prop::sample::select(FIELDS.to_vec()),
        1 => prop::sample::select(ODD_FIELDS.to_vec()),
    ];
    (
        prop_oneof![12 => method(), 1 => Just("CONNECT"), 1 => Just("G(T")],
        target,
        prop_oneof![12 => Just("HTTP/1.1"), 2 => Just("HTTP/1.0"), 1 => Just("HTTP/1.2")],
        host,
        prop::collection::vec(field, 0..6),
        framing,
        body(),
        prop_oneof![12 => Just("\r\n"), 1 => Just("\n")],
    )
        .prop_map(to_req)
}

/// A request the proxy must forward.
fn valid_req() -> impl Strategy<Value = Req> {
    let framing = prop_oneof![
        Just(Framing::None),
        Just(Framing::Length),
        chunks().prop_map(Framing::Chunked),
    ];
    (
        method().prop_filter("a body comes back to HEAD", |m| *m != "HEAD"),
        prop::sample::select(TARGETS.to_vec()),
        Just("HTTP/1.1"),
        prop::sample::select(vec!["test", "test:8080", "other.example"]).prop_map(Host::One),
        prop::collection::vec(prop::sample::select(FIELDS.to_vec()), 0..6),
        framing,
        body(),
        Just("\r\n"),
    )
        .prop_map(to_req)
}

type Parts = (
    &'static str,
    &'static str,
    &'static str,
    Host,
    Vec<(&'static str, &'static [u8])>,
    Framing,
    Vec<u8>,
    &'static str,
);

fn to_req(p: Parts) -> Req {
    let (method, target, version, host, headers, framing, body, eol) = p;
    Req {
        method,
        target,
        version,
        host,
        headers,
        framing,
        body,
        eol,
    }
}

impl Req {
    /// All header fields, in the order written.
    fn fields(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        match &self.host {
            Host::One(h) | Host::Invalid(h) => out.push(("Host".into(), h.as_bytes().to_vec())),
            Host::None => {}
            Host::Two => {
                out.push(("Host".into(), b"a".to_vec()));
                out.push(("Host".into(), b"b".to_vec()));
            }
        }
        out.extend(
            self.headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec())),
        );
        let n = self.body.len().to_string().into_bytes();
        let cl = |v: Vec<u8>| ("Content-Length".to_string(), v);
        let te = |v: &[u8]| ("Transfer-Encoding".to_string(), v.to_vec());
        match &self.framing {
            Framing::None => {}
            Framing::Length => out.push(cl(n)),
            Framing::LengthTwice => {
                out.push(cl(n.clone()));
                out.push(cl([&n[..], b", ", &n[..]].concat()));
            }
            Framing::LengthDiffering => {
                out.push(cl(n));
                out.push(cl(format!("{}", self.body.len() + 1).into_bytes()));
            }
            Framing::LengthSigned => out.push(cl([b"+", &n[..]].concat())),
            Framing::LengthAndChunked => {
                out.push(cl(n));
                out.push(te(b"chunked"));
            }
            Framing::Chunked(_) => out.push(te(b"chunked")),
            Framing::ChunkedTwice => {
                out.push(te(b"chunked"));
                out.push(te(b"chunked"));
            }
            Framing::GzipChunked => out.push(te(b"gzip, chunked")),
        }
        out
    }

    /// The request as bytes on the wire.
    fn bytes(&self) -> Vec<u8> {
        let eol = self.eol.as_bytes();
        let mut out = format!("{} {} {}", self.method, self.target, self.version).into_bytes();
        out.extend_from_slice(eol);
        for (name, value) in self.fields() {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&value);
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(eol);
        match &self.framing {
            Framing::Chunked(sizes) => out.extend_from_slice(&chunked(&self.body, sizes)),
            _ => out.extend_from_slice(self.body()),
        }
        out
    }

    /// The body sent (none without a framing).
    fn body(&self) -> &[u8] {
        match self.framing {
            Framing::None => &[],
            _ => &self.body,
        }
    }
}

/// `body` in chunks of `sizes` (the rest in one more), and the last chunk.
fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    for &size in sizes.iter().chain(std::iter::once(&usize::MAX)) {
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        if !chunk.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        rest = after;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// What RFC 9112 and httparse say of `bytes`: `Err` for a refusal, else the
/// head's length and the body's framing.
fn expected(req: &Req, bytes: &[u8]) -> Result<(usize, BodyFraming), String> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut slots);
    let len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        other => return Err(format!("httparse: {other:?}")),
    };
    let fields = req.fields();
    if req.method == "CONNECT" {
        return Err("CONNECT".into());
    }
    let uri = req
        .target
        .parse::<hyper::Uri>()
        .map_err(|e| format!("target: {e}"))?;
    if uri.scheme().is_none() && uri.authority().is_some() {
        return Err("authority-form without CONNECT".into());
    }
    if req.target == "*" && req.method != "OPTIONS" {
        return Err("asterisk-form without OPTIONS".into());
    }
    for (name, value) in &fields {
        HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name}: {e}"))?;
        HeaderValue::from_bytes(value).map_err(|e| format!("{name} value: {e}"))?;
    }
    let values = |name: &str| -> Vec<&[u8]> {
        fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    };
    if let Host::Invalid(_) = req.host {
        return Err("invalid Host".into());
    }
    let hosts = values("host");
    let absolute = req.target.starts_with("http://");
    match hosts.as_slice() {
        [] if req.version == "HTTP/1.1" && !absolute => return Err("no Host".into()),
        [_, _, ..] => return Err("two Hosts".into()),
        _ => {}
    }
    let mut length: Option<u64> = None;
    for value in values("content-length") {
        for part in value.split(|b| *b == b',') {
            let part = std::str::from_utf8(part.trim_ascii()).unwrap_or("x");
            let n: u64 = part
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())
                .flatten()
                .ok_or("invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("differing Content-Length".into());
            }
            length = Some(n);
        }
    }
    let codings: Vec<&[u8]> = values("transfer-encoding")
        .into_iter()
        .flat_map(|v| v.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    if values("transfer-encoding").is_empty() {
        return Ok((
            len,
            match length {
                None | Some(0) => BodyFraming::None,
                Some(n) => BodyFraming::Length(n),
            },
        ));
    }
    if length.is_some() {
        return Err("Content-Length and Transfer-Encoding".into());
    }
    if req.version == "HTTP/1.0" {
        return Err("Transfer-Encoding in HTTP/1.0".into());
    }
    match codings.as_slice() {
        [c] if c.eq_ignore_ascii_case(b"chunked") => Ok((len, BodyFraming::Chunked)),
        _ => Err("a coding other than one chunked".into()),
    }
}

#[test]
fn the_head_parser_accepts_what_httparse_and_rfc_9112_accept() {
    let mut runner = TestRunner::new(cases(PARSE_CASES));
    let started = std::time::Instant::now();
    let refused = std::cell::Cell::new(0);
    runner
        .run(&any_req(), |req| {
            let bytes = req.bytes();
            let shown = String::from_utf8_lossy(&bytes).into_owned();
            match (h1_verdict(&bytes), expected(&req, &bytes)) {
                (Verdict::Accepted { consumed, body }, Ok(want)) => {
                    prop_assert_eq!((consumed, body), want, "{}", shown)
                }
                (Verdict::Refused(_), Err(_)) => refused.set(refused.get() + 1),
                (got, want) => {
                    return Err(TestCaseError::fail(format!(
                        "proxy {got:?}, expected {want:?}: {shown:?}"
                    )))
                }
            }
            Ok(())
        })
        .unwrap();
    println!(
        "{PARSE_CASES} generated heads ({} refused) agree, in {:?}",
        refused.get(),
        started.elapsed()
    );
    let refused = refused.get();
    assert!(
        refused > 0 && refused < PARSE_CASES,
        "the generator is one-sided"
    );
}

/// What the scripted upstream read: method, target, fields and body.
type Seen = (String, String, HeaderMap, Bytes);

/// An upstream that reports every request it reads (with hyper) and answers
/// `200 ok`.
async fn scripted_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
                            let seen = (
                                parts.method.to_string(),
                                target.to_string(),
                                parts.headers,
                                body.unwrap_or_default(),
                            );
                            let _ = tx.send(seen);
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

/// The fields an upstream must get for `req`: those sent, less the
/// hop-by-hop ones and those `Connection` names (`TE: trailers` stays), and
/// less the framing fields (the body is compared instead).
fn forwarded_fields(req: &Req) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in req.fields() {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, HeaderValue::from_bytes(&value).unwrap());
    }
    let named: Vec<String> = map
        .get_all("connection")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let trailers = map
        .get_all("te")
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    let hop = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    for name in hop.iter().map(|h| h.to_string()).chain(named) {
        map.remove(name.as_str());
    }
    if trailers {
        map.insert("te", HeaderValue::from_static("trailers"));
    }
    map
}

/// The received fields less those the proxy adds (checked apart) and the
/// framing ones.
fn without_added(mut seen: HeaderMap, host: &str) -> Result<HeaderMap, TestCaseError> {
    let take = |map: &mut HeaderMap, name: &str| map.remove(name);
    prop_assert_eq!(
        take(&mut seen, "x-forwarded-for"),
        Some(HeaderValue::from_static("127.0.0.1"))
    );
    prop_assert_eq!(
        take(&mut seen, "x-forwarded-proto"),
        Some(HeaderValue::from_static("http"))
    );
    let forwarded = format!("for=127.0.0.1;proto=http;host=\"{host}\"");
    prop_assert_eq!(
        take(&mut seen, "x-forwarded-host"),
        HeaderValue::from_str(host).ok()
    );
    prop_assert_eq!(
        take(&mut seen, "forwarded"),
        HeaderValue::from_str(&forwarded).ok()
    );
    take(&mut seen, "content-length");
    take(&mut seen, "transfer-encoding");
    Ok(seen)
}

#[test]
fn what_the_proxy_forwards_reads_as_what_the_client_sent() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (upstream, seen) = rt.block_on(scripted_upstream());
    let seen = tokio::sync::Mutex::new(seen);
    let proxy = rt.block_on(proxy_toml(&config(&[upstream], "")));
    let mut runner = TestRunner::new(cases(FORWARD_CASES));
    let started = std::time::Instant::now();
    runner
        .run(&valid_req(), |req| {
            let bytes = req.bytes();
            let shown = String::from_utf8_lossy(&bytes).into_owned();
            let got = rt.block_on(async {
                let mut client = Raw::connect(proxy.addr).await;
                client.send(&bytes).await;
                let mut seen = seen.lock().await;
                tokio::time::timeout(Duration::from_secs(5), seen.recv()).await
            });
            let Ok(Some((method, target, fields, body))) = got else {
                return Err(TestCaseError::fail(format!(
                    "nothing forwarded for {shown:?}"
                )));
            };
            let Host::One(host) = req.host else {
                unreachable!("valid requests have one Host")
            };
            prop_assert_eq!(&method, req.method, "{}", shown);
            prop_assert_eq!(&target, req.target, "{}", shown);
            prop_assert_eq!(&body[..], req.body(), "{}", shown);
            prop_assert_eq!(
                without_added(fields, host)?,
                forwarded_fields(&req),
                "{}",
                shown
            );
            Ok(())
        })
        .unwrap();
    println!(
        "{FORWARD_CASES} generated requests forwarded as sent, in {:?}",
        started.elapsed()
    );
}

fn cases(n: u32) -> Cases {
    Cases {
        cases: n,
        failure_persistence: None,
        ..Cases::default()
    }
}
