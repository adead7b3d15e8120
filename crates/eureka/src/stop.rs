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
    // Fatal: a registry deaf to its stop signals could only be SIGKILLed.
    let listening = lameduck_drain::spawn_fatal("registry signal listener", async move {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lameduck_drain::Timing;

    use super::*;

    fn plan(delay: Duration) -> Plan {
        let timing = Timing {
            grace: Duration::from_secs(30),
            margin: Duration::from_secs(2),
            stop_reserve: Duration::from_secs(1),
        };
        Plan::new(timing, LameDuckWait::Fixed(delay)).unwrap()
    }

    /// A stand-in for `serve`: records every phase it is given and returns
    /// once the drain phase comes, unless `stuck` (then only at terminate).
    async fn fake_server(mut phase: watch::Receiver<Phase>, stuck: bool) -> Result<(), Error> {
        let last = if stuck {
            Phase::Terminate
        } else {
            Phase::Drain
        };
        let _ = phase.wait_for(|p| *p >= last).await;
        Ok(())
    }

    /// Drives a fake server with `signals`, each sent after its pause.
    async fn run(
        delay: Duration,
        stuck: bool,
        signals: &[(Duration, StopKind)],
    ) -> (Stopped, Vec<Phase>) {
        let (tx, rx) = watch::channel(Phase::Serving);
        let mut seen = rx.clone();
        let recorder = tokio::spawn(async move {
            let mut phases = Vec::new();
            while seen.changed().await.is_ok() {
                phases.push(*seen.borrow_and_update());
            }
            phases
        });
        let (stop_tx, stops) = mpsc::channel(4);
        let signals = signals.to_vec();
        tokio::spawn(async move {
            for (pause, kind) in signals {
                tokio::time::sleep(pause).await;
                let _ = stop_tx.send(kind).await;
            }
            std::future::pending::<()>().await;
        });
        let stopped = drive(fake_server(rx, stuck), plan(delay), tx, stops)
            .await
            .unwrap();
        (stopped, recorder.await.unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_walks_lame_duck_then_drain() {
        let start = Instant::now();
        let (stopped, phases) = run(
            Duration::from_secs(5),
            false,
            &[(Duration::ZERO, StopKind::Graceful)],
        )
        .await;
        assert_eq!(stopped, Stopped::Drained);
        assert_eq!(phases, [Phase::LameDuck, Phase::Drain]);
        assert!(
            start.elapsed() >= Duration::from_secs(5),
            "the drain delay was skipped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_stop_skips_the_lame_duck_phase() {
        let start = Instant::now();
        let (_, phases) = run(
            Duration::from_secs(5),
            false,
            &[(Duration::ZERO, StopKind::Fast)],
        )
        .await;
        assert_eq!(phases, [Phase::Drain]);
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_escalates_and_the_deadline_forces() {
        let signals = [
            (Duration::ZERO, StopKind::Graceful),
            (Duration::from_secs(1), StopKind::Graceful),
        ];
        let start = Instant::now();
        let (stopped, phases) = run(Duration::from_secs(5), true, &signals).await;
        assert_eq!(phases, [Phase::LameDuck, Phase::Drain, Phase::Terminate]);
        assert_eq!(stopped, Stopped::Forced);
        // Terminate at grace − margin = 28 s after the first signal.
        assert_eq!(start.elapsed().as_secs(), 28);
    }
}
