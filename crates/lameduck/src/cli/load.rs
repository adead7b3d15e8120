//! `lameduck load URL…`: flags → a checked [`lameduck_load::Config`] → the
//! library's run; then the summary on stdout, the reports, and the exit status.

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use clap::Args;
use lameduck_drain::parse_duration;
use lameduck_load::{Config, During, ExpectStatus, RequestSpec, Thresholds, TlsOptions};

/// Exit status: every threshold held.
const EXIT_PASS: i32 = 0;
/// Exit status: requests failed beyond --max-failures, or another threshold failed.
const EXIT_FAIL: i32 = 1;
/// Exit status: the command line or a URL is wrong.
const EXIT_USAGE: i32 = 2;
/// Exit status: the run could not happen or be reported.
const EXIT_ERROR: i32 = 3;

/// Send HTTP load and account for every request, to prove a rollout, restart or
/// reload lost none.
///
/// Every request ends in exactly one named outcome: success, status_NNN (a
/// status not in --expect-status), connect_refused, connect_timeout,
/// connect_error, tls_error, closed_before_response, reset_before_response,
/// reset_during_response, truncated_body, refused_by_goaway, refused_stream,
/// stream_reset (the last three HTTP/2 only), grpc_status_N, grpc_not_serving
/// (--grpc-health), ws_abnormal_close (--ws), request_timeout, protocol_error,
/// other_error. The summary on stdout shows throughput, latency percentiles and
/// the outcome table; --json adds a timeline per --bucket and the events.
///
/// Closed loop by default: each of -c connections sends its next request when the
/// last one ended. With --rate, requests are sent on a fixed schedule and latency
/// counts from the intended send time, so a stalled server cannot hide its stall
/// (no coordinated omission).
///
/// The run ends after --duration, after -n requests, or --cooldown after the
/// --during command ended, whichever comes first (default: 10s). Requests in
/// flight at the end still finish. SIGINT/SIGTERM stop early (a second one
/// aborts without a report); SIGUSR1 adds a mark to the timeline.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 every threshold held; 1 more failures than --max-failures (default 0) \
or another threshold failed; 2 bad command line or URL; 3 the run could not happen \
or its report could not be written.

Example (gate a rollout in CI):
  lameduck load -c 50 --during 'kubectl rollout restart deploy/web && kubectl rollout \
status deploy/web' --json load.json http://web.example/healthz")]
pub(crate) struct LoadArgs {
    /// URLs to load (http://, https://; ws://, wss://, which imply --ws);
    /// requests take turns over them.
    #[arg(required = true, value_name = "URL")]
    urls: Vec<String>,

    /// Concurrent connections (closed loop: requests in flight).
    #[arg(short = 'c', long, value_name = "N", default_value_t = 10)]
    connections: usize,

    /// Stop after this long, e.g. 30s, 2m [default: 10s unless -n or --during].
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Stop after this many requests.
    #[arg(short = 'n', long, value_name = "N")]
    requests: Option<u64>,

    /// Open loop: send this many requests per second, on schedule.
    #[arg(long, value_name = "R")]
    rate: Option<f64>,

    /// Request method.
    #[arg(short = 'm', long, default_value = "GET", help_heading = "Request")]
    method: String,

