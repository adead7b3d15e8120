//! `lameduck run`: a PID-1 supervisor that drains before it stops the app.
//!
//! In a container, PID 1 receives the stop signal. A shell as PID 1 never forwards
//! it; tini forwards it at once, which is too early: routers and registries still
//! send traffic for seconds after a pod is deleted. This crate starts the app as a
//! child, forwards signals, reaps zombies, and on a stop signal (or a preStop call
//! on its control socket) runs the drain of [`lameduck_drain`]:
//!
//! 1. lame duck: `/readyz` answers 503, the `--on-drain` hooks run, then it waits a
//!    fixed `--drain-delay` or until the app's ports have been quiet (no new
//!    connection, no data received) for `--until-quiet`, within the lame-duck
//!    share of the budget;
//! 2. drain: the app gets its stop signal (rewritten if asked) and finishes;
//! 3. terminate: at `grace − margin`, SIGKILL to the app's whole process group.
//!
//! The parts, one module each: `spawn` starts the child, `reaper` collects exit
//! statuses (of the app, the hooks and adopted orphans), `descendants` finds what
//! is left when the app exits, `quiet` watches the app's connections in the
//! kernel, `hooks` runs the drain hooks, `admin` serves the probes and metrics,
//! [`control`] is the local socket `lameduck prestop` talks to, and `supervise`
//! ties them into one loop.

mod admin;
mod config;
pub mod control;
mod descendants;
mod error;
mod eureka;
mod hooks;
mod jobctl;
mod memory;
mod quiet;
mod reaper;
mod spawn;
mod state;
mod supervise;

pub use config::{parse_rewrite, ArgError, Config, Hook, LameDuckWork, ReadyCheck, Rewrites};
pub use control::{default_control_path, prestop, PrestopOutcome, CONTROL_ENV};
pub use error::Error;
pub use eureka::EurekaConfig;
pub use supervise::{lame_duck_alone, run, supervise};
