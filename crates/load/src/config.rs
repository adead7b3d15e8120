//! A checked load-run configuration. The binary turns flags into a [`Config`]
//! once, here every value is already valid (URLs parsed and resolved, requests
//! rendered), so the hot loop never has to check or format anything.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    ops::RangeInclusive,
    time::Duration,
};

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::{tls, Error, TlsOptions};

/// Everything one load run needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where requests go; request `i` goes to `targets[i % len]`.
    pub targets: Vec<Target>,
    /// Concurrent connections.
    pub connections: usize,
    /// HTTP/2: streams in flight on each connection (one worker each); 1 for
    /// HTTP/1.1 and WebSocket. Requests in flight = `connections × streams`.
    pub streams: usize,
    /// Open loop: requests per second, sent on schedule whatever the latency.
    /// `None`: closed loop, each connection sends its next request when the
    /// previous one ended.
    pub rate: Option<f64>,
    /// Stop after this long (measured from the start).
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    pub requests: Option<u64>,
    /// A whole request (connect, send, full response) may take this long.
    pub timeout: Duration,
    /// Connecting may take this long (never more than `timeout`).
    pub connect_timeout: Duration,
    /// Which statuses count as success.
    pub expect: ExpectStatus,
    /// Width of one timeline bucket.
    pub bucket: Duration,
    /// A disruption command to run during the load.
    pub during: Option<During>,
    /// What makes the run fail.
    pub thresholds: Thresholds,
    /// WebSocket mode (`ws://`/`wss://` URLs): each connection sends one message
    /// per this interval and waits for one back.
    pub ws_interval: Option<Duration>,
    /// Send a request again, up to this many times, when it ended in an outcome
    /// that proves it was never processed ([`crate::Outcome::is_unprocessed`]),
    /// as a careful client does. 0: never.
    pub retry_unprocessed: u32,
}

/// A command run during the load (a rollout, a reload), shown on the timeline.
#[derive(Debug, Clone)]
pub struct During {
    /// Run by `sh -c`.
    pub command: String,
    /// Load alone before the command starts, for a baseline.
    pub warmup: Duration,
    /// Load after the command ended; then the run stops (unless a duration or
    /// request count ends it earlier).
    pub cooldown: Duration,
}

/// Limits that decide the exit status.
#[derive(Debug, Clone, Default)]
pub struct Thresholds {
    /// More failed requests than this fails the run.
    pub max_failures: u64,
    /// A 99th percentile latency above this fails the run.
    pub max_p99: Option<Duration>,
}

/// What to send: the same for every URL.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// `GET`, `POST`, …
    pub method: String,
    /// Extra headers, in order. A `Host` or `User-Agent` here replaces the default.
    pub headers: Vec<(String, String)>,
    /// Request body (sent with a Content-Length).
    pub body: Bytes,
    /// Reuse connections (HTTP/1.1 keepalive); `false` sends `Connection: close`.
    pub keepalive: bool,
    /// Speak HTTP/2: h2c with prior knowledge on `http://`, ALPN `h2` on `https://`.
    pub http2: bool,
    /// Call `grpc.health.v1.Health/Check` for this service ("" = the server as
    /// a whole) instead of the URL's path; implies HTTP/2. Method, headers and
    /// body are then the gRPC call's.
    pub grpc_health: Option<String>,
}

/// One URL, resolved, with its request already rendered to bytes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// The address connected to (the first the host name resolved to).
    pub addr: SocketAddr,
    /// Reuse the connection after a response that allows it.
    pub keepalive: bool,
    pub(crate) request: Bytes,
    pub(crate) head: bool,
    /// For `https://`: how to handshake, and the name to verify.
    pub(crate) tls: Option<TlsTarget>,
    /// With `--http2`: the request as HTTP/2 sends it.
    pub(crate) h2: Option<H2Request>,
}

