//! The time a drain may take, and how it is shared between the phases.
//!
//! Kubernetes gives a pod `terminationGracePeriodSeconds` from the start of the
//! preStop hook; then it sends SIGKILL. lameduck counts the same budget from its
//! first trigger and keeps a safety `margin` so that *it* force-stops the app (and
//! logs why) before the kubelet's SIGKILL does it silently. The lame-duck phase may
//! use the budget only up to `grace − margin − stop_reserve`, so the app always has
//! `stop_reserve` to finish its in-flight work after its stop signal.

use std::time::{Duration, Instant};

use crate::format_duration;

/// Environment variable that sets the default grace period, in seconds.
pub const GRACE_ENV: &str = "LAMEDUCK_GRACE_SECONDS";
/// The grace period when neither a flag nor [`GRACE_ENV`] gives one (Kubernetes' default).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The three numbers that split a budget between the phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The whole budget, counted from the first trigger.
    pub grace: Duration,
    /// Kept back at the end: phase 3 (force) starts at `grace − margin`.
    pub margin: Duration,
    /// Kept for phase 2: the lame-duck phase ends at the latest at
    /// `grace − margin − stop_reserve`.
    pub stop_reserve: Duration,
}

impl Timing {
    /// Time from the first trigger to phase 3.
    pub fn until_terminate(&self) -> Duration {
        self.grace.saturating_sub(self.margin)
    }

    /// The longest the lame-duck phase may last.
    pub fn lame_duck_share(&self) -> Duration {
        self.until_terminate().saturating_sub(self.stop_reserve)
    }
}

/// How the lame-duck phase decides that routers have caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LameDuckWait {
    /// Do not wait (the phase still runs its hooks and flips readiness).
    None,
    /// Wait a fixed time (`--drain-delay`): the classic `preStop: sleep N`.
    Fixed(Duration),
    /// Wait until no request has arrived for `quiet` (no new connection, no data
    /// on an open one), but never longer than `max` (or the lame-duck share of
    /// the budget when `max` is not given).
    UntilQuiet {
        quiet: Duration,
        max: Option<Duration>,
    },
}

/// A checked drain plan: the timing and the lame-duck wait fit together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    timing: Timing,
    wait: LameDuckWait,
}

/// Which lame-duck setting does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The fixed wait, or the bound of the adaptive one.
    DrainDelay,
    /// The quiet window of the adaptive wait.
    UntilQuiet,
}

/// How the settings a plan checks are spelled where the user wrote them:
/// command-line flags ([`Names::FLAGS`], what `Display` uses) or the keys of
/// a config file, so that an error names what the user can find and change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    pub grace: &'static str,
    pub margin: &'static str,
    pub stop_reserve: &'static str,
    pub drain_delay: &'static str,
    pub until_quiet: &'static str,
}

impl Names {
    /// The command-line flags of `run`, `prestop` and `registry`.
    pub const FLAGS: Names = Names {
        grace: "--grace",
        margin: "--margin",
        stop_reserve: "--stop-reserve",
        drain_delay: "--drain-delay",
        until_quiet: "--until-quiet",
    };

    fn of(&self, setting: Setting) -> &'static str {
        match setting {
            Setting::DrainDelay => self.drain_delay,
            Setting::UntilQuiet => self.until_quiet,
        }
    }
}

/// Why a plan does not fit its budget.
#[derive(Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The margin eats the whole grace period.
    MarginTooLarge(Timing),
    /// The lame-duck wait is longer than its share of the budget.
    WaitDoesNotFit {
        /// The setting whose value is too long.
        what: Setting,
        /// Its value.
        wait: Duration,
        /// The budget it had to fit.
        timing: Timing,
    },
}

impl PlanError {
    /// The error with the settings spelled as `names`.
    pub fn describe(&self, names: &Names) -> String {
        match self {
            PlanError::MarginTooLarge(t) => format!(
                "{} {} must be shorter than {} {}",
                names.margin,
                format_duration(t.margin),
                names.grace,
                format_duration(t.grace)
            ),
            PlanError::WaitDoesNotFit { what, wait, timing } => {
                let what = names.of(*what);
                format!(
                    "{what} {} does not fit the budget: {} {} − {} {} − {} {} leaves {} for \
                     the lame-duck phase; shorten {what} or raise {} (and the pod's \
                     terminationGracePeriodSeconds with it)",
                    format_duration(*wait),
                    names.grace,
                    format_duration(timing.grace),
                    names.margin,
                    format_duration(timing.margin),
                    names.stop_reserve,
                    format_duration(timing.stop_reserve),
                    format_duration(timing.lame_duck_share()),
                    names.grace,
                )
            }
        }
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(&Names::FLAGS))
    }
}

