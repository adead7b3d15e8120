//! `ld-sigbench`: what a PID-1 supervisor costs, measured against a peer in the
//! same run.
//!
//! A supervisor sits in front of every container's app for the app's whole life,
//! so two costs matter: the memory it holds while idle, and how long a signal
//! takes to get through it. For each supervisor given (a command-line prefix such
//! as `lameduck run --no-control --` or `tini --`) this tool
//!
//! 1. starts `PREFIX sleep 60`, waits until `sleep` runs and the supervisor's
//!    memory stops changing, and reads its `/proc/PID/status` and `smaps_rollup`;
//! 2. starts `PREFIX ld-fixture signals …` and sends SIGUSR1 to the supervisor,
//!    one at a time, timing each from `kill(2)` to the fixture's own
//!    CLOCK_MONOTONIC timestamp of the signal;
//!
//! and does both again in each of a few rounds.
//!
//! The same signal sent straight to a fixture with no supervisor ("direct") is the
//! floor the measurement itself costs. The report prints ratios to the reference
//! supervisor and PASS/FAIL against the goals.

mod args;
mod latency;
mod launch;
mod memory;
mod report;
mod scratch;

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::{
    args::{Config, Supervisor},
    latency::Samples,
    report::Row,
    scratch::Scratch,
};

fn main() -> ExitCode {
    let config = match args::parse(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ld-sigbench: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ld-sigbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Measures the direct floor and each supervisor, round after round, and prints
/// them. Rounds visit every supervisor in turn, so that a burst of load from
/// elsewhere on the machine falls on all of them alike.
fn run(config: &Config) -> Result<()> {
    let scratch = Scratch::create()?;
    let mut direct = Samples::default();
    let mut rows: Vec<Row> = config.supervisors.iter().map(Row::new).collect();
    for round in 0..config.rounds {
        eprintln!("ld-sigbench: round {} of {}", round + 1, config.rounds);
        let signals = config.iterations_in(round);
        let tag = format!("direct.{round}");
        let run = latency::measure(config, signals, &[], &scratch, &tag)
            .context("measuring the direct signal latency")?;
        direct.add(run);
        for (sup, row) in config.supervisors.iter().zip(&mut rows) {
            measure(
                config,
                sup,
                signals,
                &scratch,
                &format!("{}.{round}", sup.name),
                row,
            )?;
        }
    }
    report::print(config, &direct, &rows);
    Ok(())
}

/// One round of one supervisor: its idle memory, then `signals` signals.
fn measure(
    config: &Config,
    sup: &Supervisor,
    signals: usize,
    scratch: &Scratch,
    tag: &str,
    row: &mut Row,
) -> Result<()> {
    let idle = memory::measure_idle(&sup.prefix, scratch, tag, config.timeout)
        .with_context(|| format!("measuring the idle memory of {}", sup.name))?;
    let run = latency::measure(config, signals, &sup.prefix, scratch, tag)
        .with_context(|| format!("measuring the signal latency of {}", sup.name))?;
    row.idle.push(idle);
    row.signals.add(run);
    Ok(())
}
