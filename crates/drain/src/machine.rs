//! The drain state machine: how each trigger moves a drain from phase to phase.
//!
//! The machine is pure (it is told the time), so every rule is tested without
//! processes or clocks, and every part that drains uses the same rules:
//!
//! | phase      | preStop      | SIGTERM   | SIGINT/QUIT | lame duck done            | timer        |
//! |------------|--------------|-----------|-------------|---------------------------|--------------|
//! | serving    | → lame-duck  | → lame-duck | → drain   | –                         | –            |
//! | lame-duck  | stays        | → drain   | → drain     | → drain (stays if preStop) | → drain      |
//! | drain      | stays        | → terminate | → terminate | –                       | → terminate  |
//! | terminate  | stays        | stays     | stays       | –                         | –            |
//!
//! The first trigger starts the [`Budget`]. After a preStop-started lame-duck
//! phase, the machine waits for the kubelet's SIGTERM (which comes right after the
//! hook returns) but never past the lame-duck share of the budget.

use std::time::Instant;

use crate::{Budget, Phase, StopKind, Timing};

/// Something that can move a drain on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A preStop hook asked for the lame-duck phase.
    PreStop,
    /// A stop signal arrived.
    Signal(StopKind),
    /// The lame-duck phase finished its work (hooks ran, routers caught up).
    LameDuckDone,
    /// The time set by [`Drain::next_timer`] has come.
    Timer,
}

/// What a trigger did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing changed.
    Stay,
    /// The drain entered this phase.
    Enter(Phase),
}

/// One drain: its phase and its budget.
#[derive(Debug, Clone)]
pub struct Drain {
    timing: Timing,
    phase: Phase,
    budget: Option<Budget>,
    started_by_prestop: bool,
    lame_duck_done: bool,
}

impl Drain {
    /// A drain that has not started, with the timing it will use.
    pub fn new(timing: Timing) -> Drain {
        Drain {
            timing,
            phase: Phase::Serving,
            budget: None,
            started_by_prestop: false,
            lame_duck_done: false,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The budget, once the first trigger started it.
    pub fn budget(&self) -> Option<Budget> {
        self.budget
    }

    /// True when the lame-duck phase has finished its work.
    pub fn lame_duck_done(&self) -> bool {
        self.lame_duck_done
    }

    /// Applies a trigger at `now`.
    pub fn on(&mut self, trigger: Trigger, now: Instant) -> Step {
        let next = match (self.phase, trigger) {
            (Phase::Serving, Trigger::PreStop) => {
                self.started_by_prestop = true;
                Some(Phase::LameDuck)
            }
            (Phase::Serving, Trigger::Signal(StopKind::Graceful)) => Some(Phase::LameDuck),
            (Phase::Serving, Trigger::Signal(StopKind::Fast)) => Some(Phase::Drain),
            (Phase::LameDuck, Trigger::Signal(_) | Trigger::Timer) => Some(Phase::Drain),
            (Phase::LameDuck, Trigger::LameDuckDone) => {
                self.lame_duck_done = true;
                (!self.started_by_prestop).then_some(Phase::Drain)
            }
            (Phase::Drain, Trigger::Signal(_) | Trigger::Timer) => Some(Phase::Terminate),
            _ => None,
        };
        match next {
            Some(phase) => {
                self.budget
                    .get_or_insert_with(|| Budget::start(self.timing, now));
                self.phase = phase;
                Step::Enter(phase)
            }
            None => Step::Stay,
        }
    }

    /// When [`Trigger::Timer`] must be applied next, if ever.
    pub fn next_timer(&self) -> Option<Instant> {
        let budget = self.budget?;
        match self.phase {
            Phase::LameDuck => Some(budget.lame_duck_until()),
            Phase::Drain => Some(budget.terminate_at()),
            Phase::Serving | Phase::Terminate => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn drain() -> Drain {
        Drain::new(Timing {
            grace: Duration::from_secs(30),
            margin: Duration::from_secs(2),
            stop_reserve: Duration::from_secs(5),
        })
    }

    #[test]
    fn sigterm_walks_every_phase() {
        let t0 = Instant::now();
        let mut d = drain();
        assert_eq!(
            d.on(Trigger::Signal(StopKind::Graceful), t0),
            Step::Enter(Phase::LameDuck)
        );
        assert_eq!(d.next_timer(), Some(t0 + Duration::from_secs(23)));
        assert_eq!(d.on(Trigger::LameDuckDone, t0), Step::Enter(Phase::Drain));
        assert_eq!(d.next_timer(), Some(t0 + Duration::from_secs(28)));
        assert_eq!(d.on(Trigger::Timer, t0), Step::Enter(Phase::Terminate));
        assert_eq!(d.next_timer(), None);
    }

    #[test]
    fn fast_signals_skip_the_lame_duck_phase() {
        let mut d = drain();
        assert_eq!(
            d.on(Trigger::Signal(StopKind::Fast), Instant::now()),
            Step::Enter(Phase::Drain)
        );
    }

    #[test]
    fn a_second_signal_escalates_one_phase() {
        let t0 = Instant::now();
        let mut d = drain();
        d.on(Trigger::Signal(StopKind::Graceful), t0);
        assert_eq!(
            d.on(Trigger::Signal(StopKind::Graceful), t0),
            Step::Enter(Phase::Drain)
        );
        assert_eq!(
            d.on(Trigger::Signal(StopKind::Fast), t0),
            Step::Enter(Phase::Terminate)
        );
        assert_eq!(d.on(Trigger::Signal(StopKind::Fast), t0), Step::Stay);
    }

    #[test]
    fn prestop_waits_for_the_kubelets_sigterm() {
        let t0 = Instant::now();
        let mut d = drain();
        assert_eq!(d.on(Trigger::PreStop, t0), Step::Enter(Phase::LameDuck));
        assert_eq!(d.on(Trigger::PreStop, t0), Step::Stay);
        assert_eq!(d.on(Trigger::LameDuckDone, t0), Step::Stay);
        assert!(d.lame_duck_done());
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            d.on(Trigger::Signal(StopKind::Graceful), later),
            Step::Enter(Phase::Drain)
        );
        // The budget still counts from the preStop call, not from the SIGTERM.
        assert_eq!(d.budget().unwrap().started(), t0);
    }

    #[test]
    fn the_lame_duck_share_ends_the_phase_even_without_a_signal() {
        let t0 = Instant::now();
        let mut d = drain();
        d.on(Trigger::PreStop, t0);
        d.on(Trigger::LameDuckDone, t0);
        assert_eq!(d.on(Trigger::Timer, t0), Step::Enter(Phase::Drain));
    }
}
