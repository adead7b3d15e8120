//! Running the registry as a process: stop signals drive the shared drain.
//!
//! [`serve`](crate::serve) only follows the phase it is given; this module
//! gives it one with the drain driver every lameduck part runs
//! ([`lameduck_drain::Driver`]): SIGTERM starts the lame-duck phase
//! (readiness 503, `Connection: close`, change-feed requests answered now)
//! for `--drain-delay`, or until no API request has arrived for
//! `--until-quiet`; then the drain phase (listener closed, in-flight requests
//! finish); SIGINT and SIGQUIT skip the lame-duck phase; a second stop signal
//! escalates one phase; at `grace − margin` whatever is left is dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lameduck_drain::{BoxFuture, Driver, Hooks, Phase, Plan, StopKind, Trigger};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::state::State;
use crate::{Config, Error};

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
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let (status_tx, status_rx) = watch::channel(lameduck_drain::Status::default());
    let state = State::new(config, phase_rx.clone(), Some(status_rx));
    let hooks = RegistryHooks {
        phase: phase_tx,
        state: Arc::clone(&state),
    };
    let server = crate::server::serve_state(state, listener, admin, phase_rx);
    let driver = Driver::new(plan, hooks, status_tx);
    let result = drive(server, driver, stops).await;
    listening.abort();
    result
}

/// The drain loop, apart from real signals so that tests drive it: stop
/// signals go to the driver; the server's end is the drain's end.
pub(crate) async fn drive(
    server: impl Future<Output = Result<(), Error>>,
    mut driver: Driver<RegistryHooks>,
    mut stops: mpsc::Receiver<StopKind>,
) -> Result<Stopped, Error> {
    tokio::pin!(server);
    loop {
        tokio::select! {
            result = &mut server => {
                result?;
                return Ok(if driver.phase() == Phase::Terminate { Stopped::Forced } else { Stopped::Drained });
            }
            Some(kind) = stops.recv() => driver.trigger(Trigger::Signal(kind), "stop signal"),
            // The server's end decides; the driver's outcome only logs.
            _ = driver.advance() => {}
        }
    }
}

/// What the drain does to the registry: it moves the phase `serve` follows.
#[derive(Debug)]
pub(crate) struct RegistryHooks {
    phase: watch::Sender<Phase>,
    state: Arc<State>,
}

impl Hooks for RegistryHooks {
    fn tell_routers(&mut self, _until: Instant) -> BoxFuture<'static, ()> {
        self.phase.send_replace(Phase::LameDuck);
        Box::pin(async {})
    }

    fn until_quiet(&mut self, quiet: Duration, _until: Instant) -> BoxFuture<'static, bool> {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            state.activity.until_quiet(quiet).await;
            true
        })
    }

    fn stop_accepting(&mut self) {
        self.phase.send_replace(Phase::Drain);
    }

    fn in_flight(&self) -> usize {
        usize::try_from(self.state.counters.open_connections.get()).unwrap_or(0)
    }

    fn terminate(&mut self) {
        self.phase.send_replace(Phase::Terminate);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lameduck_drain::{LameDuckWait, Status, Timing};

    use super::*;

    fn plan(wait: LameDuckWait) -> Plan {
        let timing = Timing {
            grace: Duration::from_secs(30),
            margin: Duration::from_secs(2),
            stop_reserve: Duration::from_secs(1),
        };
        Plan::new(timing, wait).unwrap()
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
        let state = State::new(Config::default(), rx.clone(), None);
        run_with(LameDuckWait::Fixed(delay), stuck, signals, tx, state).await
    }

    async fn run_with(
        wait: LameDuckWait,
        stuck: bool,
        signals: &[(Duration, StopKind)],
        tx: watch::Sender<Phase>,
        state: Arc<State>,
    ) -> (Stopped, Vec<Phase>) {
        let rx = tx.subscribe();
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
        let hooks = RegistryHooks { phase: tx, state };
        let driver = Driver::new(plan(wait), hooks, watch::channel(Status::default()).0);
        let stopped = drive(fake_server(rx, stuck), driver, stops).await.unwrap();
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

    #[tokio::test(start_paused = true)]
    async fn until_quiet_ends_the_lame_duck_phase_when_requests_stop() {
        let (tx, rx) = watch::channel(Phase::Serving);
        let state = State::new(Config::default(), rx, None);
        // API requests for 4 s after SIGTERM, then none.
        let busy = Arc::clone(&state);
        tokio::spawn(async move {
            for _ in 0..40 {
                busy.activity.touch();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let wait = LameDuckWait::UntilQuiet {
            quiet: Duration::from_secs(1),
            max: None,
        };
        let start = Instant::now();
        let signals = [(Duration::ZERO, StopKind::Graceful)];
        let (stopped, phases) = run_with(wait, false, &signals, tx, state).await;
        assert_eq!(stopped, Stopped::Drained);
        assert_eq!(phases, [Phase::LameDuck, Phase::Drain]);
        // Quiet 1 s after the last request at 3.9 s: not at once (zero) and
        // not at the end of the 27 s share.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(4800) && took <= Duration::from_millis(5100),
            "{took:?}"
        );
    }
}
