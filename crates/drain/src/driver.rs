//! The drain runtime every part runs: the [`Drain`] machine put to work.
//!
//! The machine says which phase comes next; the [`Driver`] does the waiting
//! and calls the part's [`Hooks`] at each phase change:
//!
//! 1. lame duck: [`Hooks::tell_routers`] (readiness 503, registry DOWN, drain
//!    hooks), then the plan's wait: a fixed `--drain-delay`, or
//!    `--until-quiet` through [`Hooks::until_quiet`], never past the
//!    lame-duck share of the budget; then [`Hooks::after_wait`];
//! 2. drain: [`Hooks::stop_accepting`]; the drain is over when
//!    [`Hooks::idle`] says nothing is in flight;
//! 3. terminate, at `grace − margin`: [`Hooks::terminate`], then a short
//!    [`FORCE_WAIT`] for what was forced to go.
//!
//! Every phase change is logged with the budget left ([`log_phase`]) and
//! published as a [`Status`] on a watch channel (readiness and metrics read
//! it). The part keeps its own event loop, for the events only it knows (the
//! app's exit, a reload): it calls [`Driver::trigger`] for a preStop call or
//! a stop signal, and polls [`Driver::advance`], which is cancel-safe, in the
//! same `select!`. A part with nothing else to wait for calls [`Driver::run`].

use std::{future::Future, pin::Pin, time::Duration};

use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use crate::{format_duration, log_phase, Budget, Drain, LameDuckWait, Phase, Plan, Step, Trigger};

/// A boxed future, as the hooks return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long the terminate phase waits for what [`Hooks::terminate`] forced
/// to go before the driver reports the drain as forced.
pub const FORCE_WAIT: Duration = Duration::from_millis(500);

/// Where a drain is, as listeners (readiness), metrics and `prestop` see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The current phase.
    pub phase: Phase,
    /// True once the lame-duck work (hooks and wait) has finished.
    pub lame_duck_done: bool,
    /// The budget, once the first trigger started it.
    pub budget: Option<Budget>,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            phase: Phase::Serving,
            lame_duck_done: false,
            budget: None,
        }
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was left in flight before the deadline.
    Drained,
    /// The deadline came with `in_flight` still open; it was forced.
    Forced { in_flight: usize },
}

/// What a part does at each step of the drain. Futures returned as
/// `'static` are kept by the driver across [`Driver::advance`] calls, so the
/// hook clones what they need into them.
pub trait Hooks: Send {
    /// The lame-duck phase began: tell routers to stop sending (readiness,
    /// registry DOWN, `Connection: close`). The future is the part's own
    /// lame-duck work, bounded by `until`; the plan's wait starts when it
    /// is done.
    fn tell_routers(&mut self, until: Instant) -> BoxFuture<'static, ()>;

    /// Returns `true` once no request has arrived for `quiet` (counted from
    /// its first poll at the earliest), or `false` when it gives up at
    /// `until`. The driver stops waiting at its own bound anyway.
    fn until_quiet(&mut self, quiet: Duration, until: Instant) -> BoxFuture<'static, bool>;

    /// Time the wait leaves at the end of the lame-duck share for
    /// [`Hooks::after_wait`].
    fn after_wait_reserve(&self) -> Duration {
        Duration::ZERO
    }

    /// Runs after the wait, still in the lame-duck phase (the registry
    /// cancel that removes the instance for good).
    fn after_wait(&mut self, _until: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    /// The drain phase began: stop accepting, let in-flight work finish
    /// (the supervisor sends the app its stop signal).
    fn stop_accepting(&mut self);

    /// How much is still in flight (connections, the app), for the log.
    fn in_flight(&self) -> usize;

    /// Returns once nothing is in flight. A part that learns it otherwise
    /// (the app's exit, the server's end) keeps the default, which never
    /// returns.
    fn idle(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }

    /// The deadline came: force what is left to stop.
    fn terminate(&mut self);
}

/// One drain, run against a part's [`Hooks`].
pub struct Driver<H> {
    hooks: H,
    plan: Plan,
    drain: Drain,
    status: watch::Sender<Status>,
    /// The lame-duck work and wait, while it runs.
    lame_duck: Option<BoxFuture<'static, ()>>,
    /// Set once [`Driver::advance`] has reported the end.
    over: bool,
}

impl<H> std::fmt::Debug for Driver<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("plan", &self.plan)
            .field("drain", &self.drain)
            .field("over", &self.over)
            .finish_non_exhaustive()
    }
}

