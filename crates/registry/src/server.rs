//! The HTTP server: Eureka's REST API over the [`Registry`], and the drain.
//!
//! One registry sits behind a mutex that is never held across an `.await`; each
//! request locks it once, with the time from the configured clock. Every change
//! bumps a version on a `watch` channel, which is what wakes the change feed's
//! waiting requests at once (lameduck's extension: a subscriber learns of a
//! DOWN in the time of one HTTP response, not of a 30 s poll).
//!
//! The drain follows the shared model, driven by the `shutdown` phase the
//! caller sends: in the lame-duck phase everything is still served, but every
//! response says `Connection: close` (so keepalive clients reconnect, maybe to
//! another replica) and waiting change-feed requests return now; in the drain
//! phase the listener closes and in-flight requests finish; in the terminate
//! phase whatever is left is dropped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, header, HeaderMap, Request, Response, StatusCode};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use lameduck_admin::{text, Reply};
use lameduck_drain::Phase;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::registry::{ChangesSince, Eviction, Millis, Renewal};
use crate::routes::{self, query_get, query_pairs, NoRoute, Route};
use crate::state::{Held, Shutdown, State};
use crate::{AuthScope, Config, Error};
use lameduck_eureka::model::{BadInput, Instance, Status};
use lameduck_eureka::wire::{self, Format};

/// The largest register body accepted (a real one is about 2 KiB).
const MAX_BODY: usize = 1 << 20;

/// Serves the registry on `listener` (and `/healthz`, `/readyz`, `/metrics` on
/// `admin`, if given) until `shutdown` reaches the drain phase and every
/// connection has finished, or it reaches the terminate phase.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let state = State::new(config, shutdown.clone(), None);
    serve_state(state, listener, admin, shutdown).await
}

/// [`serve`] with the state made by the caller (the drain driver of
/// `stop` watches its activity and shows its status).
pub(crate) async fn serve_state(
    state: Arc<State>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    mut shutdown: Shutdown,
) -> Result<(), Error> {
    let addr = listener.local_addr().map_err(Error::Listener)?;
    // Fatal: the admin listener owns its socket, and without it the kubelet
    // restarts the pod later and without saying why. It stops when `serve`
    // is done.
    let (stop_admin, admin_stops) = tokio::sync::oneshot::channel::<()>();
    let admin = admin.map(|a| {
        let stops = async move {
            let _ = admin_stops.await;
        };
        lameduck_drain::spawn_fatal(
            "registry admin listener",
            crate::admin::serve(a, Arc::clone(&state), stops),
        )
    });
    // Restarted: a pass keeps nothing but its self-preservation flag, which
    // the next pass finds again.
    let for_evictor = Arc::clone(&state);
    let evictor = lameduck_drain::spawn_restarting(
        "registry evictor",
        lameduck_drain::Ends::Never,
        move || evict_loop(Arc::clone(&for_evictor)),
    );
    tracing::info!(%addr, "registry serving the Eureka API under /eureka/ and /eureka/v2/");
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    accept_until_drain(
        &listener,
        &state,
        &graceful,
        &mut connections,
        &mut shutdown,
    )
    .await;
    drop(listener);
    evictor.abort();
    lameduck_drain::log_phase(
        Phase::Drain,
        "listener closed; finishing in-flight requests",
        None,
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("every connection finished"),
        () = wait_for_terminate(&mut shutdown) => {
            tracing::warn!(left = connections.len(), "terminate: dropping the connections left");
            connections.abort_all();
        }
    }
    drop(stop_admin);
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    Ok(())
}

async fn accept_until_drain(
    listener: &TcpListener,
    state: &Arc<State>,
    graceful: &GracefulShutdown,
    connections: &mut JoinSet<()>,
    shutdown: &mut Shutdown,
) {
    let mut backoff = lameduck_drain::AcceptBackoff::new("registry");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.accepted();
                    while connections.try_join_next().is_some() {}
                    let _ = stream.set_nodelay(true);
                    let for_requests = Arc::clone(state);
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&for_requests);
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    // Without a timer hyper has no header read timeout at
                    // all: a client trickling a head would hold a connection.
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(state.config.header_read_timeout)
                        .serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    let state = Arc::clone(state);
                    connections.spawn(async move {
                        let _open = Held::up(&state.counters.open_connections);
                        let _ = conn.await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin
                    // (open connections are served meanwhile).
                    tokio::time::sleep(backoff.failed(&e)).await;
                }
            },
            phase = next_phase(shutdown) => match phase {
                Phase::Serving => {}
                Phase::LameDuck => lameduck_drain::log_phase(
                    phase,
                    "readiness 503; responses carry Connection: close",
                    None,
                ),
                Phase::Drain | Phase::Terminate => return,
            },
        }
    }
}