impl std::error::Error for PlanError {}

impl Plan {
    /// Checks that `wait` fits `timing`; the error says which flag to change.
    pub fn new(timing: Timing, wait: LameDuckWait) -> Result<Plan, PlanError> {
        if timing.margin >= timing.grace {
            return Err(PlanError::MarginTooLarge(timing));
        }
        let share = timing.lame_duck_share();
        let too_long = |what, wait| PlanError::WaitDoesNotFit { what, wait, timing };
        match wait {
            LameDuckWait::Fixed(d) if d > share => return Err(too_long(Setting::DrainDelay, d)),
            LameDuckWait::UntilQuiet { quiet, .. } if quiet > share => {
                return Err(too_long(Setting::UntilQuiet, quiet))
            }
            LameDuckWait::UntilQuiet { max: Some(m), .. } if m > share => {
                return Err(too_long(Setting::DrainDelay, m))
            }
            _ => {}
        }
        Ok(Plan { timing, wait })
    }

    /// The timing this plan was checked against.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The lame-duck wait.
    pub fn wait(&self) -> LameDuckWait {
        self.wait
    }
}

/// A running budget: the timing plus the instant of the first trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    started: Instant,
    timing: Timing,
}

impl Budget {
    /// Starts the clock at `now` (the first trigger).
    pub fn start(timing: Timing, now: Instant) -> Budget {
        Budget {
            started: now,
            timing,
        }
    }

    /// When the first trigger came.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When phase 3 (force) begins: `started + grace − margin`.
    pub fn terminate_at(&self) -> Instant {
        self.started + self.timing.until_terminate()
    }

    /// The latest end of the lame-duck phase.
    pub fn lame_duck_until(&self) -> Instant {
        self.started + self.timing.lame_duck_share()
    }

    /// Time left until phase 3, as logged with every phase change.
    pub fn left(&self, now: Instant) -> Duration {
        self.terminate_at().saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(grace: u64, margin: u64, reserve: u64) -> Timing {
        Timing {
            grace: Duration::from_secs(grace),
            margin: Duration::from_secs(margin),
            stop_reserve: Duration::from_secs(reserve),
        }
    }

    #[test]
    fn shares_follow_the_documented_arithmetic() {
        let t = timing(30, 2, 5);
        assert_eq!(t.until_terminate(), Duration::from_secs(28));
        assert_eq!(t.lame_duck_share(), Duration::from_secs(23));
        let now = Instant::now();
        let b = Budget::start(t, now);
        assert_eq!(
            b.left(now + Duration::from_secs(8)),
            Duration::from_secs(20)
        );
        assert_eq!(b.left(now + Duration::from_secs(99)), Duration::ZERO);
        assert_eq!(b.lame_duck_until(), now + Duration::from_secs(23));
    }

    #[test]
    fn a_delay_that_does_not_fit_is_refused_with_the_numbers() {
        let err = Plan::new(
            timing(30, 2, 5),
            LameDuckWait::Fixed(Duration::from_secs(25)),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--drain-delay 25.0s"), "{err}");
        assert!(err.contains("leaves 23.0s"), "{err}");
        assert!(Plan::new(
            timing(30, 2, 5),
            LameDuckWait::Fixed(Duration::from_secs(23))
        )
        .is_ok());
    }

    #[test]
    fn margin_must_leave_time() {
        assert!(matches!(
            Plan::new(timing(2, 2, 0), LameDuckWait::None),
            Err(PlanError::MarginTooLarge(_))
        ));
    }

    #[test]
    fn until_quiet_bounds_are_checked() {
        let q = |quiet, max: Option<u64>| LameDuckWait::UntilQuiet {
            quiet: Duration::from_secs(quiet),
            max: max.map(Duration::from_secs),
        };
        assert!(Plan::new(timing(30, 2, 5), q(5, None)).is_ok());
        assert!(Plan::new(timing(30, 2, 5), q(24, None)).is_err());
        assert!(Plan::new(timing(30, 2, 5), q(5, Some(24))).is_err());
    }
}
