//! What the demo app is told at start: where to listen, how slow each request
//! is, how it stops, and whether it registers in Eureka. The binary builds it
//! from flags and environment; tests build it directly.

use std::{net::SocketAddr, time::Duration};

/// The checked settings of one demo app.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (HTTP/1.1 and h2c on one port).
    pub listen: SocketAddr,
    /// Service time of every request except the probes (`/healthz`,
    /// `/readyz`, gRPC health), and of every WebSocket echo.
    pub latency: Duration,
    /// How the app reacts to its stop trigger.
    pub mode: Mode,
    /// The version shown in responses (`v1`, `v2`, …).
    pub version: String,
    /// Who answers, shown in responses (the pod name or the instance id).
    pub name: String,
    /// Register in this Eureka server, if set.
    pub eureka: Option<EurekaConfig>,
}

/// How the app stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Like an app with no shutdown handling: it is gone the moment it is told
    /// to stop, cutting whatever was in flight.
    Naive,
    /// Like Spring Boot's graceful shutdown or Go's `Server.Shutdown`: stop
    /// accepting, close idle connections, finish what is in flight, and give
    /// up after `timeout`.
    Graceful {
        /// The longest the drain may take before what is left is cut.
        timeout: Duration,
    },
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Naive => "naive",
            Mode::Graceful { .. } => "graceful",
        })
    }
}

/// How the app registers itself in Eureka, as a Spring Cloud app does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EurekaConfig {
    /// The service URL, e.g. `http://127.0.0.1:8761/eureka/`.
    pub url: String,
    /// The application name (Eureka upper-cases it).
    pub app: String,
    /// The instance id.
    pub instance_id: String,
    /// The IP address registered (the port is the one the app listens on).
    pub ip: String,
    /// Cancel the registration at shutdown (Spring's default).
    pub deregister: bool,
    /// Heartbeat interval (Eureka clients' default: 30 s).
    pub renew_every: Duration,
    /// Lease asked for (Eureka clients' default: 90 s).
    pub lease: Duration,
    /// Bound on one call to the server.
    pub timeout: Duration,
}

impl EurekaConfig {
    /// Settings with Eureka clients' usual intervals.
    pub fn new(url: &str, app: &str, instance_id: &str, ip: &str) -> EurekaConfig {
        EurekaConfig {
            url: url.to_string(),
            app: app.to_string(),
            instance_id: instance_id.to_string(),
            ip: ip.to_string(),
            deregister: true,
            renew_every: Duration::from_secs(30),
            lease: Duration::from_secs(90),
            timeout: Duration::from_secs(2),
        }
    }
}
