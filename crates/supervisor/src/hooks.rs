//! What the drain does in `run`: the lame-duck work after readiness flips
//! (drain hooks; the wait itself is the drain driver's), the stop signal, and
//! SIGKILL at the deadline; the [`Hooks`] of [`lameduck_drain::Driver`].
//!
//! Hooks are what users put in `preStop` scripts today (`curl … status=DOWN`).
//! They run one after another, without a shell (so they work in distroless
//! images), each bounded by the lame-duck share of the budget: a hook that hangs
//! is killed with its whole process group and the drain goes on.

use std::{process::Stdio, sync::Arc, time::Duration};

use lameduck_drain::{format_duration, BoxFuture, Hooks, Sig};
use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};
use tokio::time::Instant;

/// Time the lame-duck wait leaves at the end of its share for the Eureka cancel.
const CANCEL_RESERVE: Duration = Duration::from_millis(500);

use crate::{
    quiet,
    reaper::{Exit, Reaper},
    spawn::{self, Options},
    state::Shared,
    Hook, LameDuckWork, Rewrites,
};

/// What the drain driver does to the app and its routers: the lame-duck
/// work (Eureka DOWN, the hooks, the quiet wait on the app's ports, the
/// Eureka cancel), the stop signal, and SIGKILL at the deadline.
#[derive(Debug)]
pub(crate) struct RunHooks {
    pub(crate) work: LameDuckWork,
    pub(crate) reaper: Arc<Reaper>,
    pub(crate) shared: Arc<Shared>,
    /// The app and how signals reach it; `None` for `prestop` without a
    /// supervisor, which has no app.
    pub(crate) app: Option<App>,
}

/// The supervised app, as signals reach it.
#[derive(Debug)]
pub(crate) struct App {
    /// Its PID, which is also its process group ID.
    pub(crate) pid: Pid,
    pub(crate) rewrites: Rewrites,
    /// Signals go to the whole process group (`--signal-group`).
    pub(crate) group: bool,
    /// The first stop signal received: the one the app gets in phase 2.
    pub(crate) stop_signal: Option<Sig>,
}

impl Hooks for RunHooks {
    /// Marks the instance DOWN in Eureka, then runs the hooks, all within `until`.
    fn tell_routers(&mut self, until: Instant) -> BoxFuture<'static, ()> {
        let (work, reaper, shared) = (
            self.work.clone(),
            Arc::clone(&self.reaper),
            Arc::clone(&self.shared),
        );
        let app_pid = self.app.as_ref().map(|a| a.pid);
        Box::pin(async move {
            if let Some(eureka) = &work.eureka {
                crate::eureka::mark_down(eureka, until).await;
            }
            for hook in &work.hooks {
                run_hook(hook, until, &reaper, &shared, app_pid).await;
            }
        })
    }

    /// Quiet on the app's ports: no new connection, no data received.
    fn until_quiet(&mut self, quiet: Duration, until: Instant) -> BoxFuture<'static, bool> {
        let (ports, shared) = (self.work.quiet_ports.clone(), Arc::clone(&self.shared));
        Box::pin(async move {
            tracing::info!(ports = ?ports, "watching the app's ports (no new connection, no data received)");
            let outcome = quiet::wait_until_quiet(&ports, quiet, until, |change| {
                shared.new_connections.inc_by(change.new_connections);
                shared.bytes_received.inc_by(change.bytes_received);
            })
            .await;
            let (new, bytes) = (outcome.new_connections, outcome.bytes_received);
            tracing::info!(
                new_connections = new,
                bytes_received = bytes,
                "seen on the app's ports while waiting"
            );
            outcome.quiet
        })
    }

    /// With Eureka, the wait leaves time for the cancel that follows it.
    fn after_wait_reserve(&self) -> Duration {
        self.work
            .eureka
            .as_ref()
            .map_or(Duration::ZERO, |e| e.timeout.min(CANCEL_RESERVE))
    }

    /// The lame-duck wait is over: remove the instance from Eureka for good.
    fn after_wait(&mut self, until: Instant) -> BoxFuture<'static, ()> {
        let eureka = self.work.eureka.clone();
        Box::pin(async move {
            if let Some(eureka) = &eureka {
                crate::eureka::cancel(eureka, until).await;
            }
        })
    }

    /// The app gets its stop signal (the first one received, rewritten).
    fn stop_accepting(&mut self) {
        if let Some(app) = &self.app {
            app.forward(app.stop_signal.unwrap_or(Sig::TERM), &self.shared);
        }
    }

    fn in_flight(&self) -> usize {
        usize::from(
            self.shared
                .child_running
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// SIGKILL to the app's process group.
    fn terminate(&mut self) {
        let Some(app) = &self.app else { return };
        match killpg(app.pid, Signal::SIGKILL) {
            Ok(()) => tracing::warn!(
                pgid = app.pid.as_raw(),
                "sent SIGKILL to the app's process group"
            ),
            Err(e) => tracing::warn!("SIGKILL to the app's process group failed: {e}"),
        }
    }
}

impl App {
    /// Sends `sig` (after `--rewrite`) to the app, or its group.
    pub(crate) fn forward(&self, sig: Sig, shared: &Shared) {
        let Some(to) = self.rewrites.apply(sig) else {
            tracing::info!("dropped {sig} (--rewrite {}:0)", sig.name());
            return;
        };
        let (target, whom) = if self.group {
            (-self.pid.as_raw(), "app's process group")
        } else {
            (self.pid.as_raw(), "app")
        };
        match kill_raw(Pid::from_raw(target), to.0) {
            Ok(()) => {
                shared.count_forwarded(to);
                if to == sig {
                    tracing::info!("forwarded {sig} to the {whom}");
                } else {
                    tracing::info!("forwarded {sig} as {to} to the {whom}");
                }
            }
            Err(e) => tracing::warn!("could not send {to} to the app: {e}"),
        }
    }
}

/// `kill(2)` for any signal number: real-time signals have no `nix::Signal`.
#[allow(unsafe_code)]
fn kill_raw(target: Pid, raw: i32) -> nix::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { nix::libc::kill(target.as_raw(), raw) };
    nix::errno::Errno::result(rc).map(drop)
}

