//! Signals by name, and what each stop signal means to a drain.
//!
//! Everywhere in lameduck: SIGTERM = graceful drain (all three phases); SIGINT and
//! SIGQUIT = fast drain (skip the lame-duck phase); a second stop signal escalates
//! one phase; SIGHUP = reload (or, for a supervisor, forwarded to the app).

use std::fmt;

use nix::libc;

/// A signal number, including real-time signals (which `nix::Signal` lacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sig(pub i32);

/// The kind of stop a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// SIGTERM: go through every phase.
    Graceful,
    /// SIGINT, SIGQUIT: skip the lame-duck phase.
    Fast,
}

/// A signal name or number that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown signal {0:?} (use a name such as TERM, SIGQUIT, RTMIN+1, or a number)")]
pub struct SignalParseError(pub String);

const NAMED: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

impl Sig {
    /// SIGTERM.
    pub const TERM: Sig = Sig(libc::SIGTERM);
    /// SIGINT.
    pub const INT: Sig = Sig(libc::SIGINT);
    /// SIGQUIT.
    pub const QUIT: Sig = Sig(libc::SIGQUIT);
    /// SIGKILL.
    pub const KILL: Sig = Sig(libc::SIGKILL);
    /// SIGHUP.
    pub const HUP: Sig = Sig(libc::SIGHUP);
    /// SIGCONT.
    pub const CONT: Sig = Sig(libc::SIGCONT);

    /// The lowest real-time signal as the C library numbers it.
    pub fn rtmin() -> i32 {
        libc::SIGRTMIN()
    }

    /// The highest real-time signal.
    pub fn rtmax() -> i32 {
        libc::SIGRTMAX()
    }

    /// Reads `TERM`, `SIGTERM`, `term`, `15`, `RTMIN+2` or `SIGRTMAX-1`.
    /// `0` is accepted too: it means "no signal" where a rewrite allows it.
    pub fn parse(input: &str) -> Result<Sig, SignalParseError> {
        let err = || SignalParseError(input.to_string());
        let upper = input.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        // `SIG33` too: it is how an unnamed signal is displayed.
        if let Ok(n) = name.parse::<i32>() {
            return if n == 0 || (1..=Sig::rtmax()).contains(&n) {
                Ok(Sig(n))
            } else {
                Err(err())
            };
        }
        if let Some(&(_, n)) = NAMED.iter().find(|(k, _)| *k == name) {
            return Ok(Sig(n));
        }
        let rt = |base: i32, rest: &str, sign: i32| -> Result<Sig, SignalParseError> {
            let off: i32 = if rest.is_empty() {
                0
            } else {
                rest.parse().map_err(|_| err())?
            };
            // `RTMIN+2147483647` must be refused, not overflow.
            let n = off.checked_mul(sign).and_then(|o| base.checked_add(o));
            let n = n.ok_or_else(err)?;
            if (Sig::rtmin()..=Sig::rtmax()).contains(&n) {
                Ok(Sig(n))
            } else {
                Err(err())
            }
        };
        if let Some(rest) = name.strip_prefix("RTMIN") {
            return rt(Sig::rtmin(), rest.strip_prefix('+').unwrap_or(rest), 1);
        }
        if let Some(rest) = name.strip_prefix("RTMAX") {
            return rt(Sig::rtmax(), rest.strip_prefix('-').unwrap_or(rest), -1);
        }
        Err(err())
    }

    /// The name without `SIG`: `TERM`, `RTMIN+3`, or the number if unnamed.
    pub fn name(self) -> String {
        if let Some(&(k, _)) = NAMED.iter().find(|(_, n)| *n == self.0) {
            return k.to_string();
        }
        if (Sig::rtmin()..=Sig::rtmax()).contains(&self.0) {
            return format!("RTMIN+{}", self.0 - Sig::rtmin());
        }
        self.0.to_string()
    }

    /// What a drain does when this signal arrives, if it is a stop signal.
    pub fn stop_kind(self) -> Option<StopKind> {
        match self.0 {
            libc::SIGTERM => Some(StopKind::Graceful),
            libc::SIGINT | libc::SIGQUIT => Some(StopKind::Fast),
            _ => None,
        }
    }

    /// Signals a supervisor passes on to its child: every catchable signal except
    /// SIGCHLD (about our own children), the fault signals (about *our* bugs:
    /// ILL, TRAP, ABRT, BUS, FPE, SEGV, SYS), SIGPIPE (raised by our own writes to
    /// a closed pipe, which must not reach the app), and SIGTTIN/SIGTTOU (terminal
    /// job control, ignored as tini does). Includes every real-time signal.
    pub fn forwardable() -> Vec<Sig> {
        const NOT: &[i32] = &[
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGCHLD,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGABRT,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGSEGV,
            libc::SIGSYS,
            libc::SIGPIPE,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ];
        let named = NAMED.iter().map(|&(_, n)| n).filter(|n| !NOT.contains(n));
        named.chain(Sig::rtmin()..=Sig::rtmax()).map(Sig).collect()
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        write!(f, "SIG{}", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_realtime() {
        assert_eq!(Sig::parse("TERM"), Ok(Sig::TERM));
        assert_eq!(Sig::parse("sigquit"), Ok(Sig::QUIT));
        assert_eq!(Sig::parse("15"), Ok(Sig::TERM));
        assert_eq!(Sig::parse("0"), Ok(Sig(0)));
        assert_eq!(Sig::parse("RTMIN+2"), Ok(Sig(Sig::rtmin() + 2)));
        assert_eq!(Sig::parse("SIGRTMAX-1"), Ok(Sig(Sig::rtmax() - 1)));
        assert!(Sig::parse("TERMINATE").is_err());
        assert!(Sig::parse("99").is_err());
    }

    #[test]
    fn an_unnamed_signal_reads_back_as_displayed() {
        // glibc keeps 32 and 33 below SIGRTMIN: they have no name, were shown
        // as `SIG33`, and `SIG33` was refused.
        for n in 1..=Sig::rtmax() {
            let shown = Sig(n).to_string();
            assert_eq!(Sig::parse(&shown), Ok(Sig(n)), "{shown}");
        }
        assert!(Sig::parse("SIG0x1").is_err());
    }

    #[test]
    fn a_realtime_offset_too_large_for_a_number_is_refused_not_a_panic() {
        for input in [
            "RTMIN+2147483647",
            "RTMIN2147483647",
            "RTMAX--2147483648",
            "RTMAX-2147483647",
        ] {
            assert!(Sig::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in Sig::forwardable() {
            assert_eq!(Sig::parse(&s.name()), Ok(s), "{s}");
        }
        assert_eq!(Sig::TERM.to_string(), "SIGTERM");
    }

    #[test]
    fn stop_kinds_match_the_design() {
        assert_eq!(Sig::TERM.stop_kind(), Some(StopKind::Graceful));
        assert_eq!(Sig::INT.stop_kind(), Some(StopKind::Fast));
        assert_eq!(Sig::QUIT.stop_kind(), Some(StopKind::Fast));
        assert_eq!(Sig::HUP.stop_kind(), None);
    }

    #[test]
    fn forwardable_excludes_what_must_not_reach_the_app() {
        let f = Sig::forwardable();
        for s in [libc::SIGCHLD, libc::SIGKILL, libc::SIGSEGV, libc::SIGPIPE] {
            assert!(!f.contains(&Sig(s)), "{}", Sig(s));
        }
        assert!(f.contains(&Sig::HUP) && f.contains(&Sig(libc::SIGUSR1)));
        assert!(f.contains(&Sig(Sig::rtmax())));
    }
}