    /// Request header "Name: value"; repeatable.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "HEADER",
        help_heading = "Request"
    )]
    headers: Vec<String>,

    /// Request body.
    #[arg(long, conflicts_with = "body_file", help_heading = "Request")]
    body: Option<String>,

    /// Request body, read from a file.
    #[arg(long, value_name = "PATH", help_heading = "Request")]
    body_file: Option<PathBuf>,

    /// Open a new connection for every request (sends Connection: close).
    #[arg(long, help_heading = "Request")]
    no_keepalive: bool,

    /// A whole request may take this long; then it ends in request_timeout.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "Request")]
    timeout: Duration,

    /// Connecting may take this long; then the request ends in connect_timeout.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration, help_heading = "Request")]
    connect_timeout: Duration,

    /// Speak HTTP/2: h2c with prior knowledge on http://, ALPN h2 on https://
    /// (no fallback to HTTP/1.1).
    #[arg(long, help_heading = "Request")]
    http2: bool,

    /// HTTP/2: streams in flight on each connection; -c × --streams requests
    /// are in flight in all.
    #[arg(long, value_name = "M", default_value_t = 1, help_heading = "Request")]
    streams: usize,

    /// WebSocket: hold -c connections to the ws:// or wss:// URLs and exchange
    /// one message on each every --ws-interval (any message back answers it). A
    /// clean close (1000/1001) is followed by a reconnect and is not a loss; an
    /// abnormal close (1006, reset, other codes) is ws_abnormal_close. Implied
    /// when every URL is ws:// or wss://; they do not mix with http:// URLs.
    #[arg(long, help_heading = "Request")]
    ws: bool,

    /// WebSocket: time between two exchanges on one connection.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, help_heading = "Request")]
    ws_interval: Duration,

    /// Call the standard gRPC health check (grpc.health.v1.Health/Check) at each
    /// URL's host instead of its path, over HTTP/2. Success needs grpc-status 0
    /// and SERVING.
    #[arg(long, help_heading = "Request")]
    grpc_health: bool,

    /// --grpc-health: the service to check (default: the server as a whole).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "",
        requires = "grpc_health",
        help_heading = "Request"
    )]
    grpc_service: String,

    /// https://: accept any server certificate (the handshake still happens).
    #[arg(long, help_heading = "Request")]
    insecure: bool,

    /// https://: trust only the CA certificates in this PEM file (default: the
    /// system's store).
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "insecure",
        help_heading = "Request"
    )]
    cacert: Option<PathBuf>,

    /// Act like a careful client: send a request again (up to 3 times, at once)
    /// when it provably never reached the app: connect_refused,
    /// refused_by_goaway, refused_stream. The summary shows what was retried and
    /// how many requests a retry saved; the outcome is the last attempt's.
    #[arg(long, help_heading = "Request")]
    retry_unprocessed: bool,

    /// Statuses that count as success: codes, classes or ranges, e.g. 2xx,304.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "2xx,3xx",
        help_heading = "Request"
    )]
    expect_status: String,

    /// Run this shell command during the load (a rollout, a reload) and mark its
    /// start and end on the timeline; the run ends --cooldown after it.
    #[arg(long, value_name = "CMD", help_heading = "Events")]
    during: Option<String>,

    /// Load alone this long before --during starts, for a baseline.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, help_heading = "Events")]
    warmup: Duration,

    /// Keep loading this long after --during ended.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration, help_heading = "Events")]
    cooldown: Duration,

    /// Listen on this Unix socket: every line written to it adds a mark with
    /// that name to the timeline (e.g. `echo "step 2" | nc -U PATH`).
    #[arg(long, value_name = "PATH", help_heading = "Events")]
    mark_socket: Option<PathBuf>,

    /// Width of one timeline bucket.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, help_heading = "Report")]
    bucket: Duration,

    /// Write the report (summary, timeline, events, verdict) as JSON here.
    #[arg(long, value_name = "FILE", help_heading = "Report")]
    json: Option<PathBuf>,

    /// Write the report as one self-contained HTML page here: the timeline chart
    /// (outcomes, failures and p50/p99 latency per bucket, with events) and the
    /// outcome table. Opens in any browser, without network access.
    #[arg(long, value_name = "FILE", help_heading = "Report")]
    html: Option<PathBuf>,

    /// Fail (exit 1) when more requests than this failed.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        help_heading = "Thresholds"
    )]
    max_failures: u64,

    /// Fail (exit 1) when the 99th percentile latency is above this.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Thresholds")]
    max_p99: Option<Duration>,
}

impl LoadArgs {
    /// A progress line, when stderr is a terminal.
    fn progress(&self) -> Option<Progress> {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal().then_some(Progress {
            duration: self.duration,
            requests: self.requests,
        })
    }

    fn config(&self) -> Result<Config, String> {
        let spec = self.request_spec()?;
        let tls = TlsOptions {
            insecure: self.insecure,
            cacert: self.cacert.clone(),
        };
        let ws = lameduck_load::websocket_mode(&self.urls, self.ws).map_err(|e| e.to_string())?;
        let targets = lameduck_load::targets(&self.urls, &spec, &tls).map_err(|e| e.to_string())?;
        let expect = ExpectStatus::parse(&self.expect_status).map_err(|e| e.to_string())?;
        let nothing_ends_it =
            self.duration.is_none() && self.requests.is_none() && self.during.is_none();
        Ok(Config {
            targets,
            connections: self.connections,
            streams: self.streams,
            rate: self.rate,
            duration: if nothing_ends_it {
                Some(Duration::from_secs(10))
            } else {
                self.duration
            },
            requests: self.requests,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            expect,
            bucket: self.bucket,
            during: self.during.clone().map(|command| During {
                command,
                warmup: self.warmup,
                cooldown: self.cooldown,
            }),
            retry_unprocessed: if self.retry_unprocessed { 3 } else { 0 },
            ws_interval: ws.then_some(self.ws_interval),
            thresholds: Thresholds {
                max_failures: self.max_failures,
                max_p99: self.max_p99,
            },
        })
    }

