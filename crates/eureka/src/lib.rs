//! Eureka's protocol, and the client every lameduck part uses to talk to any
//! Eureka server (Netflix, Spring Cloud, `lameduck registry`): `run` and
//! `prestop` register, renew, mark DOWN and cancel; `proxy` keeps a pool of
//! upstreams current from full and delta fetches or lameduck's change feed.
//!
//! Why apart from the registry server (`lameduck-registry`): a part that
//! only calls a registry should not compile one. The server depends on this
//! crate for the model and the wire format; nothing here knows the server.
//!
//! The parts, from the bottom:
//!
//! - [`model`]: an instance and how it is read (leniently) and written; the
//!   reconcile hashcode.
//! - [`wire`]: JSON and XML onto one tree, so both formats share one reader.
//! - [`client`]: register, renew, status, cancel, full and delta fetch, feed.

#![forbid(unsafe_code)]

pub mod client;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod model;
pub mod wire;

pub use error::Error;