/// What woke [`Driver::advance`].
enum Woke {
    LameDuckDone,
    Timer,
    Idle,
}

impl<H: Hooks> Driver<H> {
    /// A drain that has not started; every change is published on `status`.
    pub fn new(plan: Plan, hooks: H, status: watch::Sender<Status>) -> Driver<H> {
        Driver {
            hooks,
            drain: Drain::new(plan.timing()),
            plan,
            status,
            lame_duck: None,
            over: false,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.drain.phase()
    }

    /// Time left until the terminate phase, once the drain started.
    pub fn budget_left(&self) -> Option<Duration> {
        self.drain.budget().map(|b| b.left(now()))
    }

    /// The part's hooks.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The part's hooks, to change what they will do.
    pub fn hooks_mut(&mut self) -> &mut H {
        &mut self.hooks
    }

    /// Applies a trigger from outside: a preStop call or a stop signal.
    pub fn trigger(&mut self, trigger: Trigger, reason: &str) {
        let before = self.drain.phase();
        match self.drain.on(trigger, now()) {
            Step::Enter(phase) => self.enter(phase, reason),
            Step::Stay if matches!(trigger, Trigger::Signal(_)) => {
                tracing::info!(phase = %before, "{reason}: already in the last phase");
            }
            Step::Stay if trigger == Trigger::LameDuckDone => log_phase(
                before,
                "lame-duck work done; waiting for the stop signal",
                self.budget_left(),
            ),
            Step::Stay => {}
        }
        self.publish();
    }

    /// Moves the drain on by itself (the lame-duck work ending, the
    /// phase's share of the budget running out, nothing left in flight) and
    /// returns the outcome once the drain is over; after that it never
    /// returns again. Cancel-safe: it can be dropped and called again.
    pub async fn advance(&mut self) -> Outcome {
        loop {
            if self.over {
                return std::future::pending().await;
            }
            if self.drain.phase() == Phase::Terminate {
                return self.finish_forced().await;
            }
            let timer = self.drain.next_timer().map(Instant::from_std);
            let draining = self.drain.phase() == Phase::Drain;
            let woke = tokio::select! {
                () = run_some(&mut self.lame_duck) => Woke::LameDuckDone,
                () = sleep_until(timer) => Woke::Timer,
                () = self.hooks.idle(), if draining => Woke::Idle,
            };
            match woke {
                Woke::LameDuckDone => {
                    self.lame_duck = None;
                    self.trigger(Trigger::LameDuckDone, "lame-duck work done");
                }
                Woke::Timer => {
                    let reason = match self.drain.phase() {
                        Phase::LameDuck => "the lame-duck share of the budget is used up",
                        _ => "deadline (grace − margin) reached",
                    };
                    self.trigger(Trigger::Timer, reason);
                }
                Woke::Idle => {
                    log_phase(Phase::Drain, "nothing left in flight", self.budget_left());
                    self.over = true;
                    return Outcome::Drained;
                }
            }
        }
    }

    /// Runs the whole drain from `triggers` alone, for a part with no other
    /// event to wait for; returns when it is over.
    pub async fn run(
        &mut self,
        triggers: &mut mpsc::UnboundedReceiver<(Trigger, String)>,
    ) -> Outcome {
        let mut open = true;
        loop {
            tokio::select! {
                t = triggers.recv(), if open => match t {
                    Some((trigger, reason)) => self.trigger(trigger, &reason),
                    None => open = false,
                },
                outcome = self.advance() => return outcome,
            }
        }
    }

    fn enter(&mut self, phase: Phase, reason: &str) {
        log_phase(phase, reason, self.budget_left());
        // Published before the hooks run, so readiness turns 503 first.
        self.publish();
        match phase {
            Phase::Serving => {}
            Phase::LameDuck => self.start_lame_duck(),
            Phase::Drain => {
                self.lame_duck = None;
                self.hooks.stop_accepting();
            }
            Phase::Terminate => {
                self.lame_duck = None;
                self.hooks.terminate();
            }
        }
    }

    fn start_lame_duck(&mut self) {
        let Some(budget) = self.drain.budget() else {
            return;
        };
        let until = Instant::from_std(budget.lame_duck_until());
        self.lame_duck = Some(lame_duck(&mut self.hooks, self.plan.wait(), until));
    }

    /// In the terminate phase: waits [`FORCE_WAIT`] at most for what was
    /// forced to go, and reports how much was still in flight.
    async fn finish_forced(&mut self) -> Outcome {
        let in_flight = self.hooks.in_flight();
        self.over = true;
        if in_flight == 0 {
            return Outcome::Drained;
        }
        let _ = tokio::time::timeout(FORCE_WAIT, self.hooks.idle()).await;
        tracing::warn!(
            in_flight,
            "deadline: forced what was still in flight to stop"
        );
        Outcome::Forced { in_flight }
    }

    fn publish(&self) {
        self.status.send_replace(Status {
            phase: self.drain.phase(),
            lame_duck_done: self.drain.lame_duck_done(),
            budget: self.drain.budget(),
        });
    }
}

/// The lame-duck work: [`Hooks::tell_routers`], the plan's `wait`, then
/// [`Hooks::after_wait`], all within `until`. [`Driver`] runs it; `prestop`
/// without a supervisor runs it alone.
pub fn lame_duck<H: Hooks + ?Sized>(
    hooks: &mut H,
    wait: LameDuckWait,
    until: Instant,
) -> BoxFuture<'static, ()> {
    let told = hooks.tell_routers(until);
    let wait_until = until
        .checked_sub(hooks.after_wait_reserve())
        .unwrap_or(until);
    let quiet = match wait {
        LameDuckWait::UntilQuiet { quiet, .. } => Some(hooks.until_quiet(quiet, wait_until)),
        _ => None,
    };
    let after = hooks.after_wait(until);
    Box::pin(async move {
        told.await;
        let start = Instant::now();
        let wait_until = wait_until.max(start);
        let left = || format_duration(wait_until.saturating_duration_since(Instant::now()));
        match (wait, quiet) {
            (LameDuckWait::Fixed(delay), _) => {
                tracing::info!(delay = %format_duration(delay), share_left = %left(), "waiting the drain delay");
                tokio::time::sleep_until((start + delay).min(wait_until)).await;
            }
            (LameDuckWait::UntilQuiet { quiet, max }, Some(quiet_wait)) => {
                let end = max.map_or(wait_until, |m| (start + m).min(wait_until));
                tracing::info!(quiet = %format_duration(quiet), share_left = %left(), "waiting until no request has arrived for the quiet period");
                let was_quiet = tokio::time::timeout_at(end, quiet_wait)
                    .await
                    .unwrap_or(false);
                let waited = format_duration(start.elapsed());
                if was_quiet {
                    tracing::info!(waited = %waited, "quiet: routers have stopped sending");
                } else {
                    tracing::warn!(waited = %waited, "still not quiet at the end of the lame-duck share; going on");
                }
            }
            _ => {}
        }
        after.await;
    })
}

