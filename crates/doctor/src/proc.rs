//! Reading one process from `/proc` without touching it: name, state,
//! parent, PID inside its namespace, signal masks (SigBlk, SigIgn, SigCgt),
//! command line, children, environment and socket inodes.

use std::{fs, path::Path};

use serde::Serialize;

use crate::Error;

/// Signal numbers by name, for the masks of `/proc/N/status` (bit n−1 is
/// signal n). Real-time signals are named `RTMIN+k`.
const NAMES: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// The signal number of `name` (`TERM`, `SIGTERM`, `15`).
pub fn signal_number(name: &str) -> Option<u32> {
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    if let Ok(n) = name.parse::<u32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    NAMES.iter().position(|n| *n == name).map(|i| i as u32 + 1)
}

/// A signal mask from `/proc/N/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(into = "Vec<String>")]
pub struct SigSet(pub u64);

impl SigSet {
    pub fn has(self, signal: u32) -> bool {
        (1..=64).contains(&signal) && self.0 & (1 << (signal - 1)) != 0
    }

    /// The names in the set, `TERM`, `RTMIN+1`, ….
    pub fn names(self) -> Vec<String> {
        (1..=64u32)
            .filter(|&s| self.has(s))
            .map(|s| match NAMES.get(s as usize - 1) {
                Some(n) => (*n).to_string(),
                None if s >= 34 => format!("RTMIN+{}", s - 34),
                None => format!("{s}"),
            })
            .collect()
    }
}

impl From<SigSet> for Vec<String> {
    fn from(s: SigSet) -> Vec<String> {
        s.names()
    }
}

/// What a process does with a signal, as its masks say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// A handler is installed.
    Caught,
    /// SIG_IGN.
    Ignored,
    /// Blocked by the main thread, no handler: read through signalfd or
    /// sigwait (as systemd does), or left pending.
    Blocked,
    /// SIG_DFL: for TERM/INT/QUIT, the process dies (PID 1 of a namespace: dropped).
    Default,
}

/// One process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    /// The PID inside the process's own namespace (1 for a container's init).
    pub ns_pid: i32,
    /// `Name:` of the status file (the command, 15 characters at most).
    pub name: String,
    /// `R`, `S`, `Z`, …
    pub state: char,
    pub cmdline: Vec<String>,
    pub caught: SigSet,
    pub ignored: SigSet,
    pub blocked: SigSet,
}

impl Process {
    /// A handler wins over a block (the signal waits, then runs it), and so
    /// does SIG_IGN (it is dropped once unblocked).
    pub fn disposition(&self, signal: u32) -> Disposition {
        if self.caught.has(signal) {
            Disposition::Caught
        } else if self.ignored.has(signal) {
            Disposition::Ignored
        } else if self.blocked.has(signal) {
            Disposition::Blocked
        } else {
            Disposition::Default
        }
    }

    /// The command line as a shell would show it (the name for a zombie).
    pub fn command(&self) -> String {
        if self.cmdline.is_empty() {
            return format!("[{}]", self.name);
        }
        self.cmdline
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'$;&|".contains(c))
                {
                    format!("'{}'", a.replace('\'', r"'\''"))
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Reads `/proc/PID`.
pub(crate) fn read(proc_root: &Path, pid: i32) -> Result<Process, Error> {
    let dir = proc_root.join(pid.to_string());
    let status =
        fs::read_to_string(dir.join("status")).map_err(|source| Error::Proc { pid, source })?;
    let cmdline = fs::read(dir.join("cmdline")).unwrap_or_default();
    Ok(parse(pid, &status, &cmdline))
}

/// Reads `/proc/PID` a few times, 10 ms apart, while its main thread
/// blocks signals, and keeps only what stays blocked: a shell blocks every
/// signal for a moment around each fork, which is not what it does with them.
pub(crate) fn read_steady(proc_root: &Path, pid: i32) -> Result<Process, Error> {
    let mut p = read(proc_root, pid)?;
    for _ in 0..5 {
        if p.blocked.0 == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        let again = read(proc_root, pid)?;
        p.blocked.0 &= again.blocked.0;
    }
    Ok(p)
}

/// The process from its status file and NUL-separated command line.
pub(crate) fn parse(pid: i32, status: &str, cmdline: &[u8]) -> Process {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or("")
    };
    let mask = |key: &str| SigSet(u64::from_str_radix(field(key), 16).unwrap_or(0));
    let ns_pid = field("NSpid")
        .split_whitespace()
        .last()
        .and_then(|p| p.parse().ok())
        .unwrap_or(pid);
    Process {
        pid,
        ppid: field("PPid").parse().unwrap_or(0),
        ns_pid,
        name: field("Name").to_string(),
        state: field("State").chars().next().unwrap_or('?'),
        cmdline: cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
        caught: mask("SigCgt"),
        ignored: mask("SigIgn"),
        blocked: mask("SigBlk"),
    }
}

/// The children of `pid`, from every thread's `children` file.
pub(crate) fn children(proc_root: &Path, pid: i32) -> Vec<i32> {
    let tasks = proc_root.join(pid.to_string()).join("task");
    let mut kids: Vec<i32> = fs::read_dir(tasks)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    kids.sort_unstable();
    kids.dedup();
    kids
}

/// The inodes of the sockets `pid` holds open (`/proc/PID/fd/* -> socket:[N]`).
pub(crate) fn socket_inodes(proc_root: &Path, pid: i32) -> Vec<u64> {
    let fds = proc_root.join(pid.to_string()).join("fd");
    fs::read_dir(fds)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// One variable of `pid`'s environment, if readable.
pub(crate) fn env_var(proc_root: &Path, pid: i32, key: &str) -> Option<String> {
    let env = fs::read(proc_root.join(pid.to_string()).join("environ")).ok()?;
    env.split(|&b| b == 0).find_map(|kv| {
        let rest = kv.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(rest).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsh\nState:\tS (sleeping)\nPid:\t4242\nPPid:\t4000\n\
NSpid:\t4242\t1\nSigQ:\t0/96367\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
SigBlk:\t0000000000000000\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000014002\n";

    #[test]
    fn reads_the_masks_names_and_namespace_pid() {
        let p = parse(4242, STATUS, b"sh\0-c\0sleep 1; echo done\0");
        assert_eq!(
            (p.name.as_str(), p.ppid, p.ns_pid, p.state),
            ("sh", 4000, 1, 'S')
        );
        assert_eq!(p.caught.names(), ["INT", "TERM", "CHLD"]);
        assert_eq!(p.ignored.names(), ["QUIT"]);
        assert_eq!(p.disposition(15), Disposition::Caught);
        assert_eq!(p.disposition(3), Disposition::Ignored);
        assert_eq!(p.disposition(1), Disposition::Default);
        assert_eq!(p.command(), "sh -c 'sleep 1; echo done'");
    }

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("quit"), Some(3));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("NOPE"), None);
        assert_eq!(SigSet(1 << 34).names(), ["RTMIN+1"]);
    }
}
