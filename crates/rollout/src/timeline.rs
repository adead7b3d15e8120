//! Every pod event of a run, on one clock: what the report draws under the
//! traffic, and what the log says as it happens.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use serde::Serialize;

/// What happened to a pod (or to the rollout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The engine started the update (the new revision exists).
    RolloutStarted,
    /// Kubernetes would now report the rollout complete (`kubectl rollout status`).
    RolloutComplete,
    /// The pod's containers were started.
    Created,
    /// Readiness passed: the pod may join the endpoints.
    Ready,
    /// Readiness failed.
    NotReady,
    /// The pod was deleted (scaled down): it is terminating.
    Deleted,
    /// The router now sends the pod traffic.
    RouterAdded,
    /// The router no longer sends the pod new traffic (the endpoint change
    /// arrived after its propagation lag).
    RouterRemoved,
    /// The kubelet started the preStop hook.
    PreStop,
    /// The preStop hook ended (or the grace period cut it).
    PreStopDone,
    /// The stop signal went to PID 1.
    StopSignal,
    /// The grace period ran out: SIGKILL.
    Killed,
    /// A container's PID 1 exited.
    Exited,
    /// Every container of the pod has exited.
    Gone,
    /// Something the user must know (a container could not start, …).
    Warning,
}

impl Kind {
    /// How the log says it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::RolloutStarted => "update started",
            Kind::RolloutComplete => "rollout complete",
            Kind::Created => "created",
            Kind::Ready => "ready",
            Kind::NotReady => "not ready",
            Kind::Deleted => "deleted",
            Kind::RouterAdded => "router sends it traffic",
            Kind::RouterRemoved => "router stopped sending it traffic",
            Kind::PreStop => "preStop",
            Kind::PreStopDone => "preStop done",
            Kind::StopSignal => "stop signal",
            Kind::Killed => "SIGKILL",
            Kind::Exited => "exited",
            Kind::Gone => "gone",
            Kind::Warning => "warning",
        }
    }
}

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since the run started.
    pub at_s: f64,
    pub kind: Kind,
    /// The pod's name, if it is about a pod.
    pub pod: Option<String>,
    /// The pod's revision (1 = old, 2 = new).
    pub revision: Option<u32>,
    /// Details: the signal, the exit status, how long the hook took, …
    pub detail: String,
}

/// The run's events, shared by every task of the run.
#[derive(Debug, Clone)]
pub struct Timeline {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
    log: bool,
}

impl Timeline {
    /// A timeline starting now; `log` writes each event to the log too.
    pub fn new(log: bool) -> Timeline {
        Timeline {
            start: Instant::now(),
            events: Arc::default(),
            log,
        }
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Seconds since the start.
    pub fn now_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Records an event about `pod` (name, revision).
    pub fn pod(&self, pod: &(String, u32), kind: Kind, detail: impl Into<String>) {
        self.push(kind, Some(pod.clone()), detail.into());
    }

    /// Records an event about the run as a whole.
    pub fn run(&self, kind: Kind, detail: impl Into<String>) {
        self.push(kind, None, detail.into());
    }

    fn push(&self, kind: Kind, pod: Option<(String, u32)>, detail: String) {
        let at_s = self.now_s();
        if self.log {
            let who = pod.as_ref().map(|p| p.0.as_str()).unwrap_or("rollout");
            if kind == Kind::Warning {
                tracing::warn!("{at_s:7.2}s {who}: {detail}");
            } else {
                let sep = if detail.is_empty() { "" } else { ": " };
                tracing::info!("{at_s:7.2}s {who}: {}{sep}{detail}", kind.label());
            }
        }
        let (pod, revision) = match pod {
            Some((n, r)) => (Some(n), Some(r)),
            None => (None, None),
        };
        let event = Event {
            at_s,
            kind,
            pod,
            revision,
            detail,
        };
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}
