//! The one accept loop and router of the probe and admin listeners.
//!
//! | request | probe listener | admin listener |
//! |---|---|---|
//! | `GET`/`HEAD` `/healthz`, `/readyz`, `/metrics` | answered | answered, no token asked |
//! | another method on those paths | 405, `Allow: GET, HEAD` | 405 |
//! | anything else | 404 naming what it serves | token checked (401), then the part's [`Routes::admin`] (404 if none) |

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, header, Method, Request, Response, StatusCode};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use lameduck_drain::{AcceptBackoff, BoxFuture};
use tokio::net::TcpListener;

use crate::{Token, CONTENT_TYPE};

/// The reply type of every endpoint.
pub type Reply = Response<Full<Bytes>>;

/// The longest a shutdown waits for requests already being answered.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Which listener a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `/healthz`, `/readyz` and `/metrics` only: read-only.
    Probe,
    /// The probes, plus the part's endpoints that change state.
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Probe => "probe",
            Role::Admin => "admin",
        }
    }
}

/// How one listener serves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which listener this is.
    pub role: Role,
    /// The part, for the log (`proxy`, `run`, `registry`).
    pub part: &'static str,
    /// The longest a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// Said after "not found:" for a path the listener does not serve.
    pub not_found: &'static str,
    /// Where the admin token is set, said with a 401.
    pub token_from: &'static str,
}

/// Why `/readyz` (or `/healthz`) answers 503: the reason, sent as the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotReady(pub String);

impl From<String> for NotReady {
    fn from(reason: String) -> NotReady {
        NotReady(reason)
    }
}

impl From<&str> for NotReady {
    fn from(reason: &str) -> NotReady {
        NotReady(reason.to_string())
    }
}

/// What a part serves on its listeners.
pub trait Routes: Send + Sync + 'static {
    /// `/healthz`: `Ok` for 200, `Err(reason)` for 503. Healthy by default
    /// (a draining part is still alive: liveness must not restart it).
    fn health(&self) -> Result<(), NotReady> {
        Ok(())
    }

    /// `/readyz`: `Ok` for 200, `Err(reason)` for 503.
    fn ready(&self) -> BoxFuture<'_, Result<(), NotReady>>;

    /// `/metrics`: the Prometheus text ([`crate::Metrics::render`]).
    fn metrics(&self) -> String;

    /// The token the admin listener asks for, if any (read per request, so
    /// a reload that changes it takes effect at once).
    fn token(&self) -> Option<Token> {
        None
    }

    /// The admin listener's own endpoints, after the token check; `None`
    /// for a path it does not serve.
    fn admin(&self, _req: Request<Incoming>) -> BoxFuture<'_, Option<Reply>> {
        Box::pin(async { None })
    }
}

/// Serves `routes` on `listener` until `shutdown` completes; then closes the
/// listener and lets requests being answered finish (a few seconds at most).
pub async fn serve<R: Routes>(
    listener: TcpListener,
    options: Options,
    routes: Arc<R>,
    shutdown: impl Future<Output = ()>,
) {
    let options = Arc::new(options);
    let mut backoff = AcceptBackoff::new(format!("{} {}", options.part, options.role.name()));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tokio::time::sleep(backoff.failed(&e)).await;
                    continue;
                }
            },
        };
        backoff.accepted();
        let (routes, opts) = (Arc::clone(&routes), Arc::clone(&options));
        let service = hyper::service::service_fn(move |req| {
            let (routes, opts) = (Arc::clone(&routes), Arc::clone(&opts));
            async move { Ok::<_, Infallible>(route(req, &*routes, &opts).await) }
        });
        // Without a timer hyper has no header read timeout at all: a client
        // trickling a head would hold a connection.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_WAIT, graceful.shutdown()).await;
}

async fn route<R: Routes + ?Sized>(req: Request<Incoming>, routes: &R, opts: &Options) -> Reply {
    let path = req.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            let mut reply = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method not allowed: {path} is read-only (GET or HEAD)\n"),
            );
            reply
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return reply;
        }
        return probe(path, routes).await;
    }
    if opts.role == Role::Probe {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "not found: the probe listener serves GET /healthz, /readyz and /metrics only; {}\n",
                opts.not_found
            ),
        );
    }
    if let Some(token) = routes.token() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if !token.accepts(given) {
            return unauthorized(opts.token_from);
        }
    }
    match routes.admin(req).await {
        Some(reply) => reply,
        None => text(
            StatusCode::NOT_FOUND,
            format!("not found: {}\n", opts.not_found),
        ),
    }
}

async fn probe<R: Routes + ?Sized>(path: &str, routes: &R) -> Reply {
    let verdict = match path {
        "/healthz" => routes.health().map(|()| "ok"),
        "/readyz" => routes.ready().await.map(|()| "ready"),
        _ => {
            let mut reply = text(StatusCode::OK, routes.metrics());
            reply.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(CONTENT_TYPE),
            );
            return reply;
        }
    };
    match verdict {
        Ok(body) => text(StatusCode::OK, format!("{body}\n")),
        Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

fn unauthorized(token_from: &str) -> Reply {
    let mut reply = text(
        StatusCode::UNAUTHORIZED,
        format!("unauthorized: send Authorization: Bearer TOKEN ({token_from})\n"),
    );
    reply.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    reply
}

/// A plain-text reply.
pub fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body.into())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply
}
