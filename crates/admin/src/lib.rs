//! The listeners every lameduck part serves besides its own traffic, and its
//! metrics, written once.
//!
//! Two listeners, never one ([`Role`]):
//!
//! - the **probe** listener answers `GET`/`HEAD` `/healthz`, `/readyz` and
//!   `/metrics` and nothing else: read-only, safe on the pod IP for the
//!   kubelet and Prometheus;
//! - the **admin** listener answers the same probes plus the part's own
//!   endpoints that change state; bound off loopback it must have a bearer
//!   [`Token`] ([`Token::check_bind`]), and with a token every endpoint but
//!   the probes asks for `Authorization: Bearer TOKEN`.
//!
//! [`serve`] is the one accept loop: `accept` failures back off
//! ([`lameduck_drain::AcceptBackoff`]), every connection has a header read
//! timeout, and a shutdown trigger closes the listener and lets open
//! requests finish. Each part supplies its [`Routes`]: health, readiness,
//! its metrics and, on the admin listener, its own endpoints.
//!
//! [`Metrics`] is the one renderer: a `prometheus-client` registry whose
//! names follow `lameduck_<part>_<what>_<unit>`, with the drain's phase and
//! budget ([`Metrics::register_drain`]) the same in every part.

#![forbid(unsafe_code)]

mod listener;
mod metrics;
mod token;

pub use listener::{serve, text, NotReady, Options, Reply, Role, Routes};
pub use metrics::{collect, Metrics, CONTENT_TYPE};
pub use token::{NeedsToken, Token};

/// Re-exported so that a part's collectors name the same crate version.
pub use prometheus_client;

/// The readiness of a part that follows only its drain phase: ready while
/// serving, `draining (PHASE)` from the lame-duck phase on.
pub fn ready_unless_draining(phase: lameduck_drain::Phase) -> Result<(), NotReady> {
    if phase.is_draining() {
        Err(NotReady(format!("draining ({phase})")))
    } else {
        Ok(())
    }
}
