//! The Deployment and ReplicaSet controllers, for one Deployment with two
//! revisions: the pods running before (revision 1) and the template rolled to
//! (revision 2).
//!
//! Each pass reads the pods' state, takes the step the Deployment controller
//! takes ([`strategy::rolling_step`], or Recreate's "all old pods gone
//! first"), then the ReplicaSet controller creates or deletes pods to match.
//! A deleted pod no longer counts for its ReplicaSet, so its replacement may
//! start while it is still terminating, as in Kubernetes. Which old pod goes
//! first follows the ReplicaSet's ranking, shortened: not ready before ready,
//! then the one ready for the shortest time.
//!
//! The same pass tells the router feed about every change of a pod's
//! endpoint conditions.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use tokio::{sync::mpsc, time::Instant};

use crate::{
    kubelet::{PodEvent, PodHandle},
    router::{Conditions, Router},
    strategy::{self, Counts, Strategy},
    timeline::{Kind, Timeline},
};

/// Makes a pod of a revision and starts it.
pub(crate) trait PodFactory: Send {
    /// Starts a new pod of `revision`; its name and serving address.
    fn create(&mut self, revision: u32) -> Result<(String, SocketAddr, PodHandle), String>;
}

/// What the controller knows of one pod.
#[derive(Debug)]
struct Pod {
    revision: u32,
    addr: SocketAddr,
    handle: PodHandle,
    ready_since: Option<Instant>,
    deleted: bool,
    gone: bool,
    failed: bool,
    published: Option<Conditions>,
}

/// The controllers' state.
#[derive(Debug)]
pub(crate) struct Controller {
    desired: u32,
    strategy: Strategy,
    min_ready: Duration,
    pods: BTreeMap<String, Pod>,
    wanted: BTreeMap<u32, u32>,
    events: mpsc::UnboundedReceiver<((String, u32), PodEvent)>,
    router: Router,
    timeline: Timeline,
    /// While the first pods start, the router learns of them at once.
    immediate: bool,
    /// Progress lines (once a second) during the update, with the traffic's counts.
    progress: Option<Progress>,
    /// The first container that could not start, and why.
    failure: Option<String>,
}

/// What a progress line reads.
#[derive(Debug)]
struct Progress {
    traffic: Vec<lameduck_load::Controller>,
    next: Instant,
}

/// How a phase of the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Done {
    /// What was asked for was reached.
    Reached,
    /// The deadline came first.
    TimedOut,
    /// A container could not start: the same command would fail in every
    /// new pod, so the run stops here (why).
    Failed(String),
}

impl Controller {
    pub(crate) fn new(
        desired: u32,
        strategy: Strategy,
        min_ready: Duration,
        events: mpsc::UnboundedReceiver<((String, u32), PodEvent)>,
        router: Router,
        timeline: Timeline,
    ) -> Controller {
        Controller {
            desired,
            strategy,
            min_ready,
            pods: BTreeMap::new(),
            wanted: BTreeMap::new(),
            events,
            router,
            timeline,
            immediate: true,
            progress: None,
            failure: None,
        }
    }

    /// Logs a progress line once a second during the update.
    pub(crate) fn report_progress(&mut self, traffic: Vec<lameduck_load::Controller>) {
        self.progress = Some(Progress {
            traffic,
            next: Instant::now(),
        });
    }

    fn progress_line(&mut self) {
        let Some(p) = &mut self.progress else { return };
        if Instant::now() < p.next {
            return;
        }
        p.next += Duration::from_secs(1);
        let count = |rev: u32, f: &dyn Fn(&Pod) -> bool| {
            self.pods
                .values()
                .filter(|p| p.revision == rev && !p.gone && f(p))
                .count()
        };
        let (sent, lost) = p.traffic.iter().fold((0, 0), |(s, l), c| {
            let live = c.live();
            (
                s + live.started.load(std::sync::atomic::Ordering::Relaxed),
                l + live.failed.load(std::sync::atomic::Ordering::Relaxed),
            )
        });
        tracing::info!(
            "{:7.2}s old: {} running, {} terminating | new: {} of {} ready | requests {sent}, lost {lost}",
            self.timeline.now_s(),
            count(1, &|p| !p.deleted),
            count(1, &|p| p.deleted),
            count(2, &|p| p.ready_since.is_some() && !p.deleted),
            self.desired,
        );
    }

    /// Scales revision 1 up to the desired count and waits until every pod
    /// is available (the state before the update).
    pub(crate) async fn start_first(
        &mut self,
        f: &mut (dyn PodFactory + Send),
        deadline: Instant,
    ) -> Done {
        self.wanted.insert(1, self.desired);
        let done = self
            .drive(f, deadline, |c| c.available(1) == c.desired, |_| {})
            .await;
        self.immediate = false;
        done
    }

    /// Rolls to revision 2; returns when Kubernetes would call the rollout
    /// complete and, with `wait_old`, every old pod has exited.
    pub(crate) async fn roll(
        &mut self,
        f: &mut (dyn PodFactory + Send),
        deadline: Instant,
    ) -> (Done, Option<f64>) {
        self.wanted.insert(2, 0);
        self.timeline
            .run(Kind::RolloutStarted, self.strategy.to_string());
        let mut complete_at = None;
        let timeline = self.timeline.clone();
        let done = self
            .drive(
                f,
                deadline,
                |c| c.complete() && c.pods.values().all(|p| p.revision == 2 || p.gone),
                |c| {
                    if complete_at.is_none() && c.complete() {
                        complete_at = Some(timeline.now_s());
                        timeline.run(
                            Kind::RolloutComplete,
                            "all new pods available, no old pod left in the ReplicaSet",
                        );
                    }
                },
            )
            .await;
        (done, complete_at)
    }

