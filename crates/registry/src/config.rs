//! The registry server's settings, checked once before it starts.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::registry::Rules;

/// Everything `serve` needs besides its sockets and its shutdown trigger.
#[derive(Debug, Clone)]
pub struct Config {
    /// Eureka's rules: self-preservation, thresholds, delta retention.
    pub rules: Rules,
    /// How often the eviction pass runs (Eureka: 60 s).
    pub eviction_interval: Duration,
    /// When set, Eureka endpoints ask for HTTP basic auth: all of them, or
    /// only the writes, as `auth_scope` says.
    pub auth: Option<BasicAuth>,
    /// Which endpoints `auth` guards.
    pub auth_scope: AuthScope,
    /// The longest a change-feed request waits for a change.
    pub max_wait: Duration,
    /// The longest a client may take to send a request head (both listeners).
    pub header_read_timeout: Duration,
    /// Where the time comes from; tests pass a [`crate::ManualClock`].
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            rules: Rules::default(),
            eviction_interval: Duration::from_secs(60),
            auth: None,
            auth_scope: AuthScope::All,
            max_wait: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock::new()),
        }
    }
}

/// Which Eureka endpoints basic auth guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthScope {
    /// Every endpoint (the probes on the admin listener excepted).
    #[default]
    All,
    /// Only the ones that change the registry: register, renew, cancel,
    /// status overrides and metadata. Reads stay open, as a Spring Eureka
    /// server can be set up, so that any client may discover while only
    /// holders of the credentials may register or take an instance DOWN.
    Writes,
}

/// A user name and password for HTTP basic auth.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl BasicAuth {
    /// Reads `USER:PASSWORD`.
    pub fn parse(s: &str) -> Option<BasicAuth> {
        let (user, password) = s.split_once(':')?;
        (!user.is_empty()).then(|| BasicAuth {
            user: user.to_string(),
            password: password.to_string(),
        })
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicAuth({}:***)", self.user)
    }
}
