//! `lameduck load`: a load generator that accounts for every request.
//!
//! The only way to know a rollout lost nothing is to send steady traffic through
//! it and account for every single request. This crate sends requests (HTTP/1.1
//! or HTTP/2, plain or TLS; WebSocket messages; gRPC health checks) over `N`
//! connections (closed loop) or at a fixed rate (open loop), ends every request
//! in exactly one named [`Outcome`], draws a per-bucket timeline lined up with
//! events (the `--during` command, marks), and judges the run against
//! thresholds so a CI job can gate on it.
//!
//! The run takes its stop trigger as an argument ([`control`] gives the pair),
//! so a caller (or a test) can stop it or add marks while it runs:
//!
//! ```no_run
//! # async fn example() -> Result<(), lameduck_load::Error> {
//! use lameduck_load::{targets, Config, ExpectStatus, RequestSpec, Thresholds, TlsOptions};
//! use std::time::Duration;
//!
//! let spec = RequestSpec {
//!     method: "GET".into(),
//!     headers: Vec::new(),
//!     body: Default::default(),
//!     keepalive: true,
//!     http2: false,
//!     grpc_health: None,
//! };
//! let urls = ["http://127.0.0.1:8080/healthz".to_string()];
//! let config = Config {
//!     targets: targets(&urls, &spec, &TlsOptions::default())?,
//!     connections: 10,
//!     streams: 1,
//!     rate: None,
//!     duration: Some(Duration::from_secs(30)),
//!     requests: None,
//!     timeout: Duration::from_secs(10),
//!     connect_timeout: Duration::from_secs(3),
//!     expect: ExpectStatus::default(),
//!     bucket: Duration::from_secs(1),
//!     during: None,
//!     thresholds: Thresholds::default(),
//!     retry_unprocessed: 0,
//!     ws_interval: None,
//! };
//! let (controller, control) = lameduck_load::control();
//! let running = tokio::spawn(lameduck_load::run(config, control));
//! controller.mark("deploy started");
//! let report = running.await.expect("the run does not panic")?;
//! println!("{}", report.to_text());
//! assert_eq!(report.summary.outcomes.values().sum::<u64>(), report.summary.requests);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod config;
mod during;
mod error;
mod grpc;
mod html;
mod http1;
mod http2;
mod marks;
mod outcome;
mod pace;
mod record;
mod report;
mod run;
mod stream;
mod tls;
mod ws;

pub use config::{
    parse_header, targets, websocket_mode, Config, During, ExpectStatus, RequestSpec, Target,
    Thresholds,
};
pub use error::Error;
pub use marks::listen_for_marks;
pub use outcome::{Outcome, OutcomeCounts};
pub use record::Live;
pub use report::{Event, Latency, Report, Summary, TimelineBucket, Verdict};
pub use run::{control, run, Control, Controller};
pub use tls::TlsOptions;
