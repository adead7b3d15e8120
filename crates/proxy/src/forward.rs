//! Forwarding one request to an upstream, and its response back.
//!
//! The rules that make a proxy lose nothing:
//!
//! - a failed *connect* (refused, timed out) is retried on the next endpoint for
//!   any method, POST included, because nothing reached the app;
//! - a request that fails on a *reused* keepalive connection before any
//!   response byte came (writing its head failed, or the upstream closed the
//!   connection: the keepalive race, the upstream closing an idle connection
//!   as the request goes out) is retried on a fresh connection, if it can be
//!   sent again whole: no body byte beyond the first write went out. A body
//!   that was all there when the request was first written (a small one
//!   usually is) went out with the head and is replayed from the same
//!   encoded bytes; a body still streaming is not;
//! - everything else is answered by the proxy with 502/503/504 and a
//!   `lameduck-error` header that names the cause; a response that did not
//!   come within `response_timeout` is never retried.
//!
//! HTTP/1.1 upstreams are served by the proxy's own client
//! ([`lameduck_http1::client`]), HTTP/2 ones by hyper's (which hands back a request
//! it could not send, and is retried under the same rules).

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use hyper::{
    body::{Body as _, Incoming},
    client::conn::http2,
    header::{self, HeaderMap, HeaderName, HeaderValue},
    Request, Response, Uri, Version,
};

use lameduck_http1::{
    body::{self, Body, BodyWatch},
    client::{self, Failure, Outgoing},
    raw::RawFields,
};

use crate::{
    config::{Upstream, UpstreamProtocol},
    error::Cause,
    upstream::{Candidates, Endpoint, Pool},
};

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
    let prev = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok());
    let host_str = host.as_ref().and_then(|h| h.to_str().ok());
    // Sized exactly: a `Bytes` made from a string with spare room would need
    // an allocation of its own.
    let exact = prev.map_or(0, |p| p.len() + 2)
        + peer.forwarded_for.len()
        + host_str.map_or(0, |h| h.len() + 8);
    let mut forwarded = String::with_capacity(exact);
    if let Some(prev) = prev {
        forwarded.push_str(prev);
        forwarded.push_str(", ");
    }
    forwarded.push_str(&peer.forwarded_for);
    if let Some(h) = host_str {
        forwarded.push_str(";host=\"");
        forwarded.push_str(h);
        forwarded.push('"');
    }
    debug_assert_eq!(forwarded.len(), exact);
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

/// Puts the authority of an absolute-form URI in `Host` when there is none.
fn host_from_uri(req: &mut Request<Body>) {
    if req.headers().contains_key(header::HOST) {
        return;
    }
    let host = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    if let Some(host) = host {
        req.headers_mut().insert(header::HOST, host);
    }
}

/// HTTP/1.1 upstreams get origin-form (the `Host` header carries the
/// authority).
pub(crate) fn for_http1(req: &mut Request<Body>) {
    if req.uri().authority().is_some() {
        host_from_uri(req);
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
    }
    // HTTP/1.1 clients already send origin-form: nothing to rebuild.
    *req.version_mut() = Version::HTTP_11;
}

