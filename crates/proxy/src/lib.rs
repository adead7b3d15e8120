//! `lameduck proxy`: a graceful L7 reverse proxy whose reloads, upstream changes
//! and shutdowns lose no request.
//!
//! - [`config`]: the TOML config and its checks (errors name key and line);
//! - `config_file`: the file behind it, re-read on SIGHUP or when it changes;
//! - `router`: host and path-prefix routing;
//! - `upstream`: endpoint pools with keepalive connections and ejection;
//! - `forward`: one request to an upstream, with the retries that are safe;
//! - `server`: listeners and client connections, and how each drain phase
//!   ends them gracefully;
//! - `h1`: the HTTP/1.x client connection loop, on the `lameduck-http1`
//!   crate's parser, encoder and upstream client (HTTP/2 is hyper's);
//! - `respond`: the per-request handler both loops call;
//! - `state`: the running config, swapped atomically on reload;
//! - `admin`: the probe listener (probes, metrics) and the admin API (also
//!   `PUT /config`, `PUT /upstreams/NAME`, behind a bearer token off loopback).
//!
//! [`bind`] binds every socket (so a bad address fails at start) and returns a
//! [`Bound`] proxy; [`Bound::run`] serves until the drain it is told to do by
//! [`Control`] messages is over, so tests drive it without signals.

mod admin;
pub mod config;
mod config_file;
mod discovery;
mod error;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod h1;
mod respond;
mod router;
mod server;
mod state;
mod tls;
mod upstream;
mod websocket;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use lameduck_drain::{
    BoxFuture, Driver, Ends, Hooks, Outcome, Phase, Plan, PlanError, Status, StopKind, Trigger,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    time::Instant,
};

pub use config::{AdminToken, Config, ConfigError, ADMIN_TOKEN_ENV};
use config_file::ConfigFile;
pub use error::Cause;
use lameduck_drain::Activity;
use state::State;

/// Where the config comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A TOML file, reloaded on SIGHUP and when its content changes.
    File(PathBuf),
    /// A config built in memory (quick mode, tests).
    Inline(Box<Config>),
}

/// What the proxy is told while it runs (the binary maps signals to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM (graceful) or SIGINT/SIGQUIT (fast).
    Stop(StopKind),
    /// SIGHUP: read the config file again.
    Reload,
}

/// How the proxy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every connection finished before the deadline.
    Clean,
    /// The deadline came with connections still open; they were closed.
    Forced { connections: usize },
}

impl Exit {
    /// 0 for a clean drain, 3 when connections had to be closed at the deadline.
    pub fn code(self) -> i32 {
        match self {
            Exit::Clean => 0,
            Exit::Forced { .. } => 3,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The config is invalid.
    #[error("{path}: {source}")]
    Config { path: String, source: ConfigError },
    /// The drain settings do not fit together.
    #[error("[proxy] drain settings: {0}")]
    Plan(#[from] PlanError),
    /// A socket could not be bound.
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A proxy whose sockets are bound, ready to [`run`](Bound::run).
#[derive(Debug)]
pub struct Bound {
    source: Source,
    state: Arc<State>,
    plan: Plan,
    listeners: Vec<(Arc<str>, TcpListener)>,
    admin: Option<TcpListener>,
    probe: Option<TcpListener>,
}

/// Reads the config, checks the drain plan, and binds every socket.
pub async fn bind(source: Source) -> Result<Bound, Error> {
    let (config, text) = load(&source)?;
    // A config from a file was checked with its plan already (its error names
    // the keys); one built in code (the quick mode) is checked here.
    let plan = config.proxy.plan()?;
    let mut listeners = Vec::new();
    for l in &config.listeners {
        let what = format!("listener {:?}", l.name);
        let socket = TcpListener::bind(l.listen)
            .await
            .map_err(|source| Error::Bind {
                what,
                addr: l.listen,
                source,
            })?;
        listeners.push((Arc::from(l.name.as_str()), socket));
    }
    let admin = bind_optional("admin", config.admin).await?;
    let probe = bind_optional("probe", config.probe).await?;
    let state = State::new(config, text);
    Ok(Bound {
        source,
        state,
        plan,
        listeners,
        admin,
        probe,
    })
}

/// Binds the admin or probe listener, if the config has one.
async fn bind_optional(what: &str, addr: Option<SocketAddr>) -> Result<Option<TcpListener>, Error> {
    let Some(addr) = addr else { return Ok(None) };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| Error::Bind {
            what: what.into(),
            addr,
            source,
        })
}

fn load(source: &Source) -> Result<(Config, Option<String>), Error> {
    match source {
        Source::Inline(c) => Ok(((**c).clone(), None)),
        Source::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
                path: path.clone(),
                source,
            })?;
            parse(path, text)
        }
    }
}

