//! The one metrics renderer: a `prometheus-client` registry per part.
//!
//! Every name is `lameduck_<part>_<what>_<unit>` (the registry adds the
//! `lameduck_<part>_` prefix, and counters get their `_total` suffix from
//! the encoder), rendered in the Prometheus text format 0.0.4. Values that
//! a part already counts with its own atomics on a hot path (the proxy's
//! requests), or that are computed at scrape time (the registry's instance
//! count), are read by a collector ([`collect`]) instead of being copied
//! into a second counter. docs/metrics.md lists every metric.

use std::fmt::{self, Write as _};

use lameduck_drain::{Phase, Status};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The metrics of one part.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// An empty registry whose names start with `lameduck_<part>_`.
    pub fn new(part: &str) -> Metrics {
        Metrics {
            registry: Registry::with_prefix(format!("lameduck_{part}")),
        }
    }

    /// The registry, to register a part's own metrics and collectors.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Adds `drain_phase{phase}` (1 for the current phase) and
    /// `drain_budget_left_seconds` (−1 before the drain starts), read from
    /// the drain's status (`status()`, usually a watch channel's value)
    /// at each scrape.
    pub fn register_drain(&mut self, status: impl Fn() -> Status + Send + Sync + 'static) {
        self.registry
            .register_collector(Box::new(DrainCollector(Box::new(status))));
    }

    /// The Prometheus text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            // Only a collector's own failure can get here; say so in the text.
            let _ = writeln!(out, "# rendering stopped: {e}");
        }
        out
    }
}

/// Helpers for a collector: each writes one metric with its help text
/// (a full stop is added, as the registry does for registered metrics).
pub mod collect {
    use super::*;

    /// One counter; `name` without its `_total`.
    pub fn counter(
        enc: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: u64,
    ) -> fmt::Result {
        let help = format!("{help}.");
        let counter = ConstCounter::new(value);
        counter.encode(enc.encode_descriptor(name, &help, None, MetricType::Counter)?)
    }

    /// One gauge, whole (`i64`) or fractional (`f64`).
    pub fn gauge<N: EncodeGaugeValue>(
        enc: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: N,
    ) -> fmt::Result {
        let help = format!("{help}.");
        ConstGauge::new(value).encode(enc.encode_descriptor(
            name,
            &help,
            None,
            MetricType::Gauge,
        )?)
    }

    /// A counter with one series per label set.
    pub fn counters<L: EncodeLabelSet>(
        enc: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (L, u64)>,
    ) -> fmt::Result {
        let help = format!("{help}.");
        let mut metric = enc.encode_descriptor(name, &help, None, MetricType::Counter)?;
        for (labels, value) in series {
            ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// A gauge with one series per label set.
    pub fn gauges<L: EncodeLabelSet>(
        enc: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (L, i64)>,
    ) -> fmt::Result {
        let help = format!("{help}.");
        let mut metric = enc.encode_descriptor(name, &help, None, MetricType::Gauge)?;
        for (labels, value) in series {
            ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The drain's phase and budget, as every part shows them.
struct DrainCollector(Box<dyn Fn() -> Status + Send + Sync>);

impl std::fmt::Debug for DrainCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DrainCollector").field(&(self.0)()).finish()
    }
}

impl Collector for DrainCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let status = (self.0)();
        collect::gauges(
            &mut enc,
            "drain_phase",
            "1 for the current drain phase, 0 for the others",
            Phase::ALL
                .iter()
                .map(|p| ([("phase", p.name())], i64::from(*p == status.phase))),
        )?;
        let now = tokio::time::Instant::now().into_std();
        let left = status.budget.map_or(-1.0, |b| b.left(now).as_secs_f64());
        collect::gauge(
            &mut enc,
            "drain_budget_left_seconds",
            "Seconds until the terminate phase; -1 before the drain starts",
            left,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lameduck_drain::{Budget, Timing};
    use prometheus_client::metrics::counter::Counter;
    use tokio::sync::watch;

    use super::*;

    #[test]
    fn names_carry_the_part_and_counters_their_total() {
        let mut m = Metrics::new("test");
        let c: Counter = Counter::default();
        m.registry().register("widgets", "Widgets made", c.clone());
        c.inc_by(3);
        let text = m.render();
        assert!(
            text.contains("# TYPE lameduck_test_widgets_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP lameduck_test_widgets_total Widgets made.\n"),
            "{text}"
        );
        assert!(text.contains("\nlameduck_test_widgets_total 3\n"), "{text}");
    }

    #[test]
    fn the_drain_shows_its_phase_and_budget() {
        let timing = Timing {
            grace: Duration::from_secs(30),
            margin: Duration::from_secs(2),
            stop_reserve: Duration::from_secs(5),
        };
        let (tx, rx) = watch::channel(Status::default());
        let mut m = Metrics::new("test");
        m.register_drain(move || *rx.borrow());
        let before = m.render();
        assert!(
            before.contains("lameduck_test_drain_phase{phase=\"serving\"} 1\n"),
            "{before}"
        );
        assert!(
            before.contains("lameduck_test_drain_phase{phase=\"drain\"} 0\n"),
            "{before}"
        );
        assert!(
            before.contains("lameduck_test_drain_budget_left_seconds -1.0\n"),
            "{before}"
        );
        tx.send_replace(Status {
            phase: Phase::Drain,
            lame_duck_done: true,
            budget: Some(Budget::start(timing, std::time::Instant::now())),
        });
        let after = m.render();
        assert!(
            after.contains("lameduck_test_drain_phase{phase=\"drain\"} 1\n"),
            "{after}"
        );
        assert!(
            after.contains("lameduck_test_drain_phase{phase=\"serving\"} 0\n"),
            "{after}"
        );
        let left: f64 = after
            .lines()
            .find_map(|l| l.strip_prefix("lameduck_test_drain_budget_left_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((27.0..=28.0).contains(&left), "{left}");
    }
}
