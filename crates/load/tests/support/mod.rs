//! Helpers shared by the load tests: a config with test-friendly defaults, and
//! a run that checks the accounting invariant before handing back the report.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use lameduck_load::{Config, ExpectStatus, Report, RequestSpec, Target, Thresholds, TlsOptions};

/// Targets for `urls`, GET, with or without keepalive.
pub fn targets(urls: &[String], keepalive: bool) -> Vec<Target> {
    targets_tls(urls, keepalive, &TlsOptions::default()).unwrap()
}

/// gRPC health-check targets for `urls` (h2c for http://).
pub fn grpc_targets(urls: &[String], service: &str) -> Vec<Target> {
    let spec = RequestSpec {
        method: "GET".into(),
        headers: Vec::new(),
        body: Bytes::new(),
        keepalive: true,
        http2: false,
        grpc_health: Some(service.into()),
    };
    lameduck_load::targets(urls, &spec, &TlsOptions::default()).unwrap()
}

/// HTTP/2 targets for `urls` (h2c for http://).
pub fn h2_targets(urls: &[String], tls: &TlsOptions) -> Vec<Target> {
    let spec = RequestSpec {
        method: "GET".into(),
        headers: vec![("X-Test".into(), "1".into())],
        body: Bytes::new(),
        keepalive: true,
        http2: true,
        grpc_health: None,
    };
    lameduck_load::targets(urls, &spec, tls).unwrap()
}

/// Targets for `urls`, GET, with TLS options.
pub fn targets_tls(
    urls: &[String],
    keepalive: bool,
    tls: &TlsOptions,
) -> Result<Vec<Target>, lameduck_load::Error> {
    let spec = RequestSpec {
        method: "GET".into(),
        headers: Vec::new(),
        body: Bytes::new(),
        keepalive,
        http2: false,
        grpc_health: None,
    };
    lameduck_load::targets(urls, &spec, tls)
}

/// `n` requests over `c` keepalive connections, 5 s timeout.
pub fn config(urls: &[String], n: u64, c: usize) -> Config {
    Config {
        targets: targets(urls, true),
        connections: c,
        streams: 1,
        rate: None,
        duration: None,
        requests: Some(n),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        expect: ExpectStatus::default(),
        bucket: Duration::from_secs(1),
        during: None,
        thresholds: Thresholds::default(),
        retry_unprocessed: 0,
        ws_interval: None,
    }
}

/// Runs `config` with a deadline, and checks that outcomes add up.
pub async fn load(config: Config) -> Report {
    let (_controller, control) = lameduck_load::control();
    let report = tokio::time::timeout(Duration::from_secs(20), lameduck_load::run(config, control))
        .await
        .expect("the run ends within 20s")
        .expect("the run succeeds");
    let sum: u64 = report.summary.outcomes.values().sum();
    assert_eq!(
        sum, report.summary.requests,
        "outcomes add up to requests started"
    );
    report
}

/// The outcome table as (name, count), sorted by name.
pub fn outcomes(report: &Report) -> Vec<(&str, u64)> {
    report
        .summary
        .outcomes
        .iter()
        .map(|(k, &v)| (k.as_str(), v))
        .collect()
}
