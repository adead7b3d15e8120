//! `lameduck proxy`

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;
use lameduck_drain::Sig;
use lameduck_proxy::{Config, Control, Source};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

/// Graceful L7 reverse proxy: reloads, upstream changes and shutdowns lose no request.
///
/// HTTP/1.1 and h2c on the client side, HTTP/1.1 or HTTP/2 to upstreams,
/// WebSocket and other upgrades, streamed bodies. Reload with SIGHUP, by editing
/// the config file (checked every second), or with `PUT /config` on the admin
/// API: a new config is checked first, an invalid one is rejected with its key
/// and line, and the swap happens in memory without closing a connection.
///
/// SIGTERM drains: readiness 503, `Connection: close` on HTTP/1.1 responses and
/// GOAWAY on HTTP/2 while still accepting (drain_delay / until_quiet), then stop
/// accepting and let in-flight requests finish, then close what is left at
/// grace − margin. SIGINT/SIGQUIT skip the first phase; a second signal
/// escalates. Exit status: 0 clean drain, 3 connections closed at the deadline,
/// 2 bad config or flags, 1 other errors.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  lameduck proxy -c proxy.toml\n  \
    lameduck proxy --listen 127.0.0.1:8080 --upstream 127.0.0.1:18081 --upstream 127.0.0.1:18082")]
pub(crate) struct ProxyArgs {
    /// TOML config file (see docs/proxy.md and examples/proxy.toml).
    #[arg(short = 'c', long, value_name = "FILE", required_unless_present = "listen", conflicts_with_all = ["listen", "upstream"])]
    config: Option<PathBuf>,

    /// Quick mode: listen here (plain HTTP/1.1 and h2c) …
    #[arg(long, value_name = "ADDR", requires = "upstream")]
    listen: Option<SocketAddr>,

    /// … and proxy everything to these endpoints (repeatable).
    #[arg(long, value_name = "ADDR")]
    upstream: Vec<SocketAddr>,

    /// Quick mode: admin API address (probes, metrics, PUT /config, PUT
    /// /upstreams/NAME). Off loopback it needs a bearer token in
    /// LAMEDUCK_ADMIN_TOKEN.
    #[arg(long, value_name = "ADDR", conflicts_with = "config")]
    admin: Option<SocketAddr>,

    /// Quick mode: probe listener address (/healthz, /readyz, /metrics only;
    /// safe on the pod IP).
    #[arg(long, value_name = "ADDR", conflicts_with = "config")]
    probe: Option<SocketAddr>,

    /// Check the config file and exit (0 if valid, 2 with the error otherwise).
    #[arg(long, requires = "config")]
    check: bool,

    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

pub(crate) fn main(args: ProxyArgs) -> i32 {
    let source = match (&args.config, args.listen) {
        (Some(path), _) => Source::File(path.clone()),
        (None, Some(listen)) => {
            let mut config = Config::quick(listen, args.upstream.clone());
            config.probe = args.probe;
            if let Some(addr) = args.admin {
                if let Err(e) = config.set_admin(addr) {
                    tracing::error!("{e}");
                    return 2;
                }
            }
            Source::Inline(Box::new(config))
        }
        (None, None) => unreachable!("clap requires --config or --listen"),
    };
    if args.check {
        return check(&source);
    }
    // One thread: a current-thread runtime, which skips work-stealing overhead.
    let mut rt = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let bound = match lameduck_proxy::bind(source).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("{e}");
                return if matches!(e, lameduck_proxy::Error::Bind { .. }) {
                    1
                } else {
                    2
                };
            }
        };
        let control = match signals() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot listen for signals: {e}");
                return 1;
            }
        };
        bound.run(control).await.code()
    })
}

fn check(source: &Source) -> i32 {
    let Source::File(path) = source else { return 0 };
    let result = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|text| Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display())));
    match result {
        Ok(_) => {
            tracing::info!(path = %path.display(), "config is valid");
            0
        }
        Err(e) => {
            tracing::error!("{e}");
            2
        }
    }
}

/// SIGTERM, SIGINT, SIGQUIT and SIGHUP as [`Control`] messages.
fn signals() -> std::io::Result<mpsc::UnboundedReceiver<Control>> {
    let (tx, rx) = mpsc::unbounded_channel();
    for sig in [Sig::TERM, Sig::INT, Sig::QUIT, Sig::HUP] {
        let mut stream = signal(SignalKind::from_raw(sig.0))?;
        let tx = tx.clone();
        let control = match sig.stop_kind() {
            Some(kind) => Control::Stop(kind),
            None => Control::Reload,
        };
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                tracing::info!("received {sig}");
                if tx.send(control).is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}
