//! The admin address: `/readyz`, `/healthz` and `/metrics`, read-only, served
//! by the shared probe listener of [`lameduck_admin`].
//!
//! The kubelet probes the pod IP, so this address is usually bound there; that is
//! why it serves nothing that changes state. Control (preStop) goes only through
//! the local control socket.
//!
//! `/readyz` is what lets routers learn of the drain: it mirrors the app's own
//! readiness URL (`--ready-check`) while serving, and answers 503 from the first
//! moment of the lame-duck phase on. `/healthz` answers 200 while the app runs,
//! also while draining, so a liveness probe never restarts a draining pod.

use std::{fmt, net::SocketAddr, sync::atomic::Ordering, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use lameduck_admin::{collect, Metrics, NotReady, Options, Role, Routes};
use lameduck_drain::BoxFuture;
use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use tokio::net::{TcpListener, TcpStream};

use crate::{state::Shared, Error, ReadyCheck};

/// The longest a client may take to send a request head (a probe sends one
/// line and a few fields at once).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds the admin address now (so a bad address fails at start) and serves it
/// in the background.
pub(crate) async fn start(
    addr: SocketAddr,
    shared: Arc<Shared>,
    check: Option<ReadyCheck>,
) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::AdminBind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(Error::io("reading the admin address"))?;
    let mut metrics = Metrics::new("run");
    shared.register(metrics.registry());
    let for_drain = Arc::clone(&shared);
    metrics.register_drain(move || for_drain.status());
    metrics
        .registry()
        .register_collector(Box::new(AppRunning(Arc::clone(&shared))));
    let probes = Arc::new(Probes {
        shared,
        check,
        metrics,
    });
    let options = Options {
        role: Role::Probe,
        part: "run",
        header_read_timeout: HEADER_READ_TIMEOUT,
        not_found: "the drain is asked for on the control socket (lameduck prestop)",
        token_from: "",
    };
    // Fatal: it owns its listener, and without it the kubelet restarts the
    // pod later and without saying why.
    lameduck_drain::spawn_fatal(
        "admin listener",
        lameduck_admin::serve(listener, options, probes, std::future::pending()),
    );
    Ok(local)
}

/// What `run`'s probe listener serves.
#[derive(Debug)]
struct Probes {
    shared: Arc<Shared>,
    check: Option<ReadyCheck>,
    metrics: Metrics,
}

impl Routes for Probes {
    /// Alive while the app runs, also while draining, so a liveness probe
    /// never restarts a draining pod.
    fn health(&self) -> Result<(), NotReady> {
        if self.shared.child_running.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("app not running".into())
        }
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), NotReady>> {
        Box::pin(readyz(&self.shared, self.check.as_ref()))
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}

async fn readyz(shared: &Shared, check: Option<&ReadyCheck>) -> Result<(), NotReady> {
    lameduck_admin::ready_unless_draining(shared.status().phase)?;
    if !shared.child_running.load(Ordering::Relaxed) {
        return Err("app not running".into());
    }
    let Some(check) = check else {
        return Ok(());
    };
    let verdict = match probe(check).await {
        Ok(code) if code.is_success() => Ok(()),
        Ok(code) => Err(format!("app not ready: {} answered {code}", check.url).into()),
        Err(reason) => Err(format!("app not ready: {}: {reason}", check.url).into()),
    };
    shared.count_ready_check(verdict.is_ok());
    verdict
}

/// `app_running`: 1 while the app runs.
#[derive(Debug)]
struct AppRunning(Arc<Shared>);

impl Collector for AppRunning {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let up = i64::from(self.0.child_running.load(Ordering::Relaxed));
        collect::gauge(&mut enc, "app_running", "1 while the app runs", up)
    }
}

/// One GET of the app's readiness URL, bounded by the check's timeout.
pub(crate) async fn probe(check: &ReadyCheck) -> Result<StatusCode, String> {
    let attempt = async {
        let stream = TcpStream::connect(&check.authority)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(check.path.as_str())
            .header(header::HOST, check.authority.as_str())
            .header(header::USER_AGENT, "lameduck-ready-check")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let code = resp.status();
        // Read the body so the app sees a complete exchange; its content is ignored.
        let _ = resp.into_body().collect().await;
        Ok(code)
    };
    tokio::time::timeout(check.timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", check.timeout)))
}
