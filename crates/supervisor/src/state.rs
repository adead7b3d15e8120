//! State shared between the supervise loop, the admin server and the control
//! socket: the drain status (a watch channel, so waiters wake on change) and the
//! counters behind `/metrics` (prometheus-client metrics, an atomic each;
//! `admin` registers them).

use std::sync::atomic::AtomicBool;

use lameduck_drain::{Sig, Status};
use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tokio::sync::watch;

/// One label, as the families here carry.
type Label = [(&'static str, String); 1];

/// Shared by every task of one supervisor.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Published by the drain driver.
    pub(crate) status: watch::Sender<Status>,
    pub(crate) child_running: AtomicBool,
    pub(crate) orphans_reaped: Counter,
    ready_checks: Family<Label, Counter>,
    pub(crate) new_connections: Counter,
    pub(crate) bytes_received: Counter,
    pub(crate) hook_failures: Counter,
    forwarded: Family<Label, Counter>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        let shared = Shared {
            status: watch::Sender::new(Status::default()),
            child_running: AtomicBool::new(false),
            orphans_reaped: Counter::default(),
            ready_checks: Family::default(),
            new_connections: Counter::default(),
            bytes_received: Counter::default(),
            hook_failures: Counter::default(),
            forwarded: Family::default(),
        };
        // Both results show from the start, at 0.
        for ready in [true, false] {
            drop(shared.ready_checks.get_or_create(&ready_label(ready)));
        }
        shared
    }

    pub(crate) fn status(&self) -> Status {
        *self.status.borrow()
    }

    pub(crate) fn count_forwarded(&self, sig: Sig) {
        self.forwarded
            .get_or_create(&[("signal", sig.name().to_string())])
            .inc();
    }

    /// One check of the app's readiness URL.
    pub(crate) fn count_ready_check(&self, ready: bool) {
        self.ready_checks.get_or_create(&ready_label(ready)).inc();
    }

    /// Registers every counter under its documented name (`lameduck_run_…`).
    pub(crate) fn register(&self, r: &mut Registry) {
        r.register(
            "signals_forwarded",
            "Signals sent to the app, after rewriting",
            self.forwarded.clone(),
        );
        r.register(
            "orphans_reaped",
            "Adopted processes (not the app) whose exit was collected",
            self.orphans_reaped.clone(),
        );
        r.register(
            "ready_checks",
            "Checks of the app's readiness URL, by result",
            self.ready_checks.clone(),
        );
        r.register(
            "quiet_new_connections",
            "New connections to the app's ports seen while waiting until quiet",
            self.new_connections.clone(),
        );
        r.register(
            "quiet_received_bytes",
            "Bytes received on connections already open to the app's ports while waiting \
             until quiet (sock_diag only)",
            self.bytes_received.clone(),
        );
        r.register(
            "hook_failures",
            "Drain hooks that failed, timed out or could not start",
            self.hook_failures.clone(),
        );
    }
}

fn ready_label(ready: bool) -> Label {
    let result = if ready { "ready" } else { "not_ready" };
    [("result", result.to_string())]
}
