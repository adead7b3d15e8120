//! `lameduck doctor`: the command line of lameduck-doctor and its text output.

use std::path::PathBuf;

use clap::Args;
use lameduck_doctor::{Diagnosis, Disposition, Options, Process};

/// Does PID 1 get SIGTERM? Inspects a process from /proc without signalling it.
///
/// Reads the process's signal masks (SigCgt, SigIgn, SigBlk), command line and
/// process tree: does it catch SIGTERM, SIGINT and SIGQUIT; is it a shell
/// running the app as a child without `exec`; are there zombies; which ports
/// listen and how many connections each holds. The grace period and stop
/// signal come from --manifest, else a downward API volume (--podinfo), else
/// (grace only) the process's LAMEDUCK_GRACE_SECONDS, else Kubernetes'
/// defaults (30 s, SIGTERM); a LAMEDUCK_GRACE_SECONDS longer than the pod's
/// grace period is a problem.
///
/// Ends with a verdict. Exit status: 0 when nothing loses requests, 1 when a
/// problem was found, 2 when the process cannot be inspected. Run it inside
/// the container (`kubectl exec POD -- lameduck doctor`) or on the node with
/// --pid.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The process to inspect.
    #[arg(long, default_value_t = 1)]
    pid: i32,

    /// A Pod or workload manifest (YAML or JSON): its terminationGracePeriodSeconds
    /// and the container's lifecycle.stopSignal.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,

    /// The manifest's container to read [default: the first].
    #[arg(long, value_name = "NAME")]
    container: Option<String>,

    /// A downward API volume whose `annotations` file may hold the pod's
    /// applied manifest.
    #[arg(long, value_name = "DIR", default_value = "/etc/podinfo")]
    podinfo: PathBuf,

    /// Print the whole diagnosis as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn main(args: DoctorArgs) -> i32 {
    let options = Options {
        pid: args.pid,
        manifest: args.manifest,
        container: args.container,
        podinfo: args.podinfo,
        ..Options::default()
    };
    let d = match lameduck_doctor::examine(&options) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&d) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                tracing::error!("cannot write the diagnosis: {e}");
                return 2;
            }
        }
    } else {
        print(&d);
    }
    i32::from(!d.healthy)
}

fn print(d: &Diagnosis) {
    let p = &d.process;
    let ns = if p.ns_pid != p.pid {
        format!(", PID {} in its namespace", p.ns_pid)
    } else {
        String::new()
    };
    println!("process   {} ({}{ns})", p.pid, p.name);
    println!("command   {}", p.command());
    println!(
        "signals   SIG{} {}, SIGINT {}, SIGQUIT {}; catches {}; ignores {}; blocks {}",
        d.stop_signal.value,
        word(d.on_stop_signal),
        word(d.on_int),
        word(d.on_quit),
        list(&p.caught.names()),
        list(&p.ignored.names()),
        list(&p.blocked.names()),
    );
    for c in &d.children {
        println!("child     {}", describe(c));
    }
    let deeper = d.descendants.len() - d.children.len();
    if deeper > 0 {
        println!("below     {deeper} more process(es)");
    }
    for z in &d.zombies {
        println!("zombie    {} ({}), parent {}", z.pid, z.name, z.ppid);
    }
    for l in &d.listeners {
        println!("listening {} ({} established)", l.addr, l.established);
    }
    println!(
        "stop      SIG{} ({})",
        d.stop_signal.value, d.stop_signal.source
    );
    println!("grace     {} s ({})", d.grace_s.value, d.grace_s.source);
    for f in d.findings.iter().skip(1) {
        println!("{}{}", if f.problem { "! " } else { "  " }, f.text);
    }
    println!("verdict: {}", d.verdict);
}

fn describe(c: &Process) -> String {
    let mut command = c.command();
    if command.chars().count() > 100 {
        command = command.chars().take(97).collect::<String>() + "...";
    }
    format!(
        "{} ({}): {command}; catches {}",
        c.pid,
        c.name,
        list(&c.caught.names())
    )
}

fn word(d: Disposition) -> &'static str {
    match d {
        Disposition::Caught => "caught",
        Disposition::Ignored => "ignored",
        Disposition::Blocked => "blocked",
        Disposition::Default => "default",
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "-".to_string()
    } else {
        names.join(",")
    }
}
