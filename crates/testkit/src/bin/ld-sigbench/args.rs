//! The command line of `ld-sigbench`, read by hand: a few numbers and a list of
//! `NAME=PREFIX` supervisors, where PREFIX is split like a shell line.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context, Result};

pub(crate) const USAGE: &str = "\
usage: ld-sigbench [OPTIONS] NAME=PREFIX...

Measures each supervisor PREFIX (a command line that runs what follows it, e.g.
'lameduck=target/release/lameduck run --no-control --' or 'tini=/usr/bin/tini --'):
its idle memory under `PREFIX sleep 60`, and the latency of SIGUSR1 sent to it
until `PREFIX ld-fixture signals` receives it, next to the same signal sent
straight to the fixture (\"direct\").

options:
  --iterations N    signals timed per supervisor, over all rounds [default: 2000]
  --rounds N        rounds; each starts every supervisor afresh, in turn [default: 4]
  --warmup N        signals sent first in each round and not timed [default: 50]
  --fixture PATH    the ld-fixture binary [default: next to this program]
  --timeout SECS    longest wait for any one step [default: 5]
  --reference NAME  the supervisor ratios are taken to [default: the last one]
  --rss-goal-kib N  goal for VmRSS of the others [default: 3072]
  --p99-goal-us N   goal (strictly below) for their p99 latency [default: 1000]";

/// A supervisor to measure.
#[derive(Debug, Clone)]
pub(crate) struct Supervisor {
    /// What the report calls it.
    pub(crate) name: String,
    /// The command line that runs what follows it under supervision.
    pub(crate) prefix: Vec<String>,
}

/// The checked command line.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) iterations: usize,
    pub(crate) rounds: usize,
    pub(crate) warmup: usize,
    pub(crate) fixture: PathBuf,
    pub(crate) timeout: Duration,
    pub(crate) reference: String,
    pub(crate) rss_goal_kib: u64,
    pub(crate) p99_goal_us: f64,
    pub(crate) supervisors: Vec<Supervisor>,
}

/// Reads the arguments (without the program name).
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Config> {
    let (mut iterations, mut rounds, mut warmup, mut timeout_s) = (2000, 4, 50, 5);
    let (mut rss_goal_kib, mut p99_goal_us) = (3072, 1000.0);
    let (mut fixture, mut reference, mut supervisors) = (None, None, Vec::new());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--iterations" => iterations = number(&arg, &value()?)?,
            "--rounds" => rounds = number(&arg, &value()?)?,
            "--warmup" => warmup = number(&arg, &value()?)?,
            "--timeout" => timeout_s = number(&arg, &value()?)?,
            "--rss-goal-kib" => rss_goal_kib = number(&arg, &value()?)?,
            "--p99-goal-us" => p99_goal_us = number(&arg, &value()?)?,
            "--fixture" => fixture = Some(PathBuf::from(value()?)),
            "--reference" => reference = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with("--") => bail!("unknown option {flag}"),
            spec => supervisors.push(supervisor(spec)?),
        }
    }
    if supervisors.is_empty() {
        bail!("no supervisor given (NAME=PREFIX)");
    }
    if rounds == 0 || iterations < rounds {
        bail!("--rounds must be at least 1 and --iterations at least --rounds");
    }
    let reference = check_reference(reference, &supervisors)?;
    Ok(Config {
        iterations,
        rounds,
        warmup,
        fixture: fixture.map_or_else(default_fixture, Ok)?,
        timeout: Duration::from_secs(timeout_s),
        reference,
        rss_goal_kib,
        p99_goal_us,
        supervisors,
    })
}

impl Config {
    /// How many signals round `round` (from 0) times: `iterations` spread evenly.
    pub(crate) fn iterations_in(&self, round: usize) -> usize {
        self.iterations / self.rounds + usize::from(round < self.iterations % self.rounds)
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T> {
    value
        .parse()
        .ok()
        .with_context(|| format!("{flag} {value:?}: not a number"))
}

/// Reads `NAME=PREFIX`, splitting PREFIX with shell quoting rules.
fn supervisor(spec: &str) -> Result<Supervisor> {
    let (name, line) = spec
        .split_once('=')
        .with_context(|| format!("{spec:?}: expected NAME=PREFIX, e.g. 'tini=/usr/bin/tini --'"))?;
    let prefix = shlex::split(line).with_context(|| format!("{spec:?}: unbalanced quotes"))?;
    if name.is_empty() || prefix.is_empty() {
        bail!("{spec:?}: both NAME and PREFIX must be non-empty");
    }
    if name == "direct" {
        bail!("{spec:?}: the name \"direct\" is kept for the run without a supervisor");
    }
    Ok(Supervisor {
        name: name.to_string(),
        prefix,
    })
}

fn check_reference(reference: Option<String>, supervisors: &[Supervisor]) -> Result<String> {
    let last = &supervisors[supervisors.len() - 1].name;
    let reference = reference.unwrap_or_else(|| last.clone());
    if !supervisors.iter().any(|s| s.name == reference) {
        bail!("--reference {reference:?}: no supervisor has that name");
    }
    Ok(reference)
}

/// `ld-fixture` from the same build as this program.
fn default_fixture() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this program's own path")?;
    let fixture = exe.with_file_name("ld-fixture");
    if !fixture.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p lameduck-testkit) or pass --fixture",
            fixture.display()
        );
    }
    Ok(fixture)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn supervisors_split_like_a_shell_and_last_is_reference() {
        let c = parse(args(&[
            "--fixture",
            "/bin/true",
            "--iterations",
            "10",
            "ld=lameduck run --control '/tmp/a b' --",
            "tini=tini --",
        ]))
        .unwrap();
        assert_eq!(c.iterations, 10);
        let per_round: Vec<usize> = (0..4).map(|r| c.iterations_in(r)).collect();
        assert_eq!(per_round, [3, 3, 2, 2]);
        assert_eq!(
            c.supervisors[0].prefix,
            ["lameduck", "run", "--control", "/tmp/a b", "--"]
        );
        assert_eq!(c.reference, "tini");
    }

    #[test]
    fn bad_input_is_named() {
        let err = |a: &[&str]| parse(args(a)).unwrap_err().to_string();
        assert!(err(&["--fixture", "/bin/true"]).contains("no supervisor"));
        assert!(err(&["--fixture", "/bin/true", "tini"]).contains("NAME=PREFIX"));
        assert!(err(&["--fixture", "/bin/true", "--warmup", "x", "t=t"]).contains("--warmup"));
        assert!(err(&["--fixture", "/bin/true", "--reference", "x", "t=t"]).contains("\"x\""));
    }
}
