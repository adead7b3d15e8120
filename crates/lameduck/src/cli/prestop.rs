//! `lameduck prestop`

use std::path::PathBuf;

use clap::Args;
use lameduck_supervisor::{default_control_path, Error};

use super::drain_args::{BudgetArgs, LameDuckArgs};

/// Kubernetes preStop hook: start the drain now and return when routers have
/// caught up, so the kubelet's SIGTERM moves straight to phase 2.
///
/// Talks to the `lameduck run` in this container over its control socket: asks it
/// to start the lame-duck phase and blocks until that phase is over. Use it as
/// `lifecycle: preStop: exec: command: [lameduck, prestop]`.
///
/// Without a supervisor (the app is PID 1 itself), give --drain-delay,
/// --until-quiet or --on-drain and prestop runs the lame-duck work here. When a
/// supervisor answers, these flags are ignored: its own flags decide.
#[derive(Debug, Args)]
pub(crate) struct PrestopArgs {
    /// Control socket of `lameduck run` [default: $LAMEDUCK_CONTROL, else /tmp/lameduck.sock].
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,

    #[command(flatten)]
    budget: BudgetArgs,

    #[command(flatten)]
    lame_duck: LameDuckArgs,
}

pub(crate) fn main(args: PrestopArgs) -> i32 {
    let path = args.control.clone().unwrap_or_else(default_control_path);
    let rt = match tokio_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    match rt.block_on(lameduck_supervisor::prestop(&path)) {
        Ok(_) => 0,
        Err(Error::NoSupervisor { .. }) if args.lame_duck.any() => {
            drop(rt);
            tracing::info!(control = %path.display(), "no supervisor answers; draining here");
            alone(&args)
        }
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}

fn alone(args: &PrestopArgs) -> i32 {
    let (plan, work) = match args.lame_duck.plan(&args.budget) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    match lameduck_supervisor::lame_duck_alone(work, plan) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}

fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
