//! `lameduck rollout`: plays a Kubernetes Deployment's rolling update on this
//! machine, with real processes, under load, and accounts for every request.
//!
//! A run goes: start the router (`lameduck proxy`, in this process); start
//! the Deployment's pods (revision 1) and wait until all are available; start
//! the traffic; roll to revision 2 (the same template, as
//! `kubectl rollout restart` does); wait until every old pod has exited; let
//! the traffic run a little longer; stop it; report.
//!
//! - [`manifest`]: the Deployment, read from YAML;
//! - [`strategy`]: surge/unavailable arithmetic and the controller's steps;
//! - `pod`: containers as processes (PID namespaces where allowed), ports;
//! - `probe`: readiness probes and hook actions;
//! - `kubelet`: a pod's life: start, probe, preStop, stop signal, SIGKILL;
//! - `router`: the proxy and the endpoint feed with its propagation lag;
//! - `controller`: the Deployment and ReplicaSet controllers;
//! - `traffic`: the loads, one per protocol;
//! - [`timeline`]: every pod event on one clock.
//!
//! What is reproduced of Kubernetes and what is not: docs/rollout.md.

#[doc(hidden)]
pub mod fuzzing;
pub mod html;
pub mod manifest;
pub mod strategy;
pub mod summary;
pub mod timeline;

mod controller;
mod kubelet;
mod pod;
mod probe;
mod registry;
mod router;
mod traffic;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use lameduck_drain::Sig;
use serde::Serialize;
use tokio::{sync::mpsc, time::Instant};

pub use manifest::{Deployment, ManifestError};
pub use registry::RegistryMode;
pub use router::RouterError;
pub use strategy::Strategy;
pub use timeline::{Event, Kind};
pub use traffic::{Protocol, Rate};

use controller::{Controller, Done, PodFactory};
use kubelet::{ContainerSpec, Hook, PodEvent, PodHandle, PodStart, Stop};
use pod::PodEnv;
use probe::{Action, Readiness};
use registry::Registry;
use router::{Discover, Router};
use timeline::Timeline;

/// What to play.
#[derive(Debug, Clone)]
pub struct Config {
    /// The manifest's path (names it in errors and the report).
    pub manifest_path: String,
    pub deployment: Deployment,
    /// Replaces every container's command and args.
    pub command: Option<Vec<String>>,
    /// The image's STOPSIGNAL, for containers without `lifecycle.stopSignal`.
    pub stop_signal: Sig,
    /// Every duration of the manifest is multiplied by this (0.5: twice as fast).
    pub time_scale: f64,
    /// The spread of the endpoint propagation lag (drawn per change).
    pub lag: (Duration, Duration),
    /// Run containers in PID namespaces of their own where the machine allows.
    pub pid_namespaces: bool,
    /// Where pods' logs and sockets go.
    pub out_dir: PathBuf,
    /// Put first on the pods' `PATH` (the directory of this `lameduck`).
    pub bin_dir: Option<PathBuf>,
    /// Where the router listens (port 0: any free port).
    pub ingress: SocketAddr,
    /// The traffic to send; empty: none (the user's own tool drives it).
    pub protocols: Vec<Protocol>,
    pub rate: Rate,
    /// Traffic before the update starts and after the last old pod exited.
    pub warmup: Duration,
    pub cooldown: Duration,
    /// Seeds the propagation lags (the same seed plays the same lags).
    pub seed: u64,
    /// The longest the update may take before the run gives up.
    pub deadline: Duration,
    /// Log every pod event as it happens.
    pub log_events: bool,
    /// Registry mode: the router discovers the pods through a Eureka
    /// registry they register in; `None`: endpoints mode.
    pub registry: Option<RegistryMode>,
}

/// Why a run could not be played.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error("cannot create {path}: {source}")]
    OutDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the traffic could not start: {0}")]
    Load(#[from] lameduck_load::Error),
    #[error("the first {replicas} pod(s) did not all become available within {secs:.0} s; see the pods' logs under {logs}")]
    NotAvailable {
        replicas: u32,
        secs: f64,
        logs: PathBuf,
    },
    #[error("the registry could not start: {0}")]
    Registry(std::io::Error),
    #[error("{0}")]
    PodFailed(String),
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub manifest: String,
    pub deployment: String,
    pub replicas: u32,
    pub strategy: String,
    /// Whether containers ran in PID namespaces of their own.
    pub pid_namespaces: bool,
    /// Seconds from the start of the update to the last old pod's exit (the
    /// old version is gone), or `None` if the deadline came first.
    pub rollout_seconds: Option<f64>,
    /// Seconds from the start of the update to when `kubectl rollout status`
    /// would have returned (new pods available, old ReplicaSet at 0).
    pub complete_seconds: Option<f64>,
    /// When the update started, in seconds since the run started.
    pub rollout_started_s: f64,
    /// When the traffic started, in seconds since the run started.
    pub traffic_started_s: f64,
    /// One load report per protocol.
    pub traffic: Vec<Traffic>,
    pub events: Vec<Event>,
    pub warnings: Vec<String>,
}

