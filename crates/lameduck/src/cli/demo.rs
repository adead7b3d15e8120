//! `lameduck demo`: flags → [`lameduck_demo::Options`] → the scenarios; then
//! the table on stdout, the report files, and the exit status.

use std::path::PathBuf;

use clap::Args;

/// Exit status: the demo showed what it is meant to show.
const EXIT_OK: i32 = 0;
/// Exit status: a scenario did not behave as expected (see the table).
const EXIT_UNEXPECTED: i32 = 1;
/// Exit status: the demo could not run.
const EXIT_ERROR: i32 = 3;

/// One rolling update, six ways, side by side: how many requests each loses
/// and how long each takes.
///
/// Plays the same Deployment (3 replicas of `lameduck demo-app`, maxSurge 1,
/// maxUnavailable 0) rolled under HTTP/1.1, HTTP/2, WebSocket and gRPC traffic
/// through a router that learns of endpoint changes 1-3 s late (scaled by
/// --time-scale), as `lameduck rollout` does:
///
///   naive       the app is PID 1 and exits at once on SIGTERM, no preStop
///   shell-pid1  `sh -c` is PID 1: SIGTERM never reaches the app, SIGKILL at 30 s
///   classic     preStop `sleep 20`, grace 45 s, an app that drains
///   lameduck    `lameduck run` as PID 1: lame duck until quiet, then drain
///
/// and, with the router discovering pods in a Eureka registry (lameduck
/// registry) where each pod registers itself:
///
///   eureka-naive     the app cancels its registration and exits at once
///   eureka-lameduck  `lameduck run` marks it DOWN, waits until quiet, drains
///
/// Prints the table, writes report.html (a timeline per scenario: traffic,
/// lost requests, each pod's life) and report.json under --out. The
/// scenarios run at the same time: about 40 s in all (--quick: about 25 s).
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 the demo showed the expected result (naive, shell-pid1 and \
eureka-naive lose requests; classic, lameduck and eureka-lameduck lose none; \
at --time-scale 1 or more, classic takes at least twice as long as lameduck); \
1 it did not; 3 it could not run.

Examples:
  lameduck demo
  lameduck demo --quick --json demo.json
  lameduck demo --only lameduck,classic
  lameduck demo --print-manifests > scenarios.yaml")]
pub(crate) struct DemoArgs {
    /// A shorter run (for CI): every duration at 0.5×.
    #[arg(long)]
    quick: bool,

    /// Multiply every duration of the manifests and the lag by this [default: 1, --quick 0.5].
    #[arg(long, value_name = "F")]
    time_scale: Option<f64>,

    /// Requests per second, per protocol and scenario.
    #[arg(long, value_name = "N", default_value_t = 100.0)]
    rate: f64,

    /// Only these scenarios, comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    only: Vec<String>,

    /// Where the report and the pods' logs go.
    #[arg(long, value_name = "DIR", default_value = "lameduck-demo")]
    out: PathBuf,

    /// Also write the table as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Seed for the propagation lags.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,

    /// Print the scenarios' manifests and exit.
    #[arg(long)]
    print_manifests: bool,
}

pub(crate) fn main(args: DemoArgs) -> i32 {
    if args.print_manifests {
        print!("{}", lameduck_demo::manifests());
        return EXIT_OK;
    }
    let scale = args
        .time_scale
        .unwrap_or(if args.quick { 0.5 } else { 1.0 });
    if !(scale.is_finite() && (0.05..=10.0).contains(&scale)) {
        tracing::error!("--time-scale {scale}: a factor from 0.05 to 10");
        return 2;
    }
    let opts = lameduck_demo::Options {
        time_scale: scale,
        rate: args.rate,
        out_dir: args.out.join("pods"),
        bin_dir: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from)),
        seed: args.seed,
        only: args.only.clone(),
    };
    tracing::info!(
        "playing {} scenario(s) at once, durations ×{scale}; pods' logs under {}",
        if args.only.is_empty() {
            lameduck_demo::SCENARIOS.len()
        } else {
            args.only.len()
        },
        opts.out_dir.display()
    );
    let Some(rt) = super::runtime() else {
        return EXIT_ERROR;
    };
    let outcomes = match rt.block_on(lameduck_demo::run(&opts)) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e}");
            return EXIT_ERROR;
        }
    };
    print!("{}", lameduck_demo::table(&outcomes));
    let html = args.out.join("report.html");
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| args.out.join("report.json"));
    let json = serde_json::to_string_pretty(&lameduck_demo::json(&outcomes)).unwrap_or_default();
    for (path, text) in [(&html, lameduck_demo::html(&outcomes)), (&json_path, json)] {
        if let Err(e) = std::fs::write(path, text) {
            tracing::error!("cannot write {}: {e}", path.display());
            return EXIT_ERROR;
        }
    }
    println!(
        "report: {}  (open it in a browser)\njson:   {}",
        html.display(),
        json_path.display()
    );
    match lameduck_demo::verdict(&outcomes, scale) {
        Ok(()) => EXIT_OK,
        Err(why) => {
            println!("unexpected: {why}");
            EXIT_UNEXPECTED
        }
    }
}
