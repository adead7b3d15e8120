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
    /// When set, every Eureka endpoint asks for HTTP basic auth.
    pub auth: Option<BasicAuth>,
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
            max_wait: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock::new()),
        }
    }
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
