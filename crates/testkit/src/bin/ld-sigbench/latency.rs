//! Signal-forwarding latency: SIGUSR1 to the supervisor, timed until the fixture
//! behind it records the signal.
//!
//! Each signal is sent only after the previous one has been recorded, so none is
//! merged with another. The end time is the fixture's own CLOCK_MONOTONIC
//! timestamp, so how fast this program learns about it (a blocking read on the
//! fixture's `--notify` FIFO) adds nothing to the figure; what remains of the
//! measurement's own cost is in the "direct" run, which signals the fixture with
//! no supervisor in between.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::PathBuf,
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use lameduck_testkit::monotonic_ns;
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

use crate::{
    args::Config,
    launch::Launched,
    memory::{self, Memory},
    scratch::Scratch,
};

/// What one run measured.
#[derive(Debug)]
pub(crate) struct Run {
    latencies_ns: Vec<u64>,
    /// The supervisor's memory after the last signal (`None` for direct).
    memory_after: Option<Memory>,
}

/// The latencies of every run of one supervisor, in nanoseconds, sorted.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    sorted_ns: Vec<u64>,
    /// The largest VmRSS seen after a run's last signal, if any.
    pub(crate) rss_after: Option<u64>,
}

impl Samples {
    pub(crate) fn add(&mut self, run: Run) {
        self.sorted_ns.extend(run.latencies_ns);
        self.sorted_ns.sort_unstable();
        let after = run.memory_after.map(|m| m.rss);
        self.rss_after = self.rss_after.max(after);
    }

    /// The `p`-th percentile (nearest rank), in microseconds.
    pub(crate) fn percentile_us(&self, p: f64) -> f64 {
        let n = self.sorted_ns.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.sorted_ns[rank.clamp(1, n) - 1] as f64 / 1000.0
    }

    pub(crate) fn count(&self) -> usize {
        self.sorted_ns.len()
    }
}

/// Runs `PREFIX ld-fixture signals …` (the fixture alone if PREFIX is empty) and
/// times `signals` signals after `config.warmup` untimed ones.
pub(crate) fn measure(
    config: &Config,
    signals: usize,
    prefix: &[String],
    scratch: &Scratch,
    name: &str,
) -> Result<Run> {
    let fifo = scratch.fifo(&format!("{name}.fifo"))?;
    let mut argv = prefix.to_vec();
    argv.extend([
        config.fixture.display().to_string(),
        "signals".into(),
        scratch
            .path(&format!("{name}.signals"))
            .display()
            .to_string(),
        "--notify".into(),
        fifo.display().to_string(),
    ]);
    let mut launched = Launched::start(&argv, scratch, &format!("{name}.signals"))?;
    let lines = read_lines(fifo);
    let ready = next_line(&lines, config.timeout).and_then(|l| ready_pid(&l));
    launched.check_alive()?;
    launched.set_app(ready?);
    let target = launched.pid();
    let total = config.warmup + signals;
    let mut latencies_ns = Vec::with_capacity(signals);
    for i in 0..total {
        let ns = one_signal(target, &lines, config.timeout)
            .with_context(|| format!("signal {} of {total}", i + 1))?;
        if i >= config.warmup {
            latencies_ns.push(ns);
        }
    }
    let memory_after = (!prefix.is_empty())
        .then(|| memory::read(target))
        .transpose()?;
    launched.stop(config.timeout)?;
    Ok(Run {
        latencies_ns,
        memory_after,
    })
}

/// Sends SIGUSR1 to `target` and returns how long until the fixture saw it.
fn one_signal(target: Pid, lines: &Receiver<String>, timeout: Duration) -> Result<u64> {
    let sent = monotonic_ns();
    kill(target, Signal::SIGUSR1).with_context(|| format!("kill({target}, SIGUSR1)"))?;
    let line = next_line(lines, timeout)?;
    let seen = match line.split_once(' ') {
        Some(("USR1", ns)) => ns.parse::<u64>().ok(),
        _ => None,
    }
    .with_context(|| format!("the fixture reported {line:?}, expected \"USR1 <ns>\""))?;
    seen.checked_sub(sent).with_context(|| {
        format!("the fixture saw the signal at {seen} ns, before it was sent at {sent} ns")
    })
}

/// Reads the FIFO's lines on a thread, so that the reader can wait with a
/// deadline (opening a FIFO blocks until the fixture opens its end).
fn read_lines(fifo: PathBuf) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok(file) = File::open(&fifo) else { return };
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_line(lines: &Receiver<String>, timeout: Duration) -> Result<String> {
    lines.recv_timeout(timeout).map_err(|e| match e {
        RecvTimeoutError::Timeout => anyhow!("the fixture reported nothing for {timeout:?}"),
        RecvTimeoutError::Disconnected => anyhow!("the fixture closed its --notify FIFO"),
    })
}

/// The fixture's PID from its `READY <pid>` line.
fn ready_pid(line: &str) -> Result<Pid> {
    match line.split_once(' ') {
        Some(("READY", pid)) => Ok(Pid::from_raw(pid.parse()?)),
        _ => bail!("the fixture's first line is {line:?}, expected \"READY <pid>\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut l = Samples::default();
        l.add(Run {
            latencies_ns: (1..=100).rev().map(|us| us * 1000).collect(),
            memory_after: None,
        });
        assert_eq!(l.percentile_us(50.0), 50.0);
        assert_eq!(l.percentile_us(99.0), 99.0);
        assert_eq!(l.percentile_us(100.0), 100.0);
        assert_eq!(l.percentile_us(0.0), 1.0);
    }
}
