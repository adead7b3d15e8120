//! `lameduck demo-app`: flags and environment → `lameduck_demo_app::Config`,
//! and stop signals → its stop trigger.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use clap::Args;
use lameduck_demo_app::{Config, EurekaConfig, Exit, Mode};
use lameduck_drain::{parse_duration, Sig, StopKind};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::oneshot,
};

/// A small, typical web app for rollout demos, which stops naively or gracefully.
///
/// One port serves HTTP/1.1 (keepalive) and h2c: GET /healthz and /readyz
/// answer at once; any other path answers `hello from VERSION (NAME)` after
/// --latency; /ws is a WebSocket echo; gRPC serves grpc.health.v1.Health/Check
/// and lameduck.demo.Echo/Echo.
///
/// Graceful (default), on SIGTERM or SIGINT: /readyz turns 503 and gRPC health
/// NOT_SERVING, the listener closes, idle keepalive connections close, HTTP/1.1
/// responses carry `Connection: close`, HTTP/2 connections get GOAWAY,
/// WebSockets get a 1001 Going Away close, in-flight requests finish; exit 0,
/// or 3 if --shutdown-timeout cut something. This is Spring Boot's graceful
/// shutdown or Go's Server.Shutdown: it does not wait for routers to stop
/// sending traffic. A second stop signal exits at once.
///
/// --naive: the first stop signal exits at once, cutting what is in flight,
/// like an app with no shutdown handling.
#[derive(Debug, Args)]
#[command(
    disable_version_flag = true,
    after_help = "Examples:\n  PORT=8081 lameduck demo-app --version v2 --latency 50ms\n  \
    lameduck demo-app --naive --eureka http://127.0.0.1:8761/eureka/ --app web"
)]
pub(crate) struct DemoAppArgs {
    /// Address to listen on [default: 0.0.0.0:$PORT, and $PORT defaults to 8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Service time of each request to any path but the probes, and of each
    /// WebSocket or gRPC echo.
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = parse_duration)]
    latency: Duration,

    /// On the first stop signal, exit at once: in-flight requests and
    /// connections are cut, like an app with no shutdown handling.
    #[arg(long)]
    naive: bool,

    /// Graceful mode: the longest the shutdown may take; then what is left is
    /// cut (and the exit status is 3).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    shutdown_timeout: Duration,

    /// The version shown in responses.
    #[arg(
        long = "version",
        value_name = "TEXT",
        env = "APP_VERSION",
        default_value = "v1"
    )]
    app_version: String,

    /// Register in this Eureka server (http://HOST:PORT/eureka/): status UP at
    /// start, a heartbeat every 30 s, cancelled at shutdown (in naive mode too,
    /// before exiting, as a Spring app does).
    #[arg(long, value_name = "URL", help_heading = "Eureka")]
    eureka: Option<String>,

    /// The application name in Eureka.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "demo",
        help_heading = "Eureka"
    )]
    app: String,

    /// The instance id (also shown in responses when $POD_NAME is not set)
    /// [default: $POD_NAME, or HOSTNAME:PORT].
    #[arg(long, value_name = "ID", help_heading = "Eureka")]
    instance_id: Option<String>,

    /// The IP address registered in Eureka.
    #[arg(
        long,
        value_name = "IP",
        default_value = "127.0.0.1",
        help_heading = "Eureka"
    )]
    ip: String,

    /// Do not cancel the registration at shutdown (Eureka evicts the instance
    /// after its 90 s lease).
    #[arg(long, help_heading = "Eureka")]
    no_deregister: bool,
}

pub(crate) fn main(args: DemoAppArgs) -> i32 {
    let config = match config(args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    // One thread: the app's work is waiting, and a demo runs many of them.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let stop = match signals() {
            Ok(stop) => stop,
            Err(e) => {
                tracing::error!("cannot listen for signals: {e}");
                return 1;
            }
        };
        let stop = async move { stop.await.unwrap_or(StopKind::Graceful) };
        match lameduck_demo_app::run(config, stop).await {
            // Gone at once, as promised: no runtime shutdown, no farewells.
            Ok(Exit::Naive) => std::process::exit(0),
            Ok(exit) => exit.code(),
            Err(e) => {
                tracing::error!("{e}");
                1
            }
        }
    })
}

/// The checked config; the error names the flag or variable to change.
fn config(args: DemoAppArgs) -> Result<Config, String> {
    let listen = match args.listen {
        Some(addr) => addr,
        None => SocketAddr::from((Ipv4Addr::UNSPECIFIED, env_port()?)),
    };
    let pod_name = std::env::var("POD_NAME").ok().filter(|n| !n.is_empty());
    let instance_id = args
        .instance_id
        .or_else(|| pod_name.clone())
        .unwrap_or_else(|| format!("{}:{}", hostname(), listen.port()));
    let eureka = args.eureka.map(|url| EurekaConfig {
        deregister: !args.no_deregister,
        ..EurekaConfig::new(&url, &args.app, &instance_id, &args.ip)
    });
    let mode = if args.naive {
        Mode::Naive
    } else {
        Mode::Graceful {
            timeout: args.shutdown_timeout,
        }
    };
    Ok(Config {
        listen,
        latency: args.latency,
        mode,
        version: args.app_version,
        name: pod_name.unwrap_or(instance_id),
        eureka,
    })
}

/// `$PORT`, 8080 when unset.
fn env_port() -> Result<u16, String> {
    match std::env::var("PORT") {
        Err(_) => Ok(8080),
        Ok(p) => p.trim().parse().map_err(|_| {
            format!("PORT={p:?} is not a port number: set it to 0-65535, or give --listen ADDR")
        }),
    }
}

/// The host name (the pod name, in Kubernetes).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The first SIGTERM, SIGINT or SIGQUIT resolves the receiver; a second one
/// exits at once.
fn signals() -> std::io::Result<oneshot::Receiver<StopKind>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut first = Some(tx);
        loop {
            let sig = tokio::select! {
                _ = term.recv() => Sig::TERM,
                _ = int.recv() => Sig::INT,
                _ = quit.recv() => Sig::QUIT,
            };
            let Some(tx) = first.take() else {
                tracing::warn!("received {sig} again: exiting now");
                std::process::exit(3);
            };
            tracing::info!("received {sig}");
            let _ = tx.send(sig.stop_kind().unwrap_or(StopKind::Graceful));
        }
    });
    Ok(rx)
}