/// The time now, on tokio's clock (paused in tests) as the machine wants it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn run_some(work: &mut Option<BoxFuture<'static, ()>>) {
    match work {
        Some(work) => work.await,
        None => std::future::pending().await,
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
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    };

    use super::*;
    use crate::{Activity, StopKind, Timing};

    /// Hooks that record every call and keep `in_flight` requests open
    /// until the test lets them go.
    #[derive(Clone, Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<&'static str>>>,
        in_flight: Arc<AtomicUsize>,
        finished: Arc<tokio::sync::Notify>,
        activity: Arc<Activity>,
    }

    impl Recorder {
        fn calls(&self) -> Vec<&'static str> {
            self.calls.lock().unwrap().clone()
        }

        fn call(&self, name: &'static str) {
            self.calls.lock().unwrap().push(name);
        }
    }

    impl Hooks for Recorder {
        fn tell_routers(&mut self, _until: Instant) -> BoxFuture<'static, ()> {
            self.call("tell_routers");
            Box::pin(async {})
        }

        fn until_quiet(&mut self, quiet: Duration, _until: Instant) -> BoxFuture<'static, bool> {
            let activity = Arc::clone(&self.activity);
            Box::pin(async move {
                activity.until_quiet(quiet).await;
                true
            })
        }

        fn stop_accepting(&mut self) {
            self.call("stop_accepting");
        }

        fn in_flight(&self) -> usize {
            self.in_flight.load(Ordering::SeqCst)
        }

        fn idle(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(async {
                loop {
                    let finished = self.finished.notified();
                    if self.in_flight() == 0 {
                        return;
                    }
                    finished.await;
                }
            })
        }

        fn terminate(&mut self) {
            self.call("terminate");
        }
    }

    fn plan(wait: LameDuckWait) -> Plan {
        let timing = Timing {
            grace: Duration::from_secs(30),
            margin: Duration::from_secs(2),
            stop_reserve: Duration::from_secs(5),
        };
        Plan::new(timing, wait).unwrap()
    }

    fn driver(wait: LameDuckWait, hooks: &Recorder) -> (Driver<Recorder>, watch::Receiver<Status>) {
        let (tx, rx) = watch::channel(Status::default());
        (Driver::new(plan(wait), hooks.clone(), tx), rx)
    }

    /// The phases the status channel went through, from a recorder task.
    fn phases(mut rx: watch::Receiver<Status>) -> tokio::task::JoinHandle<Vec<Phase>> {
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while rx.changed().await.is_ok() {
                let phase = rx.borrow_and_update().phase;
                if seen.last() != Some(&phase) {
                    seen.push(phase);
                }
            }
            seen
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_delay_holds_the_lame_duck_phase_then_drains() {
        let hooks = Recorder::default();
        let (mut d, rx) = driver(LameDuckWait::Fixed(Duration::from_secs(5)), &hooks);
        let seen = phases(rx);
        let start = Instant::now();
        d.trigger(Trigger::Signal(StopKind::Graceful), "SIGTERM");
        assert_eq!(d.phase(), Phase::LameDuck);
        assert_eq!(d.advance().await, Outcome::Drained);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(5),
            "the delay, exactly"
        );
        assert_eq!(hooks.calls(), ["tell_routers", "stop_accepting"]);
        drop(d);
        assert_eq!(
            seen.await.unwrap(),
            [Phase::LameDuck, Phase::Drain],
            "what readiness and metrics saw"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn until_quiet_ends_as_soon_as_requests_stop() {
        let hooks = Recorder::default();
        let wait = LameDuckWait::UntilQuiet {
            quiet: Duration::from_secs(2),
            max: None,
        };
        let (mut d, _rx) = driver(wait, &hooks);
        let start = Instant::now();
        // Requests keep arriving for 3 s after the signal, then stop.
        let activity = Arc::clone(&hooks.activity);
        tokio::spawn(async move {
            for _ in 0..30 {
                activity.touch();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        d.trigger(Trigger::Signal(StopKind::Graceful), "SIGTERM");
        assert_eq!(d.advance().await, Outcome::Drained);
        let took = start.elapsed();
        // The last request at 2.9 s, quiet 2 s later: far from the 23 s share.
        assert!(
            took >= Duration::from_millis(4900) && took <= Duration::from_millis(5100),
            "{took:?}"
        );
        assert_eq!(hooks.calls(), ["tell_routers", "stop_accepting"]);
    }

    #[tokio::test(start_paused = true)]
    async fn until_quiet_never_outlasts_its_share_of_the_budget() {
        let hooks = Recorder::default();
        let wait = LameDuckWait::UntilQuiet {
            quiet: Duration::from_secs(2),
            max: None,
        };
        let (mut d, _rx) = driver(wait, &hooks);
        let activity = Arc::clone(&hooks.activity);
        let busy = tokio::spawn(async move {
            loop {
                activity.touch();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let start = Instant::now();
        d.trigger(Trigger::Signal(StopKind::Graceful), "SIGTERM");
        assert_eq!(d.advance().await, Outcome::Drained);
        busy.abort();
        // grace 30 − margin 2 − stop reserve 5.
        assert_eq!(start.elapsed(), Duration::from_secs(23));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_cuts_a_long_drain() {
        let hooks = Recorder::default();
        hooks.in_flight.store(3, Ordering::SeqCst);
        let (mut d, rx) = driver(LameDuckWait::None, &hooks);
        let seen = phases(rx);
        let start = Instant::now();
        d.trigger(Trigger::Signal(StopKind::Fast), "SIGINT");
        assert_eq!(d.advance().await, Outcome::Forced { in_flight: 3 });
        // Terminate at grace − margin, then the short wait for what was forced.
        assert_eq!(start.elapsed(), Duration::from_secs(28) + FORCE_WAIT);
        assert_eq!(hooks.calls(), ["stop_accepting", "terminate"]);
        drop(d);
        assert_eq!(seen.await.unwrap(), [Phase::Drain, Phase::Terminate]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_ends_when_the_last_request_finishes() {
        let hooks = Recorder::default();
        hooks.in_flight.store(1, Ordering::SeqCst);
        let (mut d, _rx) = driver(LameDuckWait::None, &hooks);
        let h = hooks.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            h.in_flight.store(0, Ordering::SeqCst);
            h.finished.notify_waiters();
        });
        let start = Instant::now();
        d.trigger(Trigger::Signal(StopKind::Fast), "SIGINT");
        assert_eq!(d.advance().await, Outcome::Drained);
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_cuts_the_lame_duck_wait_short() {
        let hooks = Recorder::default();
        let (mut d, _rx) = driver(LameDuckWait::Fixed(Duration::from_secs(20)), &hooks);
        let (tx, mut triggers) = mpsc::unbounded_channel();
        tx.send((Trigger::Signal(StopKind::Graceful), "SIGTERM".to_string()))
            .unwrap();
        let later = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = later.send((Trigger::Signal(StopKind::Graceful), "SIGTERM".into()));
        });
        let start = Instant::now();
        assert_eq!(d.run(&mut triggers).await, Outcome::Drained);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(hooks.calls(), ["tell_routers", "stop_accepting"]);
    }

    #[tokio::test(start_paused = true)]
    async fn after_prestop_the_driver_waits_for_the_stop_signal() {
        let hooks = Recorder::default();
        let (mut d, rx) = driver(LameDuckWait::Fixed(Duration::from_secs(2)), &hooks);
        d.trigger(Trigger::PreStop, "preStop");
        // The work is done after 2 s, but only SIGTERM moves the drain on.
        let advanced = tokio::time::timeout(Duration::from_secs(10), d.advance()).await;
        assert!(advanced.is_err(), "the drain went on without a signal");
        assert!(rx.borrow().lame_duck_done);
        assert_eq!(d.phase(), Phase::LameDuck);
        d.trigger(Trigger::Signal(StopKind::Graceful), "SIGTERM");
        assert_eq!(d.phase(), Phase::Drain);
        assert_eq!(d.advance().await, Outcome::Drained);
    }
}
