//! The drain model shared by every lameduck part.
//!
//! A drain takes a serving process to a stopped one without losing a request. It
//! has three phases, all measured against one [`Budget`] (the grace period the
//! orchestrator gives, counted from the first trigger):
//!
//! 1. [`Phase::LameDuck`]: still serving everything, but telling routers to go away
//!    (readiness 503, registry DOWN, `Connection: close`, GOAWAY) and waiting for
//!    them to catch up.
//! 2. [`Phase::Drain`]: stop accepting, finish what is in flight, tell the app.
//! 3. [`Phase::Terminate`]: at `grace − margin`, force-close what is left.
//!
//! This crate holds the model: the phases, the budget arithmetic, which signal
//! means what, and the state machine that says how a trigger moves a drain on;
//! and the runtime that carries a drain out, the [`Driver`]: it waits for the
//! lame-duck work (a fixed delay, or until no request has arrived for a while,
//! [`Activity`]), keeps the deadline, and calls each part's [`Hooks`] (tell
//! routers, stop accepting, terminate). Every part (supervisor, proxy,
//! registry) runs the same driver, so the rules are written once and every
//! part behaves the same when a user sends it a signal.
//! It also holds the small rules every part's listeners share: how a duration
//! is read ([`parse_duration`]) and how an accept loop backs off when `accept`
//! fails ([`AcceptBackoff`]) and how it logs connections it refuses over
//! a limit ([`Refusals`]); and how a long-lived background task is kept
//! from ending silently ([`spawn_restarting`], [`spawn_fatal`]).

#![forbid(unsafe_code)]

mod accept;
mod activity;
mod budget;
mod driver;
mod duration;
#[doc(hidden)]
pub mod fuzzing;
mod machine;
mod phase;
mod signal;
mod supervise;

pub use accept::{AcceptBackoff, Refusals};
pub use activity::Activity;
pub use budget::{
    Budget, LameDuckWait, Names, Plan, PlanError, Setting, Timing, DEFAULT_GRACE, GRACE_ENV,
};
pub use driver::{lame_duck, BoxFuture, Driver, Hooks, Outcome, Status, FORCE_WAIT};
pub use duration::{format_duration, parse_duration, DurationError, MAX_DURATION};
pub use machine::{Drain, Step, Trigger};
pub use phase::Phase;
pub use signal::{Sig, SignalParseError, StopKind};
pub use supervise::{spawn_fatal, spawn_restarting, Ends, FATAL_EXIT, RESTART_AFTER};

/// Logs a phase change the same way in every part: timestamp (from the log
/// subscriber), the new phase, why, and the budget left.
pub fn log_phase(phase: Phase, reason: &str, budget_left: Option<std::time::Duration>) {
    match budget_left {
        Some(left) => tracing::info!(
            phase = %phase,
            budget_left = %format_duration(left),
            "{reason}"
        ),
        None => tracing::info!(phase = %phase, "{reason}"),
    }
}
