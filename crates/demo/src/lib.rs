//! `lameduck demo`: the same rolling update of the same sample app, done the
//! way most teams first do it, with the classic `preStop: sleep` fix, and with
//! lameduck — side by side, with every request accounted for.
//!
//! Each scenario is a Deployment manifest kept in `manifests/` (embedded
//! here, printed by `--print-manifests`), played by the rollout engine with
//! HTTP/1.1, HTTP/2, WebSocket and gRPC traffic at once. The scenarios run at
//! the same time, so the whole demo takes as long as its slowest scenario.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use lameduck_drain::Sig;
use lameduck_rollout::{Config, Protocol, Rate, RegistryMode, Report};
use serde::Serialize;

/// A scenario of the demo.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Short name (the Deployment's name).
    pub name: &'static str,
    /// What it stands for, in a few words.
    pub title: &'static str,
    /// The manifest, as a user would write it.
    pub manifest: &'static str,
    /// Registry mode (pods register in Eureka, the router discovers them
    /// there) rather than endpoints mode.
    pub registry: bool,
}

/// Every scenario, in the order the table shows them.
pub const SCENARIOS: [Scenario; 6] = [
    Scenario {
        name: "naive",
        title: "app as PID 1, exits on SIGTERM, no preStop",
        manifest: include_str!("../manifests/naive.yaml"),
        registry: false,
    },
    Scenario {
        name: "shell-pid1",
        title: "sh -c as PID 1: SIGTERM never reaches the app",
        manifest: include_str!("../manifests/shell-pid1.yaml"),
        registry: false,
    },
    Scenario {
        name: "classic",
        title: "classic fix: preStop sleep 20, grace 45 s",
        manifest: include_str!("../manifests/classic.yaml"),
        registry: false,
    },
    Scenario {
        name: "lameduck",
        title: "lameduck run: lame duck until quiet, then drain",
        manifest: include_str!("../manifests/lameduck.yaml"),
        registry: false,
    },
    Scenario {
        name: "eureka-naive",
        title: "Eureka: app cancels and exits at once on SIGTERM",
        manifest: include_str!("../manifests/eureka-naive.yaml"),
        registry: true,
    },
    Scenario {
        name: "eureka-lameduck",
        title: "Eureka: lameduck run marks DOWN, waits, drains",
        manifest: include_str!("../manifests/eureka-lameduck.yaml"),
        registry: true,
    },
];

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct Options {
    /// Every manifest duration is multiplied by this.
    pub time_scale: f64,
    /// Requests per second per protocol and scenario.
    pub rate: f64,
    /// Where the pods' logs go.
    pub out_dir: PathBuf,
    /// The directory of the `lameduck` binary the pods run.
    pub bin_dir: Option<PathBuf>,
    /// Seeds the propagation lags.
    pub seed: u64,
    /// Only these scenarios (all if empty).
    pub only: Vec<String>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("scenario {name}: {source}")]
    Scenario {
        name: &'static str,
        source: lameduck_rollout::Error,
    },
    #[error("a scenario's run ended abnormally: {0}")]
    Task(String),
    #[error("no scenario is named {0:?} (there are: naive, shell-pid1, classic, lameduck, eureka-naive, eureka-lameduck)")]
    NoSuchScenario(String),
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: Scenario,
    pub report: Report,
}

/// The JSON the demo writes with `--json`.
#[derive(Debug, Serialize)]
pub struct Json {
    pub scenarios: Vec<JsonRow>,
}

/// One scenario and protocol.
#[derive(Debug, Serialize)]
pub struct JsonRow {
    pub name: String,
    pub mode: &'static str,
    pub protocol: String,
    pub requests: u64,
    pub failed: u64,
    pub failed_by_outcome: BTreeMap<String, u64>,
    /// WebSocket: connections the server closed cleanly (1000/1001), after
    /// which the client reconnected.
    pub ws_clean_closes: u64,
    pub rollout_seconds: Option<f64>,
}

