//! The supervise loop: one task that owns the drain and reacts to signals, the
//! control socket, the lame-duck work finishing, timers, and the app's exit.

use std::{sync::Arc, time::Duration};

use lameduck_drain::{format_duration, log_phase, Driver, LameDuckWait, Phase, Plan, Sig, Trigger};
use nix::{
    sys::signal::Signal,
    unistd::{getpid, Pid},
};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
    time::Instant,
};

use crate::{
    admin, control, descendants,
    hooks::{App, RunHooks},
    jobctl::JobControl,
    quiet,
    reaper::{Exit, Reaper},
    spawn::{self, Options},
    state::Shared,
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

    let hooks = RunHooks {
        work: config.lame_duck.clone(),
        reaper: Arc::clone(&reaper),
        shared: Arc::clone(&shared),
        app: Some(App {
            pid,
            rewrites: config.rewrites.clone(),
            group: config.signal_group,
            stop_signal: None,
        }),
    };
    let status = shared.status.clone();
    let mut sup = Supervisor {
        driver: Driver::new(config.plan, hooks, status),
        cleanup_timeout: config.cleanup_timeout,
        shared,
        reaper,
        jobctl,
        app: pid,
        control_socket,
    };
    let exit = loop {
        tokio::select! {
            exit = &mut app_exit => break exit.ok(),
            Some(sig) = signals.recv() => sup.on_signal(sig),
            Some(()) = prestop_rx.recv() => sup.driver.trigger(Trigger::PreStop, "preStop: drain requested on the control socket"),
            Some((p, sig)) = stopped.recv() => if p == pid { sup.jobctl.app_stopped(pid, sig) },
            // The app's exit ends the drain; the driver's outcome only logs.
            _ = sup.driver.advance() => {}
        }
    };
    Ok(sup.finish(exit).await)
}

struct Supervisor {
    driver: Driver<RunHooks>,
    shared: Arc<Shared>,
    reaper: Arc<Reaper>,
    jobctl: JobControl,
    cleanup_timeout: Duration,
    /// The app's PID, which is also its process group ID.
    app: Pid,
    /// The control socket this supervisor created, removed when it exits.
    control_socket: Option<std::path::PathBuf>,
}

impl Supervisor {
    fn on_signal(&mut self, sig: Sig) {
        match sig.stop_kind() {
            Some(kind) => {
                if let Some(app) = &mut self.driver.hooks_mut().app {
                    app.stop_signal.get_or_insert(sig);
                }
                self.driver
                    .trigger(Trigger::Signal(kind), &format!("received {sig}"));
            }
            None => {
                if sig == Sig::CONT && self.jobctl.enabled {
                    self.jobctl.resume(self.app);
                }
                if let Some(app) = &self.driver.hooks().app {
                    app.forward(sig, &self.shared);
                }
            }
        }
    }

    /// The app has exited: clean up what it left behind and return its status.
    async fn finish(self, exit: Option<Exit>) -> i32 {
        self.shared
            .child_running
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let (phase, left) = (self.driver.phase(), self.driver.budget_left());
        // Ends the lame-duck work if it still runs (its hooks are killed).
        drop(self.driver);
        let exit = exit.unwrap_or(Exit::Code(1));
        match left {
            Some(left) => {
                tracing::info!(phase = %phase, budget_left = %format_duration(left), "app exited: {exit}")
            }
            None => tracing::info!(phase = %phase, "app exited: {exit}"),
        }
        let timeout = match (phase, left) {
            (Phase::Terminate, _) => Duration::ZERO,
            (_, Some(left)) => self.cleanup_timeout.min(left),
            (_, None) => self.cleanup_timeout,
        };
        cleanup_descendants(timeout, &self.reaper).await;
        if let Some(path) = &self.control_socket {
            let _ = std::fs::remove_file(path);
        }
        exit.status()
    }
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
        let mut hooks = RunHooks {
            work,
            reaper,
            shared,
            app: None,
        };
        lameduck_drain::lame_duck(&mut hooks, plan.wait(), until).await;
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
