//! `lameduck doctor`: answers "will this process stop gracefully?" from
//! `/proc` alone, without sending it a signal. Does it (PID 1 by default)
//! catch the stop signal, ignore or block it? Is it a shell running the app
//! as a child without `exec`? Are there zombies nobody reaps? Which ports
//! listen, with how many connections? Which grace period and stop signal
//! apply? It ends with one plain verdict.

#![forbid(unsafe_code)]

mod net;
mod proc;
mod settings;
mod verdict;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use serde::Serialize;

pub use net::Listener;
pub use proc::{signal_number, Disposition, Process, SigSet};
pub use settings::Setting;

/// What to examine and where to look for the stop settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub pid: i32,
    /// A Pod or workload manifest (YAML or JSON) for the grace period and stop signal.
    pub manifest: Option<PathBuf>,
    /// The container of the manifest (default: the first).
    pub container: Option<String>,
    /// A downward API volume (its `annotations` file).
    pub podinfo: PathBuf,
    /// Where `/proc` is mounted.
    pub proc_root: PathBuf,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            pid: 1,
            manifest: None,
            container: None,
            podinfo: PathBuf::from("/etc/podinfo"),
            proc_root: PathBuf::from("/proc"),
        }
    }
}

/// What can stop the examination.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot read /proc/{pid}/status ({source}): is PID {pid} running, and is /proc readable?"
    )]
    Proc { pid: i32, source: std::io::Error },
    #[error("manifest {path}: {detail}")]
    Manifest { path: PathBuf, detail: String },
}

/// One thing noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A cause of lost requests (as opposed to information).
    pub problem: bool,
    pub text: String,
}

/// Everything examined, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    pub process: Process,
    /// The stop signal's name (`TERM`) and where it came from.
    pub stop_signal: Setting<String>,
    /// What the process does with the stop signal, SIGINT and SIGQUIT.
    pub on_stop_signal: Disposition,
    pub on_int: Disposition,
    pub on_quit: Disposition,
    /// The grace period in seconds and where it came from.
    pub grace_s: Setting<f64>,
    /// `LAMEDUCK_GRACE_SECONDS` of the process, when set.
    pub lameduck_budget_s: Option<f64>,
    /// The process is a shell (sh, bash, dash, …).
    pub shell: bool,
    /// The process is an init that forwards signals (lameduck, tini, …).
    pub init: bool,
    /// Direct children.
    pub children: Vec<Process>,
    /// Every process below, children included, zombies included.
    pub descendants: Vec<Process>,
    pub zombies: Vec<Process>,
    pub listeners: Vec<Listener>,
    pub findings: Vec<Finding>,
    pub verdict: String,
    /// No finding is a problem.
    pub healthy: bool,
}

/// Examines the process `options.pid` and its tree.
pub fn examine(options: &Options) -> Result<Diagnosis, Error> {
    let root = options.proc_root.as_path();
    let process = proc::read_steady(root, options.pid)?;
    let descendants = descendants(root, options.pid);
    let children: Vec<Process> = descendants
        .iter()
        .filter(|p| p.ppid == options.pid)
        .cloned()
        .collect();
    let zombies = descendants
        .iter()
        .filter(|p| p.is_zombie())
        .cloned()
        .collect();
    let mut inodes: HashSet<u64> = proc::socket_inodes(root, options.pid).into_iter().collect();
    for p in &descendants {
        inodes.extend(proc::socket_inodes(root, p.pid));
    }
    let listeners = net::listeners(root, options.pid, &inodes);
    let stop = stop_settings(options)?;
    let budget = proc::env_var(root, options.pid, "LAMEDUCK_GRACE_SECONDS")
        .and_then(|v| settings::parse_seconds(&v));
    let facts = verdict::Facts {
        process,
        children,
        descendants,
        zombies,
        listeners,
        stop,
        budget,
    };
    Ok(verdict::judge(facts))
}

/// Every process below `pid`, breadth first.
fn descendants(root: &Path, pid: i32) -> Vec<Process> {
    const MAX: usize = 10_000;
    let mut seen = HashSet::from([pid]);
    let mut queue = vec![pid];
    let mut out = Vec::new();
    while let Some(parent) = queue.pop() {
        for kid in proc::children(root, parent) {
            if out.len() >= MAX || !seen.insert(kid) {
                continue;
            }
            if let Ok(p) = proc::read(root, kid) {
                out.push(p);
                queue.push(kid);
            }
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// The grace period and stop signal, each from the first source that has it.
fn stop_settings(options: &Options) -> Result<verdict::Stop, Error> {
    let container = options.container.as_deref();
    let mut sources: Vec<(String, settings::PodStop)> = Vec::new();
    if let Some(path) = &options.manifest {
        let stop = settings::read_manifest(path, container)?;
        sources.push((format!("--manifest {}", path.display()), stop));
    }
    if let Some(stop) = settings::from_podinfo(&options.podinfo, container) {
        let file = options.podinfo.join("annotations");
        sources.push((format!("downward API ({})", file.display()), stop));
    }
    let grace = sources.iter().find_map(|(src, s)| {
        Some(Setting {
            value: s.grace_s?,
            source: src.clone(),
        })
    });
    let signal = sources.iter().find_map(|(src, s)| {
        let name = s.stop_signal.as_deref()?;
        let n = signal_number(name)?;
        Some((
            n,
            Setting {
                value: name.trim_start_matches("SIG").to_string(),
                source: src.clone(),
            },
        ))
    });
    Ok(verdict::Stop {
        grace,
        signal,
        has_prestop: sources.first().is_some_and(|(_, s)| s.has_prestop),
    })
}
