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
//! Both are [`lameduck_admin`] listeners: the probe listener ([`Role::Probe`])
//! is read-only, safe on the pod IP for the kubelet. Whoever reaches the
//! admin API can change all routing: it listens on loopback unless a bearer
//! token is configured (the config check refuses it elsewhere), and with a
//! token every endpoint but the probes asks for `Authorization: Bearer
//! TOKEN` (401 otherwise). This file holds only the proxy's own endpoints.

use std::{net::SocketAddr, sync::Arc};

use http_body_util::{BodyExt, Limited};
use hyper::{body::Incoming, Method, Request, StatusCode};
use lameduck_admin::{Metrics, Options, Reply, Role, Routes, Token};
use lameduck_drain::{BoxFuture, Status};
use tokio::{net::TcpListener, sync::watch};

use crate::{state::State, Config};

/// Largest body `PUT /config` accepts.
const MAX_BODY: usize = 4 << 20;

/// What both listeners serve: one value, shared by the two.
#[derive(Debug)]
pub(crate) struct ProxyRoutes {
    state: Arc<State>,
    metrics: Metrics,
}

impl ProxyRoutes {
    /// The routes, with the metrics of `state` and of the drain whose
    /// status `drain` carries.
    pub(crate) fn new(state: Arc<State>, drain: watch::Receiver<Status>) -> Arc<ProxyRoutes> {
        let mut metrics = Metrics::new("proxy");
        metrics
            .registry()
            .register_collector(Box::new(crate::state::Collect(Arc::clone(&state))));
        metrics.register_drain(move || *drain.borrow());
        Arc::new(ProxyRoutes { state, metrics })
    }
}

impl Routes for ProxyRoutes {
    fn ready(&self) -> BoxFuture<'_, Result<(), lameduck_admin::NotReady>> {
        let phase = self.state.phase();
        Box::pin(async move { lameduck_admin::ready_unless_draining(phase) })
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }

    fn token(&self) -> Option<Token> {
        self.state.snapshot().config.admin_token.clone()
    }

    fn admin(&self, req: Request<Incoming>) -> BoxFuture<'_, Option<Reply>> {
        Box::pin(admin(req, &self.state))
    }
}

/// Serves `role` on `listener` until the proxy's run is over (`stopped`
/// turns true), so a proxy run inside a bigger process leaves nothing
/// listening.
pub(crate) async fn serve(
    listener: TcpListener,
    routes: Arc<ProxyRoutes>,
    role: Role,
    mut stopped: watch::Receiver<bool>,
) {
    let options = Options {
        role,
        part: "proxy",
        header_read_timeout: routes.state.snapshot().config.proxy.header_read_timeout,
        not_found: match role {
            Role::Probe => "the admin API is on admin.listen",
            Role::Admin => "see the admin API in docs/proxy.md",
        },
        token_from: "admin.token_file or LAMEDUCK_ADMIN_TOKEN",
    };
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    lameduck_admin::serve(listener, options, routes, shutdown).await;
}

/// The admin API's own endpoints (the listener checked the token); `None`
/// for a path it does not serve.
async fn admin(req: Request<Incoming>, state: &Arc<State>) -> Option<Reply> {
    let path = req.uri().path().to_string();
    Some(match (req.method().clone(), path.as_str()) {
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
        _ => return None,
    })
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
    lameduck_admin::text(status, body)
}