/// One protocol's traffic.
#[derive(Debug, Clone, Serialize)]
pub struct Traffic {
    pub protocol: Protocol,
    pub report: Option<lameduck_load::Report>,
    pub error: Option<String>,
}

impl Report {
    /// The load reports that exist (one per protocol that ran).
    fn reports(&self) -> impl Iterator<Item = &lameduck_load::Report> {
        self.traffic.iter().filter_map(|t| t.report.as_ref())
    }

    /// Requests lost, all protocols together.
    pub fn failed(&self) -> u64 {
        self.reports().map(|r| r.summary.failures).sum()
    }

    /// Requests sent, all protocols together.
    pub fn requests(&self) -> u64 {
        self.reports().map(|r| r.summary.requests).sum()
    }

    /// Whether every request was accounted for and none was lost: every load
    /// ran, and the update finished.
    pub fn passed(&self) -> bool {
        self.failed() == 0
            && self.rollout_seconds.is_some()
            && self.traffic.iter().all(|t| t.report.is_some())
    }

    /// Failures by outcome, all protocols together.
    pub fn failed_by_outcome(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for r in self.reports() {
            for (k, v) in &r.summary.outcomes {
                if k != "success" && *v > 0 {
                    *out.entry(k.clone()).or_insert(0) += v;
                }
            }
        }
        out
    }
}

