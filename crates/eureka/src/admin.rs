//! The admin address: `/healthz`, `/readyz` and Prometheus `/metrics`.
//!
//! Kept apart from the API port so probes and scrapes never need the API's
//! basic auth, and so the kubelet can tell a draining registry (readiness 503
//! from the lame-duck phase on) from a dead one (liveness stays 200 until exit).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper::{body::Incoming, header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use lameduck_drain::Phase;
use tokio::net::TcpListener;

use crate::server::{text, Reply, State};

/// Serves the admin endpoints until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(&req, &state)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(req: &Request<Incoming>, state: &State) -> Reply {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let phase = *state.phase.borrow();
            if phase >= Phase::LameDuck {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("draining ({phase})\n"),
                )
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        "/metrics" => {
            let mut resp = text(StatusCode::OK, metrics(state));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /readyz, /healthz or /metrics\n",
        ),
    }
}

fn metrics(state: &State) -> String {
    let stats = state.with(|r, now| r.stats(now));
    let c = &state.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let rows: [(&str, &str, &str, u64); 12] = [
        (
            "instances",
            "gauge",
            "Registered instances.",
            stats.instances,
        ),
        (
            "applications",
            "gauge",
            "Registered applications.",
            stats.applications,
        ),
        (
            "renews_last_minute",
            "gauge",
            "Renewals in the last full minute.",
            stats.renews_last_min,
        ),
        (
            "self_preservation_threshold",
            "gauge",
            "Renewals per minute needed for eviction to run.",
            stats.threshold,
        ),
        (
            "self_preservation_active",
            "gauge",
            "1 while self-preservation stops eviction.",
            stats.self_preservation_active as u64,
        ),
        (
            "version",
            "gauge",
            "Sequence number of the latest change (versions__delta).",
            stats.version,
        ),
        (
            "registrations_total",
            "counter",
            "Registrations accepted.",
            load(&c.registrations),
        ),
        (
            "renewals_total",
            "counter",
            "Renewal requests.",
            load(&c.renewals),
        ),
        (
            "renewals_not_found_total",
            "counter",
            "Renewals answered 404 (the client re-registers).",
            load(&c.renewals_not_found),
        ),
        (
            "cancels_total",
            "counter",
            "Cancellations.",
            load(&c.cancels),
        ),
        (
            "evictions_total",
            "counter",
            "Instances evicted for an expired lease.",
            load(&c.evictions),
        ),
        (
            "bad_requests_total",
            "counter",
            "Requests refused with 400.",
            load(&c.bad_requests),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        let _ = writeln!(out, "# HELP lameduck_registry_{name} {help}");
        let _ = writeln!(out, "# TYPE lameduck_registry_{name} {kind}");
        let _ = writeln!(out, "lameduck_registry_{name} {value}");
    }
    out
}