/// How to handshake with an `https://` target.
#[derive(Clone)]
pub(crate) struct TlsTarget {
    pub(crate) connector: TlsConnector,
    pub(crate) name: ServerName<'static>,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Whether a run is in WebSocket mode: `--ws` (`ws_flag`), or implied when
/// every URL is `ws://` or `wss://`, so that a WebSocket URL is never loaded
/// as plain HTTP (which answers, and would pass). WebSocket and HTTP URLs in
/// one run are refused: the two modes measure different things.
pub fn websocket_mode(urls: &[String], ws_flag: bool) -> Result<bool, Error> {
    let is_ws = |u: &String| u.starts_with("ws://") || u.starts_with("wss://");
    match (
        urls.iter().find(|u| is_ws(u)),
        urls.iter().find(|u| !is_ws(u)),
    ) {
        (Some(ws), Some(other)) => Err(Error::BadUrl {
            url: ws.clone(),
            reason: format!(
                "a ws:// or wss:// URL and {other:?} in one run: load WebSocket and HTTP \
                 URLs in separate runs"
            ),
        }),
        (Some(_), None) => Ok(true),
        (None, _) => Ok(ws_flag),
    }
}

/// Parses and resolves every URL and renders `spec` for each; TLS is set up
/// once, only if some URL is `https://`.
pub fn targets(
    urls: &[String],
    spec: &RequestSpec,
    tls: &TlsOptions,
) -> Result<Vec<Target>, Error> {
    let any_https = urls
        .iter()
        .any(|u| u.starts_with("https://") || u.starts_with("wss://"));
    let h2 = spec.http2 || spec.grpc_health.is_some();
    let alpn: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
    let connector = any_https.then(|| tls::connector(tls, alpn)).transpose()?;
    urls.iter()
        .map(|url| Target::new(url, spec, connector.as_ref()))
        .collect()
}

impl Target {
    /// Parses and resolves `url`, and renders `spec` for it. An `https://` URL
    /// needs a `connector`.
    fn new(
        url: &str,
        spec: &RequestSpec,
        connector: Option<&TlsConnector>,
    ) -> Result<Target, Error> {
        let bad = |reason: &str| Error::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let https = match uri.scheme_str() {
            Some("http" | "ws") => false,
            Some("https" | "wss") => true,
            Some(other) => return Err(bad(&format!("scheme {other:?} is not supported"))),
            None => return Err(bad("no scheme; write http://HOST[:PORT]/PATH")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match (https, connector) {
            (false, _) => None,
            (true, Some(connector)) => Some(TlsTarget {
                connector: connector.clone(),
                name: tls::server_name(url, host)?,
            }),
            (true, None) => return Err(bad("https:// needs TLS settings")),
        };
        let addr = resolve(url, host, port)?;
        let authority = uri.authority().map_or(host, |a| a.as_str());
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(Target {
            url: url.to_string(),
            addr,
            keepalive: spec.keepalive,
            request: render(spec, authority, path),
            head: spec.method.eq_ignore_ascii_case("HEAD"),
            tls,
            h2: match &spec.grpc_health {
                Some(service) => Some(grpc_request(&uri, url, service)?),
                None => spec.http2.then(|| h2_request(url, spec)).transpose()?,
            },
        })
    }
}

fn resolve(url: &str, host: &str, port: u16) -> Result<SocketAddr, Error> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let resolve_err = |source| Error::Resolve {
        url: url.to_string(),
        source,
    };
    (host, port)
        .to_socket_addrs()
        .map_err(resolve_err)?
        .next()
        .ok_or_else(|| resolve_err(std::io::ErrorKind::NotFound.into()))
}

/// The request's bytes: request line, headers, body.
fn render(spec: &RequestSpec, authority: &str, path: &str) -> Bytes {
    let has = |name: &str| {
        spec.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut head = format!("{} {path} HTTP/1.1\r\n", spec.method);
    if !has("host") {
        head += &format!("Host: {authority}\r\n");
    }
    if !has("user-agent") {
        head += concat!(
            "User-Agent: lameduck-load/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        );
    }
    for (name, value) in &spec.headers {
        head += &format!("{name}: {value}\r\n");
    }
    let needs_length = !spec.body.is_empty()
        || ["POST", "PUT", "PATCH"]
            .iter()
            .any(|m| spec.method.eq_ignore_ascii_case(m));
    if needs_length && !has("content-length") {
        head += &format!("Content-Length: {}\r\n", spec.body.len());
    }
    if !spec.keepalive && !has("connection") {
        head += "Connection: close\r\n";
    }
    head += "\r\n";
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&spec.body);
    Bytes::from(bytes)
}

/// The HTTP/2 request: the URL as `:scheme`/`:authority`/`:path`, the
/// headers HTTP/2 allows (no Host, Connection or other hop-by-hop ones).
fn h2_request(url: &str, spec: &RequestSpec) -> Result<H2Request, Error> {
    let bad = |reason: String| Error::BadUrl {
        url: url.to_string(),
        reason,
    };
    let hop_by_hop = [
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
    ];
    let mut builder = http::Request::builder()
        .method(spec.method.as_str())
        .uri(url);
    for (name, value) in &spec.headers {
        if !hop_by_hop.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            builder = builder.header(name.to_ascii_lowercase(), value.as_str());
        }
    }
    let head = builder
        .body(())
        .map_err(|e| bad(format!("cannot make an HTTP/2 request: {e}")))?;
    Ok(H2Request {
        head,
        body: spec.body.clone(),
        grpc: false,
    })
}

/// A `grpc.health.v1.Health/Check` call to the URL's host.
fn grpc_request(uri: &http::Uri, url: &str, service: &str) -> Result<H2Request, Error> {
    let path = crate::grpc::PATH;
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = uri.authority().map_or("", |a| a.as_str());
    let head = http::Request::builder()
        .method("POST")
        .uri(format!("{scheme}://{authority}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .map_err(|e| Error::BadUrl {
            url: url.to_string(),
            reason: format!("cannot make a gRPC request: {e}"),
        })?;
    Ok(H2Request {
        head,
        body: crate::grpc::request_body(service),
        grpc: true,
    })
}

/// Reads a `--header` value: `Name: value`.
pub fn parse_header(input: &str) -> Result<(String, String), Error> {
    let bad = || Error::BadHeader {
        header: input.to_string(),
    };
    let (name, value) = input.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !valid || value.contains(['\r', '\n']) {
        return Err(bad());
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// What an HTTP/2 target sends: the request head and body, made once (here,
/// with the target; `http2` sends it).
#[derive(Debug, Clone)]
pub(crate) struct H2Request {
    pub(crate) head: http::Request<()>,
    pub(crate) body: Bytes,
    /// A gRPC health check: judge the answer by `grpc-status` and the
    /// serving status, not only by the HTTP status.
    pub(crate) grpc: bool,
}

/// The statuses that count as success: codes, classes (`2xx`) and ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectStatus(Vec<RangeInclusive<u16>>);

impl Default for ExpectStatus {
    /// 2xx and 3xx.
    fn default() -> Self {
        ExpectStatus(vec![200..=399])
    }
}

impl ExpectStatus {
    /// Reads `200`, `2xx`, `200-299`, or a comma-separated list of them.
    pub fn parse(input: &str) -> Result<ExpectStatus, Error> {
        let bad = |reason: &str| Error::BadStatusList {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let mut ranges = Vec::new();
        for part in input.split(',').map(str::trim) {
            let range = if let Some(class) = part.strip_suffix("xx") {
                let c: u16 = class
                    .parse()
                    .map_err(|_| bad(&format!("{part:?} is not a class")))?;
                c * 100..=c * 100 + 99
            } else if let Some((lo, hi)) = part.split_once('-') {
                code(lo).ok_or_else(|| bad(&format!("{lo:?} is not a status")))?
                    ..=code(hi).ok_or_else(|| bad(&format!("{hi:?} is not a status")))?
            } else {
                let c = code(part).ok_or_else(|| bad(&format!("{part:?} is not a status")))?;
                c..=c
            };
            if range.is_empty() || !(100..=999).contains(range.start()) {
                return Err(bad(&format!(
                    "{part:?} is not a status between 100 and 999"
                )));
            }
            ranges.push(range);
        }
        Ok(ExpectStatus(ranges))
    }

    /// Whether `status` counts as success.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.contains(&status))
    }
}

fn code(s: &str) -> Option<u16> {
    s.trim().parse().ok().filter(|c| (100..=999).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(method: &str, body: &str, keepalive: bool) -> RequestSpec {
        RequestSpec {
            method: method.into(),
            headers: vec![("X-Test".into(), "1".into())],
            body: Bytes::from(body.to_string()),
            keepalive,
            http2: false,
            grpc_health: None,
        }
    }

    #[test]
    fn renders_a_request_for_the_url() {
        let t = Target::new(
            "http://127.0.0.1:8080/a?b=1",
            &spec("POST", "hi", false),
            None,
        )
        .unwrap();
        let text = String::from_utf8(t.request.to_vec()).unwrap();
        assert!(
            text.starts_with("POST /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{text}"
        );
        assert!(text.contains("X-Test: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"));
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn ws_urls_imply_websocket_mode_and_do_not_mix_with_http() {
        let urls = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(websocket_mode(&urls(&["ws://a/", "wss://b/"]), false).unwrap());
        assert!(!websocket_mode(&urls(&["http://a/"]), false).unwrap());
        assert!(websocket_mode(&urls(&["http://a/"]), true).unwrap());
        let e = websocket_mode(&urls(&["ws://a/", "http://b/"]), false).unwrap_err();
        assert!(e.to_string().contains("ws://a/"), "{e}");
    }

    #[test]
    fn bad_urls_name_the_url() {
        for url in [
            "127.0.0.1:80/x",
            "ftp://127.0.0.1/",
            "http://",
            "http://no.such.host.invalid/",
        ] {
            let e = Target::new(url, &spec("GET", "", true), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(url), "{e}");
        }
    }

    #[test]
    fn status_lists() {
        let e = ExpectStatus::parse("2xx,304").unwrap();
        assert!(e.contains(204) && e.contains(304) && !e.contains(302));
        assert!(ExpectStatus::parse("200-204").unwrap().contains(203));
        assert!(ExpectStatus::default().contains(301));
        assert!(!ExpectStatus::default().contains(503));
        for bad in ["", "abc", "20", "299-200", "9xx9"] {
            assert!(ExpectStatus::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers() {
        assert_eq!(parse_header("A: b c").unwrap(), ("A".into(), "b c".into()));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": empty").is_err());
    }
}