/// Waits until the phase changes and returns it; the drain phase when the
/// sender is gone.
async fn next_phase(shutdown: &mut Shutdown) -> Phase {
    match shutdown.changed().await {
        Ok(()) => *shutdown.borrow_and_update(),
        Err(_) => Phase::Drain,
    }
}

/// Returns when the terminate phase comes; never if the sender is gone.
async fn wait_for_terminate(shutdown: &mut Shutdown) {
    if shutdown.wait_for(|p| *p >= Phase::Terminate).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the eviction pass every `eviction_interval`, logging what it did.
async fn evict_loop(state: Arc<State>) {
    // tokio's interval panics on zero; a library caller may pass anything.
    let every = state.config.eviction_interval.max(Duration::from_millis(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut protecting = false;
    loop {
        tick.tick().await;
        let outcome = state.with(|r, now| r.evict(now));
        state.counters.eviction_passes.inc();
        match outcome {
            Eviction::Evicted(gone) => {
                if protecting {
                    tracing::info!("self-preservation off: renewals are back above the threshold");
                    protecting = false;
                }
                if !gone.is_empty() {
                    state.counters.evictions.inc_by(gone.len() as u64);
                    tracing::info!(instances = %gone.join(","), "evicted expired leases");
                }
            }
            Eviction::SelfPreservation {
                renews_last_min,
                threshold,
            } if !protecting => {
                protecting = true;
                tracing::warn!(
                    renews_last_min,
                    threshold,
                    "self-preservation on: renewals are at or below the threshold, nothing is \
                     evicted (turn it off with --no-self-preservation)"
                );
            }
            Eviction::SelfPreservation { .. } => {}
        }
    }
}

/// What the client asked for in its headers.
#[derive(Debug, Clone, Copy)]
struct Ask {
    format: Format,
    gzip: bool,
}

impl Ask {
    fn of(headers: &HeaderMap) -> Ask {
        let get = |h| headers.get(h).and_then(|v| v.to_str().ok());
        Ask {
            format: Format::from_accept(get(header::ACCEPT)),
            gzip: get(header::ACCEPT_ENCODING).is_some_and(|e| e.contains("gzip")),
        }
    }

    /// A document in the asked format; list documents gzipped when asked.
    fn document(self, doc: &Value, list: bool) -> Reply {
        let body = wire::encode(doc, self.format);
        let mut resp = Response::new(Full::new(Bytes::new()));
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(self.format.content_type()),
        );
        if list && self.gzip {
            headers.insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static("gzip"),
            );
            *resp.body_mut() = Full::new(Bytes::from(gzip(&body)));
        } else {
            *resp.body_mut() = Full::new(Bytes::from(body));
        }
        resp
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

fn empty(status: StatusCode) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

async fn handle(state: &State, req: Request<Incoming>) -> Reply {
    state.activity.touch();
    let _in_flight = Held::up(&state.counters.requests_in_flight);
    let mut resp = dispatch(state, req).await;
    if resp.status() == StatusCode::BAD_REQUEST {
        state.counters.bad_requests.inc();
    }
    if state.draining() {
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    resp
}

async fn dispatch(state: &State, req: Request<Incoming>) -> Reply {
    let writes_only = state.config.auth_scope == AuthScope::Writes;
    if !writes_only {
        if let Some(denied) = check_auth(state, req.headers()) {
            return denied;
        }
    }
    let path = req.uri().path().to_string();
    let route = match routes::route(req.method(), &path) {
        Ok(r) => r,
        Err(NoRoute::NotFound) => {
            return text(
                StatusCode::NOT_FOUND,
                format!("not found: {path} is not a Eureka endpoint (try /eureka/apps)\n"),
            )
        }
        Err(NoRoute::Method(allow)) => {
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed on {path}; use {allow}\n", req.method()),
            );
            resp.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
            return resp;
        }
    };
    if writes_only && route.writes() {
        if let Some(denied) = check_auth(state, req.headers()) {
            return denied;
        }
    }
    let query = req.uri().query().map(str::to_string);
    let q = query.as_deref();
    let ask = Ask::of(req.headers());
    match route {
        Route::Register(app) => register(state, &app, req).await,
        Route::Renew(app, id) => renew(state, &app, &id, q),
        Route::Cancel(app, id) => cancel(state, &app, &id),
        Route::SetStatus(app, id) => set_status(state, &app, &id, q),
        Route::DeleteStatus(app, id) => delete_status(state, &app, &id, q),
        Route::Metadata(app, id) => metadata(state, &app, &id, q),
        Route::Apps => {
            state.counters.full_fetches.inc();
            ask.document(&state.with(|r, _| r.applications()), true)
        }
        Route::Delta => {
            state.counters.delta_fetches.inc();
            ask.document(&state.with(|r, now| r.delta(now)), true)
        }
        Route::Vip(vip) => ask.document(&state.with(|r, _| r.by_vip(&vip, false)), true),
        Route::SecureVip(vip) => ask.document(&state.with(|r, _| r.by_vip(&vip, true)), true),
        Route::App(app) => match state.with(|r, _| r.application(&app)) {
            Some(doc) => ask.document(&doc, true),
            None => not_registered(&app, None),
        },
        Route::Instance(app, id) => match state.with(|r, _| r.instance(&app, &id)) {
            Some(doc) => ask.document(&doc, false),
            None => not_registered(&app, Some(&id)),
        },
        Route::InstanceById(id) => match state.with(|r, _| r.instance_by_id(&id)) {
            Some(doc) => ask.document(&doc, false),
            None => text(
                StatusCode::NOT_FOUND,
                format!("no instance {id} is registered\n"),
            ),
        },
        Route::Changes => changes(state, q, ask).await,
    }
}

fn not_registered(app: &str, id: Option<&str>) -> Reply {
    let what = match id {
        Some(id) => format!("{app}/{id}"),
        None => app.to_string(),
    };
    text(StatusCode::NOT_FOUND, format!("{what} is not registered\n"))
}

fn bad_request(reason: impl std::fmt::Display) -> Reply {
    text(StatusCode::BAD_REQUEST, format!("{reason}\n"))
}

/// `None` when allowed; else the 401 to send.
/// Compares a credential in constant time (for its length), so that the
/// time of a refusal says nothing about how much of a guess was right.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn check_auth(state: &State, headers: &HeaderMap) -> Option<Reply> {
    let auth = state.config.auth.as_ref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        });
    let expected = format!("{}:{}", auth.user, auth.password);
    if given.is_some_and(|g| same_secret(&g, expected.as_bytes())) {
        return None;
    }
    let mut resp = text(
        StatusCode::UNAUTHORIZED,
        "this registry needs HTTP basic auth\n",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"lameduck registry\""),
    );
    Some(resp)
}

