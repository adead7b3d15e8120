//! Connections and routes: HTTP/1.1 (keepalive) and h2c with prior
//! knowledge on one port, by hyper-util's auto server.
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | 200 at once |
//! | `/readyz` | 200 at once; 503 once a graceful shutdown has begun |
//! | `/ws` | WebSocket echo ([`crate::ws`]) |
//! | gRPC (`content-type: application/grpc`) | [`crate::grpc`] |
//! | anything else | 200 `hello from VERSION (NAME)` after the latency |
//!
//! Each connection task watches the app's stage: when a graceful shutdown
//! begins it asks hyper to end the connection gracefully (an idle HTTP/1.1
//! connection closes, a busy one closes after its response, which carries
//! `Connection: close`; HTTP/2 gets GOAWAY and ends after its last stream); at
//! the cut it drops the connection.

use std::{convert::Infallible, sync::Arc};

use http_body_util::{BodyExt, Limited};
use hyper::{
    body::Incoming,
    header::{HeaderValue, CONNECTION},
    Request, Response, StatusCode, Version,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::net::TcpStream;

use crate::{
    body::{text, Body},
    grpc,
    shutdown::{Counted, Kind, Stage},
    ws, App,
};

/// The largest request body read before answering 413.
const MAX_BODY: usize = 1 << 20;

/// Serves one accepted connection until it ends, ends gracefully, or is cut.
/// `_open` counts it from the moment it was accepted.
pub(crate) async fn serve_connection(stream: TcpStream, app: Arc<App>, _open: Counted) {
    let mut stage = app.life.stage();
    let for_requests = Arc::clone(&app);
    let service = hyper::service::service_fn(move |req| {
        let app = Arc::clone(&for_requests);
        async move { Ok::<_, Infallible>(handle(req, &app).await) }
    });
    // No timer, so no idle timeout: a keepalive connection stays open until
    // its client closes it or the shutdown does, and every close a demo
    // shows is the shutdown's.
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stage.wait_for(|s| *s >= Stage::Draining) => {}
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stage.wait_for(|s| *s == Stage::Cut) => {}
    }
}

/// Answers one request (any protocol); counted while it runs.
async fn handle(req: Request<Incoming>, app: &Arc<App>) -> Response<Body> {
    let _request = app.life.count(Kind::Request);
    tracing::debug!(method = %req.method(), path = %req.uri().path(), version = ?req.version(), "request");
    let http1 = req.version() <= Version::HTTP_11;
    let mut response = route(req, app).await;
    // hyper adds it too once the connection is told to end; this covers a
    // response finished in the same instant the shutdown began.
    if http1 && app.life.draining() && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn route(req: Request<Incoming>, app: &Arc<App>) -> Response<Body> {
    if grpc::is_grpc(&req) {
        return grpc::handle(req, app).await;
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if app.life.draining() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
        }
        "/readyz" => text(StatusCode::OK, "ready\n"),
        "/ws" => ws::upgrade(req, app),
        _ => hello(req, app).await,
    }
}

/// The app's work: read the request, take `latency`, say who answered.
async fn hello(req: Request<Incoming>, app: &App) -> Response<Body> {
    if Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .is_err()
    {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large or cut\n",
        );
    }
    tokio::time::sleep(app.latency).await;
    let mut response = text(
        StatusCode::OK,
        format!("hello from {} ({})\n", app.version, app.name),
    );
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&app.version) {
        headers.insert("x-demo-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&app.name) {
        headers.insert("x-demo-instance", v);
    }
    response
}