/// Runs the chosen scenarios at the same time.
pub async fn run(opts: &Options) -> Result<Vec<Outcome>, Error> {
    let chosen = choose(&opts.only)?;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in chosen.iter().copied().enumerate() {
        let config = config(s, opts, i as u64)?;
        tasks.spawn(async move { (i, s, lameduck_rollout::run(config).await) });
    }
    // Each scenario is logged as it ends; the table keeps the scenarios' order.
    let mut out: Vec<Option<Outcome>> = chosen.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, scenario, result) = joined.map_err(|e| Error::Task(e.to_string()))?;
        let report = result.map_err(|source| Error::Scenario {
            name: scenario.name,
            source,
        })?;
        let roll = report
            .rollout_seconds
            .map_or("did not finish".into(), |s| format!("{s:.1} s"));
        tracing::info!(
            "{} done: rollout {roll}, {} requests, {} lost",
            scenario.name,
            report.requests(),
            report.failed()
        );
        out[i] = Some(Outcome { scenario, report });
    }
    Ok(out.into_iter().flatten().collect())
}

fn choose(only: &[String]) -> Result<Vec<Scenario>, Error> {
    if only.is_empty() {
        return Ok(SCENARIOS.to_vec());
    }
    only.iter()
        .map(|n| {
            SCENARIOS
                .iter()
                .find(|s| s.name == n)
                .copied()
                .ok_or_else(|| Error::NoSuchScenario(n.clone()))
        })
        .collect()
}

fn config(s: Scenario, opts: &Options, i: u64) -> Result<Config, Error> {
    let path = format!("manifests/{}.yaml", s.name);
    let deployment =
        lameduck_rollout::manifest::parse(&path, s.manifest).map_err(|e| Error::Scenario {
            name: s.name,
            source: e.into(),
        })?;
    Ok(Config {
        manifest_path: path,
        deployment,
        command: None,
        stop_signal: Sig::TERM,
        time_scale: opts.time_scale,
        lag: (Duration::from_secs(1), Duration::from_secs(3)),
        pid_namespaces: true,
        out_dir: opts.out_dir.join(s.name),
        bin_dir: opts.bin_dir.clone(),
        ingress: SocketAddr::from(([127, 0, 0, 1], 0)),
        protocols: Protocol::ALL.to_vec(),
        rate: Rate {
            per_second: opts.rate,
            ws_connections: 6,
        },
        warmup: Duration::from_secs(2),
        cooldown: Duration::from_secs(2),
        seed: opts.seed.wrapping_add(i),
        deadline: Duration::from_secs(120),
        log_events: false,
        registry: s.registry.then(|| RegistryMode {
            app: s.name.to_string(),
            cache: None,
        }),
    })
}

/// The side-by-side table.
pub fn table(outcomes: &[Outcome]) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n{:<15} {:<48} {:<6} {:>8} {:>6}  {:>8}  lost by outcome",
        "scenario", "", "proto", "requests", "lost", "rollout"
    );
    for o in outcomes {
        let r = &o.report;
        let roll = r
            .rollout_seconds
            .map_or("-".into(), |s| format!("{s:.1} s"));
        for (i, tr) in r.traffic.iter().enumerate() {
            let (name, title, roll) = if i == 0 {
                (o.scenario.name, o.scenario.title, roll.as_str())
            } else {
                ("", "", "")
            };
            let (req, lost, by) = match &tr.report {
                Some(rep) => (
                    rep.summary.requests.to_string(),
                    rep.summary.failures.to_string(),
                    lameduck_rollout::summary::outcomes(&rep.summary.outcomes),
                ),
                None => ("-".into(), "-".into(), tr.error.clone().unwrap_or_default()),
            };
            let _ = writeln!(
                t,
                "{name:<15} {title:<48} {:<6} {req:>8} {lost:>6}  {roll:>8}  {by}",
                tr.protocol.name()
            );
        }
        let verdict = if r.passed() {
            "lost nothing".to_string()
        } else {
            format!("LOST {} of {}", r.failed(), r.requests())
        };
        let _ = writeln!(
            t,
            "{:<15} {:<48} {:<6} {:>8} {:>6}  {:>8}  => {verdict}\n",
            "",
            "",
            "all",
            r.requests(),
            r.failed(),
            ""
        );
    }
    t
}

