//! The traffic sent through the router during a run: one `lameduck load` per
//! protocol, each accounting for every request it starts, at a fixed rate
//! (open loop) so that a failure does not slow the traffic down and hide
//! what follows it.

use std::{net::SocketAddr, time::Duration};

use lameduck_load::{
    targets, Config, Controller, ExpectStatus, Report, RequestSpec, Thresholds, TlsOptions,
};
use serde::Serialize;
use tokio::task::JoinHandle;

/// A kind of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 on keepalive connections.
    Http1,
    /// HTTP/2 (h2c), several streams per connection.
    Http2,
    /// WebSocket: long-lived connections, one message each at an interval.
    Ws,
    /// gRPC health checks over HTTP/2.
    Grpc,
}

impl Protocol {
    /// Every protocol, in table order.
    pub const ALL: [Protocol; 4] = [
        Protocol::Http1,
        Protocol::Http2,
        Protocol::Ws,
        Protocol::Grpc,
    ];

    /// `http1`, `http2`, `ws`, `grpc`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::Ws => "ws",
            Protocol::Grpc => "grpc",
        }
    }

    /// Reads a name as [`Protocol::name`] writes it (`h1`, `h2` too).
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http1" | "h1" | "http" => Some(Protocol::Http1),
            "http2" | "h2" | "h2c" => Some(Protocol::Http2),
            "ws" | "websocket" => Some(Protocol::Ws),
            "grpc" => Some(Protocol::Grpc),
            _ => None,
        }
    }
}

/// How much traffic.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Requests per second for HTTP/1.1, HTTP/2 and gRPC.
    pub per_second: f64,
    /// WebSocket connections (each sends 10 messages per second).
    pub ws_connections: usize,
}

/// A load running against the router.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) protocol: Protocol,
    pub(crate) controller: Controller,
    task: JoinHandle<Result<Report, lameduck_load::Error>>,
}

/// Starts one load per protocol against `ingress`.
pub(crate) fn start(
    ingress: SocketAddr,
    protocols: &[Protocol],
    rate: Rate,
    timeout: Duration,
) -> Result<Vec<Running>, lameduck_load::Error> {
    protocols
        .iter()
        .map(|p| {
            let config = config(*p, ingress, rate, timeout)?;
            let (controller, control) = lameduck_load::control();
            let task = tokio::spawn(lameduck_load::run(config, control));
            Ok(Running {
                protocol: *p,
                controller,
                task,
            })
        })
        .collect()
}

fn config(
    p: Protocol,
    ingress: SocketAddr,
    rate: Rate,
    timeout: Duration,
) -> Result<Config, lameduck_load::Error> {
    let spec = RequestSpec {
        method: "GET".into(),
        headers: Vec::new(),
        body: Default::default(),
        keepalive: true,
        http2: matches!(p, Protocol::Http2 | Protocol::Grpc),
        grpc_health: (p == Protocol::Grpc).then(String::new),
    };
    let url = match p {
        Protocol::Ws => format!("ws://{ingress}/ws"),
        _ => format!("http://{ingress}/"),
    };
    let (connections, streams, per_second) = match p {
        Protocol::Http1 => (16, 1, Some(rate.per_second)),
        Protocol::Http2 | Protocol::Grpc => (2, 8, Some(rate.per_second)),
        Protocol::Ws => (rate.ws_connections.max(1), 1, None),
    };
    Ok(Config {
        targets: targets(&[url], &spec, &TlsOptions::default())?,
        connections,
        streams,
        rate: per_second,
        // Stopped by the engine; this only bounds a run that lost its engine.
        duration: Some(Duration::from_secs(24 * 3600)),
        requests: None,
        timeout,
        connect_timeout: Duration::from_secs(3),
        expect: ExpectStatus::default(),
        bucket: Duration::from_millis(250),
        during: None,
        thresholds: Thresholds::default(),
        retry_unprocessed: 0,
        ws_interval: (p == Protocol::Ws).then(|| Duration::from_millis(100)),
    })
}

impl Running {
    /// Stops sending; requests in flight finish; the report.
    pub(crate) async fn finish(self) -> (Protocol, Result<Report, String>) {
        self.controller.stop();
        let r = match self.task.await {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the load task failed: {e}")),
        };
        (self.protocol, r)
    }
}
