//! A pod as real processes: one per container, started from the manifest's
//! `command`/`args` with its `env`, each container port remapped to a free
//! port on 127.0.0.1.
//!
//! Where the machine allows it (root and `unshare`), each container runs in a
//! PID namespace of its own, so its PID 1 is whatever the manifest says — a
//! shell, the app, `lameduck run` — with the kernel's rule for PID 1: a signal
//! it has no handler for is not delivered (SIGKILL always is). Otherwise the
//! command runs as a plain process group, and the engine warns that a shell
//! PID 1 then dies of SIGTERM where in a pod it would ignore it.
//!
//! Ports: a pod has its own network namespace, the engine does not, so every
//! `containerPort` gets a host port. The app learns it the way it learns any
//! setting, through its environment: an `env` entry whose name ends in `PORT`
//! and whose value is a container port gets the host port instead, and
//! `$(VAR)` in `command`/`args` expands from the environment as Kubernetes
//! does. A manifest that says `env: [{name: PORT, value: "8080"}]` and
//! `args: ["--listen=0.0.0.0:$(PORT)"]` so runs unchanged here and in a
//! cluster.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use lameduck_drain::Sig;
use nix::{sys::signal, unistd::Pid};
use tokio::process::{Child, Command};

use crate::manifest::{Container, IntOrString};

/// A container, resolved for one pod: what to run and where it listens.
#[derive(Debug, Clone)]
pub(crate) struct ContainerPlan {
    pub(crate) name: String,
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    /// Container port → host port.
    pub(crate) ports: BTreeMap<u16, u16>,
    /// Named ports → container port.
    pub(crate) port_names: BTreeMap<String, u16>,
}

impl ContainerPlan {
    /// The host port for a probe's or hook's `port` (number or name).
    pub(crate) fn host_port(&self, port: &IntOrString) -> Result<u16, String> {
        let container_port = match port {
            IntOrString::Int(n) => {
                u16::try_from(*n).map_err(|_| format!("port {n} is out of range"))?
            }
            IntOrString::Str(name) => match self.port_names.get(name) {
                Some(p) => *p,
                None => name
                    .parse()
                    .map_err(|_| format!("no container port is named {name:?}"))?,
            },
        };
        // A port the container does not declare is still where it listens:
        // without a mapping it is used as it is.
        Ok(self
            .ports
            .get(&container_port)
            .copied()
            .unwrap_or(container_port))
    }
}

/// What every pod's environment gets from the engine.
#[derive(Debug, Clone)]
pub(crate) struct PodEnv {
    pub(crate) pod_name: String,
    pub(crate) namespace: String,
    /// Prepended to `PATH`, so a manifest's `lameduck …` finds this binary.
    pub(crate) bin_dir: Option<PathBuf>,
    /// The pod's own directory (logs, control socket).
    pub(crate) dir: PathBuf,
    /// Registry mode: the local registry's URL.
    pub(crate) eureka_url: Option<String>,
}

