//! Running the registry as a process: stop signals drive the shared drain model.
//!
//! [`serve`] only follows the phase it is given; this module gives it one, the
//! way every lameduck part does: SIGTERM starts the lame-duck phase (readiness
//! 503, `Connection: close`, change-feed requests answered now) for
//! `--drain-delay`, then the drain phase (listener closed, in-flight requests
//! finish); SIGINT and SIGQUIT skip the lame-duck phase; a second stop signal
//! escalates one phase; at `grace − margin` whatever is left is dropped.

use std::future::Future;
use std::time::Duration;

use lameduck_drain::{log_phase, Drain, LameDuckWait, Phase, Plan, Step, StopKind, Trigger};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::{serve, Config, Error};

/// How a stopped registry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection finished before the deadline.
    Drained,
    /// The terminate phase came first and dropped what was left.
    Forced,
}

/// Serves until a stop signal has walked the drain through its phases.
pub async fn serve_until_stopped(
    config: Config,
    listener: TcpListener,
    admin: Option<TcpListener>,
    plan: Plan,
) -> Result<Stopped, Error> {
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    let mut quit = signal(SignalKind::quit()).map_err(Error::Signals)?;
    let (stop_tx, stops) = mpsc::channel(4);
    let listening = tokio::spawn(async move {
        loop {
            let kind = tokio::select! {
                _ = term.recv() => StopKind::Graceful,
                _ = int.recv() => StopKind::Fast,
                _ = quit.recv() => StopKind::Fast,
            };
            if stop_tx.send(kind).await.is_err() {
                return;
            }
        }
    });
    let (tx, rx) = watch::channel(Phase::Serving);
    let result = drive(serve(config, listener, admin, rx), plan, tx, stops).await;
    listening.abort();
    result
}

/// The drain loop, apart from real signals so it reads as the state machine.
pub(crate) async fn drive(
    server: impl Future<Output = Result<(), Error>>,
    plan: Plan,
    tx: watch::Sender<Phase>,
    mut stops: mpsc::Receiver<StopKind>,
) -> Result<Stopped, Error> {
    let delay = match plan.wait() {
        LameDuckWait::Fixed(d) => d,
        _ => Duration::ZERO,
    };
    let mut drain = Drain::new(plan.timing());
    let mut lame_duck_ends: Option<Instant> = None;
    tokio::pin!(server);
    loop {
        let timer = drain.next_timer().map(Instant::from_std);
        let (trigger, why) = tokio::select! {
            result = &mut server => {
                result?;
                return Ok(if drain.phase() == Phase::Terminate { Stopped::Forced } else { Stopped::Drained });
            }
            Some(kind) = stops.recv() => (Trigger::Signal(kind), "stop signal"),
            () = sleep_until(lame_duck_ends) => (Trigger::LameDuckDone, "drain delay over"),
            () = sleep_until(timer) => (Trigger::Timer, "budget share used up"),
        };
        let now = std::time::Instant::now();
        if let Step::Enter(phase) = drain.on(trigger, now) {
            lame_duck_ends = (phase == Phase::LameDuck).then(|| Instant::now() + delay);
            log_phase(phase, why, drain.budget().map(|b| b.left(now)));
            tx.send_replace(phase);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
