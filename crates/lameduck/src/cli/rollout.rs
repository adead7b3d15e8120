//! `lameduck rollout MANIFEST`: flags → a checked [`lameduck_rollout::Config`]
//! → the engine; then the summary on stdout, the reports, and the exit status.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use lameduck_drain::{parse_duration, Sig};
use lameduck_rollout::{Config, Protocol, Rate, RegistryMode};

/// Exit status: no request was lost.
const EXIT_PASS: i32 = 0;
/// Exit status: requests were lost (or the update did not finish).
const EXIT_LOST: i32 = 1;
/// Exit status: the command line or the manifest is wrong.
const EXIT_USAGE: i32 = 2;
/// Exit status: the run could not happen.
const EXIT_ERROR: i32 = 3;

/// Play a Deployment's rolling update on this machine, under load, and account
/// for every request.
///
/// Reads an apps/v1 Deployment (YAML as you write it for kubectl) and plays it
/// with Kubernetes' semantics: the pods of the current revision start and
/// become ready, traffic starts through a router (lameduck proxy), then the
/// Deployment rolls to a new revision as `kubectl rollout restart` does:
/// maxSurge/maxUnavailable (surge rounds up, unavailable down), readiness
/// probes (httpGet, tcpSocket, exec) gate new pods, and every deleted pod is,
/// at the same time, removed from the router's endpoints after a propagation
/// lag (--lag) and stopped by the kubelet: preStop, then the stop signal to
/// PID 1, then SIGKILL at terminationGracePeriodSeconds (never less than 2 s
/// after the signal).
///
/// Pods are real processes from each container's command and args (no
/// images: the command must exist here; `lameduck` means this binary). Each
/// container runs in its own PID namespace when run as root, so its PID 1 is
/// what the manifest says. Container ports are remapped to free local ports:
/// an env var named *PORT whose value is a containerPort gets the local port,
/// and $(VAR) in command/args expands as in Kubernetes, so
/// `env: [{name: PORT, value: "8080"}]` with `args: ["--port=$(PORT)"]` works
/// here and in a cluster. Pod logs go under --out.
///
/// The summary counts every request by outcome (see `lameduck load --help`);
/// the rollout time runs from the start of the update to the exit of the last
/// old pod. See docs/rollout.md for what is and is not reproduced.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 no request lost; 1 requests lost or the update did not finish; \
2 bad command line or manifest; 3 the run could not happen.

Examples:
  lameduck rollout deploy/app.yaml
  lameduck rollout app.yaml --protocol http1,http2,ws,grpc --time-scale 0.5 --html report.html
  lameduck rollout app.yaml --ingress 127.0.0.1:8080 --no-load   # drive it with your own tool")]
pub(crate) struct RolloutArgs {
    /// The manifest: a YAML file with an apps/v1 Deployment (other documents
    /// are skipped).
    #[arg(value_name = "MANIFEST")]
    manifest: PathBuf,

    /// Run this instead of every container's command and args (split as a shell would).
    #[arg(long, value_name = "CMD")]
    command: Option<String>,

    /// The image's STOPSIGNAL, for containers without lifecycle.stopSignal.
    #[arg(long, value_name = "SIG", default_value = "TERM", value_parser = parse_sig)]
    stop_signal: Sig,

    /// Multiply every duration of the manifest (probes, preStop sleeps, grace
    /// period, minReadySeconds) and the lag by this: 0.5 plays twice as fast.
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = parse_scale)]
    time_scale: f64,

    /// The propagation lag of endpoint changes to the router: MIN..MAX, drawn
    /// per change (or one duration).
    #[arg(long, value_name = "MIN..MAX", default_value = "1s..3s", value_parser = parse_lag)]
    lag: (Duration, Duration),

    /// Registry mode: start a Eureka registry (lameduck registry) here, point
    /// the pods' EUREKA* URL env vars at it, and let the router discover the
    /// pods there (they register themselves) instead of feeding it endpoints.
    #[arg(long)]
    registry: bool,

    /// Registry mode: the Eureka app the pods register as [default: the Deployment's name].
    #[arg(long, value_name = "NAME", requires = "registry")]
    registry_app: Option<String>,

    /// Registry mode: model Eureka clients' cache — the router polls the
    /// registry this often instead of following its change feed (Eureka's
    /// default fetch interval is 30s).
    #[arg(long, value_name = "DURATION", requires = "registry", value_parser = parse_duration)]
    eureka_cache: Option<Duration>,

    /// Run containers as plain processes even where PID namespaces are possible.
    #[arg(long)]
    no_pid_namespaces: bool,

    /// Where the router (ingress) listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    ingress: SocketAddr,

    /// Send no traffic: drive the ingress with your own tool (set --ingress).
    #[arg(long, requires = "ingress")]
    no_load: bool,

    /// Traffic to send, comma-separated: http1, http2, ws, grpc.
    #[arg(long, value_name = "LIST", default_value = "http1", value_parser = parse_protocols)]
    protocol: Protocols,

    /// Requests per second for each of http1, http2 and grpc.
    #[arg(long, value_name = "N", default_value_t = 200.0)]
    rate: f64,

    /// WebSocket connections (each exchanges 10 messages per second).
    #[arg(long, value_name = "N", default_value_t = 8)]
    ws_connections: usize,

    /// Traffic before the update starts.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,

    /// Traffic after the last old pod exited.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    cooldown: Duration,

    /// Seed for the lags (the same seed draws the same lags).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Give up on an update that takes longer than this.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    deadline: Duration,

    /// Directory for pod logs [default: lameduck-rollout/NAME].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Write the whole report (every request count, every pod event) as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Write the report as one HTML page (traffic and pod timeline).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

