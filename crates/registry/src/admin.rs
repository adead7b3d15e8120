//! The registry's probe listener (`--admin`): `/healthz`, `/readyz` and
//! Prometheus `/metrics`, served by [`lameduck_admin`].
//!
//! Kept apart from the API port so probes and scrapes never need the API's
//! basic auth, and so the kubelet can tell a draining registry (readiness 503
//! from the lame-duck phase on) from a dead one (liveness stays 200 until exit).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use lameduck_admin::{collect, Metrics, Options, Role, Routes};
use lameduck_drain::BoxFuture;
use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use tokio::net::TcpListener;

use crate::state::State;

/// What the registry's probe listener serves.
#[derive(Debug)]
struct Probes {
    state: Arc<State>,
    metrics: Metrics,
}

impl Routes for Probes {
    fn ready(&self) -> BoxFuture<'_, Result<(), lameduck_admin::NotReady>> {
        let phase = *self.state.phase.borrow();
        Box::pin(async move { lameduck_admin::ready_unless_draining(phase) })
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}

/// Serves the probes until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) {
    let mut metrics = Metrics::new("registry");
    state.counters.register(metrics.registry());
    let for_drain = Arc::clone(&state);
    metrics.register_drain(move || for_drain.drain_status());
    metrics
        .registry()
        .register_collector(Box::new(RegistryStats(Arc::clone(&state))));
    let options = Options {
        role: Role::Probe,
        part: "registry",
        header_read_timeout: state.config.header_read_timeout,
        not_found: "the Eureka API is on --listen",
        token_from: "",
    };
    let probes = Arc::new(Probes { state, metrics });
    lameduck_admin::serve(listener, options, probes, shutdown).await;
}

/// The registry's own numbers, read at each scrape.
#[derive(Debug)]
struct RegistryStats(Arc<State>);

impl Collector for RegistryStats {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let s = self.0.with(|r, now| r.stats(now));
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (name, help, value) in [
            ("instances", "Registered instances", s.instances),
            ("applications", "Registered applications", s.applications),
            (
                "renews_last_minute",
                "Renewals in the last full minute",
                s.renews_last_min,
            ),
            (
                "self_preservation_threshold",
                "Renewals a minute needed for eviction",
                s.threshold,
            ),
            (
                "self_preservation_active",
                "1 while self-preservation stops eviction",
                u64::from(s.self_preservation_active),
            ),
            (
                "version",
                "Sequence number of the latest change (versions__delta)",
                s.version,
            ),
        ] {
            collect::gauge(&mut enc, name, help, count(value))?;
        }
        Ok(())
    }
}