async fn register(state: &State, app: &str, req: Request<Incoming>) -> Reply {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("could not read the body (at most {MAX_BODY} bytes): {e}\n"),
            )
        }
    };
    let instance = match read_instance(content_type.as_deref(), &body) {
        Ok(i) => i,
        Err(e) => return bad_request(e),
    };
    let id = instance.id.clone();
    match state.with(|r, now| r.register(app, instance, now)) {
        Ok(()) => {
            state.counters.registrations.inc();
            tracing::info!(app, id, "registered");
            empty(StatusCode::NO_CONTENT)
        }
        Err(e) => bad_request(e),
    }
}

fn read_instance(content_type: Option<&str>, body: &[u8]) -> Result<Instance, BadInput> {
    let format = Format::of_body(content_type, body);
    let tree = wire::decode(body, format)?;
    Instance::from_body(&tree)
}

fn renew(state: &State, app: &str, id: &str, q: Option<&str>) -> Reply {
    let dirty = match optional_millis(q, "lastDirtyTimestamp") {
        Ok(d) => d,
        Err(reason) => return bad_request(reason),
    };
    state.counters.renewals.inc();
    let reason = match state.with(|r, now| r.renew(app, id, dirty, now)) {
        Renewal::Renewed => return empty(StatusCode::OK),
        Renewal::NotFound => "not registered: register again",
        Renewal::StatusUnknown => "status is UNKNOWN: register again",
        Renewal::ClientNewer => "your lastDirtyTimestamp is newer than ours: register again",
    };
    state.counters.renewals_not_found.inc();
    text(StatusCode::NOT_FOUND, format!("{app}/{id} {reason}\n"))
}