/// Plays the update described by `config`.
pub async fn run(config: Config) -> Result<Report, Error> {
    let timeline = Timeline::new(config.log_events);
    std::fs::create_dir_all(&config.out_dir).map_err(|source| Error::OutDir {
        path: config.out_dir.clone(),
        source,
    })?;
    let mut warnings = Vec::new();
    let namespaced = config.pid_namespaces && pod::pid_namespaces_available();
    if config.pid_namespaces && !namespaced {
        let w = "PID namespaces are not available here (needs root and unshare): containers run as plain \
                 processes, so a shell PID 1 dies of SIGTERM where in a pod it would ignore it";
        timeline.run(Kind::Warning, w);
        warnings.push(w.to_string());
    }
    let d = &config.deployment;
    let strategy = Strategy::of(&config.manifest_path, d)?;
    let registry = match &config.registry {
        Some(_) => Some(Registry::start().await.map_err(Error::Registry)?),
        None => None,
    };
    let discover = match (&config.registry, &registry) {
        (Some(mode), Some(r)) => {
            r.watch(&mode.app, revision_of, timeline.clone());
            Some(Discover {
                eureka: r.url.clone(),
                app: mode.app.clone(),
                cache: mode.cache.map(|c| c.mul_f64(config.time_scale)),
            })
        }
        _ => None,
    };
    let router = Router::start(
        config.ingress,
        scale_pair(config.lag, config.time_scale),
        config.seed,
        timeline.clone(),
        discover,
    )
    .await?;
    if config.log_events {
        tracing::info!(ingress = %router.ingress, "the router (lameduck proxy) listens: send traffic here");
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let min_ready = secs(d.spec.min_ready_seconds, config.time_scale);
    let mut controller = Controller::new(
        d.replicas(),
        strategy,
        min_ready,
        rx,
        router.clone(),
        timeline.clone(),
    );
    let mut factory = Factory {
        config: &config,
        eureka_url: registry.as_ref().map(|r| r.url.clone()),
        namespaced,
        timeline: timeline.clone(),
        events: tx,
        serial: 0,
    };
    let start_deadline = Instant::now() + Duration::from_secs(60).max(config.deadline / 2);
    let first = controller.start_first(&mut factory, start_deadline).await;
    if first != Done::Reached {
        controller
            .delete_all(Instant::now() + Duration::from_secs(10))
            .await;
        router.stop().await;
        if let Some(r) = &registry {
            r.stop();
        }
        return Err(match first {
            Done::Failed(why) => Error::PodFailed(why),
            _ => Error::NotAvailable {
                replicas: d.replicas(),
                secs: 60f64.max(config.deadline.as_secs_f64() / 2.0),
                logs: config.out_dir.clone(),
            },
        });
    }
    wait_routed(&router, registry.as_ref(), &config).await;
    let traffic_started_s = timeline.now_s();
    let loads = traffic::start(
        router.ingress,
        &config.protocols,
        config.rate,
        Duration::from_secs(10),
    )?;
    if config.log_events && !loads.is_empty() {
        controller.report_progress(loads.iter().map(|l| l.controller.clone()).collect());
    }
    tokio::time::sleep(config.warmup).await;
    let rollout_started_s = timeline.now_s();
    let (done, complete_at) = controller
        .roll(&mut factory, Instant::now() + config.deadline)
        .await;
    let rollout_seconds = (done == Done::Reached).then(|| timeline.now_s() - rollout_started_s);
    let stopped = match &done {
        Done::Reached => None,
        Done::TimedOut => Some(format!(
            "the update did not finish within {:.0} s",
            config.deadline.as_secs_f64()
        )),
        Done::Failed(why) => Some(format!("the update stopped: {why}")),
    };
    if let Some(w) = stopped {
        timeline.run(Kind::Warning, &w);
        warnings.push(w);
    }
    tokio::time::sleep(config.cooldown).await;
    let mut traffic = Vec::new();
    for l in loads {
        let (protocol, r) = l.finish().await;
        let (report, error) = match r {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        };
        traffic.push(Traffic {
            protocol,
            report,
            error,
        });
    }
    controller
        .delete_all(Instant::now() + Duration::from_secs(10))
        .await;
    router.stop().await;
    if let Some(r) = &registry {
        r.stop();
    }
    Ok(Report {
        manifest: config.manifest_path.clone(),
        deployment: d.metadata.name.clone(),
        replicas: d.replicas(),
        strategy: strategy.to_string(),
        pid_namespaces: namespaced,
        rollout_seconds,
        complete_seconds: complete_at.map(|t| t - rollout_started_s),
        rollout_started_s,
        traffic_started_s,
        traffic,
        events: timeline.events(),
        warnings,
    })
}

/// Waits until the router has the first pods, before any request is sent.
/// Endpoints mode: the proxy took them all (they reach it at once, but
/// through its admin API). Registry mode: every pod is UP in the registry and
/// a request through the router gets an answer.
async fn wait_routed(router: &Router, registry: Option<&Registry>, config: &Config) {
    let by = Instant::now() + Duration::from_secs(10);
    let replicas = config.deployment.replicas() as usize;
    while Instant::now() < by {
        let ready = match (registry, &config.registry) {
            (Some(r), Some(mode)) => {
                r.up(&mode.app).await >= replicas
                    && probe::http_get(router.ingress, "/healthz", &[]).await == Ok(200)
            }
            _ => router.routed() >= replicas,
        };
        if ready {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A pod's revision, read from its name (the ReplicaSet's hash in it).
fn revision_of(pod: &str) -> u32 {
    (1..=2)
        .find(|r| pod.contains(&format!("-{}-", revision_hash(*r))))
        .unwrap_or(0)
}

fn secs(s: i64, scale: f64) -> Duration {
    Duration::from_secs_f64((s.max(0) as f64 * scale).min(1e9))
}

fn scale_pair((a, b): (Duration, Duration), scale: f64) -> (Duration, Duration) {
    (a.mul_f64(scale), b.mul_f64(scale))
}

/// Makes pods from the Deployment's template.
struct Factory<'a> {
    config: &'a Config,
    eureka_url: Option<String>,
    namespaced: bool,
    timeline: Timeline,
    events: mpsc::UnboundedSender<((String, u32), PodEvent)>,
    serial: u32,
}

impl PodFactory for Factory<'_> {
    fn create(&mut self, revision: u32) -> Result<(String, SocketAddr, PodHandle), String> {
        self.serial += 1;
        let c = self.config;
        let d = &c.deployment;
        let name = format!(
            "{}-{}-{}",
            d.metadata.name,
            revision_hash(revision),
            pod_suffix(c.seed, self.serial)
        );
        let dir = c.out_dir.join("pods").join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let env = PodEnv {
            pod_name: name.clone(),
            namespace: d
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            bin_dir: c.bin_dir.clone(),
            dir,
            eureka_url: self.eureka_url.clone(),
        };
        let mut containers = Vec::new();
        for container in &d.spec.template.spec.containers {
            containers.push(container_spec(c, container, &env)?);
        }
        let addr = serving_addr(&containers);
        let handle = kubelet::start(PodStart {
            id: (name.clone(), revision),
            env,
            containers,
            namespaced: self.namespaced,
            timeline: self.timeline.clone(),
            events: self.events.clone(),
        });
        Ok((name, addr, handle))
    }
}

/// The pod's address for the router: its first container port.
fn serving_addr(containers: &[ContainerSpec]) -> SocketAddr {
    let port = containers
        .iter()
        .find_map(|c| c.plan.ports.values().next().copied())
        .unwrap_or(0);
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn container_spec(
    c: &Config,
    container: &manifest::Container,
    env: &PodEnv,
) -> Result<ContainerSpec, String> {
    let err = |m: String| format!("container {:?}: {m}", container.name);
    let plan = pod::plan_container(container, c.command.as_deref(), env).map_err(err)?;
    let readiness = match &container.readiness_probe {
        Some(p) => Some(Readiness::new(p, &plan, c.time_scale).map_err(err)?),
        None => None,
    };
    let lifecycle = container.lifecycle.as_ref();
    let signal = match lifecycle.and_then(|l| l.stop_signal.as_deref()) {
        Some(s) => Sig::parse(s).map_err(|e| err(format!("lifecycle.stopSignal: {e}")))?,
        None => c.stop_signal,
    };
    let pre_stop = match lifecycle.and_then(|l| l.pre_stop.as_ref()) {
        None => None,
        Some(h) => Some(if let Some(s) = &h.sleep {
            Hook::Sleep(secs(s.seconds, c.time_scale))
        } else if let Some(e) = &h.exec {
            Hook::Action(Action::Exec {
                argv: scale_sleep(&e.command, c.time_scale),
                env: plan.env.clone(),
            })
        } else if let Some(g) = &h.http_get {
            Hook::Action(Action::http_get(g, &plan).map_err(err)?)
        } else {
            Hook::Nothing
        }),
    };
    let grace = secs(c.deployment.grace_seconds() as i64, c.time_scale);
    Ok(ContainerSpec {
        plan,
        readiness,
        stop: Stop {
            pre_stop,
            signal,
            grace,
            min_grace: Duration::from_secs(2).mul_f64(c.time_scale),
        },
    })
}

/// `sleep N` (alone or as `sh -c "sleep N"`) with N scaled, so a time scale
/// compresses the classic preStop too; any other command runs as written.
fn scale_sleep(argv: &[String], scale: f64) -> Vec<String> {
    if scale == 1.0 {
        return argv.to_vec();
    }
    let scaled = |n: &str| n.parse::<f64>().ok().map(|n| format!("{:.3}", n * scale));
    let strs: Vec<&str> = argv.iter().map(String::as_str).collect();
    match strs.as_slice() {
        [s, n] if s.ends_with("sleep") => match scaled(n) {
            Some(n) => vec![s.to_string(), n],
            None => argv.to_vec(),
        },
        [sh, "-c", script] if sh.ends_with("sh") => match script
            .trim()
            .strip_prefix("sleep ")
            .and_then(|n| scaled(n.trim()))
        {
            Some(n) => vec![sh.to_string(), "-c".into(), format!("sleep {n}")],
            None => argv.to_vec(),
        },
        _ => argv.to_vec(),
    }
}

/// A ReplicaSet's pod-template-hash look-alike, one per revision.
fn revision_hash(revision: u32) -> String {
    let mut rng = fastrand::Rng::with_seed(u64::from(revision) * 7919);
    (0..9)
        .map(|_| char::from(b"bcdfghjklmnpqrstvwxz2456789"[rng.usize(..27)]))
        .collect()
}

fn pod_suffix(seed: u64, serial: u32) -> String {
    let mut rng = fastrand::Rng::with_seed(seed ^ (u64::from(serial) << 32));
    (0..5)
        .map(|_| char::from(b"bcdfghjklmnpqrstvwxz2456789"[rng.usize(..27)]))
        .collect()
}

/// The default out directory for a manifest.
pub fn default_out_dir(manifest: &Path) -> PathBuf {
    let stem = manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rollout".into());
    PathBuf::from("lameduck-rollout").join(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_prestops_follow_the_time_scale() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            scale_sleep(&v(&["sleep", "20"]), 0.5),
            v(&["sleep", "10.000"])
        );
        assert_eq!(
            scale_sleep(&v(&["/bin/sh", "-c", "sleep 4"]), 0.25),
            v(&["/bin/sh", "-c", "sleep 1.000"])
        );
        assert_eq!(
            scale_sleep(&v(&["lameduck", "prestop"]), 0.5),
            v(&["lameduck", "prestop"])
        );
        assert_eq!(scale_sleep(&v(&["sleep", "20"]), 1.0), v(&["sleep", "20"]));
    }
}
