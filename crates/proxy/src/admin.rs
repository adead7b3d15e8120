//! The admin API: probes, metrics, and changing the config in memory.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | 200 while the process runs |
//! | GET | `/readyz` | 200 serving, 503 from the lame-duck phase on |
//! | GET | `/metrics` | Prometheus text |
//! | GET | `/config` | the TOML in force |
//! | PUT | `/config` | a whole new TOML config: checked, then swapped in (400 names key and line) |
//! | PUT | `/upstreams/NAME` | `{"endpoints": ["IP:PORT", …]}`: one pool's endpoints, no full reload |
//!
//! It listens on loopback by default: whoever reaches it can change routing.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{state::State, Config};

type Reply = Response<Full<Bytes>>;

/// Largest body `PUT /config` accepts.
const MAX_BODY: usize = 4 << 20;

pub(crate) async fn serve(listener: TcpListener, state: Arc<State>) {
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
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(req, &state).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(req: Request<Incoming>, state: &Arc<State>) -> Reply {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (Method::GET, "/readyz") => match state.phase() {
            p if p.is_draining() => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("draining ({p})\n"),
            ),
            _ => text(StatusCode::OK, "ready\n"),
        },
        (Method::GET, "/metrics") => text(StatusCode::OK, &state.metrics.render(state.phase())),
        (Method::GET, "/config") => match &state.snapshot().source {
            Some(src) => text(StatusCode::OK, src),
            None => text(
                StatusCode::OK,
                "# started in quick mode (--listen/--upstream): no TOML\n",
            ),
        },
        (Method::PUT, "/config") => put_config(req, state).await,
        (Method::PUT, p) if p.starts_with("/upstreams/") => {
            let name = p["/upstreams/".len()..].to_string();
            put_upstream(req, state, &name).await
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: see the admin API in docs/proxy.md\n",
        ),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<String, Reply> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            text(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}\n"),
            )
        })?
        .to_bytes();
    String::from_utf8(bytes.to_vec())
        .map_err(|_| text(StatusCode::BAD_REQUEST, "body is not UTF-8\n"))
}

async fn put_config(req: Request<Incoming>, state: &Arc<State>) -> Reply {
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let parsed = Config::from_toml(&body).inspect_err(|_| {
        state
            .metrics
            .reloads_rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    // `reload` counts its own rejections (a listener change).
    match parsed.and_then(|c| state.reload(c, Some(body))) {
        Ok(()) => {
            tracing::info!("config reloaded from PUT /config");
            text(StatusCode::OK, "reloaded\n")
        }
        Err(e) => {
            tracing::warn!("PUT /config rejected, the old config keeps serving: {e}");
            text(
                StatusCode::BAD_REQUEST,
                &format!("rejected, the old config keeps serving: {e}\n"),
            )
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoints {
    endpoints: Vec<String>,
}

async fn put_upstream(req: Request<Incoming>, state: &State, name: &str) -> Reply {
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let parsed: Endpoints = match serde_json::from_str(&body) {
        Ok(p) => p,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"endpoints\": [\"IP:PORT\", …]}}: {e}\n"),
            )
        }
    };
    let mut endpoints = Vec::new();
    for (i, e) in parsed.endpoints.iter().enumerate() {
        match e.parse::<SocketAddr>() {
            Ok(a) => endpoints.push(a),
            Err(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!("endpoints[{i}]: {e:?} is not an IP:port address\n"),
                )
            }
        }
    }
    match state.set_endpoints(name, endpoints.clone()) {
        Ok(()) => {
            tracing::info!(upstream = name, endpoints = ?endpoints, "endpoints replaced by PUT /upstreams");
            text(StatusCode::OK, "updated\n")
        }
        Err(e) => text(StatusCode::NOT_FOUND, &format!("{e}\n")),
    }
}

fn text(status: StatusCode, body: &str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