async fn run_hook(
    hook: &Hook,
    until: Instant,
    reaper: &Reaper,
    shared: &Shared,
    app_pid: Option<Pid>,
) {
    let budget_left = until.saturating_duration_since(Instant::now());
    let mut cmd = spawn::command(&hook.argv, Options { foreground: false });
    cmd.stdin(Stdio::null())
        .env("LAMEDUCK_PHASE", "lame-duck")
        .env(
            "LAMEDUCK_BUDGET_LEFT_MS",
            budget_left.as_millis().to_string(),
        );
    if let Some(pid) = app_pid {
        cmd.env("LAMEDUCK_APP_PID", pid.as_raw().to_string());
    }
    tracing::info!(hook = %hook.line, time_left = %format_duration(budget_left), "running drain hook");
    let started = Instant::now();
    let (pid, exit) = match reaper.spawn(&mut cmd) {
        Ok(spawned) => spawned,
        Err(e) => {
            shared.hook_failures.inc();
            tracing::error!(hook = %hook.line, "drain hook could not start: {e}");
            return;
        }
    };
    let took = || format_duration(started.elapsed());
    // If the lame-duck phase is cut short (a second stop signal), this future is
    // dropped mid-wait: the guard then kills the hook's group so it cannot linger.
    let guard = KillOnDrop(Some((pid, hook.line.clone())));
    let result = tokio::time::timeout_at(until, exit).await;
    guard.disarm();
    match result {
        Ok(Ok(Exit::Code(0))) => {
            tracing::info!(hook = %hook.line, took = %took(), "drain hook done")
        }
        Ok(Ok(exit)) => {
            shared.hook_failures.inc();
            tracing::warn!(hook = %hook.line, took = %took(), "drain hook failed: {exit}; going on");
        }
        Ok(Err(_)) => tracing::warn!(hook = %hook.line, "drain hook's status was lost"),
        Err(_) => {
            shared.hook_failures.inc();
            let _ = killpg(pid, Signal::SIGKILL);
            tracing::warn!(hook = %hook.line, took = %took(), "drain hook ran out of the lame-duck share; killed it");
        }
    }
}

/// Kills a hook's process group when dropped, unless disarmed.
struct KillOnDrop(Option<(Pid, String)>);

impl KillOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some((pid, line)) = self.0.take() {
            let _ = killpg(pid, Signal::SIGKILL);
            tracing::warn!(hook = %line, "drain hook still running when the lame-duck phase ended; killed it");
        }
    }
}
