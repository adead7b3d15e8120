//! The admin address: `/healthz`, `/readyz` and Prometheus `/metrics`.
//!
//! Kept apart from the API port so probes and scrapes never need the API's
//! basic auth, and so the kubelet can tell a draining registry (readiness 503
//! from the lame-duck phase on) from a dead one (liveness stays 200 until exit).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::{body::Incoming, header, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use lameduck_drain::Phase;
use tokio::net::TcpListener;

use crate::server::{text, Reply, State};

/// Serves the admin endpoints until the task is dropped.
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
        let timeout = state.config.header_read_timeout;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(&req, &state)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
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

/// One metric: name (after `lameduck_registry_`), type, help, value.
type Metric = (&'static str, &'static str, &'static str, u64);

fn metrics(state: &State) -> String {
    let mut out = String::new();
    for (name, kind, help, value) in gauges(state).into_iter().chain(counters(state)) {
        let _ = writeln!(out, "# HELP lameduck_registry_{name} {help}");
        let _ = writeln!(out, "# TYPE lameduck_registry_{name} {kind}");
        let _ = writeln!(out, "lameduck_registry_{name} {value}");
    }
    out
}

fn gauges(state: &State) -> Vec<Metric> {
    let s = state.with(|r, now| r.stats(now));
    let c = &state.counters;
    let g = |name, help, value| (name, "gauge", help, value);
    vec![
        g("instances", "Registered instances.", s.instances),
        g("applications", "Registered applications.", s.applications),
        g(
            "renews_last_minute",
            "Renewals in the last full minute.",
            s.renews_last_min,
        ),
        g(
            "self_preservation_threshold",
            "Renewals a minute needed for eviction.",
            s.threshold,
        ),
        g(
            "self_preservation_active",
            "1 while self-preservation stops eviction.",
            s.self_preservation_active as u64,
        ),
        g(
            "version",
            "Sequence number of the latest change (versions__delta).",
            s.version,
        ),
        g(
            "open_connections",
            "API connections being served.",
            load(&c.open_connections),
        ),
        g(
            "requests_in_flight",
            "API requests being handled.",
            load(&c.requests_in_flight),
        ),
        g(
            "feed_waiters",
            "Change-feed requests waiting for a change.",
            load(&c.feed_waiters),
        ),
    ]
}

fn counters(state: &State) -> Vec<Metric> {
    let c = &state.counters;
    let t = |name, help, value| (name, "counter", help, value);
    vec![
        t(
            "registrations_total",
            "Registrations accepted.",
            load(&c.registrations),
        ),
        t("renewals_total", "Renewal requests.", load(&c.renewals)),
        t(
            "renewals_not_found_total",
            "Renewals answered 404 (the client registers again).",
            load(&c.renewals_not_found),
        ),
        t("cancels_total", "Cancellations.", load(&c.cancels)),
        t(
            "evictions_total",
            "Instances evicted for an expired lease.",
            load(&c.evictions),
        ),
        t(
            "eviction_passes_total",
            "Eviction passes run.",
            load(&c.eviction_passes),
        ),
        t(
            "full_fetches_total",
            "GET /apps requests.",
            load(&c.full_fetches),
        ),
        t(
            "delta_fetches_total",
            "GET /apps/delta requests.",
            load(&c.delta_fetches),
        ),
        t(
            "bad_requests_total",
            "Requests refused with 400.",
            load(&c.bad_requests),
        ),
    ]
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
