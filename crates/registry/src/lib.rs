//! `lameduck registry`: a Eureka-compatible service registry.
//!
//! Why a registry of our own: with Eureka, a caller learns that an instance is
//! going away only after the server's response cache, its own 30 s fetch and
//! its load balancer's cache have all turned over — about 90 s. This registry
//! keeps Eureka's REST API and rules, so Spring Cloud, py-eureka-client and
//! eureka-js-client work unchanged, but has no response cache and adds a
//! change feed (`GET /eureka/lameduck/changes?after=V`) that answers the
//! moment something changes. It is in memory by design, as Eureka is: after a
//! restart every client's next heartbeat gets a 404 and it registers again.
//!
//! The model and the wire format come from `lameduck-eureka`, the crate of
//! the protocol and its client. The parts here, from the bottom:
//!
//! - [`registry`]: the state and Eureka's rules, told the time by the caller.
//! - [`routes`]: which operation a request names.
//! - `state`: what the listeners share (the registry, the phase, counters).
//! - `admin`: the probe listener (`/healthz`, `/readyz`, `/metrics`).
//! - `server`: HTTP, auth, gzip, the change feed and the drain ([`serve`]).
//! - `stop`: stop signals through the shared drain driver
//!   ([`serve_until_stopped`]).

#![forbid(unsafe_code)]

mod admin;
pub mod clock;
mod config;
mod error;
pub mod registry;
pub mod routes;
mod server;
mod state;
mod stop;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AuthScope, BasicAuth, Config};
pub use error::Error;
pub use server::serve;
pub use state::Shutdown;
pub use stop::{serve_until_stopped, Stopped};
