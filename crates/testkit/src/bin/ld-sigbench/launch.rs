//! Starting a supervisor with its app, and stopping both within a deadline
//! whatever happens in between (a failed measurement must not leave a `sleep 60`
//! or a fixture behind).

use std::{
    fs::File,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use lameduck_testkit::try_wait_for;
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

use crate::scratch::{tail, Scratch};

/// A running `PREFIX APP…` (or the app alone when PREFIX is empty).
#[derive(Debug)]
pub(crate) struct Launched {
    child: Child,
    /// The supervised app, once known.
    app: Option<Pid>,
    log: PathBuf,
    stopped: bool,
}

impl Launched {
    /// Starts `argv` with stdin and stdout on /dev/null and stderr in the
    /// scratch log `NAME.log` (a supervisor logging into an unread pipe would
    /// block once the pipe is full).
    pub(crate) fn start(argv: &[String], scratch: &Scratch, name: &str) -> Result<Launched> {
        let log = scratch.path(&format!("{name}.log"));
        let stderr = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {:?}", argv.join(" ")))?;
        Ok(Launched {
            child,
            app: None,
            log,
            stopped: false,
        })
    }

    /// The PID signals are sent to: the supervisor's (or the app's, if alone).
    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub(crate) fn set_app(&mut self, app: Pid) {
        self.app = Some(app);
    }

    /// Fails if the supervisor has already exited, with its log.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("checking the supervisor")? {
            self.stopped = true;
            bail!("exited early ({status}); its log:\n{}", tail(&self.log, 10));
        }
        Ok(())
    }

    /// Kills the app and waits (bounded) for the supervisor to notice and exit,
    /// as it would when the app dies on its own.
    pub(crate) fn stop(mut self, timeout: Duration) -> Result<()> {
        if let Some(app) = self.app {
            let _ = kill(app, Signal::SIGKILL);
        }
        let exited = try_wait_for("the supervisor to exit after its app", timeout, || {
            self.child.try_wait().ok().flatten()
        });
        self.stopped = exited.is_ok();
        exited.map(drop).map_err(anyhow::Error::msg)
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        if let Some(app) = self.app {
            let _ = kill(app, Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
