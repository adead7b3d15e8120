//! The supervise loop: one task that owns the drain and reacts to signals, the
//! control socket, the lame-duck work finishing, timers, and the app's exit.

use std::{sync::Arc, time::Duration};

use lameduck_drain::{
    format_duration, log_phase, Drain, LameDuckWait, Phase, Plan, Sig, Step, Trigger,
};
use nix::{
    sys::signal::{killpg, Signal},
    unistd::{getpid, Pid},
};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
    task::JoinHandle,
    time::Instant,
};

use crate::{
    admin, control, descendants, hooks,
    jobctl::JobControl,
    quiet,
    reaper::{Exit, Reaper},
    spawn::{self, Options},
    state::{Shared, Status},
    Config, Error, LameDuckWork,
};

/// Runs `config.command` under supervision until it exits; returns the exit
/// status lameduck should exit with (the app's, or 128 + signal).
///
/// Builds a single-threaded runtime (a supervisor needs no more, and it keeps the
/// memory small), listens for every forwardable signal *before* the app starts so
/// none is missed, and hands over to [`supervise`].
pub fn run(config: Config) -> Result<i32, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the runtime"))?;
    rt.block_on(async {
        spawn::ignore_tty_job_signals();
        become_reaper();
        let signals = listen_for_signals()?;
        supervise(config, signals).await
    })
}

/// As PID 1 the kernel already hands us every orphan; otherwise ask for them.
fn become_reaper() {
    if getpid().as_raw() == 1 {
        tracing::info!("running as PID 1: reaping every orphan in this PID namespace");
    } else if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(
            "cannot become a child subreaper ({e}); orphans of the app will not be reaped here"
        );
    }
}

/// One task per forwardable signal, all feeding one channel.
fn listen_for_signals() -> Result<mpsc::UnboundedReceiver<Sig>, Error> {
    let (tx, rx) = mpsc::unbounded_channel();
    for sig in Sig::forwardable() {
        let mut stream = match signal(SignalKind::from_raw(sig.0)) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("cannot listen for {sig}: {e}");
                continue;
            }
        };
        let tx = tx.clone();
        // Fatal: a PID 1 deaf to a signal could neither forward it nor
        // drain on it. It returns when the supervisor is done.
        lameduck_drain::spawn_fatal(format!("listener for {sig}"), async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}

