//! The phases of a drain, in the order a drain goes through them.

use std::fmt;

/// Where a drain is. The order of the variants is the order of the phases, so
/// `a < b` means `a` comes before `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// No trigger yet: serving normally, readiness follows the app.
    Serving,
    /// Phase 1: serving, but telling every router to stop sending traffic.
    LameDuck,
    /// Phase 2: not accepting; in-flight work finishes; the app got its stop signal.
    Drain,
    /// Phase 3: the deadline has come; whatever is left is forced to stop.
    Terminate,
}

impl Phase {
    /// All phases, in order.
    pub const ALL: [Phase; 4] = [
        Phase::Serving,
        Phase::LameDuck,
        Phase::Drain,
        Phase::Terminate,
    ];

    /// The stable name used in logs, metrics and the control protocol.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Serving => "serving",
            Phase::LameDuck => "lame-duck",
            Phase::Drain => "drain",
            Phase::Terminate => "terminate",
        }
    }

    /// A small number for gauges and atomics (0 = serving … 3 = terminate).
    pub fn index(self) -> u8 {
        self as u8
    }

    /// The inverse of [`Phase::index`]; out-of-range values mean terminate.
    pub fn from_index(i: u8) -> Phase {
        Phase::ALL
            .get(usize::from(i))
            .copied()
            .unwrap_or(Phase::Terminate)
    }

    /// True once routers must be told to stop sending traffic (readiness 503).
    pub fn is_draining(self) -> bool {
        self != Phase::Serving
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips_and_orders() {
        for p in Phase::ALL {
            assert_eq!(Phase::from_index(p.index()), p);
        }
        assert!(Phase::Serving < Phase::LameDuck && Phase::Drain < Phase::Terminate);
    }
}
