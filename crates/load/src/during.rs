//! Events on the timeline, and the `--during` command that causes them.
//!
//! Proving a rollout lossless means lining up failures with what the rollout
//! did. `--during CMD` runs the disruption (a `kubectl rollout restart`, an
//! nginx reload loop) after a warm-up of plain load, records when it started and
//! ended, and ends the run a cool-down after it. Marks (SIGUSR1, or
//! [`crate::Controller::mark`]) add named points in time.
//!
//! The command runs in a process group of its own. If it is still running when
//! the load stops (`--duration` or `-n` reached, or SIGINT/SIGTERM), its group
//! gets SIGTERM, then SIGKILL after [`STOP_GRACE`]: a reload loop must not
//! outlive the run that measured it. The report says so.

use std::{
    os::fd::AsFd,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

use crate::{report::Event, During, Error};

/// The run's events, shared by whoever records one.
#[derive(Debug, Clone)]
pub(crate) struct Events {
    start: Instant,
    list: Arc<Mutex<Vec<Event>>>,
}

impl Events {
    pub(crate) fn new(start: Instant) -> Events {
        Events {
            start,
            list: Arc::default(),
        }
    }

    /// Records an event of `kind` now.
    pub(crate) fn push(&self, kind: &'static str, label: String) {
        let at_s = self.start.elapsed().as_secs_f64();
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.push(Event { at_s, kind, label });
    }

    pub(crate) fn into_vec(self) -> Vec<Event> {
        let mut list = std::mem::take(&mut *self.list.lock().unwrap_or_else(|e| e.into_inner()));
        list.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        list
    }
}

/// How long a command still running at the end has between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the `--during` command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    WarmingUp,
    /// Running as the leader of this process group.
    Running(Pid),
    CoolingDown,
    Done,
}

/// The `--during` command's task.
#[derive(Debug)]
pub(crate) struct Task {
    handle: JoinHandle<Result<Vec<String>, Error>>,
    state: watch::Receiver<State>,
}

/// Starts the `--during` task, if there is a command.
pub(crate) fn spawn(
    during: Option<During>,
    events: Events,
    stop: watch::Receiver<bool>,
) -> Option<Task> {
    let during = during?;
    let (state_tx, state) = watch::channel(State::WarmingUp);
    let handle = tokio::spawn(run_command(during, events, stop, state_tx));
    Some(Task { handle, state })
}

/// Resolves once the command ended and its cool-down passed (or it failed to
/// start); never, if there is no command.
pub(crate) async fn ended_plus_cooldown(task: &mut Option<Task>) {
    match task {
        Some(task) => {
            let _ = task.state.wait_for(|s| *s == State::Done).await;
        }
        None => std::future::pending().await,
    }
}

/// After the run: the command's problems, or an error if it could not start.
/// A command still running is stopped (see the module doc) and reported.
pub(crate) async fn finish(mut task: Task, events: &Events) -> Result<Vec<String>, Error> {
    let running = match *task.state.borrow() {
        State::Running(group) => Some(group),
        _ => None,
    };
    let mut problems = Vec::new();
    if let Some(group) = running {
        events.push(
            "during_running",
            "still running when the load stopped; sent SIGTERM".into(),
        );
        problems.push(
            "the --during command had not ended when the load stopped, and was stopped; \
             lengthen --duration to cover it"
                .into(),
        );
        stop_group(group, &mut task.state).await;
    }
    match task.handle.await {
        Ok(result) => result.map(|more| problems.into_iter().chain(more).collect()),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// SIGTERM to the command's group; SIGKILL if it has not ended in time.
async fn stop_group(group: Pid, state: &mut watch::Receiver<State>) {
    let _ = nix::sys::signal::killpg(group, Signal::SIGTERM);
    let ended = state.wait_for(|s| !matches!(s, State::Running(_)));
    if tokio::time::timeout(STOP_GRACE, ended).await.is_err() {
        let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
    }
}

async fn run_command(
    during: During,
    events: Events,
    mut stop: watch::Receiver<bool>,
    state: watch::Sender<State>,
) -> Result<Vec<String>, Error> {
    let _done = SetOnDrop(&state);
    if !sleep_unless_stopped(during.warmup, &mut stop).await {
        return Ok(Vec::new());
    }
    let spawn_err = |source| Error::During {
        command: during.command.clone(),
        source,
    };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&during.command)
        .stdin(Stdio::null())
        .stdout(stdout_to_stderr().map_err(spawn_err)?)
        .process_group(0)
        .spawn()
        .map_err(spawn_err)?;
    events.push("during_start", during.command.clone());
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let _ = state.send(group.map_or(State::CoolingDown, State::Running));
    let status = child.wait().await.map_err(spawn_err)?;
    let _ = state.send(State::CoolingDown);
    events.push("during_end", describe(status));
    let mut problems = Vec::new();
    if !status.success() {
        problems.push(format!(
            "the --during command failed ({})",
            describe(status)
        ));
    }
    sleep_unless_stopped(during.cooldown, &mut stop).await;
    Ok(problems)
}

/// Marks the task done however it ends.
struct SetOnDrop<'a>(&'a watch::Sender<State>);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.send(State::Done);
    }
}

/// The command's stdout goes to our stderr: our stdout is the report.
fn stdout_to_stderr() -> std::io::Result<Stdio> {
    Ok(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Sleeps for `d`; `false` if the run stopped first.
async fn sleep_unless_stopped(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        _ = stop.wait_for(|stopped| *stopped) => false,
    }
}
