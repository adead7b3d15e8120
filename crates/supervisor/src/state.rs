//! State shared between the supervise loop, the admin server and the control
//! socket: the drain status (a watch channel, so waiters wake on change) and the
//! counters behind `/metrics`.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
    time::Instant,
};

use lameduck_drain::{Budget, Phase, Sig};
use tokio::sync::watch;

/// Where the drain is, as others may observe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) phase: Phase,
    pub(crate) lame_duck_done: bool,
    pub(crate) budget: Option<Budget>,
}

/// Shared by every task of one supervisor.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) status: watch::Sender<Status>,
    pub(crate) child_running: AtomicBool,
    pub(crate) orphans_reaped: AtomicU64,
    pub(crate) ready_ok: AtomicU64,
    pub(crate) ready_failed: AtomicU64,
    pub(crate) new_connections: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) hook_failures: AtomicU64,
    forwarded: Mutex<BTreeMap<Sig, u64>>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        let status = Status {
            phase: Phase::Serving,
            lame_duck_done: false,
            budget: None,
        };
        Shared {
            status: watch::Sender::new(status),
            child_running: AtomicBool::new(false),
            orphans_reaped: AtomicU64::new(0),
            ready_ok: AtomicU64::new(0),
            ready_failed: AtomicU64::new(0),
            new_connections: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            hook_failures: AtomicU64::new(0),
            forwarded: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn status(&self) -> Status {
        *self.status.borrow()
    }

    pub(crate) fn count_forwarded(&self, sig: Sig) {
        let mut map = self.forwarded.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(sig).or_default() += 1;
    }

    /// The Prometheus text exposition of every counter and gauge.
    pub(crate) fn render_metrics(&self, now: Instant) -> String {
        let status = self.status();
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, lines: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let phases: Vec<_> = Phase::ALL
            .iter()
            .map(|p| {
                (
                    format!("{{phase=\"{p}\"}}"),
                    f64::from(u8::from(*p == status.phase)),
                )
            })
            .collect();
        metric(
            "lameduck_drain_phase",
            "gauge",
            "1 for the current drain phase.",
            &phases,
        );
        let left = status.budget.map_or(-1.0, |b| b.left(now).as_secs_f64());
        metric(
            "lameduck_drain_budget_seconds_left",
            "gauge",
            "Seconds until the deadline (SIGKILL); -1 before the drain starts.",
            &[(String::new(), left)],
        );
        let up = f64::from(u8::from(self.child_running.load(Ordering::Relaxed)));
        metric(
            "lameduck_child_running",
            "gauge",
            "1 while the app runs.",
            &[(String::new(), up)],
        );
        let forwarded: Vec<_> = {
            let map = self.forwarded.lock().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .map(|(s, n)| (format!("{{signal=\"{}\"}}", s.name()), *n as f64))
                .collect()
        };
        metric(
            "lameduck_signals_forwarded_total",
            "counter",
            "Signals sent to the app, after rewriting.",
            &forwarded,
        );
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        metric(
            "lameduck_orphans_reaped_total",
            "counter",
            "Adopted processes (not the app) whose exit was collected.",
            &[(String::new(), count(&self.orphans_reaped))],
        );
        metric(
            "lameduck_ready_checks_total",
            "counter",
            "Checks of the app's readiness URL, by result.",
            &[
                ("{result=\"ready\"}".into(), count(&self.ready_ok)),
                ("{result=\"not_ready\"}".into(), count(&self.ready_failed)),
            ],
        );
        metric(
            "lameduck_drain_new_connections_total",
            "counter",
            "New connections to the app's ports seen while waiting until quiet.",
            &[(String::new(), count(&self.new_connections))],
        );
        metric(
            "lameduck_drain_bytes_received_total",
            "counter",
            "Bytes received on connections already open to the app's ports while waiting until quiet (sock_diag only).",
            &[(String::new(), count(&self.bytes_received))],
        );
        metric(
            "lameduck_drain_hook_failures_total",
            "counter",
            "Drain hooks that failed, timed out or could not start.",
            &[(String::new(), count(&self.hook_failures))],
        );
        out
    }
}