fn optional_millis(q: Option<&str>, key: &str) -> Result<Option<Millis>, String> {
    match query_get(q, key) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{key}={v}: expected milliseconds since the epoch")),
    }
}

fn cancel(state: &State, app: &str, id: &str) -> Reply {
    if state.with(|r, now| r.cancel(app, id, now)) {
        state.counters.cancels.inc();
        tracing::info!(app, id, "cancelled");
        empty(StatusCode::OK)
    } else {
        not_registered(app, Some(id))
    }
}

fn set_status(state: &State, app: &str, id: &str, q: Option<&str>) -> Reply {
    let status = match query_get(q, "value").map(|v| Status::parse(&v)) {
        Some(Ok(s)) => s,
        Some(Err(e)) => return bad_request(e),
        None => return bad_request("missing ?value=STATUS (UP, DOWN, OUT_OF_SERVICE, …)"),
    };
    if state.with(|r, now| r.set_status(app, id, status, now)) {
        tracing::info!(app, id, %status, "status override set");
        empty(StatusCode::OK)
    } else {
        not_registered(app, Some(id))
    }
}

fn delete_status(state: &State, app: &str, id: &str, q: Option<&str>) -> Reply {
    let status = match query_get(q, "value").filter(|v| !v.is_empty()) {
        None => Status::Unknown,
        Some(v) => match Status::parse(&v) {
            Ok(s) => s,
            Err(e) => return bad_request(e),
        },
    };
    if state.with(|r, now| r.delete_override(app, id, status, now)) {
        tracing::info!(app, id, %status, "status override removed");
        empty(StatusCode::OK)
    } else {
        not_registered(app, Some(id))
    }
}

fn metadata(state: &State, app: &str, id: &str, q: Option<&str>) -> Reply {
    let pairs = query_pairs(q);
    if pairs.is_empty() {
        return bad_request("missing metadata: use ?key=value&…");
    }
    if state.with(|r, now| r.update_metadata(app, id, &pairs, now)) {
        empty(StatusCode::OK)
    } else {
        not_registered(app, Some(id))
    }
}

/// lameduck's change feed: `GET …/lameduck/changes?after=V[&wait=SECONDS]`.
///
/// Answers at once with the changes after version `V` (a delta document whose
/// `versions__delta` is the version to ask from next), or waits up to `wait`
/// (capped by the server's `max_wait`) for one; an empty delta when none came.
/// 410 Gone when `V` is older than the delta window or from an earlier run of
/// the registry: fetch `/apps` again.
async fn changes(state: &State, q: Option<&str>, ask: Ask) -> Reply {
    let after = match query_get(q, "after").map(|v| v.parse::<u64>()) {
        Some(Ok(v)) => v,
        _ => {
            return bad_request(
                "the change feed needs ?after=VERSION: the versions__delta of your last \
                 full fetch or change",
            )
        }
    };
    let wait = match query_get(q, "wait").map(|v| v.parse::<f64>()) {
        None => state.config.max_wait,
        // Too large for a Duration (1e300) is longer than max_wait anyway.
        Some(Ok(s)) if s >= 0.0 && s.is_finite() => Duration::try_from_secs_f64(s)
            .unwrap_or(state.config.max_wait)
            .min(state.config.max_wait),
        Some(_) => return bad_request("wait: expected seconds, such as 30 or 0.5"),
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut version = state.version.subscribe();
    let mut phase = state.phase.clone();
    let _waiting = Held::up(&state.counters.feed_waiters);
    loop {
        let doc = match state.with(|r, now| r.changes_since(after, now)) {
            ChangesSince::Gone => {
                return text(
                    StatusCode::GONE,
                    format!("version {after} is older than the change window: fetch /apps again\n"),
                )
            }
            ChangesSince::Changes(doc) => doc,
        };
        let has_changes = doc["applications"]["application"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if has_changes || state.draining() || tokio::time::Instant::now() >= deadline {
            return ask.document(&doc, true);
        }
        tokio::select! {
            _ = version.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = until_lame_duck(&mut phase) => {}
        }
    }
}

/// Returns when the lame-duck phase (or a later one) comes; never if the
/// sender is gone.
async fn until_lame_duck(phase: &mut Shutdown) {
    if phase.wait_for(|p| *p >= Phase::LameDuck).await.is_err() {
        std::future::pending::<()>().await;
    }
}
