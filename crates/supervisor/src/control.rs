//! The control socket: how `lameduck prestop` asks a running supervisor to drain.
//!
//! A Kubernetes `preStop: exec: [lameduck, prestop]` runs in the same container
//! as `lameduck run`, so a Unix socket is enough, reachable only from inside the
//! pod and only by the same user (mode 0600). The protocol is one line each way,
//! easy to drive by hand with `socat - UNIX-CONNECT:/tmp/lameduck.sock`:
//!
//! ```text
//! > prestop
//! < started phase=lame-duck budget_left_ms=29998
//! < done phase=lame-duck waited_ms=10003
//! > status
//! < phase=serving lame_duck_done=false budget_left_ms=-1
//! ```
//!
//! `prestop` starts the lame-duck phase (or joins one already running) and the
//! `done` line comes when that phase's work is over, so the hook returns exactly
//! when routers have caught up and the kubelet's SIGTERM can start phase 2.

use std::{
    io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use lameduck_drain::{format_duration, Phase};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::mpsc,
};

use crate::{state::Shared, Error};

/// Environment variable naming the control socket.
pub const CONTROL_ENV: &str = "LAMEDUCK_CONTROL";

/// The control socket path: `$LAMEDUCK_CONTROL`, else `/tmp/lameduck.sock`.
pub fn default_control_path() -> PathBuf {
    std::env::var_os(CONTROL_ENV).map_or_else(|| PathBuf::from("/tmp/lameduck.sock"), PathBuf::from)
}

/// Binds the socket (replacing a stale one) and serves it in the background.
/// Each `prestop` request is sent on `prestop_tx` for the supervise loop.
pub(crate) async fn start(
    path: &Path,
    shared: Arc<Shared>,
    prestop_tx: mpsc::UnboundedSender<()>,
) -> Result<(), Error> {
    let bind_err = |source| Error::ControlBind {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            let busy = io::Error::new(
                io::ErrorKind::AddrInUse,
                "another lameduck run answers there",
            );
            return Err(bind_err(busy));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    // Fatal: it owns the socket, and without it the preStop hook could not
    // start the drain.
    lameduck_drain::spawn_fatal("control socket", async move {
        let mut backoff = lameduck_drain::AcceptBackoff::new("control socket");
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tokio::time::sleep(backoff.failed(&e)).await;
                    continue;
                }
            };
            backoff.accepted();
            let (shared, tx) = (Arc::clone(&shared), prestop_tx.clone());
            tokio::spawn(async move {
                if let Err(e) = serve(stream, &shared, &tx).await {
                    tracing::debug!("control connection ended: {e}");
                }
            });
        }
    });
    Ok(())
}

async fn serve(
    stream: UnixStream,
    shared: &Shared,
    prestop_tx: &mpsc::UnboundedSender<()>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        match line.trim() {
            "prestop" => {
                let started = Instant::now();
                let _ = prestop_tx.send(());
                let mut rx = shared.status.subscribe();
                // Wait until the loop has taken the request, then until phase 1 is over.
                let status = *rx
                    .wait_for(|s| s.phase != Phase::Serving)
                    .await
                    .map_err(|_| io::Error::other("supervisor stopped"))?;
                let left = status
                    .budget
                    .map_or(-1, |b| b.left(Instant::now()).as_millis() as i64);
                write
                    .write_all(
                        format!("started phase={} budget_left_ms={left}\n", status.phase)
                            .as_bytes(),
                    )
                    .await?;
                let status = *rx
                    .wait_for(|s| s.lame_duck_done || s.phase >= Phase::Drain)
                    .await
                    .map_err(|_| io::Error::other("supervisor stopped"))?;
                let waited = started.elapsed().as_millis();
                write
                    .write_all(
                        format!("done phase={} waited_ms={waited}\n", status.phase).as_bytes(),
                    )
                    .await?;
            }
            "status" => {
                let s = shared.status();
                let left = s
                    .budget
                    .map_or(-1, |b| b.left(Instant::now()).as_millis() as i64);
                let reply = format!(
                    "phase={} lame_duck_done={} budget_left_ms={left}\n",
                    s.phase, s.lame_duck_done
                );
                write.write_all(reply.as_bytes()).await?;
            }
            "" => {}
            other => {
                let reply =
                    format!("error unknown command {other:?}; expected prestop or status\n");
                write.write_all(reply.as_bytes()).await?;
            }
        }
    }
    Ok(())
}

/// What a delegated preStop saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrestopOutcome {
    /// The phase the supervisor was in when the lame-duck phase ended.
    pub phase: String,
    /// How long the call blocked.
    pub waited: Duration,
}

/// Asks the supervisor on `path` to start the lame-duck phase and blocks until it
/// is over. Fails with [`Error::NoSupervisor`] when nothing answers there.
pub async fn prestop(path: &Path) -> Result<PrestopOutcome, Error> {
    let started = Instant::now();
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| Error::NoSupervisor {
            path: path.to_path_buf(),
            source,
        })?;
    let protocol = |detail: String| Error::ControlProtocol {
        path: path.to_path_buf(),
        detail,
    };
    let (read, mut write) = stream.into_split();
    write
        .write_all(b"prestop\n")
        .await
        .map_err(|e| protocol(e.to_string()))?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| protocol(e.to_string()))?
    {
        if let Some(rest) = line.strip_prefix("started ") {
            tracing::info!("supervisor started the lame-duck phase ({rest})");
        } else if let Some(rest) = line.strip_prefix("done ") {
            let phase = rest
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("phase="))
                .unwrap_or("unknown")
                .to_string();
            let waited = started.elapsed();
            tracing::info!(waited = %format_duration(waited), "lame-duck phase over; the stop signal may come");
            return Ok(PrestopOutcome { phase, waited });
        } else {
            return Err(protocol(format!("unexpected reply {line:?}")));
        }
    }
    Err(protocol("connection closed".into()))
}
