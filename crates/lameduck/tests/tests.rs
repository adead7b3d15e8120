//! Black-box tests: they run the built `lameduck` binary on real processes,
//! real signals and real sockets on 127.0.0.1, as a user would.
//!
//! Run with `cargo test --workspace` (the fixture app `ld-fixture` is built by
//! the `lameduck-testkit` package).

#![allow(unreachable_pub)] // test helpers are `pub` for readability

mod architecture;
mod demo_app;
mod diagnose;
mod lint_cli;
mod load_cli;
mod nginx_reload;
mod proxy;
mod proxy_floods;
mod registry;
mod run;
mod run_eureka;
mod util;