/// Supervises the app, taking signals from `signals` (the OS signals in
/// [`run`]; anything in tests).
pub async fn supervise(
    config: Config,
    mut signals: mpsc::UnboundedReceiver<Sig>,
) -> Result<i32, Error> {
    let shared = Arc::new(Shared::new());
    let jobctl = JobControl::detect();
    let (reaper, mut stopped) = Reaper::start(Arc::clone(&shared), jobctl.enabled)?;
    let (prestop_tx, mut prestop_rx) = mpsc::unbounded_channel();
    if let Some(addr) = config.admin {
        let local = admin::start(addr, Arc::clone(&shared), config.ready_check.clone()).await?;
        tracing::info!(addr = %local, "admin endpoints /readyz /healthz /metrics");
    }
    if matches!(config.plan.wait(), LameDuckWait::UntilQuiet { .. }) {
        // Chosen and logged now, so the log says at start what the wait will see.
        quiet::method(&config.lame_duck.quiet_ports);
    }
    let mut control_socket = None;
    if let Some(path) = &config.control {
        match control::start(path, Arc::clone(&shared), prestop_tx).await {
            Ok(()) => control_socket = Some(path.clone()),
            Err(e) => tracing::warn!("{e}; `lameduck prestop` cannot reach this supervisor"),
        }
    }
    let mut cmd = spawn::command(
        &config.command,
        Options {
            foreground: jobctl.enabled,
        },
    );
    let (pid, mut app_exit) = reaper
        .spawn(&mut cmd)
        .map_err(|e| spawn::spawn_error(&config.command[0], e))?;
    shared
        .child_running
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(pid = pid.as_raw(), command = ?config.command, "app started");
    // Start-up code is not needed any more: hand its pages back, now and once
    // the loop below has settled into waiting.
    crate::memory::page_out_own_executable();
    tokio::spawn(async {
        tokio::time::sleep(crate::memory::SETTLE).await;
        let advised = crate::memory::page_out_own_executable();
        tracing::debug!(
            bytes = advised,
            "start-up pages of the binary handed back to the kernel"
        );
    });

    if let Some(eureka) = config.lame_duck.eureka.clone().filter(|e| e.register) {
        // Restarted after a panic: without it the instance expires from
        // the registry while it serves. Its return (the drain began) is its
        // normal end.
        let (check, shared) = (config.ready_check.clone(), Arc::clone(&shared));
        lameduck_drain::spawn_restarting(
            "eureka registration",
            lameduck_drain::Ends::WhenDone,
            move || register_while_serving(eureka.clone(), check.clone(), Arc::clone(&shared)),
        );
    }

    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut sup = Supervisor {
        drain: Drain::new(config.plan.timing()),
        config,
        shared,
        reaper,
        jobctl,
        app: pid,
        stop_signal: None,
        lame_duck: None,
        lame_duck_done: done_tx,
        control_socket,
    };
    let exit = loop {
        let timer = sup.drain.next_timer();
        tokio::select! {
            exit = &mut app_exit => break exit.ok(),
            Some(sig) = signals.recv() => sup.on_signal(sig),
            Some(()) = prestop_rx.recv() => sup.apply(Trigger::PreStop, "preStop: drain requested on the control socket"),
            Some(()) = done_rx.recv() => sup.apply(Trigger::LameDuckDone, "lame-duck work done"),
            Some((p, sig)) = stopped.recv() => if p == pid { sup.jobctl.app_stopped(pid, sig) },
            () = sleep_until(timer), if timer.is_some() => sup.on_timer(),
        }
    };
    Ok(sup.finish(exit).await)
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

struct Supervisor {
    config: Config,
    shared: Arc<Shared>,
    reaper: Arc<Reaper>,
    jobctl: JobControl,
    drain: Drain,
    /// The app's PID, which is also its process group ID.
    app: Pid,
    /// The first stop signal received: the one the app gets in phase 2.
    stop_signal: Option<Sig>,
    lame_duck: Option<JoinHandle<()>>,
    lame_duck_done: mpsc::UnboundedSender<()>,
    /// The control socket this supervisor created, removed when it exits.
    control_socket: Option<std::path::PathBuf>,
}

impl Supervisor {
    fn on_signal(&mut self, sig: Sig) {
        match sig.stop_kind() {
            Some(kind) => {
                self.stop_signal.get_or_insert(sig);
                self.apply(Trigger::Signal(kind), &format!("received {sig}"));
            }
            None => {
                if sig == Sig::CONT && self.jobctl.enabled {
                    self.jobctl.resume(self.app);
                }
                self.forward(sig);
            }
        }
    }

    fn on_timer(&mut self) {
        let reason = match self.drain.phase() {
            Phase::LameDuck => "the lame-duck share of the budget is used up",
            _ => "deadline (grace − margin) reached",
        };
        self.apply(Trigger::Timer, reason);
    }

    /// Applies a trigger to the drain and carries out the phase it enters.
    fn apply(&mut self, trigger: Trigger, reason: &str) {
        let before = self.drain.phase();
        match self.drain.on(trigger, std::time::Instant::now()) {
            Step::Enter(phase) => self.enter(phase, reason),
            Step::Stay if matches!(trigger, Trigger::Signal(_)) => {
                tracing::info!(phase = %before, "{reason}: already in the last phase");
            }
            Step::Stay if trigger == Trigger::LameDuckDone => {
                log_phase(
                    before,
                    "lame-duck work done; waiting for the stop signal",
                    self.budget_left(),
                );
            }
            Step::Stay => {}
        }
        self.publish();
    }

    fn enter(&mut self, phase: Phase, reason: &str) {
        log_phase(phase, reason, self.budget_left());
        match phase {
            Phase::Serving => {}
            Phase::LameDuck => self.start_lame_duck(),
            Phase::Drain => {
                self.stop_lame_duck();
                let sig = self.stop_signal.unwrap_or(Sig::TERM);
                self.forward(sig);
            }
            Phase::Terminate => {
                self.stop_lame_duck();
                match killpg(self.app, Signal::SIGKILL) {
                    Ok(()) => tracing::warn!(
                        pgid = self.app.as_raw(),
                        "sent SIGKILL to the app's process group"
                    ),
                    Err(e) => tracing::warn!("SIGKILL to the app's process group failed: {e}"),
                }
            }
        }
    }

    fn start_lame_duck(&mut self) {
        let Some(budget) = self.drain.budget() else {
            return;
        };
        let until = Instant::from_std(budget.lame_duck_until());
        let (work, wait) = (self.config.lame_duck.clone(), self.config.plan.wait());
        let (reaper, shared) = (Arc::clone(&self.reaper), Arc::clone(&self.shared));
        let (done, app) = (self.lame_duck_done.clone(), self.app);
        self.lame_duck = Some(tokio::spawn(async move {
            hooks::lame_duck(&work, wait, until, &reaper, &shared, Some(app)).await;
            let _ = done.send(());
        }));
    }

    fn stop_lame_duck(&mut self) {
        if let Some(task) = self.lame_duck.take() {
            task.abort();
        }
    }

    /// Sends `sig` (after `--rewrite`) to the app, or its group.
    fn forward(&self, sig: Sig) {
        let Some(to) = self.config.rewrites.apply(sig) else {
            tracing::info!("dropped {sig} (--rewrite {}:0)", sig.name());
            return;
        };
        let target = if self.config.signal_group {
            -self.app.as_raw()
        } else {
            self.app.as_raw()
        };
        let result = kill_raw(Pid::from_raw(target), to.0);
        match result {
            Ok(()) => {
                self.shared.count_forwarded(to);
                let target = if self.config.signal_group {
                    "app's process group"
                } else {
                    "app"
                };
                if to == sig {
                    tracing::info!("forwarded {sig} to the {target}");
                } else {
                    tracing::info!("forwarded {sig} as {to} to the {target}");
                }
            }
            Err(e) => tracing::warn!("could not send {to} to the app: {e}"),
        }
    }

    fn budget_left(&self) -> Option<Duration> {
        self.drain
            .budget()
            .map(|b| b.left(std::time::Instant::now()))
    }

    fn publish(&self) {
        self.shared.status.send_replace(Status {
            phase: self.drain.phase(),
            lame_duck_done: self.drain.lame_duck_done(),
            budget: self.drain.budget(),
        });
    }

    /// The app has exited: clean up what it left behind and return its status.
    async fn finish(mut self, exit: Option<Exit>) -> i32 {
        self.shared
            .child_running
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.stop_lame_duck();
        let exit = exit.unwrap_or(Exit::Code(1));
        let phase = self.drain.phase();
        match self.budget_left() {
            Some(left) => {
                tracing::info!(phase = %phase, budget_left = %format_duration(left), "app exited: {exit}")
            }
            None => tracing::info!(phase = %phase, "app exited: {exit}"),
        }
        let timeout = match (phase, self.budget_left()) {
            (Phase::Terminate, _) => Duration::ZERO,
            (_, Some(left)) => self.config.cleanup_timeout.min(left),
            (_, None) => self.config.cleanup_timeout,
        };
        cleanup_descendants(timeout, &self.reaper).await;
        if let Some(path) = &self.control_socket {
            let _ = std::fs::remove_file(path);
        }
        exit.status()
    }
}

/// `kill(2)` for any signal number: real-time signals have no `nix::Signal`.
#[allow(unsafe_code)]
fn kill_raw(target: Pid, raw: i32) -> nix::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { nix::libc::kill(target.as_raw(), raw) };
    nix::errno::Errno::result(rc).map(drop)
}

