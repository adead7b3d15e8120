//! What a run found, in a form for people (the summary printed on stdout) and
//! for machines (`--json`). The report is built once, at the end, and checks
//! the accounting invariant: outcomes counted = requests started.

use std::{collections::BTreeMap, fmt::Write as _, path::Path, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{record::Bucket, Config, Error, OutcomeCounts, Thresholds};

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Totals over the whole run.
    pub summary: Summary,
    /// One entry per bucket (`--bucket`, default 1 s), from the start.
    pub timeline: Vec<TimelineBucket>,
    /// The `--during` command's start and end, and marks, in time order.
    pub events: Vec<Event>,
    /// Whether the run passes its thresholds.
    pub verdict: Verdict,
}

/// Totals over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The URLs loaded.
    pub urls: Vec<String>,
    /// `closed` (each connection sends when its last request ended) or `open` (`--rate`).
    pub mode: &'static str,
    /// Concurrent connections.
    pub connections: usize,
    /// Requests per second asked for (open loop).
    pub rate: Option<f64>,
    /// Seconds from the first request to the last outcome.
    pub elapsed_s: f64,
    /// Width of one timeline bucket, seconds.
    pub bucket_s: f64,
    /// Requests started; always equal to the sum of `outcomes`.
    pub requests: u64,
    /// Requests that did not end in `success`.
    pub failures: u64,
    /// Requests ended per second.
    pub throughput_rps: f64,
    /// Outcome name → count (only outcomes that happened).
    pub outcomes: BTreeMap<String, u64>,
    /// With more than one URL: URL → outcome name → count.
    pub per_url: BTreeMap<String, BTreeMap<String, u64>>,
    /// With `--retry-unprocessed`: attempts that ended unprocessed and were sent
    /// again, by outcome (not requests: one request may be retried several times).
    pub retried: BTreeMap<String, u64>,
    /// With `--retry-unprocessed`: requests that succeeded thanks to a retry.
    pub saved_by_retry: u64,
    /// With `--ws`: exchanges cut by a clean close (1000/1001) and sent again on
    /// a new connection (not losses).
    pub ws_clean_closes: u64,
    /// Open loop (`--rate`): requests sent more than 1 ms after their intended
    /// time because every connection was busy; their latency includes the wait.
    /// A large count means `-c` is too small for the rate (or the server stalls).
    pub sent_late: u64,
    /// Latency of responses (success and unexpected status), in microseconds.
    pub latency: Latency,
}

/// Latency percentiles in microseconds; `None` when no response arrived.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Responses measured.
    pub count: u64,
    pub min_us: Option<u64>,
    pub mean_us: Option<u64>,
    pub p50_us: Option<u64>,
    pub p90_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
    pub max_us: Option<u64>,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            min_us: Some(h.min()),
            mean_us: Some(h.mean().round() as u64),
            p50_us: Some(h.value_at_quantile(0.50)),
            p90_us: Some(h.value_at_quantile(0.90)),
            p99_us: Some(h.value_at_quantile(0.99)),
            p999_us: Some(h.value_at_quantile(0.999)),
            max_us: Some(h.max()),
        }
    }
}

/// One time slice of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineBucket {
    /// Start of the bucket, seconds since the run started.
    pub start_s: f64,
    /// Requests that ended in this bucket.
    pub requests: u64,
    /// Of which failed.
    pub failures: u64,
    /// Outcome name → count, for requests that ended in this bucket.
    pub outcomes: BTreeMap<String, u64>,
    /// Median latency of responses that ended in this bucket, microseconds.
    pub p50_us: Option<u64>,
    /// 99th percentile latency of responses that ended in this bucket, microseconds.
    pub p99_us: Option<u64>,
}

/// Something that happened during the run, to line up with the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since the run started.
    pub at_s: f64,
    /// `during_start`, `during_end` or `mark`.
    pub kind: &'static str,
    /// The command, its exit status, or the mark's name.
    pub label: String,
}

/// Whether the run passes, and if not, why.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `true` when every threshold holds.
    pub pass: bool,
    /// One sentence per threshold that failed.
    pub reasons: Vec<String>,
}

/// The raw material of a report, gathered by [`crate::run`].
#[derive(Debug)]
pub(crate) struct Gathered {
    pub(crate) started: u64,
    pub(crate) elapsed: Duration,
    pub(crate) counts: OutcomeCounts,
    pub(crate) retried: OutcomeCounts,
    pub(crate) per_target: Vec<OutcomeCounts>,
    pub(crate) saved: u64,
    pub(crate) ws_clean_closes: u64,
    pub(crate) sent_late: u64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) buckets: Vec<Bucket>,
    pub(crate) events: Vec<Event>,
    /// Reasons to fail found while running (e.g. the `--during` command failed).
    pub(crate) problems: Vec<String>,
}

