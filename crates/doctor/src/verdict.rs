//! From the facts read to findings and one plain verdict, e.g. "PID 1 (sh)
//! does not catch SIGTERM; its child java will be SIGKILLed after 30 s; run
//! it with `exec` or under `lameduck run`".
//!
//! The rules: a PID 1 of a namespace without a handler never sees SIGTERM
//! (the kernel drops signals whose action is the default); any other process
//! without one dies at once. A shell that traps the signal passes it on only
//! if its trap does, and runs the trap only after a foreground child exits.

use crate::{
    net::Listener,
    proc::{Disposition, Process},
    Diagnosis, Finding, Setting,
};

/// Known inits that forward signals and reap.
const INITS: [&str; 9] = [
    "lameduck",
    "tini",
    "tini-static",
    "dumb-init",
    "catatonit",
    "docker-init",
    "s6-svscan",
    "runsvdir",
    "supervisord",
];
const SHELLS: [&str; 7] = ["sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"];

const TERM: u32 = 15;
const INT: u32 = 2;
const QUIT: u32 = 3;

/// Stop settings found (none: Kubernetes' defaults apply).
#[derive(Debug)]
pub(crate) struct Stop {
    pub(crate) grace: Option<Setting<f64>>,
    pub(crate) signal: Option<(u32, Setting<String>)>,
    pub(crate) has_prestop: bool,
}

#[derive(Debug)]
pub(crate) struct Facts {
    pub(crate) process: Process,
    pub(crate) children: Vec<Process>,
    pub(crate) descendants: Vec<Process>,
    pub(crate) zombies: Vec<Process>,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) stop: Stop,
    pub(crate) budget: Option<f64>,
}

pub(crate) fn judge(f: Facts) -> Diagnosis {
    let p = &f.process;
    let (signal, stop_signal) = f.stop.signal.clone().unwrap_or_else(|| {
        let default = Setting {
            value: "TERM".to_string(),
            source: "Kubernetes' default; an image's STOPSIGNAL may change it".to_string(),
        };
        (TERM, default)
    });
    let from_env = f.budget.map(|b| Setting {
        value: b,
        source: "LAMEDUCK_GRACE_SECONDS of the process, meant to match the pod's".to_string(),
    });
    let grace = f
        .stop
        .grace
        .clone()
        .or(from_env)
        .unwrap_or_else(|| Setting {
            value: 30.0,
            source: "Kubernetes' default, no manifest given".to_string(),
        });
    let base = base_name(p);
    let shell = SHELLS.contains(&base.as_str());
    let init = INITS.contains(&base.as_str());
    let app = f.children.iter().find(|c| !c.is_zombie());
    let mut findings = Vec::new();
    let verdict = main_verdict(
        p,
        signal,
        &stop_signal.value,
        grace.value,
        shell,
        init,
        app,
        &mut findings,
    );
    findings.extend(zombie_finding(p, &f.zombies, init));
    if f.stop.grace.is_some() {
        findings.extend(budget_finding(f.budget, &grace));
    }
    if f.listeners.is_empty() {
        findings.push(note(
            "no listening TCP socket in the process tree (or its sockets are not readable here)",
        ));
    }
    if f.stop.has_prestop {
        findings.push(note(
            "the container has a preStop hook: it runs first, inside the grace period",
        ));
    }
    let healthy = !findings.iter().any(|x| x.problem);
    Diagnosis {
        on_stop_signal: p.disposition(signal),
        on_int: p.disposition(INT),
        on_quit: p.disposition(QUIT),
        process: f.process.clone(),
        stop_signal,
        grace_s: grace,
        lameduck_budget_s: f.budget,
        shell,
        init,
        children: f.children,
        descendants: f.descendants,
        zombies: f.zombies,
        listeners: f.listeners,
        findings,
        verdict,
        healthy,
    }
}

/// The program's base name: argv[0] (for `busybox sh`, the applet), else the status name.
fn base_name(p: &Process) -> String {
    let argv0 = p.cmdline.first().map(String::as_str).unwrap_or(&p.name);
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    base.trim_start_matches('-').to_string()
}

fn label(p: &Process) -> String {
    if p.ns_pid == 1 {
        format!("PID 1 ({})", p.name)
    } else {
        format!("PID {} ({})", p.pid, p.name)
    }
}