fn parse_sig(s: &str) -> Result<Sig, String> {
    Sig::parse(s).map_err(|e| e.to_string())
}

fn parse_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && (0.01..=100.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?}: a factor from 0.01 to 100, e.g. 0.5")),
    }
}

fn parse_lag(s: &str) -> Result<(Duration, Duration), String> {
    let (lo, hi) = s.split_once("..").unwrap_or((s, s));
    let lo = parse_duration(lo).map_err(|e| e.to_string())?;
    let hi = parse_duration(hi).map_err(|e| e.to_string())?;
    if hi < lo || hi > Duration::from_secs(3600) {
        return Err(format!(
            "{s:?}: MIN..MAX with MIN <= MAX <= 1h, e.g. 1s..3s"
        ));
    }
    Ok((lo, hi))
}

/// `--protocol http1,ws`.
#[derive(Debug, Clone)]
struct Protocols(Vec<Protocol>);

fn parse_protocols(s: &str) -> Result<Protocols, String> {
    s.split(',')
        .map(|p| Protocol::parse(p).ok_or_else(|| format!("{p:?}: one of http1, http2, ws, grpc")))
        .collect::<Result<Vec<_>, _>>()
        .map(Protocols)
}

impl RolloutArgs {
    fn config(&self) -> Result<Config, String> {
        let path = self.manifest.display().to_string();
        let text = std::fs::read_to_string(&self.manifest)
            .map_err(|e| format!("cannot read {path}: {e}"))?;
        let deployment =
            lameduck_rollout::manifest::parse(&path, &text).map_err(|e| e.to_string())?;
        let deployment_name = deployment.metadata.name.clone();
        let command = match &self.command {
            Some(c) => {
                Some(shlex::split(c).ok_or_else(|| format!("--command {c:?}: unbalanced quotes"))?)
            }
            None => None,
        };
        let mut protocols = self.protocol.0.clone();
        protocols.sort();
        protocols.dedup();
        if self.no_load {
            protocols.clear();
        }
        Ok(Config {
            manifest_path: path,
            deployment,
            command,
            stop_signal: self.stop_signal,
            time_scale: self.time_scale,
            lag: self.lag,
            pid_namespaces: !self.no_pid_namespaces,
            out_dir: self
                .out
                .clone()
                .unwrap_or_else(|| lameduck_rollout::default_out_dir(&self.manifest)),
            bin_dir: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(PathBuf::from)),
            ingress: self.ingress,
            protocols,
            rate: Rate {
                per_second: self.rate,
                ws_connections: self.ws_connections,
            },
            warmup: self.warmup,
            cooldown: self.cooldown,
            seed: self.seed.unwrap_or_else(time_seed),
            deadline: self.deadline,
            log_events: true,
            registry: self.registry.then(|| RegistryMode {
                app: self
                    .registry_app
                    .clone()
                    .unwrap_or_else(|| deployment_name.clone()),
                cache: self.eureka_cache,
            }),
        })
    }
}

/// A seed from the clock, printed so a run can be played again.
fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

pub(crate) fn main(args: RolloutArgs) -> i32 {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return EXIT_USAGE;
        }
    };
    tracing::info!(seed = config.seed, out = %config.out_dir.display(), "playing {}", config.manifest_path);
    let Some(rt) = super::runtime() else {
        return EXIT_ERROR;
    };
    let report = match rt.block_on(lameduck_rollout::run(config)) {
        Ok(r) => r,
        Err(e @ lameduck_rollout::Error::Manifest(_)) => {
            tracing::error!("{e}");
            return EXIT_USAGE;
        }
        Err(e) => {
            tracing::error!("{e}");
            return EXIT_ERROR;
        }
    };
    print!("{}", lameduck_rollout::summary::to_text(&report));
    if let Some(p) = &args.json {
        if let Err(e) = write(
            p,
            &serde_json::to_string_pretty(&report).unwrap_or_default(),
        ) {
            tracing::error!("{e}");
            return EXIT_ERROR;
        }
    }
    if let Some(p) = &args.html {
        let page = lameduck_rollout::html::page(
            "lameduck rollout",
            &[(report.deployment.clone(), &report)],
        );
        if let Err(e) = write(p, &page) {
            tracing::error!("{e}");
            return EXIT_ERROR;
        }
        println!("report: {}", p.display());
    }
    if !report.passed() {
        EXIT_LOST
    } else {
        EXIT_PASS
    }
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
