//! `lameduck run [OPTIONS] -- CMD [ARGS…]`

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use lameduck_drain::{parse_duration, Sig};
use lameduck_supervisor::{default_control_path, parse_rewrite, Config, ReadyCheck, Rewrites};

use super::drain_args::{BudgetArgs, LameDuckArgs};

/// Run CMD as its supervisor (PID 1 in a container) and drain before it stops.
///
/// lameduck starts CMD in its own process group, forwards every signal it gets
/// (except SIGCHLD, SIGPIPE, SIGTTIN, SIGTTOU and fault signals), reaps every
/// zombie (as PID 1, or as a child subreaper), and exits with CMD's status
/// (128+N if a signal N killed it; 127 if CMD is not found, 126 if it cannot be
/// executed).
///
/// On SIGTERM or `lameduck prestop` it drains: (1) lame duck: /readyz answers
/// 503, the --on-drain hooks run, then it waits --drain-delay or --until-quiet;
/// (2) drain: the app gets its stop signal (SIGTERM, or what --rewrite says);
/// (3) terminate: at --grace minus --margin, SIGKILL to the app's process group.
/// SIGINT and SIGQUIT skip phase 1. A second stop signal escalates one phase.
/// After the app exits, processes it left behind get SIGTERM, then SIGKILL.
#[derive(Debug, Args)]
#[command(
    after_help = "Example (Kubernetes): lameduck run --admin 0.0.0.0:9090 \
    --ready-check http://127.0.0.1:8080/ready --until-quiet 3s --port 8080 -- java -jar app.jar"
)]
pub(crate) struct RunArgs {
    /// Send forwarded signals to the app's whole process group, not just the app.
    #[arg(long, help_heading = "Signals and processes")]
    signal_group: bool,

    /// Translate a forwarded signal, e.g. TERM:QUIT for nginx (graceful stop is
    /// SIGQUIT). TO may be 0 to drop the signal. Repeatable.
    #[arg(long, value_name = "FROM:TO", value_parser = parse_rewrite, help_heading = "Signals and processes")]
    rewrite: Vec<(Sig, Sig)>,

    #[command(flatten)]
    budget: BudgetArgs,

    #[command(flatten)]
    lame_duck: LameDuckArgs,

    /// Serve /readyz, /healthz and /metrics (read-only) on this address. In
    /// Kubernetes bind the pod IP (0.0.0.0:PORT) and point the readinessProbe here.
    #[arg(
        long,
        value_name = "ADDR",
        env = "LAMEDUCK_ADMIN",
        help_heading = "Admin and control"
    )]
    admin: Option<SocketAddr>,

    /// The app's own readiness URL (http://…): /readyz mirrors it until the drain
    /// starts, then answers 503.
    #[arg(
        long,
        value_name = "URL",
        requires = "admin",
        help_heading = "Admin and control"
    )]
    ready_check: Option<String>,

    /// How long one --ready-check request may take.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, help_heading = "Admin and control")]
    ready_timeout: Duration,

    /// Control socket for `lameduck prestop` [default: $LAMEDUCK_CONTROL, else /tmp/lameduck.sock].
    #[arg(long, value_name = "PATH", help_heading = "Admin and control")]
    control: Option<PathBuf>,

    /// Do not open the control socket.
    #[arg(long, conflicts_with = "control", help_heading = "Admin and control")]
    no_control: bool,

    /// After the app exits, how long processes it left behind get between SIGTERM
    /// and SIGKILL (never past the drain deadline).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, help_heading = "Signals and processes")]
    cleanup_timeout: Duration,

    /// The app and its arguments.
    #[arg(
        required = true,
        last = true,
        value_name = "CMD",
        help_heading = "Arguments"
    )]
    command: Vec<OsString>,
}

impl RunArgs {
    fn config(self) -> Result<Config, String> {
        let (plan, lame_duck) = self.lame_duck.plan(&self.budget)?;
        let mut rewrites = Rewrites::default();
        for (from, to) in self.rewrite {
            rewrites.insert(from, to);
        }
        let ready_check = self
            .ready_check
            .map(|url| ReadyCheck::parse(&url, self.ready_timeout))
            .transpose()
            .map_err(|e| e.to_string())?;
        let control = (!self.no_control).then(|| self.control.unwrap_or_else(default_control_path));
        Ok(Config {
            command: self.command,
            signal_group: self.signal_group,
            rewrites,
            plan,
            lame_duck,
            admin: self.admin,
            ready_check,
            control,
            cleanup_timeout: self.cleanup_timeout,
        })
    }
}

pub(crate) fn main(args: RunArgs) -> i32 {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    match lameduck_supervisor::run(config) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