/// The JSON rows.
pub fn json(outcomes: &[Outcome]) -> Json {
    let mut scenarios = Vec::new();
    for o in outcomes {
        for tr in &o.report.traffic {
            let clean = tr.report.as_ref().map_or(0, |r| r.summary.ws_clean_closes);
            let (requests, failed, by) = match &tr.report {
                Some(rep) => (
                    rep.summary.requests,
                    rep.summary.failures,
                    rep.summary
                        .outcomes
                        .iter()
                        .filter(|(k, v)| k.as_str() != "success" && **v > 0)
                        .map(|(k, v)| (k.clone(), *v))
                        .collect(),
                ),
                None => (0, 0, BTreeMap::new()),
            };
            scenarios.push(JsonRow {
                name: o.scenario.name.to_string(),
                mode: if o.scenario.registry {
                    "registry"
                } else {
                    "endpoints"
                },
                protocol: tr.protocol.name().to_string(),
                requests,
                failed,
                failed_by_outcome: by,
                ws_clean_closes: clean,
                rollout_seconds: o.report.rollout_seconds,
            });
        }
    }
    Json { scenarios }
}

/// The HTML report of every scenario.
pub fn html(outcomes: &[Outcome]) -> String {
    let runs: Vec<(String, &Report)> = outcomes
        .iter()
        .map(|o| {
            (
                format!("{} — {}", o.scenario.name, o.scenario.title),
                &o.report,
            )
        })
        .collect();
    lameduck_rollout::html::page("lameduck demo: one rolling update, six ways", &runs)
}

/// Every manifest, for `--print-manifests`.
pub fn manifests() -> String {
    SCENARIOS
        .iter()
        .map(|s| format!("---\n{}", s.manifest))
        .collect()
}

/// Whether the demo showed what it exists to show: the naive scenarios lose
/// requests, the classic fix and lameduck lose none, and — with durations as
/// written (`time_scale` 1 or more) — the classic fix takes at least twice as
/// long as lameduck. A time scale below 1 shortens the preStop sleep but not
/// `lameduck run`'s own flags, so there the times are shown, not judged.
/// Checks the scenarios that ran.
pub fn verdict(outcomes: &[Outcome], time_scale: f64) -> Result<(), Unexpected> {
    let get = |n: &str| {
        outcomes
            .iter()
            .find(|o| o.scenario.name == n)
            .map(|o| &o.report)
    };
    let mut wrong = Vec::new();
    for n in ["naive", "shell-pid1", "eureka-naive"] {
        if let Some(r) = get(n) {
            if r.failed() == 0 {
                wrong.push(format!("{n} lost no request"));
            }
        }
    }
    for n in ["classic", "lameduck", "eureka-lameduck"] {
        if let Some(r) = get(n) {
            if !r.passed() {
                wrong.push(format!(
                    "{n} lost {} request(s) or did not finish",
                    r.failed()
                ));
            }
        }
    }
    if let (Some(c), Some(l), true) = (get("classic"), get("lameduck"), time_scale >= 1.0) {
        if let (Some(c), Some(l)) = (c.rollout_seconds, l.rollout_seconds) {
            if c < 2.0 * l {
                wrong.push(format!(
                    "classic took {c:.1} s, less than twice lameduck's {l:.1} s"
                ));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(Unexpected(wrong))
    }
}

/// What the demo showed that it should not have, one line per point
/// (`verdict`).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Unexpected(pub Vec<String>);
