//! `lameduck demo-app`: a small, typical web app for rollout demos, which
//! stops either like an app with no shutdown handling (naive) or like one with
//! the usual graceful shutdown, so a demo can show what each loses.
//!
//! One port serves HTTP/1.1 and h2c: probes, a slow-ish "hello" on every other
//! path, a WebSocket echo and two gRPC methods. Optionally it registers itself
//! in Eureka, as a Spring Cloud app does.
//!
//! - [`config`]: what the app is told;
//! - `http`: connections and routes;
//! - `ws`: the WebSocket echo and its goodbye;
//! - `grpc`: health and echo, framed by hand;
//! - `eureka`: registration, heartbeats, cancel;
//! - `shutdown`: the two ways to stop, and the counts the drain waits on.
//!
//! [`bind`] binds the port (so a bad address fails at start) and returns a
//! [`Server`]; [`Server::run`] serves until its stop trigger resolves and the
//! shutdown of its mode is over, so tests drive it without signals.

#![forbid(unsafe_code)]

mod body;
pub mod config;
mod eureka;
mod grpc;
mod http;
mod shutdown;
mod ws;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use lameduck_drain::{format_duration, StopKind};
use tokio::net::TcpListener;

pub use config::{Config, EurekaConfig, Mode};
use shutdown::{Kind, Life};

/// How the app ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Graceful: everything in flight finished.
    Drained,
    /// Graceful: the shutdown timeout came first; this much was cut.
    TimedOut {
        /// Requests in flight that were cut.
        requests: usize,
        /// Connections (WebSockets included) that were cut.
        connections: usize,
    },
    /// Naive: gone at once, cutting whatever was in flight.
    Naive,
}

impl Exit {
    /// The process exit status: 0, or 3 when the timeout cut something.
    pub fn code(self) -> i32 {
        match self {
            Exit::Drained | Exit::Naive => 0,
            Exit::TimedOut { .. } => 3,
        }
    }
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The Eureka URL is not usable.
    #[error("Eureka URL {url:?}: {source}")]
    Eureka {
        url: String,
        source: lameduck_eureka::Error,
    },
    /// The Eureka instance record could not be built.
    #[error("Eureka instance record: {0}")]
    Instance(String),
}

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) latency: Duration,
    pub(crate) version: String,
    pub(crate) name: String,
    pub(crate) life: Life,
}

/// An app whose port is bound, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    config: Config,
    listener: TcpListener,
}

/// Binds the port.
pub async fn bind(config: Config) -> Result<Server, Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    Ok(Server { config, listener })
}

/// Binds the port and runs until `stop` resolves and the shutdown is over.
pub async fn run(config: Config, stop: impl Future<Output = StopKind>) -> Result<Exit, Error> {
    bind(config).await?.run(stop).await
}

impl Server {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop` resolves, then stops the way its mode says. Both
    /// kinds of stop do the same: the app has no lame-duck phase of its own.
    pub async fn run(self, stop: impl Future<Output = StopKind>) -> Result<Exit, Error> {
        let Server { config, listener } = self;
        let addr = listener.local_addr().unwrap_or(config.listen);
        let registration = match &config.eureka {
            Some(e) => Some(eureka::Registration::start(e, addr.port())?),
            None => None,
        };
        let app = Arc::new(App {
            latency: config.latency,
            version: config.version.clone(),
            name: config.name.clone(),
            life: Life::new(),
        });
        log_start(&config, addr);
        tokio::select! {
            () = accept(&listener, &app) => {}
            _ = stop => {}
        }
        Ok(match config.mode {
            Mode::Naive => shutdown::naive(&app.life, registration).await,
            Mode::Graceful { timeout } => {
                shutdown::graceful(&app.life, listener, registration, timeout).await
            }
        })
    }
}

fn log_start(config: &Config, addr: SocketAddr) {
    let timeout = match config.mode {
        Mode::Graceful { timeout } => format_duration(timeout),
        Mode::Naive => "none".into(),
    };
    tracing::info!(
        %addr,
        mode = %config.mode,
        version = %config.version,
        name = %config.name,
        latency = %format_duration(config.latency),
        shutdown_timeout = %timeout,
        "demo-app serving HTTP/1.1, h2c, WebSocket (/ws) and gRPC"
    );
}

/// Accepts connections until dropped.
async fn accept(listener: &TcpListener, app: &Arc<App>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let open = app.life.count(Kind::Connection);
                tokio::spawn(http::serve_connection(stream, Arc::clone(app), open));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
