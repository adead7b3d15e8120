//! The registry's tests over real sockets on 127.0.0.1: the REST API rule by
//! rule in both formats, the change feed, the drain, and the real Eureka
//! clients (py-eureka-client, eureka-js-client) driven unmodified.
//!
//! The real-client tests install the clients on first use by running
//! `.ci/setup-eureka-clients.sh` (pip and npm, pinned versions, under
//! `target/eureka-clients/`); they fail, naming that script, if it cannot.

#![allow(unreachable_pub)] // test helpers are `pub` for readability

mod api;
mod drain;
mod feed;
mod real_clients;
mod util;
