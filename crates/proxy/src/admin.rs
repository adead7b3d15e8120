//! The two HTTP listeners besides the proxied ones: the probe listener and the
//! admin API.
//!
//! | method | path | what | probe | admin |
//! |---|---|---|---|---|
//! | GET | `/healthz` | 200 while the process runs | yes | yes |
//! | GET | `/readyz` | 200 serving, 503 from the lame-duck phase on | yes | yes |
//! | GET | `/metrics` | Prometheus text | yes | yes |
//! | GET | `/config` | the TOML in force | no | token |
//! | PUT | `/config` | a whole new TOML config: checked, then swapped in (400 names key and line) | no | token |
//! | PUT | `/upstreams/NAME` | `{"endpoints": ["IP:PORT", …]}`: one pool's endpoints, no full reload | no | token |
//!
//! The probe listener ([`Role::Probe`]) is read-only, safe on the pod IP for
//! the kubelet. Whoever reaches the admin API can change all routing: it
//! listens on loopback unless a bearer token is configured (the config check
//! refuses it elsewhere), and with a token every endpoint but the probes asks
//! for `Authorization: Bearer TOKEN` (401 otherwise).

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::{state::State, Config};

type Reply = Response<Full<Bytes>>;

/// Largest body `PUT /config` accepts.
const MAX_BODY: usize = 4 << 20;

/// Which listener a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `/healthz`, `/readyz` and `/metrics` only.
    Probe,
    /// Everything, the state-changing endpoints behind the token if one is set.
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

pub(crate) async fn serve(listener: TcpListener, state: Arc<State>, role: Role) {
    let mut backoff = lameduck_drain::AcceptBackoff::new(role.name());
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
        let timeout = state.snapshot().config.proxy.header_read_timeout;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(req, &state, role).await) }
            });
            // Without a timer hyper has no header read timeout at all: a
            // client trickling a head would hold a connection.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(req: Request<Incoming>, state: &Arc<State>, role: Role) -> Reply {
    if let Some(reply) = probe(&req, state) {
        return reply;
    }
    if role == Role::Probe {
        return text(
            StatusCode::NOT_FOUND,
            "not found: the probe listener serves GET /healthz, /readyz and /metrics only; \
             the admin API is on admin.listen\n",
        );
    }
    if let Some(token) = &state.snapshot().config.admin_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if !token.accepts(given) {
            let mut reply = text(
                StatusCode::UNAUTHORIZED,
                "unauthorized: send Authorization: Bearer TOKEN (admin.token_file or LAMEDUCK_ADMIN_TOKEN)\n",
            );
            reply.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return reply;
        }
    }
    admin(req, state).await
}

/// The read-only endpoints both listeners serve, without a token.
fn probe(req: &Request<Incoming>, state: &State) -> Option<Reply> {
    if req.method() != Method::GET {
        return None;
    }
    Some(match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match state.phase() {
            p if p.is_draining() => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("draining ({p})\n"),
            ),
            _ => text(StatusCode::OK, "ready\n"),
        },
        "/metrics" => text(StatusCode::OK, &state.metrics.render(state.phase())),
        _ => return None,
    })
}

/// The admin API's own endpoints (the caller checked the token).
async fn admin(req: Request<Incoming>, state: &Arc<State>) -> Reply {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
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
