//! Command-line definitions, one module per subcommand. Flags are read in two
//! stages, as ripgrep does: clap structs close to the command line here, then a
//! checked library config built by each module's `config()`.

pub(crate) mod demo;
pub(crate) mod demo_app;
pub(crate) mod doctor;
pub(crate) mod drain_args;
pub(crate) mod lint;
pub(crate) mod load;
pub(crate) mod pcap;
pub(crate) mod prestop;
pub(crate) mod proxy;
pub(crate) mod registry;
pub(crate) mod rollout;
pub(crate) mod run;

use clap::{Parser, Subcommand, ValueEnum};

/// The multi-threaded runtime the long-running commands share, or the error
/// already logged.
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            None
        }
    }
}

/// lameduck makes rollouts, restarts and proxy reloads lose zero requests.
///
/// Every part follows one drain model: on SIGTERM (or a preStop call) it first
/// tells routers to stop sending traffic and waits until they have (lame duck),
/// then lets in-flight work finish (drain), and only at the deadline forces what
/// is left (terminate). SIGINT/SIGQUIT skip the first phase; a second stop signal
/// escalates one phase.
#[derive(Debug, Parser)]
#[command(
    name = "lameduck",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Log format on stderr: human-readable text, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "LAMEDUCK_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// `2026-01-01T12:00:00.000Z lameduck[1] INFO message key=value`
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Run(run::RunArgs),
    Prestop(prestop::PrestopArgs),
    Proxy(proxy::ProxyArgs),
    Registry(registry::RegistryArgs),
    Load(load::LoadArgs),
    Rollout(rollout::RolloutArgs),
    Demo(demo::DemoArgs),
    DemoApp(demo_app::DemoAppArgs),
    Lint(lint::LintArgs),
    Pcap(pcap::PcapArgs),
    Doctor(doctor::DoctorArgs),
}