#[allow(clippy::too_many_arguments)]
fn main_verdict(
    p: &Process,
    signal: u32,
    sig_name: &str,
    grace: f64,
    shell: bool,
    init: bool,
    app: Option<&Process>,
    findings: &mut Vec<Finding>,
) -> String {
    let who = label(p);
    let sig = format!("SIG{sig_name}");
    let killed = match app {
        Some(c) => format!("its child {} will be SIGKILLed after {grace} s", c.name),
        None => format!("it will be SIGKILLed after {grace} s"),
    };
    let fix = if shell {
        "run the app with `exec` or under `lameduck run`"
    } else {
        "handle the signal in the app or run it under `lameduck run`"
    };
    let (problem, text) = match p.disposition(signal) {
        Disposition::Caught if init => {
            if let Some(c) = app {
                child_note(c, signal, &sig, findings);
            }
            let to = app.map_or(String::new(), |c| format!(" and passes it on to {}", c.name));
            (false, format!("{who} catches {sig}{to}: a graceful stop is possible"))
        }
        Disposition::Caught if shell && app.is_some() => (
            true,
            format!(
                "{who} is a shell that traps {sig} while {} runs as its child: the app gets the \
                 signal only if the trap passes it on, and the shell runs its trap only once a \
                 foreground child exits; {fix}",
                app.map_or("", |c| c.name.as_str())
            ),
        ),
        Disposition::Caught => (false, format!("{who} catches {sig}: a graceful stop is possible")),
        Disposition::Ignored => (true, format!("{who} ignores {sig}; {killed}; {fix}")),
        Disposition::Blocked => (
            false,
            format!(
                "{who} blocks {sig} without a handler: fine if it reads signals through signalfd \
                 or sigwait (as systemd does); if not, the signal stays pending and {killed}"
            ),
        ),
        Disposition::Default if p.ns_pid == 1 => (
            true,
            format!("{who} does not catch {sig} (the kernel drops it for a PID 1 without a handler); {killed}; {fix}"),
        ),
        Disposition::Default if shell && app.is_some() => (
            true,
            format!(
                "{who} does not catch {sig}: the shell dies at once and its child {} is not told; {fix}",
                app.map_or("", |c| c.name.as_str())
            ),
        ),
        Disposition::Default => (
            true,
            format!("{who} does not catch {sig}: it dies at once, cutting requests in flight; {fix}"),
        ),
    };
    findings.insert(
        0,
        Finding {
            problem,
            text: text.clone(),
        },
    );
    text
}

/// What the supervised app does with the signal it will be passed.
fn child_note(c: &Process, signal: u32, sig: &str, findings: &mut Vec<Finding>) {
    let text = match c.disposition(signal) {
        Disposition::Caught => format!("its child {} (PID {}) catches {sig}", c.name, c.pid),
        Disposition::Default => format!(
            "its child {} (PID {}) does not catch {sig}: it exits at once when it gets it \
             (after lameduck's drain that is fine; elsewhere in-flight requests are cut)",
            c.name, c.pid
        ),
        Disposition::Ignored | Disposition::Blocked => format!(
            "its child {} (PID {}) ignores or blocks {sig}: it is SIGKILLed at the end of the grace period",
            c.name, c.pid
        ),
    };
    findings.push(note(&text));
}

fn zombie_finding(p: &Process, zombies: &[Process], init: bool) -> Option<Finding> {
    if zombies.is_empty() {
        return None;
    }
    let pids: Vec<String> = zombies.iter().map(|z| z.pid.to_string()).collect();
    let reaper = if p.ns_pid == 1 && !init {
        format!(
            "; {} does not reap: run the app under `lameduck run` (or another init)",
            label(p)
        )
    } else {
        String::new()
    };
    Some(Finding {
        problem: true,
        text: format!(
            "{} zombie process(es) (PID {}) nobody reaps{reaper}",
            zombies.len(),
            pids.join(", ")
        ),
    })
}

fn budget_finding(budget: Option<f64>, grace: &Setting<f64>) -> Option<Finding> {
    let b = budget?;
    if b > grace.value {
        return Some(Finding {
            problem: true,
            text: format!(
                "LAMEDUCK_GRACE_SECONDS is {b} s but the grace period is {} s ({}): the kubelet's SIGKILL comes before lameduck's deadline",
                grace.value, grace.source
            ),
        });
    }
    Some(note(&format!(
        "lameduck's drain budget: {b} s (LAMEDUCK_GRACE_SECONDS)"
    )))
}

fn note(text: &str) -> Finding {
    Finding {
        problem: false,
        text: text.to_string(),
    }
}
