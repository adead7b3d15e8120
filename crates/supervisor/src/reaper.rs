//! Collects the exit status of every child: the app, the drain hooks, and the
//! orphans the kernel hands to a PID 1 or a child subreaper.
//!
//! One `waitpid(-1)` loop must own reaping: anything else that waits (such as
//! `tokio::process`) would race it for statuses. So children are spawned through
//! [`Reaper::spawn`], which registers interest in the PID while holding the same
//! lock the reaping loop takes: a child that dies at once cannot be reaped before
//! anyone is listening for it.

use std::{
    collections::HashMap,
    process::Command,
    sync::{Arc, Mutex},
};

use nix::{libc, unistd::Pid};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::{mpsc, oneshot},
};

use crate::{state::Shared, Error};

/// How a child ended, or that it stopped (job control).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl Exit {
    /// The status a shell would report: the code, or 128 + signal.
    pub(crate) fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "killed by {}", lameduck_drain::Sig(*s)),
        }
    }
}

/// Receives `(pid, signal)` for each child stopped by job control.
pub(crate) type StoppedRx = mpsc::UnboundedReceiver<(Pid, i32)>;

#[derive(Debug, Default)]
struct Waiters {
    by_pid: HashMap<Pid, oneshot::Sender<Exit>>,
}

/// The single owner of `waitpid(-1)` in this process.
#[derive(Debug)]
pub(crate) struct Reaper {
    waiters: Mutex<Waiters>,
    shared: Arc<Shared>,
    stopped_tx: mpsc::UnboundedSender<(Pid, i32)>,
}

impl Reaper {
    /// Starts reaping on every SIGCHLD. The receiver gets `(pid, signal)` each time
    /// a child is stopped by job control (only reported with `untraced`).
    pub(crate) fn start(
        shared: Arc<Shared>,
        untraced: bool,
    ) -> Result<(Arc<Reaper>, StoppedRx), Error> {
        let mut sigchld =
            signal(SignalKind::child()).map_err(Error::io("listening for SIGCHLD"))?;
        let (stopped_tx, stopped_rx) = mpsc::unbounded_channel();
        let reaper = Arc::new(Reaper {
            waiters: Mutex::default(),
            shared,
            stopped_tx,
        });
        let r = Arc::clone(&reaper);
        // Fatal: a PID 1 that stopped reaping fills the process table with
        // zombies and never learns that the app exited.
        lameduck_drain::spawn_fatal("reaper", async move {
            loop {
                r.reap_now(untraced);
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok((reaper, stopped_rx))
    }

    /// Spawns `cmd` and returns its PID and a receiver for its exit.
    pub(crate) fn spawn(
        &self,
        cmd: &mut Command,
    ) -> std::io::Result<(Pid, oneshot::Receiver<Exit>)> {
        let mut waiters = self.lock();
        let child = cmd.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        // The std handle is dropped without waiting: this reaper owns the status.
        drop(child);
        let (tx, rx) = oneshot::channel();
        waiters.by_pid.insert(pid, tx);
        Ok((pid, rx))
    }

    /// Collects every status that is ready, without blocking.
    pub(crate) fn reap_now(&self, untraced: bool) {
        while let Some((pid, event)) = wait_any(untraced) {
            let exit = match event {
                Event::Exited(exit) => exit,
                Event::Stopped(sig) => {
                    let _ = self.stopped_tx.send((pid, sig));
                    continue;
                }
            };
            match self.lock().by_pid.remove(&pid) {
                Some(tx) => {
                    let _ = tx.send(exit);
                }
                None => {
                    self.shared.orphans_reaped.inc();
                    tracing::debug!(pid = pid.as_raw(), "reaped adopted process ({exit})");
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Event {
    Exited(Exit),
    Stopped(i32),
}

/// One non-blocking `waitpid(-1)`. Called through libc rather than nix because
/// nix cannot represent a child killed by a real-time signal and would lose the
/// status of a child the kernel has already reaped.
#[allow(unsafe_code)]
fn wait_any(untraced: bool) -> Option<(Pid, Event)> {
    let mut flags = libc::WNOHANG;
    if untraced {
        flags |= libc::WUNTRACED;
    }
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid only writes the status integer we own.
        let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
        if pid <= 0 {
            // 0: children left but none changed; -1: ECHILD (none) or EINTR.
            if pid < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            }
            return None;
        }
        let pid = Pid::from_raw(pid);
        let event = if libc::WIFEXITED(status) {
            Event::Exited(Exit::Code(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Event::Exited(Exit::Signal(libc::WTERMSIG(status)))
        } else if libc::WIFSTOPPED(status) {
            Event::Stopped(libc::WSTOPSIG(status))
        } else {
            continue;
        };
        return Some((pid, event));
    }
}
