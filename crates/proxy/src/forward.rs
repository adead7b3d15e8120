//! Forwarding one request to an upstream, and its response back.
//!
//! The rules that make a proxy lose nothing:
//!
//! - a failed *connect* (refused, timed out) is retried on the next endpoint for
//!   any method, POST included, because nothing reached the app;
//! - a request that fails on a *reused* keepalive connection before it was sent
//!   (hyper hands the request back) is retried on a fresh connection; one that
//!   was sent but got no response byte is retried only if it had no body (the
//!   keepalive race: the upstream closed the idle connection as we sent);
//! - everything else is answered by the proxy with 502/503/504 and a
//!   `lameduck-error` header that names the cause.

use std::{net::SocketAddr, sync::Arc, task::Poll};

use bytes::Bytes;
use hyper::{
    body::{Body as _, Frame, Incoming, SizeHint},
    client::conn::http1,
    header::{self, HeaderMap, HeaderName, HeaderValue},
    Request, Response, Uri, Version,
};

use crate::{
    body::{self, Body},
    config::{Upstream, UpstreamProtocol},
    error::Cause,
    upstream::{Conn, Endpoint, Pool},
};

/// Headers that belong to one hop and are never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

// Named once: a `&str` name would be parsed again on every request.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Where the request came from, for the `X-Forwarded-*` and `Forwarded`
/// headers; built once per client connection, so requests only copy it.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// The client's IP, as `X-Forwarded-For` lists it.
    ip: HeaderValue,
    /// `http` or `https`.
    proto: HeaderValue,
    /// `for=IP;proto=…` (an IPv6 address quoted and bracketed), the start of
    /// this hop's `Forwarded` element.
    forwarded_for: String,
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr, tls: bool) -> Peer {
        let ip = addr.ip().to_string();
        let proto = if tls { "https" } else { "http" };
        let node = if addr.is_ipv6() {
            format!("\"[{ip}]\"")
        } else {
            ip.clone()
        };
        Peer {
            ip: HeaderValue::from_str(&ip).unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            proto: HeaderValue::from_static(proto),
            forwarded_for: format!("for={node};proto={proto}"),
        }
    }
}

