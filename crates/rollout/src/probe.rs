//! Probes and hook actions as the kubelet runs them: `httpGet` (a status from
//! 200 to 399 succeeds, certificates are not checked), `tcpSocket` (the
//! connect succeeds), `exec` (the command exits 0), each bounded by its
//! timeout. A readiness probe's loop turns results into ready / not ready with
//! `initialDelaySeconds`, `periodSeconds`, `successThreshold` and
//! `failureThreshold`.
//!
//! HTTP goes through `lameduck-http1`'s client connection, one connection
//! per probe as the kubelet does.

use std::{net::SocketAddr, time::Duration};

use lameduck_http1::{body, client::send_once};
use tokio::{net::TcpStream, process::Command, sync::mpsc};

use crate::{
    manifest::{HttpGet, Probe},
    pod::ContainerPlan,
};

/// One action's target, resolved to this pod.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    HttpGet {
        addr: SocketAddr,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp(SocketAddr),
    /// `argv`, run with the container's environment; `enter` is the host PID
    /// of the container's PID 1 when it has a namespace to enter.
    Exec {
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
}

impl Action {
    /// An `httpGet` against this pod.
    pub(crate) fn http_get(h: &HttpGet, c: &ContainerPlan) -> Result<Action, String> {
        if h.scheme
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case("http"))
        {
            return Err("httpGet: only scheme HTTP is played here".into());
        }
        let port = c.host_port(&h.port)?;
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        Ok(Action::HttpGet {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            path,
            headers: h
                .http_headers
                .iter()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect(),
        })
    }

    /// Runs the action once; `Err` says why it failed.
    pub(crate) async fn run(&self, timeout: Duration, enter: Option<i32>) -> Result<(), String> {
        match tokio::time::timeout(timeout, self.attempt(enter)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "timed out after {}",
                lameduck_drain::format_duration(timeout)
            )),
        }
    }

    /// Runs the action once with no time limit of its own.
    pub(crate) async fn attempt(&self, enter: Option<i32>) -> Result<(), String> {
        match self {
            Action::HttpGet {
                addr,
                path,
                headers,
            } => {
                let status = http_get(*addr, path, headers).await?;
                if (200..400).contains(&status) {
                    Ok(())
                } else {
                    Err(format!("HTTP {status}"))
                }
            }
            Action::Tcp(addr) => TcpStream::connect(addr)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Action::Exec { argv, env } => exec(argv, env, enter).await,
        }
    }
}

/// `GET path` on `addr`; the status. No time limit of its own (callers bound
/// the whole probe).
pub(crate) async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> Result<u16, String> {
    let mut req = http::Request::get(path)
        .header("host", addr.to_string())
        .header("user-agent", "kube-probe/lameduck");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(body::empty()).map_err(|e| e.to_string())?;
    let resp = send_once(addr, req, Duration::MAX)
        .await
        .map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

/// Runs `argv` with `env`, inside the container's namespaces when it has them.
async fn exec(argv: &[String], env: &[(String, String)], enter: Option<i32>) -> Result<(), String> {
    let mut cmd = match enter {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.arg("-t")
                .arg(pid.to_string())
                .args(["-p", "-m", "--"])
                .args(argv);
            c
        }
        None => {
            let (program, args) = argv.split_first().ok_or("empty command")?;
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    };
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let status = cmd.status().await.map_err(|e| format!("{argv:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{argv:?} exited with {status}"))
    }
}

/// A readiness probe, resolved and scaled.
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    pub(crate) action: Action,
    pub(crate) initial_delay: Duration,
    pub(crate) period: Duration,
    pub(crate) timeout: Duration,
    pub(crate) success_threshold: u32,
    pub(crate) failure_threshold: u32,
}

impl Readiness {
    /// Reads `p` for container `c`, every duration multiplied by `scale`.
    pub(crate) fn new(p: &Probe, c: &ContainerPlan, scale: f64) -> Result<Readiness, String> {
        let action = if let Some(h) = &p.http_get {
            Action::http_get(h, c)?
        } else if let Some(t) = &p.tcp_socket {
            Action::Tcp(SocketAddr::from(([127, 0, 0, 1], c.host_port(&t.port)?)))
        } else if let Some(e) = &p.exec {
            Action::Exec {
                argv: e.command.clone(),
                env: c.env.clone(),
            }
        } else {
            return Err("no handler".into());
        };
        let secs = |s: i64| Duration::from_secs_f64(s.max(0) as f64 * scale);
        Ok(Readiness {
            action,
            initial_delay: secs(p.initial_delay_seconds),
            period: secs(p.period_seconds.unwrap_or(10)),
            timeout: secs(p.timeout_seconds.unwrap_or(1)),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        })
    }

    /// Probes until `changes` is closed, sending each change of readiness
    /// (`true` when ready). Starts not ready, as a new container does.
    pub(crate) async fn run(
        self,
        enter: Option<i32>,
        changes: mpsc::UnboundedSender<(bool, String)>,
    ) {
        tokio::time::sleep(self.initial_delay).await;
        let mut ready = false;
        let (mut ok_run, mut fail_run) = (0u32, 0u32);
        let mut tick = tokio::time::interval(self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = self.action.run(self.timeout, enter).await;
            let why = match &result {
                Ok(()) => {
                    ok_run += 1;
                    fail_run = 0;
                    "probe succeeded".to_string()
                }
                Err(e) => {
                    fail_run += 1;
                    ok_run = 0;
                    e.clone()
                }
            };
            let flip = if ready {
                fail_run >= self.failure_threshold
            } else {
                ok_run >= self.success_threshold
            };
            if flip {
                ready = !ready;
                if changes.send((ready, why)).is_err() {
                    return;
                }
            } else if changes.is_closed() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers one request head with `response`; returns its
    /// address and the head it got.
    async fn answer_once(response: &'static str) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut io, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut chunk = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = io.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed before the head ended");
                head.extend_from_slice(&chunk[..n]);
            }
            io.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (addr, task)
    }

    #[tokio::test]
    async fn http_get_sends_the_probe_headers_and_reads_the_status() {
        let (addr, server) =
            answer_once("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let headers = [("X-Probe".to_string(), "ready".to_string())];
        assert_eq!(http_get(addr, "/readyz", &headers).await, Ok(503));
        let head = server.await.unwrap();
        assert!(head.starts_with("GET /readyz HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains("user-agent: kube-probe/lameduck\r\n"),
            "{head}"
        );
        assert!(head.contains("x-probe: ready\r\n"), "{head}");
    }

    #[tokio::test]
    async fn an_http_probe_of_a_closed_port_or_a_broken_answer_fails() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(http_get(addr, "/", &[]).await.is_err());
        let (addr, _server) =
            answer_once("HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n").await;
        assert!(http_get(addr, "/", &[]).await.is_err(), "two lengths");
    }
}