/// Resolves `c` for one pod: allocates host ports, builds env and argv.
pub(crate) fn plan_container(
    c: &Container,
    command_override: Option<&[String]>,
    pod: &PodEnv,
) -> Result<ContainerPlan, String> {
    let mut ports = BTreeMap::new();
    let mut port_names = BTreeMap::new();
    for p in &c.ports {
        let cp = u16::try_from(p.container_port)
            .map_err(|_| format!("containerPort {} is out of range", p.container_port))?;
        ports.insert(cp, free_port().map_err(|e| format!("no free port: {e}"))?);
        if let Some(n) = &p.name {
            port_names.insert(n.clone(), cp);
        }
    }
    let mut env: Vec<(String, String)> = vec![
        ("HOSTNAME".into(), pod.pod_name.clone()),
        (
            "LAMEDUCK_CONTROL".into(),
            pod.dir
                .join(format!("{}.sock", c.name))
                .display()
                .to_string(),
        ),
    ];
    for (cp, hp) in &ports {
        env.push((format!("LAMEDUCK_ROLLOUT_PORT_{cp}"), hp.to_string()));
    }
    for var in &c.env {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => expand(v, &env),
            (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("metadata.name") => pod.pod_name.clone(),
                Some("metadata.namespace") => pod.namespace.clone(),
                Some("status.podIP" | "status.hostIP") => "127.0.0.1".into(),
                Some("spec.nodeName") => "localhost".into(),
                _ => continue,
            },
            (None, None) => String::new(),
        };
        let value = remap_port_value(&var.name, value, &ports);
        let value =
            crate::registry::remap_eureka_value(&var.name, value, pod.eureka_url.as_deref());
        env.retain(|(k, _)| k != &var.name);
        env.push((var.name.clone(), value));
    }
    let raw: Vec<String> = match command_override {
        Some(cmd) => cmd.to_vec(),
        None => c.command.iter().chain(&c.args).cloned().collect(),
    };
    let argv = raw.iter().map(|a| expand(a, &env)).collect();
    Ok(ContainerPlan {
        name: c.name.clone(),
        argv,
        env,
        ports,
        port_names,
    })
}

