//! What the kubelet does to one pod: start its containers, probe their
//! readiness, and, once the pod is deleted, stop each container as
//! `killContainer` does:
//!
//! 1. run the `preStop` hook, for at most the grace period;
//! 2. send the stop signal (`lifecycle.stopSignal`, else the image's
//!    STOPSIGNAL, else SIGTERM) to the container's PID 1;
//! 3. SIGKILL when what is left of the grace period runs out — never less than
//!    2 s after the stop signal, which is the "+2 s" a preStop that overran
//!    the grace period gets.
//!
//! The endpoint change runs at the same time, elsewhere (the engine's
//! router feed): nothing here waits for routers, as nothing in a kubelet does.

use std::{path::PathBuf, time::Duration};

use lameduck_drain::{format_duration, Sig};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::{
    pod::{self, ContainerPlan, PodEnv, Running, Signals},
    probe::{Action, Readiness},
    timeline::{Kind, Timeline},
};

/// A container's termination settings, resolved and scaled.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub(crate) pre_stop: Option<Hook>,
    pub(crate) signal: Sig,
    pub(crate) grace: Duration,
    /// The kubelet's minimum time between stop signal and SIGKILL (2 s, scaled).
    pub(crate) min_grace: Duration,
}

/// A `preStop` hook.
#[derive(Debug, Clone)]
pub(crate) enum Hook {
    /// `exec` or `httpGet` (`tcpSocket` is accepted by Kubernetes and does nothing).
    Action(Action),
    /// The native `sleep` action.
    Sleep(Duration),
    /// `tcpSocket`: kept by Kubernetes for compatibility; it does nothing.
    Nothing,
}

/// One container of a pod to start.
#[derive(Debug, Clone)]
pub(crate) struct ContainerSpec {
    pub(crate) plan: ContainerPlan,
    pub(crate) readiness: Option<Readiness>,
    pub(crate) stop: Stop,
}

/// What a pod tells the engine.
#[derive(Debug)]
pub(crate) enum PodEvent {
    /// Every container runs.
    Started,
    /// Pod readiness (every container ready) changed.
    Ready(bool),
    /// A container could not start (the command does not exist, …): why.
    Failed(String),
    /// Every container has exited.
    Gone,
}

/// The engine's handle on a running pod.
#[derive(Debug)]
pub(crate) struct PodHandle {
    delete: Option<oneshot::Sender<bool>>,
}

impl PodHandle {
    /// Deletes the pod: its containers start terminating (`force`: SIGKILL
    /// at once, as `--grace-period=0 --force` does; used to clean up).
    pub(crate) fn delete(&mut self, force: bool) {
        if let Some(tx) = self.delete.take() {
            let _ = tx.send(force);
        }
    }
}

/// Everything a pod task needs.
#[derive(Debug)]
pub(crate) struct PodStart {
    pub(crate) id: (String, u32),
    pub(crate) env: PodEnv,
    pub(crate) containers: Vec<ContainerSpec>,
    pub(crate) namespaced: bool,
    pub(crate) timeline: Timeline,
    pub(crate) events: mpsc::UnboundedSender<((String, u32), PodEvent)>,
}

/// Starts the pod's task.
pub(crate) fn start(p: PodStart) -> PodHandle {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(run_pod(p, rx));
    PodHandle { delete: Some(tx) }
}

async fn run_pod(p: PodStart, delete: oneshot::Receiver<bool>) {
    let send = |e: PodEvent| {
        let _ = p.events.send((p.id.clone(), e));
    };
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<(usize, bool, String)>();
    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel::<usize>();
    let mut terminators: Vec<oneshot::Sender<bool>> = Vec::new();
    for (i, c) in p.containers.iter().enumerate() {
        let log: PathBuf = p.env.dir.join(format!("{}.log", c.plan.name));
        let running = match pod::spawn(&c.plan, &p.env, p.namespaced, &log).await {
            Ok(r) => r,
            Err(e) => {
                p.timeline.pod(&p.id, Kind::Warning, e.to_string());
                send(PodEvent::Failed(e.to_string()));
                for t in terminators {
                    let _ = t.send(true);
                }
                let _ = delete.await;
                send(PodEvent::Gone);
                return;
            }
        };
        let enter = running.signals.namespaced.then_some(running.signals.pid1);
        match c.readiness.clone() {
            Some(probe) => {
                let tx = ready_tx.clone();
                let (one_tx, mut one_rx) = mpsc::unbounded_channel();
                tokio::spawn(probe.run(enter, one_tx));
                tokio::spawn(async move {
                    while let Some((r, why)) = one_rx.recv().await {
                        if tx.send((i, r, why)).is_err() {
                            return;
                        }
                    }
                });
            }
            None => {
                let _ = ready_tx.send((i, true, "no readiness probe: ready once started".into()));
            }
        }
        let (term_tx, term_rx) = oneshot::channel();
        terminators.push(term_tx);
        let cx = Container {
            id: p.id.clone(),
            name: c.plan.name.clone(),
            stop: c.stop.clone(),
            timeline: p.timeline.clone(),
        };
        let exit_tx = exit_tx.clone();
        tokio::spawn(async move {
            cx.run(running, term_rx).await;
            let _ = exit_tx.send(i);
        });
    }
    drop(ready_tx);
    send(PodEvent::Started);
    p.timeline.pod(
        &p.id,
        Kind::Created,
        format!("{} container(s)", p.containers.len()),
    );
    let n = p.containers.len();
    let mut ready = vec![false; n];
    let mut running = vec![true; n];
    let mut pod_ready = false;
    let mut delete = Some(delete);
    let mut terminators = Some(terminators);
    while running.iter().any(|r| *r) {
        tokio::select! {
            Some((i, r, _why)) = ready_rx.recv() => ready[i] = r && running[i],
            Some(i) = exit_rx.recv() => { running[i] = false; ready[i] = false; }
            force = async { delete.as_mut().expect("checked").await }, if delete.is_some() => {
                delete = None;
                let force = force.unwrap_or(true);
                for t in terminators.take().unwrap_or_default() {
                    let _ = t.send(force);
                }
            }
        }
        let now_ready = ready.iter().all(|r| *r);
        if now_ready != pod_ready {
            pod_ready = now_ready;
            p.timeline.pod(
                &p.id,
                if pod_ready {
                    Kind::Ready
                } else {
                    Kind::NotReady
                },
                "",
            );
            send(PodEvent::Ready(pod_ready));
        }
    }
    p.timeline.pod(&p.id, Kind::Gone, "");
    send(PodEvent::Gone);
}

