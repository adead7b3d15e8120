//! `lameduck load`: a load generator that accounts for every request.
//!
//! The only way to know a rollout lost nothing is to send steady traffic through
//! it and account for every single request. This crate sends HTTP/1.1 requests
//! (plain or TLS)
//! over `N` connections (closed loop) or at a fixed rate (open loop), ends every
//! request in exactly one named [`Outcome`], draws a per-bucket timeline lined
//! up with events (the `--during` command, marks), and judges the run against
//! thresholds so a CI job can gate on it.
//!
//! ```no_run
//! # async fn example() -> Result<(), lameduck_load::Error> {
//! # let config: lameduck_load::Config = todo!();
//! let (controller, control) = lameduck_load::control();
//! let report = lameduck_load::run(config, control).await?;
//! println!("{}", report.to_text());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod config;
mod during;
mod error;
mod html;
mod http1;
mod http2;
mod marks;
mod outcome;
mod record;
mod report;
mod run;
mod stream;
mod tls;
mod ws;

pub use config::{
    parse_header, targets, Config, During, ExpectStatus, RequestSpec, Target, Thresholds,
};
pub use error::Error;
pub use marks::listen_for_marks;
pub use outcome::{Outcome, OutcomeCounts};
pub use record::Live;
pub use report::{Event, Latency, Report, Summary, TimelineBucket, Verdict};
pub use run::{control, run, Control, Controller};
pub use tls::TlsOptions;