/// `SERVER_PORT=8080` with 8080 a container port becomes its host port.
fn remap_port_value(name: &str, value: String, ports: &BTreeMap<u16, u16>) -> String {
    if !name.to_ascii_uppercase().ends_with("PORT") {
        return value;
    }
    match value.parse::<u16>().ok().and_then(|p| ports.get(&p)) {
        Some(host) => host.to_string(),
        None => value,
    }
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$(VAR)`
/// stays `$(VAR)`, an undefined one is left as written.
pub(crate) fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("$(") {
            out.push_str("$(");
            rest = tail;
            continue;
        }
        if let Some(tail) = after.strip_prefix('(') {
            if let Some(end) = tail.find(')') {
                let name = &tail[..end];
                match env.iter().rev().find(|(k, _)| k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = &tail[end + 1..];
                continue;
            }
        }
        out.push('$');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A free port for a pod, below the kernel's ephemeral range: a port that
/// port 0 would hand out is also what the machine's own outgoing
/// connections (the router's, the traffic's) take, and a pod could then find
/// its port taken. Ports are never handed out twice in one process.
fn free_port() -> std::io::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = fastrand::Rng::new();
    for _ in 0..200 {
        let port = rng.u16(low..high);
        if given.contains(&port) {
            continue;
        }
        // Free on every address, as the app may bind 0.0.0.0.
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free port between {low} and {high}"),
    ))
}

/// Whether PID namespaces can be made here (`unshare --pid` as root).
pub(crate) fn pid_namespaces_available() -> bool {
    std::process::Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "--",
            "true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A started container.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) signals: Signals,
}

/// How to signal a started container (a copy, usable while its child is awaited).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signals {
    /// The host PID of the container's PID 1 (the app, or the shell…).
    pub(crate) pid1: i32,
    /// The process group of everything started for it.
    pgid: i32,
    /// Whether it has a PID namespace of its own.
    pub(crate) namespaced: bool,
}

/// Why a container could not start.
#[derive(Debug, thiserror::Error)]
#[error("container {container:?}: cannot start {argv:?}: {reason}")]
pub(crate) struct SpawnError {
    pub(crate) container: String,
    pub(crate) argv: Vec<String>,
    pub(crate) reason: String,
}

/// Starts `plan`'s process, its output going to `log`.
pub(crate) async fn spawn(
    plan: &ContainerPlan,
    pod: &PodEnv,
    namespaced: bool,
    log: &Path,
) -> Result<Running, SpawnError> {
    let err = |reason: String| SpawnError {
        container: plan.name.clone(),
        argv: plan.argv.clone(),
        reason,
    };
    let Some((program, args)) = plan.argv.split_first() else {
        return Err(err("empty command".into()));
    };
    let out = std::fs::File::create(log).map_err(|e| err(format!("{}: {e}", log.display())))?;
    let out2 = out.try_clone().map_err(|e| err(e.to_string()))?;
    let mut cmd = if namespaced {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"]);
        c.arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    };
    cmd.envs(plan.env.iter().map(|(k, v)| (k, v)))
        .env("PATH", search_path(pod.bin_dir.as_deref()))
        .current_dir(&pod.dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(out2)
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| err(e.to_string()))?;
    let outer = child
        .id()
        .map(|p| p as i32)
        .ok_or_else(|| err("exited at once".into()))?;
    let mut child = child;
    let pid1 = if namespaced {
        match forked_child(outer).await {
            Some(p) => p,
            // Gone before it was seen: unshare's 126/127 say the command
            // could not run; any other end is a container that started and
            // exited at once, which its pod reports as an exit.
            None => match child.try_wait() {
                Ok(Some(status)) if matches!(status.code(), Some(126 | 127)) => {
                    return Err(err(format!(
                        "not found or not executable here (exit {status}; see {})",
                        log.display()
                    )))
                }
                Ok(Some(_)) => outer,
                _ => return Err(err("unshare did not start the command".into())),
            },
        }
    } else {
        outer
    };
    Ok(Running {
        child,
        signals: Signals {
            pid1,
            pgid: outer,
            namespaced,
        },
    })
}

/// `PATH` with the engine's own directory first.
fn search_path(bin_dir: Option<&Path>) -> String {
    let host = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    match bin_dir {
        Some(d) => format!("{}:{host}", d.display()),
        None => host,
    }
}

/// The child `unshare --fork` made (the namespace's PID 1), as seen from here.
async fn forked_child(parent: i32) -> Option<i32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let path = format!("/proc/{parent}/task/{parent}/children");
    while tokio::time::Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Some(pid) = text.split_whitespace().next().and_then(|p| p.parse().ok()) {
                // unshare forks before it execs the command: wait for the exec.
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
                let parent_exe = std::fs::read_link(format!("/proc/{parent}/exe")).ok();
                if exe.is_some() && exe != parent_exe {
                    return Some(pid);
                }
            }
        }
        if exited(parent) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Whether `pid` has exited (a zombie not yet waited for, or gone).
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

impl Signals {
    /// Sends `sig` to the container's PID 1 (the kernel may drop it, as in a pod).
    pub(crate) fn signal(&self, sig: Sig) {
        if let Ok(s) = signal::Signal::try_from(sig.0) {
            let _ = signal::kill(Pid::from_raw(self.pid1), s);
        }
    }

    /// SIGKILL for every process of the container.
    pub(crate) fn kill_all(&self) {
        if self.namespaced {
            // PID 1 of a namespace dying takes every process in it along.
            let _ = signal::kill(Pid::from_raw(self.pid1), signal::Signal::SIGKILL);
        }
        let _ = signal::killpg(Pid::from_raw(self.pgid), signal::Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_as_kubernetes_does() {
        let e = env(&[("PORT", "31000"), ("NAME", "web")]);
        assert_eq!(
            expand("--listen=0.0.0.0:$(PORT)", &e),
            "--listen=0.0.0.0:31000"
        );
        assert_eq!(expand("$(NAME)-$(NAME)", &e), "web-web");
        assert_eq!(expand("$$(PORT)", &e), "$(PORT)");
        assert_eq!(expand("$(UNSET) $PORT $", &e), "$(UNSET) $PORT $");
        assert_eq!(expand("$(unclosed", &e), "$(unclosed");
    }

    #[test]
    fn port_variables_follow_the_remapped_port() {
        let ports = BTreeMap::from([(8080, 31000)]);
        assert_eq!(
            remap_port_value("SERVER_PORT", "8080".into(), &ports),
            "31000"
        );
        assert_eq!(remap_port_value("PORT", "9090".into(), &ports), "9090");
        assert_eq!(remap_port_value("REPLICAS", "8080".into(), &ports), "8080");
    }
}