/// Removes hop-by-hop headers (and those the `Connection` header names). `TE:
/// trailers` survives, as gRPC needs it; `Upgrade` survives when `upgrade`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| !(upgrade && n == header::UPGRADE))
        .collect();
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    if !upgrade {
        headers.remove(header::UPGRADE);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Adds `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and
/// `Forwarded` (RFC 7239), appending to what earlier proxies set. `host` is the
/// request's `Host` (or HTTP/2 `:authority`), port included.
pub(crate) fn add_forwarded(headers: &mut HeaderMap, peer: &Peer, host: Option<HeaderValue>) {
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => {
            HeaderValue::from_str(&format!("{prev}, {}", peer.ip.to_str().unwrap_or(""))).ok()
        }
        None => Some(peer.ip.clone()),
    };
    let mut forwarded = String::with_capacity(64);
    if let Some(prev) = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        forwarded.push_str(prev);
        forwarded.push_str(", ");
    }
    forwarded.push_str(&peer.forwarded_for);
    if let Some(h) = host.as_ref().and_then(|h| h.to_str().ok()) {
        forwarded.push_str(";host=\"");
        forwarded.push_str(h);
        forwarded.push('"');
    }
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, peer.proto.clone());
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(forwarded)) {
        headers.insert(header::FORWARDED, v);
    }
    if let Some(h) = host {
        if !headers.contains_key(&X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST, h);
        }
    }
}

/// Sets the version and URI form the upstream's protocol needs: origin-form for
/// HTTP/1.1 (the `Host` header carries the authority), absolute-form for HTTP/2.
pub(crate) fn for_upstream(
    req: &mut Request<Body>,
    protocol: UpstreamProtocol,
    endpoint: SocketAddr,
) {
    let absolute = req.uri().authority().is_some();
    if absolute && !req.headers().contains_key(header::HOST) {
        let host = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        if let Some(host) = host {
            req.headers_mut().insert(header::HOST, host);
        }
    }
    let origin_form = || {
        req.uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string()
    };
    match protocol {
        UpstreamProtocol::Http1 => {
            // HTTP/1.1 clients already send origin-form: nothing to rebuild.
            if absolute {
                let path = origin_form();
                *req.uri_mut() = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
            }
            *req.version_mut() = Version::HTTP_11;
        }
        UpstreamProtocol::Http2 => {
            let path = origin_form();
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| endpoint.to_string());
            if let Ok(uri) = format!("http://{host}{path}").parse() {
                *req.uri_mut() = uri;
            }
            req.headers_mut().remove(header::HOST);
            *req.version_mut() = Version::HTTP_2;
        }
    }
}

/// What a forwarded request got back.
pub(crate) struct Forwarded {
    pub(crate) response: Response<Body>,
    /// Attempts that failed before this one (connect failures, dead connections).
    pub(crate) retries: u32,
}

/// Sends `req` to the pool, retrying where it is safe.
pub(crate) async fn send(
    pool: &Pool,
    req: Request<Body>,
    upgrade: bool,
) -> Result<Forwarded, (Cause, u32)> {
    let settings = pool.settings();
    let candidates = pool.candidates();
    if candidates.is_empty() {
        return Err((Cause::NoEndpoints, 0));
    }
    // A request without a body can be rebuilt for a retry after it was sent.
    let replay = req.body().is_end_stream().then(|| {
        (
            req.method().clone(),
            req.uri().clone(),
            req.headers().clone(),
        )
    });
    let mut req = Some(req);
    let mut retries = 0;
    let mut last = Cause::NoHealthyEndpoint;
    for endpoint in candidates {
        let Some(mut r) = req.take() else { break };
        // Reused connections first; a dead one hands the request back.
        while let Some(conn) = endpoint.take_idle(settings.protocol) {
            match attempt(conn, r, &endpoint, &settings, upgrade).await {
                Ok(response) => {
                    endpoint.succeeded();
                    return Ok(Forwarded { response, retries });
                }
                Err(Failure::NotSent(back)) => {
                    retries += 1;
                    r = *back;
                }
                Err(Failure::Sent(cause)) => match &replay {
                    Some((m, u, h)) => {
                        retries += 1;
                        r = rebuild(m, u, h);
                        tracing::debug!(endpoint = %endpoint.addr, %cause, "keepalive connection died under a body-less request; retrying on a fresh one");
                    }
                    None => return Err((cause, retries)),
                },
            }
        }
        let conn = match endpoint.connect(&settings).await {
            Ok(c) => c,
            Err(cause) => {
                endpoint.failed(&settings, cause);
                tracing::debug!(upstream = %settings.name, endpoint = %endpoint.addr, %cause, "connect failed; trying the next endpoint");
                retries += 1;
                last = cause;
                req = Some(r);
                continue;
            }
        };
        return match attempt(conn, r, &endpoint, &settings, upgrade).await {
            Ok(response) => {
                endpoint.succeeded();
                Ok(Forwarded { response, retries })
            }
            Err(Failure::NotSent(_)) => {
                endpoint.failed(&settings, Cause::UpstreamReset);
                Err((Cause::UpstreamReset, retries))
            }
            Err(Failure::Sent(cause)) => {
                endpoint.failed(&settings, cause);
                Err((cause, retries))
            }
        };
    }
    Err((last, retries))
}

fn rebuild(method: &hyper::Method, uri: &Uri, headers: &HeaderMap) -> Request<Body> {
    let mut r = Request::new(body::full(Bytes::new()));
    *r.method_mut() = method.clone();
    *r.uri_mut() = uri.clone();
    *r.headers_mut() = headers.clone();
    r
}

enum Failure {
    /// The request never left: it is handed back for another try.
    NotSent(Box<Request<Body>>),
    /// It was (or may have been) sent and failed.
    Sent(Cause),
}

async fn attempt(
    conn: Conn,
    mut req: Request<Body>,
    endpoint: &Arc<Endpoint>,
    settings: &Upstream,
    upgrade: bool,
) -> Result<Response<Body>, Failure> {
    let (max_idle, timeout) = (settings.max_idle_per_endpoint, settings.response_timeout);
    match conn {
        Conn::H1(mut send) => {
            for_upstream(&mut req, UpstreamProtocol::Http1, endpoint.addr);
            if send.ready().await.is_err() {
                return Err(Failure::NotSent(Box::new(req)));
            }
            let result = tokio::time::timeout(timeout, send.try_send_request(req)).await;
            let response = settle(result)?;
            if upgrade {
                // The connection now belongs to the upgraded stream.
                return Ok(response.map(body::boxed));
            }
            let (parts, inner) = response.into_parts();
            let mut pooled = Pooled {
                inner,
                conn: Some((send, Arc::clone(endpoint), max_idle)),
            };
            if pooled.inner.is_end_stream() {
                pooled.release();
            }
            Ok(Response::from_parts(parts, body::boxed(pooled)))
        }
        Conn::H2(mut send) => {
            for_upstream(&mut req, UpstreamProtocol::Http2, endpoint.addr);
            if send.ready().await.is_err() {
                return Err(Failure::NotSent(Box::new(req)));
            }
            let result = tokio::time::timeout(timeout, send.try_send_request(req)).await;
            Ok(settle(result)?.map(body::boxed))
        }
    }
}

type SendResult = Result<
    Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Body>>>,
    tokio::time::error::Elapsed,
>;

fn settle(result: SendResult) -> Result<Response<Incoming>, Failure> {
    match result {
        Err(_) => Err(Failure::Sent(Cause::UpstreamTimeout)),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(mut e)) => match e.take_message() {
            Some(req) => Err(Failure::NotSent(Box::new(req))),
            None if e.error().is_parse() => Err(Failure::Sent(Cause::UpstreamProtocol)),
            None => Err(Failure::Sent(Cause::UpstreamReset)),
        },
    }
}

/// An HTTP/1.1 response body that gives its connection back to the endpoint's
/// idle list once it has been read to the end (and drops it otherwise).
struct Pooled {
    inner: Incoming,
    conn: Option<(http1::SendRequest<Body>, Arc<Endpoint>, usize)>,
}

impl Pooled {
    fn release(&mut self) {
        if let Some((send, endpoint, max)) = self.conn.take() {
            endpoint.put_idle(send, max);
        }
    }
}

impl hyper::body::Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(Some(Err(_))) => self.conn = None,
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