fn parse(path: &std::path::Path, text: String) -> Result<(Config, Option<String>), Error> {
    let config = Config::from_toml(&text).map_err(|source| Error::Config {
        path: path.display().to_string(),
        source,
    })?;
    Ok((config, Some(text)))
}

impl Bound {
    /// The listeners' bound addresses, by name (useful with port 0).
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(n, l)| Some((n.to_string(), l.local_addr().ok()?)))
            .collect()
    }

    /// The admin API's bound address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The probe listener's bound address.
    pub fn probe_addr(&self) -> Option<SocketAddr> {
        self.probe.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until a drain is over.
    pub async fn run(self, mut control: mpsc::UnboundedReceiver<Control>) -> Exit {
        let Bound {
            source,
            state,
            plan,
            listeners,
            admin,
            probe,
        } = self;
        let activity = Arc::new(Activity::new());
        let (status_tx, status_rx) = watch::channel(Status::default());
        let routes = admin::ProxyRoutes::new(Arc::clone(&state), status_rx);
        let (stopped_tx, stopped) = watch::channel(false);
        for (name, l) in listeners {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(listener = %name, %addr, "listening");
            }
            // Fatal: it owns its listener, and a proxy that stopped
            // accepting while /readyz says ready only loses traffic.
            lameduck_drain::spawn_fatal(
                format!("accept loop of listener {name}"),
                server::accept_loop(l, name, Arc::clone(&state), Arc::clone(&activity)),
            );
        }
        if let Some(l) = admin {
            if let Ok(addr) = l.local_addr() {
                let token = state.snapshot().config.admin_token.is_some();
                tracing::info!(%addr, token, "admin API /healthz /readyz /metrics /config /upstreams/NAME");
            }
            // Fatal: it owns its listener; without it no operator can
            // reach the proxy.
            lameduck_drain::spawn_fatal(
                "admin API",
                admin::serve(
                    l,
                    Arc::clone(&routes),
                    lameduck_admin::Role::Admin,
                    stopped.clone(),
                ),
            );
        }
        if let Some(l) = probe {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, "probe listener /healthz /readyz /metrics");
            }
            // Fatal: the kubelet would find the probes gone and restart
            // the pod anyway, later and without saying why.
            lameduck_drain::spawn_fatal(
                "probe listener",
                admin::serve(
                    l,
                    Arc::clone(&routes),
                    lameduck_admin::Role::Probe,
                    stopped.clone(),
                ),
            );
        }
        let file = match &source {
            Source::File(path) => {
                let text = state.snapshot().source.clone();
                let file = Arc::new(ConfigFile::new(path.clone(), text));
                // Restarted: its state (the last text read) is in `file`.
                let (f, st) = (Arc::clone(&file), Arc::clone(&state));
                lameduck_drain::spawn_restarting("config file watcher", Ends::Never, move || {
                    watch_file(Arc::clone(&f), Arc::clone(&st))
                });
                Some(file)
            }
            Source::Inline(_) => {
                lameduck_drain::spawn_restarting("timer tick", Ends::Never, tick);
                None
            }
        };
        state::start_discovery(&state);
        let hooks = ProxyHooks {
            state: Arc::clone(&state),
            activity,
        };
        let mut driver = Driver::new(plan, hooks, status_tx);
        let exit = orchestrate(&mut driver, file.as_deref(), &mut control).await;
        // Discovery tasks outlive nothing: a proxy run in a bigger process
        // (the rollout engine) must not keep polling after it stopped.
        state.discoveries.stop();
        stopped_tx.send_replace(true);
        exit
    }
}