    fn request_spec(&self) -> Result<RequestSpec, String> {
        let headers = self
            .headers
            .iter()
            .map(|h| lameduck_load::parse_header(h))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let body = match (&self.body, &self.body_file) {
            (Some(text), _) => Bytes::from(text.clone()),
            (None, Some(path)) => std::fs::read(path)
                .map(Bytes::from)
                .map_err(|e| format!("cannot read --body-file {}: {e}", path.display()))?,
            (None, None) => Bytes::new(),
        };
        Ok(RequestSpec {
            method: self.method.clone(),
            headers,
            body,
            keepalive: !self.no_keepalive,
            http2: self.http2,
            grpc_health: self.grpc_health.then(|| self.grpc_service.clone()),
        })
    }
}

pub(crate) fn main(args: LoadArgs) -> i32 {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return EXIT_USAGE;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return EXIT_ERROR;
        }
    };
    let report = match rt.block_on(run(config, args.progress(), args.mark_socket.as_deref())) {
        Ok(report) => report,
        Err(e @ lameduck_load::Error::BadSetting(_)) => {
            tracing::error!("{e}");
            return EXIT_USAGE;
        }
        Err(e) => {
            tracing::error!("{e}");
            return EXIT_ERROR;
        }
    };
    print!("{}", report.to_text());
    let json = args.json.as_deref().map(|p| report.write_json(p));
    let html = args.html.as_deref().map(|p| report.write_html(p));
    for written in [json, html].into_iter().flatten() {
        if let Err(e) = written {
            tracing::error!("{e}");
            return EXIT_ERROR;
        }
    }
    if report.verdict.pass {
        EXIT_PASS
    } else {
        EXIT_FAIL
    }
}

/// Runs the load with signals wired to its controller. The handlers are in
/// place before the first request, so an early SIGUSR1 is a mark, not a kill.
async fn run(
    config: Config,
    progress: Option<Progress>,
    mark_socket: Option<&std::path::Path>,
) -> Result<lameduck_load::Report, lameduck_load::Error> {
    let (controller, control) = lameduck_load::control();
    if let Some(path) = mark_socket {
        let marks = lameduck_load::listen_for_marks(path, controller.clone())?;
        tokio::spawn(marks);
    }
    let shown = progress.map(|p| tokio::spawn(p.show(controller.clone())));
    match listen_for_signals() {
        Ok(signals) => drop(tokio::spawn(forward_signals(signals, controller))),
        Err(e) => tracing::warn!("cannot listen for signals ({e}); Ctrl-C aborts without a report"),
    }
    let report = lameduck_load::run(config, control).await;
    if let Some(task) = shown {
        task.abort();
        eprint!("\r\x1b[K");
    }
    report
}

type Signals = [tokio::signal::unix::Signal; 3];

fn listen_for_signals() -> std::io::Result<Signals> {
    use tokio::signal::unix::{signal, SignalKind};
    Ok([
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
        signal(SignalKind::user_defined1())?,
    ])
}

/// SIGINT/SIGTERM: stop (a second one exits at once); SIGUSR1: a mark.
async fn forward_signals(signals: Signals, controller: lameduck_load::Controller) {
    let [mut int, mut term, mut usr1] = signals;
    let mut stops = 0;
    let mut marks = 0;
    loop {
        tokio::select! {
            _ = int.recv() => stops += 1,
            _ = term.recv() => stops += 1,
            _ = usr1.recv() => {
                marks += 1;
                controller.mark(format!("SIGUSR1 #{marks}"));
                continue;
            }
        }
        if stops > 1 {
            tracing::warn!("second stop signal: aborting without a report");
            std::process::exit(130);
        }
        tracing::info!("stopping: waiting for requests in flight (again to abort)");
        controller.stop();
    }
}

/// The live line on a terminal: elapsed, rate, failures, what is left.
#[derive(Debug)]
struct Progress {
    duration: Option<Duration>,
    requests: Option<u64>,
}

impl Progress {
    async fn show(self, controller: lameduck_load::Controller) {
        use std::sync::atomic::Ordering::Relaxed;
        let start = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last = 0;
        loop {
            tick.tick().await;
            let live = controller.live();
            let ended = live.ended.load(Relaxed);
            let failed = live.failed.load(Relaxed);
            let left = match (self.duration, self.requests) {
                (Some(d), _) => format!(
                    "{:.0}s left",
                    d.saturating_sub(start.elapsed()).as_secs_f64()
                ),
                (None, Some(n)) => format!("{} left", n.saturating_sub(ended)),
                (None, None) => String::new(),
            };
            eprint!(
                "\r\x1b[K{:>6.0}s  {:>8} req/s  {ended} done  {failed} failed  {left}",
                start.elapsed().as_secs_f64(),
                ended - last,
            );
            last = ended;
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