    /// Force-deletes every pod left and waits for them to exit (after the
    /// traffic stopped: not measured).
    pub(crate) async fn delete_all(&mut self, deadline: Instant) {
        for p in self.pods.values_mut() {
            p.handle.delete(true);
            p.deleted = true;
        }
        while self.pods.values().any(|p| !p.gone) && Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some((id, PodEvent::Gone))) => {
                    if let Some(p) = self.pods.get_mut(&id.0) {
                        p.gone = true;
                    }
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }

    fn complete(&self) -> bool {
        self.wanted.get(&1).copied() == Some(0)
            && self.available(2) == self.desired
            && self.live(1) == 0
    }

    async fn drive(
        &mut self,
        f: &mut (dyn PodFactory + Send),
        deadline: Instant,
        done: impl Fn(&Controller) -> bool,
        mut each: impl FnMut(&Controller),
    ) -> Done {
        loop {
            self.step();
            self.reconcile(f);
            self.publish();
            each(self);
            self.progress_line();
            if let Some(why) = self.failure.clone() {
                return Done::Failed(why);
            }
            if done(self) {
                return Done::Reached;
            }
            let tick = Instant::now() + Duration::from_millis(50);
            match tokio::time::timeout_at(tick.min(deadline), self.events.recv()).await {
                Ok(Some((id, ev))) => self.on_event(&id.0, ev),
                Ok(None) => return Done::TimedOut,
                Err(_) if Instant::now() >= deadline => return Done::TimedOut,
                Err(_) => {}
            }
            while let Ok((id, ev)) = self.events.try_recv() {
                self.on_event(&id.0, ev);
            }
        }
    }

    fn on_event(&mut self, name: &str, ev: PodEvent) {
        let Some(p) = self.pods.get_mut(name) else {
            return;
        };
        match ev {
            PodEvent::Started => {}
            PodEvent::Ready(true) => p.ready_since = Some(Instant::now()),
            PodEvent::Ready(false) => p.ready_since = None,
            PodEvent::Failed(why) => {
                p.failed = true;
                self.failure.get_or_insert(why);
            }
            PodEvent::Gone => {
                p.gone = true;
                p.ready_since = None;
            }
        }
    }

    /// The Deployment controller's pass (only once revision 2 exists).
    fn step(&mut self) {
        if !self.wanted.contains_key(&2) {
            return;
        }
        let counts = Counts {
            new_wanted: self.wanted[&2],
            new_available: self.available(2),
            old_wanted: self.wanted[&1],
            old_available: self.available(1),
        };
        let (new, old) = match self.strategy {
            Strategy::Rolling { surge, unavailable } => {
                strategy::rolling_step(self.desired, surge, unavailable, counts)
            }
            Strategy::Recreate => {
                // Old pods must all be gone, terminating ones included.
                let old_running = self.pods.values().any(|p| p.revision == 1 && !p.gone);
                (if old_running { 0 } else { self.desired }, 0)
            }
        };
        self.wanted.insert(2, new);
        self.wanted.insert(1, old);
    }

    /// The ReplicaSet controllers: create or delete pods to match.
    fn reconcile(&mut self, f: &mut (dyn PodFactory + Send)) {
        for (&rev, &want) in &self.wanted.clone() {
            let live = self.live(rev);
            for _ in live..want {
                match f.create(rev) {
                    Ok((name, addr, handle)) => {
                        self.pods.insert(
                            name,
                            Pod {
                                revision: rev,
                                addr,
                                handle,
                                ready_since: None,
                                deleted: false,
                                gone: false,
                                failed: false,
                                published: None,
                            },
                        );
                    }
                    Err(e) => self
                        .timeline
                        .run(Kind::Warning, format!("cannot create a pod: {e}")),
                }
            }
            if live > want {
                let mut victims: Vec<(&String, &Pod)> = self
                    .pods
                    .iter()
                    .filter(|(_, p)| p.revision == rev && !p.deleted && !p.gone)
                    .collect();
                // Not ready first, then ready for the shortest time.
                victims.sort_by_key(|(_, p)| {
                    (p.ready_since.is_some(), std::cmp::Reverse(p.ready_since))
                });
                let names: Vec<String> = victims
                    .iter()
                    .take((live - want) as usize)
                    .map(|(n, _)| (*n).clone())
                    .collect();
                for n in names {
                    if let Some(p) = self.pods.get_mut(&n) {
                        p.deleted = true;
                        p.handle.delete(false);
                        self.timeline
                            .pod(&(n.clone(), rev), Kind::Deleted, "terminating");
                    }
                }
            }
        }
    }

    /// Tells the router feed of every pod whose conditions changed.
    fn publish(&mut self) {
        for (name, p) in &mut self.pods {
            let serving = p.ready_since.is_some() && !p.gone;
            let cond = (!p.gone).then_some(Conditions {
                ready: serving && !p.deleted,
                serving,
                terminating: p.deleted,
            });
            if cond != p.published {
                p.published = cond;
                self.router
                    .publish((name.clone(), p.revision), p.addr, cond, self.immediate);
            }
        }
    }

    /// Pods of `rev` not deleted (what its ReplicaSet counts).
    fn live(&self, rev: u32) -> u32 {
        self.pods
            .values()
            .filter(|p| p.revision == rev && !p.deleted && !p.gone)
            .count() as u32
    }

    /// Pods of `rev` ready for `minReadySeconds` and not deleted.
    fn available(&self, rev: u32) -> u32 {
        self.pods
            .values()
            .filter(|p| {
                p.revision == rev
                    && !p.deleted
                    && p.ready_since.is_some_and(|t| t.elapsed() >= self.min_ready)
            })
            .count() as u32
    }
}