/// Wakes once a second, only to keep the timer driver's next wake-up within a
/// second. A timer that would come due before the driver's next wake-up must
/// interrupt it (an eventfd write, one system call) when it is registered; a
/// request's timeouts (seconds) are then never that early, so registering
/// them costs no system call. [`watch_file`]'s polling does the same when a
/// config file is watched.
async fn tick() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reloads the config file when its content changes (polled once a second:
/// simple, and it sees Kubernetes ConfigMap updates, which swap a symlink).
async fn watch_file(file: Arc<ConfigFile>, state: Arc<State>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(text) = file.read_if_changed() {
            apply_file(&file, Ok(text), &state);
        }
    }
}

/// Parses and applies what was read from the config file; an invalid file is
/// rejected and the running config keeps serving.
fn apply_file(file: &ConfigFile, text: std::io::Result<String>, state: &Arc<State>) {
    let path = file.path();
    let parsed = text
        .map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })
        .and_then(|text| parse(path, text));
    match parsed {
        Ok((config, text)) => match state.reload(config, text) {
            Ok(()) => tracing::info!(path = %path.display(), "config reloaded"),
            Err(e) => {
                tracing::warn!(path = %path.display(), "reload rejected, the old config keeps serving: {e}")
            }
        },
        Err(e) => {
            state
                .metrics
                .reloads_rejected
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("reload rejected, the old config keeps serving: {e}");
        }
    }
}

/// Runs the proxy's drain with the shared driver, and reloads on SIGHUP.
async fn orchestrate(
    driver: &mut Driver<ProxyHooks>,
    file: Option<&ConfigFile>,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> Exit {
    let mut open = true;
    loop {
        tokio::select! {
            c = control.recv(), if open => match c {
                Some(Control::Reload) => match file {
                    Some(file) => apply_file(file, file.read(), &driver.hooks().state),
                    None => tracing::info!("SIGHUP ignored: no config file to reload"),
                },
                Some(Control::Stop(kind)) => driver.trigger(Trigger::Signal(kind), match kind {
                    StopKind::Graceful => "stop requested (graceful)",
                    StopKind::Fast => "stop requested (fast)",
                }),
                None => open = false,
            },
            outcome = driver.advance() => return match outcome {
                Outcome::Drained => Exit::Clean,
                Outcome::Forced { in_flight } => Exit::Forced { connections: in_flight },
            },
        }
    }
}

/// What the drain does to the proxy. The phase it sets is what every
/// connection task watches: from the lame-duck phase on responses carry
/// `Connection: close` and HTTP/2 gets GOAWAY; in the drain phase the
/// listeners close; in the terminate phase connections drop their sockets.
struct ProxyHooks {
    state: Arc<State>,
    activity: Arc<Activity>,
}

impl Hooks for ProxyHooks {
    fn tell_routers(&mut self, _until: Instant) -> BoxFuture<'static, ()> {
        self.state.phase.send_replace(Phase::LameDuck);
        Box::pin(async {})
    }

    /// Quiet: no new connection and no request, on any connection, for
    /// `quiet` (the proxy sees its own traffic).
    fn until_quiet(&mut self, quiet: Duration, _until: Instant) -> BoxFuture<'static, bool> {
        let activity = Arc::clone(&self.activity);
        Box::pin(async move {
            activity.until_quiet(quiet).await;
            true
        })
    }

    fn stop_accepting(&mut self) {
        self.state.phase.send_replace(Phase::Drain);
    }

    fn in_flight(&self) -> usize {
        self.state.open()
    }

    fn idle(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            loop {
                let closed = self.state.closed.notified();
                if self.state.open() == 0 {
                    return;
                }
                closed.await;
            }
        })
    }

    fn terminate(&mut self) {
        self.state.phase.send_replace(Phase::Terminate);
    }
}