impl Report {
    pub(crate) fn build(config: &Config, g: Gathered) -> Result<Report, Error> {
        let ended = g.counts.total();
        if ended != g.started {
            return Err(Error::Accounting {
                started: g.started,
                ended,
            });
        }
        let elapsed_s = g.elapsed.as_secs_f64();
        let summary = Summary {
            urls: config.targets.iter().map(|t| t.url.clone()).collect(),
            mode: if config.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            connections: config.connections,
            rate: config.rate,
            elapsed_s,
            bucket_s: config.bucket.as_secs_f64(),
            requests: g.started,
            failures: g.counts.failures(),
            throughput_rps: if elapsed_s > 0.0 {
                ended as f64 / elapsed_s
            } else {
                0.0
            },
            outcomes: g.counts.to_map(),
            per_url: per_url(config, &g.per_target),
            retried: g.retried.to_map(),
            saved_by_retry: g.saved,
            ws_clean_closes: g.ws_clean_closes,
            sent_late: g.sent_late,
            latency: Latency::of(&g.latency),
        };
        let width = config.bucket.as_secs_f64();
        let timeline = g
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| bucket(i, width, b))
            .collect();
        let verdict = verdict(&summary, &config.thresholds, g.problems);
        Ok(Report {
            summary,
            timeline,
            events: g.events,
            verdict,
        })
    }

    /// Writes the whole report as pretty JSON to `path`.
    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        let write_err = |source| Error::WriteReport {
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| write_err(e.into()))?;
        std::fs::write(path, json).map_err(write_err)
    }

    /// Writes the report as one self-contained HTML page to `path`.
    pub fn write_html(&self, path: &Path) -> Result<(), Error> {
        std::fs::write(path, self.to_html()).map_err(|source| Error::WriteReport {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The report as one self-contained HTML page (inline SVG, no script).
    pub fn to_html(&self) -> String {
        crate::html::render(self)
    }

    /// The summary for a terminal: throughput, latency, outcome table, verdict.
    pub fn to_text(&self) -> String {
        let s = &self.summary;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} requests in {:.2}s, {:.1} req/s, {} failed ({} connections, {} loop)",
            s.requests, s.elapsed_s, s.throughput_rps, s.failures, s.connections, s.mode
        );
        let l = &s.latency;
        let _ = writeln!(
            out,
            "latency  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} responses)",
            us(l.p50_us),
            us(l.p90_us),
            us(l.p99_us),
            us(l.p999_us),
            us(l.max_us),
            l.count
        );
        let _ = writeln!(out, "{:<26} {:>12} {:>8}", "outcome", "count", "%");
        for (name, count) in table_order(&s.outcomes) {
            let pct = 100.0 * count as f64 / s.requests.max(1) as f64;
            let _ = writeln!(out, "{name:<26} {count:>12} {pct:>8.3}");
        }
        for (url, outcomes) in &s.per_url {
            let failed: u64 = outcomes
                .iter()
                .filter(|(n, _)| *n != "success")
                .map(|(_, c)| c)
                .sum();
            let total: u64 = outcomes.values().sum();
            let _ = writeln!(out, "{url}: {total} requests, {failed} failed");
        }
        if !s.retried.is_empty() {
            let list: Vec<_> = s.retried.iter().map(|(n, c)| format!("{n} {c}")).collect();
            let _ = writeln!(
                out,
                "retried (never processed): {}; saved by a retry: {} requests",
                list.join(", "),
                s.saved_by_retry
            );
        }
        if s.sent_late > 0 {
            let _ = writeln!(
                out,
                "sent late (no free connection when due; latency counts the wait): {}",
                s.sent_late
            );
        }
        if s.ws_clean_closes > 0 {
            let _ = writeln!(
                out,
                "WebSocket clean closes (1000/1001), message sent again: {}",
                s.ws_clean_closes
            );
        }
        for e in &self.events {
            let _ = writeln!(out, "event at {:>8.3}s  {:<12} {}", e.at_s, e.kind, e.label);
        }
        match self.verdict.pass {
            true => out.push_str("PASS\n"),
            false => {
                for r in &self.verdict.reasons {
                    let _ = writeln!(out, "FAIL: {r}");
                }
            }
        }
        out
    }
}

/// Outcomes per URL, when there is more than one URL.
fn per_url(
    config: &Config,
    per_target: &[OutcomeCounts],
) -> BTreeMap<String, BTreeMap<String, u64>> {
    if config.targets.len() < 2 {
        return BTreeMap::new();
    }
    let mut map: BTreeMap<String, OutcomeCounts> = BTreeMap::new();
    for (target, counts) in config.targets.iter().zip(per_target) {
        map.entry(target.url.clone()).or_default().merge(counts);
    }
    map.into_iter()
        .map(|(url, counts)| (url, counts.to_map()))
        .collect()
}

/// Success first, then the failures by count (largest first).
fn table_order(outcomes: &BTreeMap<String, u64>) -> Vec<(&str, u64)> {
    let mut rows: Vec<_> = outcomes.iter().map(|(n, &c)| (n.as_str(), c)).collect();
    rows.sort_by_key(|&(name, count)| (name != "success", std::cmp::Reverse(count)));
    rows
}

fn bucket(index: usize, width_s: f64, b: &Bucket) -> TimelineBucket {
    let quantile = |q| (!b.latency.is_empty()).then(|| b.latency.value_at_quantile(q));
    TimelineBucket {
        start_s: index as f64 * width_s,
        requests: b.counts.total(),
        failures: b.counts.failures(),
        outcomes: b.counts.to_map(),
        p50_us: quantile(0.5),
        p99_us: quantile(0.99),
    }
}

fn verdict(s: &Summary, t: &Thresholds, mut reasons: Vec<String>) -> Verdict {
    if s.requests == 0 {
        reasons.push("no request was sent".into());
    }
    if s.failures > t.max_failures {
        reasons.push(format!(
            "{} requests failed, more than --max-failures {}",
            s.failures, t.max_failures
        ));
    }
    if let (Some(max), Some(p99)) = (t.max_p99, s.latency.p99_us) {
        if u128::from(p99) > max.as_micros() {
            reasons.push(format!(
                "p99 latency {} is above --max-p99 {}",
                us(Some(p99)),
                us(Some(max.as_micros() as u64))
            ));
        }
    }
    Verdict {
        pass: reasons.is_empty(),
        reasons,
    }
}

/// Microseconds for a human: `850µs`, `12.3ms`, `1.52s`.
fn us(v: Option<u64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v < 1_000 => format!("{v}µs"),
        Some(v) if v < 1_000_000 => format!("{:.2}ms", v as f64 / 1e3),
        Some(v) => format!("{:.2}s", v as f64 / 1e6),
    }
}
