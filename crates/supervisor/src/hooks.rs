//! The lame-duck phase's work after readiness flips: drain hooks, then the wait.
//!
//! Hooks are what users put in `preStop` scripts today (`curl … status=DOWN`).
//! They run one after another, without a shell (so they work in distroless
//! images), each bounded by the lame-duck share of the budget: a hook that hangs
//! is killed with its whole process group and the drain goes on.

use std::{
    process::Stdio,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use lameduck_drain::{format_duration, LameDuckWait};
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
    Hook, LameDuckWork,
};

/// Marks the instance DOWN in Eureka, runs the hooks, waits as `wait` says,
/// then cancels the Eureka registration; all of it within `until`.
pub(crate) async fn lame_duck(
    work: &LameDuckWork,
    wait: LameDuckWait,
    until: Instant,
    reaper: &Reaper,
    shared: &Arc<Shared>,
    app_pid: Option<Pid>,
) {
    if let Some(eureka) = &work.eureka {
        crate::eureka::mark_down(eureka, until).await;
    }
    for hook in &work.hooks {
        run_hook(hook, until, reaper, shared, app_pid).await;
    }
    // With Eureka, the wait leaves time for the cancel that follows it.
    let cancel_reserve = work
        .eureka
        .as_ref()
        .map_or(Duration::ZERO, |e| e.timeout.min(CANCEL_RESERVE));
    let wait_until = until
        .checked_sub(cancel_reserve)
        .unwrap_or(until)
        .max(Instant::now());
    let left = || format_duration(wait_until.saturating_duration_since(Instant::now()));
    match wait {
        LameDuckWait::None => {}
        LameDuckWait::Fixed(delay) => {
            let end = (Instant::now() + delay).min(wait_until);
            tracing::info!(delay = %format_duration(delay), share_left = %left(), "waiting the drain delay");
            tokio::time::sleep_until(end).await;
        }
        LameDuckWait::UntilQuiet { quiet, max } => {
            let end = max.map_or(wait_until, |m| (Instant::now() + m).min(wait_until));
            tracing::info!(
                quiet = %format_duration(quiet),
                ports = ?work.quiet_ports,
                share_left = %left(),
                "waiting until the app's ports are quiet (no new connection, no data received)"
            );
            let started = Instant::now();
            let outcome = quiet::wait_until_quiet(&work.quiet_ports, quiet, end, |change| {
                shared
                    .new_connections
                    .fetch_add(change.new_connections, Ordering::Relaxed);
                shared
                    .bytes_received
                    .fetch_add(change.bytes_received, Ordering::Relaxed);
            })
            .await;
            let waited = format_duration(started.elapsed());
            let (new, bytes) = (outcome.new_connections, outcome.bytes_received);
            if outcome.quiet {
                tracing::info!(waited = %waited, new_connections = new, bytes_received = bytes, "quiet: routers have stopped sending");
            } else {
                tracing::warn!(waited = %waited, new_connections = new, bytes_received = bytes, "still not quiet at the end of the lame-duck share; going on");
            }
        }
    }
    if let Some(eureka) = &work.eureka {
        // The lame-duck wait is over: remove the instance for good.
        crate::eureka::cancel(eureka, until).await;
    }
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
            shared.hook_failures.fetch_add(1, Ordering::Relaxed);
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
            shared.hook_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(hook = %hook.line, took = %took(), "drain hook failed: {exit}; going on");
        }
        Ok(Err(_)) => tracing::warn!(hook = %hook.line, "drain hook's status was lost"),
        Err(_) => {
            shared.hook_failures.fetch_add(1, Ordering::Relaxed);
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
