//! The checked configuration of a supervisor, built by the command line.

use std::{collections::HashMap, ffi::OsString, net::SocketAddr, path::PathBuf, time::Duration};

use lameduck_drain::{Plan, Sig};

/// Everything `lameduck run` needs to know, already validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The app: program and arguments.
    pub command: Vec<OsString>,
    /// Forward signals to the app's whole process group instead of the app alone.
    pub signal_group: bool,
    /// Signal translations applied to everything forwarded.
    pub rewrites: Rewrites,
    /// Budget and lame-duck wait, checked to fit together.
    pub plan: Plan,
    /// What the lame-duck phase does besides flipping readiness.
    pub lame_duck: LameDuckWork,
    /// Where `/readyz`, `/healthz` and `/metrics` are served, if anywhere.
    pub admin: Option<SocketAddr>,
    /// The app's own readiness URL, which `/readyz` mirrors until the drain starts.
    pub ready_check: Option<ReadyCheck>,
    /// The control socket `lameduck prestop` talks to (`None`: no socket).
    pub control: Option<PathBuf>,
    /// After the app exits, how long its leftover descendants get between SIGTERM
    /// and SIGKILL.
    pub cleanup_timeout: Duration,
}

/// What the lame-duck phase does after readiness turns 503.
#[derive(Debug, Clone, Default)]
pub struct LameDuckWork {
    /// Commands run in order, each bounded by the lame-duck share of the budget.
    pub hooks: Vec<Hook>,
    /// The app's ports watched by `--until-quiet`.
    pub quiet_ports: Vec<u16>,
    /// Mark the instance DOWN in Eureka first, cancel it at the end.
    pub eureka: Option<crate::EurekaConfig>,
}

/// A drain hook: a command line split like a shell would, run without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The command line as the user wrote it, for logs.
    pub line: String,
    /// Program and arguments.
    pub argv: Vec<String>,
}

impl Hook {
    /// Splits `line` with shell quoting rules (no expansion, no pipes).
    pub fn parse(line: &str) -> Result<Hook, ArgError> {
        match shlex::split(line) {
            Some(argv) if !argv.is_empty() => Ok(Hook {
                line: line.to_string(),
                argv,
            }),
            Some(_) => Err(ArgError::EmptyHook),
            None => Err(ArgError::UnbalancedQuotes(line.to_string())),
        }
    }
}

/// The app's readiness URL (plain `http://host:port/path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyCheck {
    /// The URL as given.
    pub url: String,
    /// `host:port` to connect to.
    pub authority: String,
    /// Path and query to request.
    pub path: String,
    /// How long one check may take before it counts as not ready.
    pub timeout: Duration,
}

impl ReadyCheck {
    /// Reads `http://host[:port][/path]`. HTTPS is not supported: the check talks
    /// to the app on the pod's own network namespace, where TLS adds nothing.
    pub fn parse(url: &str, timeout: Duration) -> Result<ReadyCheck, ArgError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| ArgError::ReadyCheckScheme(url.to_string()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(ArgError::ReadyCheckNoHost(url.to_string()));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(ReadyCheck {
            url: url.to_string(),
            authority,
            path: path.to_string(),
            timeout,
        })
    }
}

/// Signal translations: `FROM → TO`, where `TO = 0` drops the signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrites(HashMap<Sig, Sig>);

impl Rewrites {
    /// Adds one translation; a later one for the same signal wins.
    pub fn insert(&mut self, from: Sig, to: Sig) {
        self.0.insert(from, to);
    }

    /// The signal to send for `sig`, or `None` to drop it.
    pub fn apply(&self, sig: Sig) -> Option<Sig> {
        let to = self.0.get(&sig).copied().unwrap_or(sig);
        (to.0 != 0).then_some(to)
    }
}

/// Reads `FROM:TO` (`TERM:QUIT`, `SIGINT:0`, `15:3`).
pub fn parse_rewrite(s: &str) -> Result<(Sig, Sig), ArgError> {
    let bad = |why: String| ArgError::Rewrite {
        arg: s.to_string(),
        why,
    };
    let (from, to) = s
        .split_once(':')
        .ok_or_else(|| bad("expected FROM:TO, e.g. TERM:QUIT".into()))?;
    let from = Sig::parse(from).map_err(|e| bad(e.to_string()))?;
    let to = Sig::parse(to).map_err(|e| bad(e.to_string()))?;
    if from.0 == 0 {
        return Err(bad("FROM cannot be 0".into()));
    }
    Ok((from, to))
}

/// Why a command-line value of `lameduck run` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// `--on-drain ""`.
    #[error("--on-drain needs a command, got an empty string")]
    EmptyHook,
    /// `--on-drain` with an open quote.
    #[error("--on-drain {0:?}: unbalanced quotes")]
    UnbalancedQuotes(String),
    /// `--ready-check` that is not `http://`.
    #[error("--ready-check {0:?}: only http:// URLs are supported (the check is local)")]
    ReadyCheckScheme(String),
    /// `--ready-check http:///path`.
    #[error("--ready-check {0:?}: no host")]
    ReadyCheckNoHost(String),
    /// `--rewrite FROM:TO` that does not read.
    #[error("--rewrite {arg:?}: {why}")]
    Rewrite { arg: String, why: String },
    /// A `--eureka` URL the client cannot use.
    #[error("--eureka {url:?}: {why}")]
    EurekaServer { url: String, why: String },
    /// `--eureka` without an app name.
    #[error("--eureka-app is required with --eureka")]
    EurekaApp,
    /// Registering, or finding the instance, without its address.
    #[error(
        "to register or find this instance, lameduck needs its address: give --eureka-ip \
         (or set $POD_IP) and --eureka-port (or --port), or --eureka-instance-id"
    )]
    EurekaAddress,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_translates_and_drops() {
        let mut r = Rewrites::default();
        let (f, t) = parse_rewrite("TERM:QUIT").unwrap();
        r.insert(f, t);
        let (f, t) = parse_rewrite("SIGUSR1:0").unwrap();
        r.insert(f, t);
        assert_eq!(r.apply(Sig::TERM), Some(Sig::QUIT));
        assert_eq!(r.apply(Sig::parse("USR1").unwrap()), None);
        assert_eq!(r.apply(Sig::HUP), Some(Sig::HUP));
        assert!(parse_rewrite("TERM").is_err());
        assert!(parse_rewrite("0:TERM").is_err());
        assert!(parse_rewrite("TERM:BOGUS")
            .unwrap_err()
            .to_string()
            .contains("BOGUS"));
    }

    #[test]
    fn ready_check_urls() {
        let t = Duration::from_secs(1);
        let c = ReadyCheck::parse("http://127.0.0.1:8080/ready?x=1", t).unwrap();
        assert_eq!(
            (c.authority.as_str(), c.path.as_str()),
            ("127.0.0.1:8080", "/ready?x=1")
        );
        let c = ReadyCheck::parse("http://localhost", t).unwrap();
        assert_eq!(
            (c.authority.as_str(), c.path.as_str()),
            ("localhost:80", "/")
        );
        assert!(ReadyCheck::parse("https://x/", t).is_err());
    }

    #[test]
    fn hooks_split_like_a_shell() {
        let h = Hook::parse(r#"curl -X PUT "http://e/x?value=DOWN""#).unwrap();
        assert_eq!(h.argv, ["curl", "-X", "PUT", "http://e/x?value=DOWN"]);
        assert!(Hook::parse("echo 'open").is_err());
        assert!(Hook::parse("  ").is_err());
    }
}
