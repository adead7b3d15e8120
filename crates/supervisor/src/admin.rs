//! The admin address: `/readyz`, `/healthz` and `/metrics`, read-only.
//!
//! The kubelet probes the pod IP, so this address is usually bound there; that is
//! why it serves nothing that changes state. Control (preStop) goes only through
//! the local control socket.
//!
//! `/readyz` is what lets routers learn of the drain: it mirrors the app's own
//! readiness URL (`--ready-check`) while serving, and answers 503 from the first
//! moment of the lame-duck phase on. `/healthz` answers 200 while the app runs,
//! also while draining, so a liveness probe never restarts a draining pod.

use std::{convert::Infallible, net::SocketAddr, sync::atomic::Ordering, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{body::Incoming, header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::{state::Shared, Error, ReadyCheck};

type Reply = Response<Full<Bytes>>;

/// The longest a client may take to send a request head (a probe sends one
/// line and a few fields at once).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds the admin address now (so a bad address fails at start) and serves it
/// in the background.
pub(crate) async fn start(
    addr: SocketAddr,
    shared: Arc<Shared>,
    check: Option<ReadyCheck>,
) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::AdminBind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(Error::io("reading the admin address"))?;
    let check = Arc::new(check);
    // Fatal: it owns its listener, and without it the kubelet restarts the
    // pod later and without saying why.
    lameduck_drain::spawn_fatal("admin listener", async move {
        let mut backoff = lameduck_drain::AcceptBackoff::new("admin");
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tokio::time::sleep(backoff.failed(&e)).await;
                    continue;
                }
            };
            backoff.accepted();
            let (shared, check) = (Arc::clone(&shared), Arc::clone(&check));
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (shared, check) = (Arc::clone(&shared), Arc::clone(&check));
                    async move {
                        Ok::<_, Infallible>(route(req, &shared, check.as_ref().as_ref()).await)
                    }
                });
                // Without a timer hyper has no header read timeout at all: a
                // client trickling a head would hold a connection.
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

async fn route(req: Request<Incoming>, shared: &Shared, check: Option<&ReadyCheck>) -> Reply {
    // A probe listener, safe on the pod IP: it reads, it never changes state.
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut resp = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: the admin listener is read-only (GET /readyz, /healthz, /metrics)\n"
                .into(),
        );
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match req.uri().path() {
        "/readyz" => readyz(shared, check).await,
        "/healthz" => {
            if shared.child_running.load(Ordering::Relaxed) {
                text(StatusCode::OK, "ok\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "app not running\n".into())
            }
        }
        "/metrics" => {
            let body = shared.render_metrics(std::time::Instant::now());
            let mut resp = text(StatusCode::OK, body);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /readyz, /healthz or /metrics\n".into(),
        ),
    }
}

async fn readyz(shared: &Shared, check: Option<&ReadyCheck>) -> Reply {
    let status = shared.status();
    if status.phase.is_draining() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("draining ({})\n", status.phase),
        );
    }
    if !shared.child_running.load(Ordering::Relaxed) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "app not running\n".into());
    }
    let Some(check) = check else {
        return text(StatusCode::OK, "ready\n".into());
    };
    match probe(check).await {
        Ok(code) if code.is_success() => {
            shared.ready_ok.fetch_add(1, Ordering::Relaxed);
            text(StatusCode::OK, "ready\n".into())
        }
        Ok(code) => {
            shared.ready_failed.fetch_add(1, Ordering::Relaxed);
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("app not ready: {} answered {code}\n", check.url),
            )
        }
        Err(reason) => {
            shared.ready_failed.fetch_add(1, Ordering::Relaxed);
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("app not ready: {}: {reason}\n", check.url),
            )
        }
    }
}

/// One GET of the app's readiness URL, bounded by the check's timeout.
pub(crate) async fn probe(check: &ReadyCheck) -> Result<StatusCode, String> {
    let attempt = async {
        let stream = TcpStream::connect(&check.authority)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(check.path.as_str())
            .header(header::HOST, check.authority.as_str())
            .header(header::USER_AGENT, "lameduck-ready-check")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let code = resp.status();
        // Read the body so the app sees a complete exchange; its content is ignored.
        let _ = resp.into_body().collect().await;
        Ok(code)
    };
    tokio::time::timeout(check.timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", check.timeout)))
}

fn text(status: StatusCode, body: String) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}