/// One container's life after it started.
struct Container {
    id: (String, u32),
    name: String,
    stop: Stop,
    timeline: Timeline,
}

impl Container {
    async fn run(self, mut running: Running, terminate: oneshot::Receiver<bool>) {
        let sig = running.signals;
        tokio::select! {
            status = running.child.wait() => {
                self.exited(sig, status, "before it was asked to stop");
                return;
            }
            force = terminate => if force.unwrap_or(true) {
                sig.kill_all();
                let status = running.child.wait().await;
                self.exited(sig, status, "(force-deleted)");
                return;
            }
        }
        let start = Instant::now();
        if let Some(hook) = self.stop.pre_stop.clone() {
            self.timeline.pod(
                &self.id,
                Kind::PreStop,
                format!("{}: {}", self.name, hook.describe()),
            );
            tokio::select! {
                status = running.child.wait() => {
                    self.exited(sig, status, "during preStop");
                    return;
                }
                r = tokio::time::timeout(self.stop.grace, hook.run(sig)) => {
                    let took = format_duration(start.elapsed());
                    let detail = match r {
                        Ok(Ok(())) => format!("{}: took {took}", self.name),
                        Ok(Err(e)) => format!("{}: failed after {took}: {e}", self.name),
                        Err(_) => format!("{}: cut at the grace period ({took})", self.name),
                    };
                    self.timeline.pod(&self.id, Kind::PreStopDone, detail);
                }
            }
        }
        let left = self
            .stop
            .grace
            .saturating_sub(start.elapsed())
            .max(self.stop.min_grace);
        sig.signal(self.stop.signal);
        self.timeline.pod(
            &self.id,
            Kind::StopSignal,
            format!(
                "{}: SIG{} to PID 1, SIGKILL in {}",
                self.name,
                self.stop.signal.name(),
                format_duration(left)
            ),
        );
        tokio::select! {
            status = running.child.wait() => self.exited(sig, status, ""),
            _ = tokio::time::sleep(left) => {
                sig.kill_all();
                self.timeline.pod(&self.id, Kind::Killed, format!("{}: grace period over", self.name));
                let status = running.child.wait().await;
                self.exited(sig, status, "");
            }
        }
    }

    /// PID 1 is gone: the container's other processes go with it.
    fn exited(&self, sig: Signals, status: std::io::Result<std::process::ExitStatus>, when: &str) {
        sig.kill_all();
        let status = match status {
            Ok(s) => s.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        let detail = format!("{}: {status} {when}", self.name);
        self.timeline.pod(&self.id, Kind::Exited, detail.trim_end());
    }
}

impl Hook {
    fn describe(&self) -> String {
        match self {
            Hook::Sleep(d) => format!("sleep {}", format_duration(*d)),
            Hook::Nothing => "tcpSocket (does nothing)".into(),
            Hook::Action(Action::Exec { argv, .. }) => format!("exec {}", argv.join(" ")),
            Hook::Action(Action::HttpGet { addr, path, .. }) => {
                format!("httpGet http://{addr}{path}")
            }
            Hook::Action(Action::Tcp(addr)) => format!("tcp {addr}"),
        }
    }

    async fn run(self, sig: Signals) -> Result<(), String> {
        match self {
            Hook::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Hook::Nothing => Ok(()),
            // The kubelet bounds the hook by the grace period, not by a timeout of its own.
            Hook::Action(a) => a.attempt(sig.namespaced.then_some(sig.pid1)).await,
        }
    }
}
