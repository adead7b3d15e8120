//! Starting a child: the app (in its own process group, holding the terminal if
//! there is one) or a drain hook.
//!
//! The app gets its own process group so that one `kill(-pgid)` reaches everything
//! it started, and so that terminal signals (Ctrl-C, Ctrl-Z) go to the app, not to
//! lameduck, just as they would without a supervisor (tini does the same).

use std::{ffi::OsStr, io, os::unix::process::CommandExt, process::Command};

use nix::{
    sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal},
    unistd::{getpid, setpgid, tcsetpgrp, Pid},
};

use crate::Error;

/// How a child is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    /// Make the child's group the terminal's foreground group (interactive use).
    pub(crate) foreground: bool,
}

/// Builds the `Command` for `argv` with lameduck's process-group setup.
pub(crate) fn command<S: AsRef<OsStr>>(argv: &[S], opts: Options) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    install_child_setup(&mut cmd, opts.foreground);
    cmd
}

/// Runs in the child between fork and exec: own process group, optional
/// terminal foreground, and a clean signal state (the mask cleared, SIGTTIN and
/// SIGTTOU back to default; exec resets caught signals by itself).
#[allow(unsafe_code)]
fn install_child_setup(cmd: &mut Command, foreground: bool) {
    let setup = move || -> io::Result<()> {
        setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
        if foreground {
            // A background group that calls tcsetpgrp gets SIGTTOU unless it is
            // blocked; block it for the call, the mask is cleared just below.
            let mut ttou = SigSet::empty();
            ttou.add(Signal::SIGTTOU);
            sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), None)?;
            let _ = tcsetpgrp(std::io::stdin(), getpid());
        }
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
        for sig in [Signal::SIGTTIN, Signal::SIGTTOU] {
            // SAFETY: setting a default disposition is async-signal-safe and
            // installs no handler.
            unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) }?;
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe system calls (setpgid,
    // sigprocmask, tcsetpgrp, signal) and allocates nothing.
    unsafe { cmd.pre_exec(setup) };
}

/// Maps a spawn failure to the error a shell would report (127 / 126).
pub(crate) fn spawn_error(argv0: &OsStr, err: io::Error) -> Error {
    let command = argv0.to_string_lossy().into_owned();
    match err.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            command,
            path: std::env::var("PATH").unwrap_or_else(|_| "<unset>".into()),
        },
        _ => Error::NotExecutable {
            command,
            source: err,
        },
    }
}

/// Ignores SIGTTIN and SIGTTOU in lameduck itself, as tini does: once the app
/// holds the terminal, lameduck is in a background group and must not be stopped
/// for touching it (writing a log line, handing the terminal back).
#[allow(unsafe_code)]
pub(crate) fn ignore_tty_job_signals() {
    for sig in [Signal::SIGTTIN, Signal::SIGTTOU] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) };
    }
}