/// HTTP/2 upstreams get absolute-form (`:authority` from `Host`, or the
/// endpoint's address).
pub(crate) fn for_http2(req: &mut Request<Body>, endpoint: SocketAddr) {
    host_from_uri(req);
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
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

/// What a forwarded request got back.
pub(crate) struct Forwarded {
    pub(crate) response: Response<Body>,
    /// The response's fields as an HTTP/1.1 upstream sent them, when they
    /// were kept so (the response's map is then empty).
    pub(crate) raw: Option<RawFields>,
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
    match settings.protocol {
        UpstreamProtocol::Http1 => send_h1(candidates, req, &settings, upgrade).await,
        // Boxed: HTTP/2 upstreams are the rarer case, and the future of every
        // HTTP/1 exchange (moved into its box once per request) should not
        // carry room for hyper's handshake.
        UpstreamProtocol::Http2 => Box::pin(send_h2(candidates, req, &settings)).await,
    }
}

/// HTTP/1.1: idle connections first, then a new one; the next endpoint when
/// connecting fails.
async fn send_h1(
    candidates: Candidates,
    mut req: Request<Body>,
    settings: &Upstream,
    upgrade: bool,
) -> Result<Forwarded, (Cause, u32)> {
    for_http1(&mut req);
    let watch = req.extensions().get::<Arc<BodyWatch>>().cloned();
    let mut out = Outgoing::new(req, upgrade);
    let (max_idle, timeout) = (settings.max_idle_per_endpoint, settings.response_timeout);
    let mut retries = 0;
    let mut last = Cause::NoHealthyEndpoint;
    for endpoint in candidates {
        let home = || {
            Some(client::Home {
                pool: Arc::clone(&endpoint) as Arc<dyn client::Pool>,
                max_idle,
            })
        };
        while let Some(conn) = endpoint.take_idle() {
            match client::send(conn, &mut out, timeout, home()).await {
                Ok((response, raw)) => {
                    return Ok(delivered(&endpoint, response, raw, retries));
                }
                Err(Failure::NotSent | Failure::NoResponse) if out.replayable() => {
                    retries += 1;
                    tracing::debug!(endpoint = %endpoint.addr, "keepalive connection closed under a request; sending it again on another");
                }
                Err(failure) => return Err((client_or(Cause::from(failure), &watch), retries)),
            }
        }
        let conn = match endpoint.connect_h1(settings).await {
            Ok(c) => c,
            Err(cause) => {
                endpoint.connect_failed(settings, cause);
                retries += 1;
                last = cause;
                continue;
            }
        };
        return match client::send(conn, &mut out, timeout, home()).await {
            Ok((response, raw)) => Ok(delivered(&endpoint, response, raw, retries)),
            Err(failure) => Err((
                fault(&endpoint, settings, Cause::from(failure), &watch),
                retries,
            )),
        };
    }
    Err((last, retries))
}

/// HTTP/2: the endpoint's shared connection, or a new one.
async fn send_h2(
    candidates: Candidates,
    req: Request<Body>,
    settings: &Upstream,
) -> Result<Forwarded, (Cause, u32)> {
    let watch = req.extensions().get::<Arc<BodyWatch>>().cloned();
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
        // The shared connection first; a dead one hands the request back.
        if let Some(conn) = endpoint.take_h2() {
            match attempt_h2(conn, r, endpoint.addr, settings).await {
                Ok(response) => {
                    return Ok(delivered(&endpoint, response, None, retries));
                }
                Err(H2Failure::NotSent(back)) => {
                    retries += 1;
                    r = *back;
                }
                Err(H2Failure::Sent(cause)) => match &replay {
                    Some((m, u, h)) if cause != Cause::UpstreamTimeout => {
                        retries += 1;
                        r = rebuild(m, u, h);
                        tracing::debug!(endpoint = %endpoint.addr, %cause, "HTTP/2 connection died under a body-less request; retrying on a fresh one");
                    }
                    _ => return Err((client_or(cause, &watch), retries)),
                },
            }
        }
        let conn = match endpoint.connect_h2(settings).await {
            Ok(c) => c,
            Err(cause) => {
                endpoint.connect_failed(settings, cause);
                retries += 1;
                last = cause;
                req = Some(r);
                continue;
            }
        };
        return match attempt_h2(conn, r, endpoint.addr, settings).await {
            Ok(response) => Ok(delivered(&endpoint, response, None, retries)),
            Err(H2Failure::NotSent(_)) => Err((
                fault(&endpoint, settings, Cause::UpstreamReset, &watch),
                retries,
            )),
            Err(H2Failure::Sent(cause)) => {
                Err((fault(&endpoint, settings, cause, &watch), retries))
            }
        };
    }
    Err((last, retries))
}

/// A request to `endpoint` failed with `cause`: counted against the endpoint
/// (towards its ejection) unless the client's body was what failed, which is
/// the client's fault, not the endpoint's. Returns the cause the client is told.
fn fault(
    endpoint: &Endpoint,
    settings: &Upstream,
    cause: Cause,
    watch: &Option<Arc<BodyWatch>>,
) -> Cause {
    let told = client_or(cause, watch);
    if told == cause {
        endpoint.failed(settings, cause);
    }
    told
}

/// `bad-request` when the client's body failed (cut off, broken coding, over
/// the limit: the caller answers 413 for that), else `cause`.
fn client_or(cause: Cause, watch: &Option<Arc<BodyWatch>>) -> Cause {
    match watch {
        Some(w) if w.failed() => Cause::BadRequest,
        _ => cause,
    }
}

/// A response came from `endpoint`: counts its success.
fn delivered(
    endpoint: &Endpoint,
    response: Response<Body>,
    raw: Option<RawFields>,
    retries: u32,
) -> Forwarded {
    endpoint.succeeded();
    Forwarded {
        response,
        raw,
        retries,
    }
}

fn rebuild(method: &hyper::Method, uri: &Uri, headers: &HeaderMap) -> Request<Body> {
    let mut r = Request::new(body::full(Bytes::new()));
    *r.method_mut() = method.clone();
    *r.uri_mut() = uri.clone();
    *r.headers_mut() = headers.clone();
    r
}

enum H2Failure {
    /// The request never left: it is handed back for another try.
    NotSent(Box<Request<Body>>),
    /// It was (or may have been) sent and failed.
    Sent(Cause),
}

async fn attempt_h2(
    mut send: http2::SendRequest<Body>,
    mut req: Request<Body>,
    endpoint: SocketAddr,
    settings: &Upstream,
) -> Result<Response<Body>, H2Failure> {
    for_http2(&mut req, endpoint);
    if send.ready().await.is_err() {
        return Err(H2Failure::NotSent(Box::new(req)));
    }
    let sent = send.try_send_request(req);
    let result = tokio::time::timeout(settings.response_timeout, sent).await;
    Ok(settle(result)?.map(body::boxed))
}

type SendResult = Result<
    Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Body>>>,
    tokio::time::error::Elapsed,
>;

fn settle(result: SendResult) -> Result<Response<Incoming>, H2Failure> {
    match result {
        Err(_) => Err(H2Failure::Sent(Cause::UpstreamTimeout)),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(mut e)) => match e.take_message() {
            Some(req) => Err(H2Failure::NotSent(Box::new(req))),
            None if e.error().is_parse() => Err(H2Failure::Sent(Cause::UpstreamProtocol)),
            None => Err(H2Failure::Sent(Cause::UpstreamReset)),
        },
    }
}
