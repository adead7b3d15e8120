//! Idle memory of a supervisor, read from `/proc`.
//!
//! VmRSS is what the goal is about, but alone it misleads: RssFile counts pages
//! of the program and its shared libraries that the page cache shares with every
//! other process mapping them, RssAnon is memory only this process holds, and Pss
//! (from `smaps_rollup`) charges each shared page by the number of its sharers.

use std::{fs, time::Duration};

use anyhow::{anyhow, Context, Result};
use lameduck_testkit::{proc_ppid, try_wait_for};
use nix::unistd::Pid;

use crate::{launch::Launched, scratch::Scratch};

/// One reading of a process's memory, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Memory {
    pub(crate) rss: u64,
    pub(crate) anon: u64,
    pub(crate) file: u64,
    /// `None` where `smaps_rollup` cannot be read.
    pub(crate) pss: Option<u64>,
    pub(crate) threads: u64,
}

/// How long the RSS must stay unchanged to count as settled.
const SETTLED_FOR: Duration = Duration::from_millis(200);

/// Starts `PREFIX sleep 60`, waits for `sleep` to run and the supervisor's RSS to
/// settle, reads its memory, and stops both.
pub(crate) fn measure_idle(
    prefix: &[String],
    scratch: &Scratch,
    name: &str,
    timeout: Duration,
) -> Result<Memory> {
    let mut argv = prefix.to_vec();
    argv.extend(["sleep".to_string(), "60".to_string()]);
    let mut launched = Launched::start(&argv, scratch, &format!("{name}.idle"))?;
    let sup = launched.pid();
    let app = try_wait_for("the supervised `sleep 60` to start", timeout, || {
        child_named(sup, "sleep")
    });
    launched.check_alive()?;
    launched.set_app(app.map_err(anyhow::Error::msg)?);
    let memory = settled(sup, timeout)?;
    launched.stop(timeout)?;
    Ok(memory)
}

/// Reads `pid`'s memory until VmRSS has not changed for [`SETTLED_FOR`].
fn settled(pid: Pid, timeout: Duration) -> Result<Memory> {
    let mut last = read(pid)?;
    let mut same_since = std::time::Instant::now();
    try_wait_for("the supervisor's RSS to settle", timeout, || {
        let now = read(pid).ok()?;
        if now.rss != last.rss {
            (last, same_since) = (now, std::time::Instant::now());
            return None;
        }
        (same_since.elapsed() >= SETTLED_FOR).then_some(now)
    })
    .map_err(anyhow::Error::msg)
}

/// The memory of `pid` now.
pub(crate) fn read(pid: Pid) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field =
        |name: &str| kib_field(&status, name).ok_or_else(|| anyhow!("{path}: no {name} field"));
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Ok(Memory {
        rss: field("VmRSS")?,
        anon: field("RssAnon")?,
        file: field("RssFile")?,
        pss: kib_field(&rollup, "Pss"),
        threads: field("Threads")?,
    })
}

/// The number after `NAME:` in a `/proc` key-value file (`VmRSS:  3316 kB`).
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A child of `parent` that runs the program `comm` (so it has exec'd).
fn child_named(parent: Pid, comm: &str) -> Option<Pid> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let name = fs::read_to_string(entry.path().join("comm")).ok()?;
        (proc_ppid(pid) == Some(parent.as_raw()) && name.trim_end() == comm)
            .then(|| Pid::from_raw(pid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_by_exact_name() {
        let status = "VmRSSX:\t 1 kB\nVmRSS:\t    3316 kB\nRssAnon:\t 364 kB\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(3316));
        assert_eq!(kib_field(status, "RssAnon"), Some(364));
        assert_eq!(kib_field(status, "RssFile"), None);
    }
}
