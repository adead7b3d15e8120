//! Interactive use (`docker run -it`, or a shell): terminal job control.
//!
//! When lameduck starts on a terminal as its foreground process group, the app's
//! group is made the foreground group, so Ctrl-C, Ctrl-\ and Ctrl-Z reach the app
//! straight from the terminal, as they would without a supervisor. When Ctrl-Z
//! stops the app:
//!
//! - under a shell (lameduck is not PID 1), lameduck hands the terminal back and
//!   stops itself, so the shell shows the job as stopped; on `fg` (SIGCONT) it
//!   gives the terminal to the app again and continues it;
//! - as PID 1 (a container), nothing could resume a stopped PID 1, so the app
//!   stays stopped until SIGCONT arrives (`docker kill -s CONT`), which lameduck
//!   forwards; a log line says so. This is what tini does as well.

use nix::{
    sys::signal::{kill, killpg, Signal},
    unistd::{getpgrp, getpid, isatty, tcgetpgrp, tcsetpgrp, Pid},
};

/// Whether lameduck manages a terminal for the app.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobControl {
    /// stdin is a terminal whose foreground group was lameduck's at start.
    pub(crate) enabled: bool,
    pid1: bool,
}

impl JobControl {
    pub(crate) fn detect() -> JobControl {
        let stdin = std::io::stdin();
        let enabled = isatty(&stdin).unwrap_or(false) && tcgetpgrp(&stdin).ok() == Some(getpgrp());
        JobControl {
            enabled,
            pid1: getpid().as_raw() == 1,
        }
    }

    /// The app's group was stopped by `sig` (usually SIGTSTP from Ctrl-Z).
    pub(crate) fn app_stopped(&self, app_pgid: Pid, sig: i32) {
        let sig = lameduck_drain::Sig(sig);
        if !self.enabled || self.pid1 {
            tracing::warn!(
                "app stopped by {sig}; it stays stopped until it gets SIGCONT \
                 (docker kill -s CONT, or kill -CONT to lameduck)"
            );
            return;
        }
        tracing::info!(
            "app stopped by {sig}; stopping lameduck too so the shell gets the terminal"
        );
        let _ = tcsetpgrp(std::io::stdin(), getpgrp());
        // Stops this process right here; execution resumes after the shell's `fg`.
        let _ = kill(getpid(), Signal::SIGSTOP);
        self.resume(app_pgid);
    }

    /// Gives the terminal back to the app and continues it.
    pub(crate) fn resume(&self, app_pgid: Pid) {
        if self.enabled && !self.pid1 {
            let _ = tcsetpgrp(std::io::stdin(), app_pgid);
        }
        let _ = killpg(app_pgid, Signal::SIGCONT);
    }
}
