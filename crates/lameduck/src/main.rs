//! The `lameduck` binary: parses the command line and calls the library of the
//! part asked for. Nothing else lives here.

mod cli;
mod logging;

use std::process::ExitCode;

use clap::Parser;
use tracing::Level;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Commands that embed other parts keep those parts' routine logs quiet.
    let quiet: &[(&str, Level)] = match cli.command {
        // The proxy's ejections and the registry's notices are part of what
        // a rollout shows; in the demo the table and the report tell it.
        cli::Command::Rollout(_) => &[
            ("lameduck_proxy", Level::WARN),
            ("lameduck_load", Level::WARN),
            ("lameduck_eureka", Level::WARN),
            ("lameduck_registry", Level::WARN),
        ],
        cli::Command::Demo(_) => &[
            ("lameduck_proxy", Level::ERROR),
            ("lameduck_load", Level::ERROR),
            ("lameduck_eureka", Level::ERROR),
            ("lameduck_registry", Level::ERROR),
        ],
        _ => &[],
    };
    logging::init(cli.log_format, quiet);
    let code = match cli.command {
        cli::Command::Run(args) => cli::run::main(args),
        cli::Command::Prestop(args) => cli::prestop::main(args),
        cli::Command::Proxy(args) => cli::proxy::main(args),
        cli::Command::Registry(args) => cli::registry::main(args),
        cli::Command::Load(args) => cli::load::main(args),
        cli::Command::Rollout(args) => cli::rollout::main(args),
        cli::Command::Demo(args) => cli::demo::main(args),
        cli::Command::DemoApp(args) => cli::demo_app::main(args),
        cli::Command::Lint(args) => cli::lint::main(args),
        cli::Command::Pcap(args) => cli::pcap::main(args),
        cli::Command::Doctor(args) => cli::doctor::main(args),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