/// SIGTERM to every leftover descendant, SIGKILL after `timeout`, then wait
/// (bounded) until all of them are reaped.
async fn cleanup_descendants(timeout: Duration, reaper: &Reaper) {
    reaper.reap_now(false);
    if descendants::descendants().is_empty() {
        return;
    }
    if !timeout.is_zero() {
        let n = descendants::signal_all(Signal::SIGTERM);
        tracing::info!(processes = n, wait = %format_duration(timeout), "sent SIGTERM to processes the app left behind");
        if wait_for_no_descendants(timeout, reaper).await {
            return;
        }
    }
    let n = descendants::signal_all(Signal::SIGKILL);
    tracing::warn!(
        processes = n,
        "sent SIGKILL to processes the app left behind"
    );
    wait_for_no_descendants(Duration::from_secs(1), reaper).await;
}

async fn wait_for_no_descendants(timeout: Duration, reaper: &Reaper) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        reaper.reap_now(false);
        if descendants::descendants().is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `lameduck prestop` with no supervisor to talk to: runs the lame-duck work
/// (hooks, then the drain delay or the quiet wait) in this process.
pub fn lame_duck_alone(work: LameDuckWork, plan: Plan) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the runtime"))?;
    rt.block_on(async {
        let shared = Arc::new(Shared::new());
        let (reaper, _stopped) = Reaper::start(Arc::clone(&shared), false)?;
        let until = Instant::now() + plan.timing().lame_duck_share();
        log_phase(
            Phase::LameDuck,
            "preStop: draining without a supervisor",
            Some(plan.timing().until_terminate()),
        );
        hooks::lame_duck(&work, plan.wait(), until, &reaper, &shared, None).await;
        log_phase(Phase::LameDuck, "lame-duck work done", None);
        Ok(())
    })
}

/// `--eureka-register`: once the app is ready (its `--ready-check` answers 2xx,
/// or at once without one), registers and heartbeats it until the drain starts.
async fn register_while_serving(
    eureka: crate::EurekaConfig,
    check: Option<crate::ReadyCheck>,
    shared: Arc<Shared>,
) {
    let mut status = shared.status.subscribe();
    if let Some(check) = &check {
        loop {
            if status.borrow().phase != Phase::Serving {
                return;
            }
            if admin::probe(check)
                .await
                .is_ok_and(|code| code.is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let drain_started = async move {
        let _ = status.wait_for(|s| s.phase != Phase::Serving).await;
    };
    crate::eureka::keep_registered_everywhere(&eureka, drain_started).await;
}
