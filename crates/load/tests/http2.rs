//! HTTP/2 (`--http2`): h2c and TLS+ALPN; streams refused by GOAWAY or
//! REFUSED_STREAM (provably not processed) and other stream resets are each
//! counted exactly, apart from each other and from plain connection failures.

mod support;

use std::time::Duration;

use lameduck_load::TlsOptions;
use lameduck_testkit::inject::{Action, InjectServer, TestCert};
use support::{config, h2_targets, load, outcomes};

async fn load_h2(server: &InjectServer, n: u64, c: usize) -> lameduck_load::Report {
    let mut cfg = config(&[server.url("/")], n, c);
    cfg.targets = h2_targets(&[server.url("/")], &TlsOptions::default());
    load(cfg).await
}

#[tokio::test]
async fn h2c_requests_succeed_over_one_connection_per_worker() {
    let server = InjectServer::start_h2(|_, _| Action::Ok);
    let report = load_h2(&server, 100, 4).await;
    assert_eq!(outcomes(&report), [("success", 100)]);
    assert_eq!(server.requests(), 100);
    assert_eq!(server.connections(), 4);
}

#[tokio::test]
async fn refused_and_reset_streams_are_counted_exactly() {
    let plan = |i: u64, _: &str| match i % 10 {
        1 | 6 => Action::RefusedStream,
        3 => Action::StreamReset,
        5 => Action::Status(503),
        _ => Action::Ok,
    };
    let server = InjectServer::start_h2(plan);
    let report = load_h2(&server, 200, 4).await;
    assert_eq!(
        outcomes(&report),
        [
            ("refused_stream", 40),
            ("status_503", 20),
            ("stream_reset", 20),
            ("success", 120)
        ]
    );
}

#[tokio::test]
async fn a_stream_above_goaways_last_stream_id_is_refused_by_goaway() {
    let server = InjectServer::start_h2_goaway();
    let report = load_h2(&server, 12, 3).await;
    assert_eq!(outcomes(&report), [("refused_by_goaway", 12)]);
    assert_eq!(server.requests(), 12);
    assert_eq!(
        server.connections(),
        12,
        "a refused connection is not reused"
    );
}

#[tokio::test]
async fn a_connection_closed_under_a_stream_is_closed_before_response() {
    let server = InjectServer::start_h2(|i, _| match i % 4 {
        0 => Action::Close,
        _ => Action::Ok,
    });
    let report = load_h2(&server, 40, 2).await;
    assert_eq!(
        outcomes(&report),
        [("closed_before_response", 10), ("success", 30)]
    );
}

#[tokio::test]
async fn slow_streams_time_out() {
    let server = InjectServer::start_h2(|i, _| match i % 2 {
        0 => Action::Delay(Duration::from_secs(5)),
        _ => Action::Ok,
    });
    let mut cfg = config(&[server.url("/")], 6, 3);
    cfg.targets = h2_targets(&[server.url("/")], &TlsOptions::default());
    cfg.timeout = Duration::from_millis(200);
    let report = load(cfg).await;
    assert_eq!(outcomes(&report), [("request_timeout", 3), ("success", 3)]);
}

#[tokio::test]
async fn a_server_without_h2_in_alpn_is_a_protocol_error() {
    let cert = TestCert::new();
    // The TLS test server speaks HTTP/1.1 only: offering only h2 by ALPN, the
    // client must not fall back silently.
    let server = InjectServer::start_tls(|_, _| Action::Ok, &cert);
    let url = format!("https://{}/", server.addr());
    let tls = TlsOptions {
        insecure: true,
        cacert: None,
    };
    let mut cfg = config(&[server.url("/")], 4, 1);
    cfg.targets = h2_targets(&[url], &tls);
    cfg.timeout = Duration::from_secs(2);
    let report = load(cfg).await;
    assert_eq!(
        outcomes(&report),
        [("protocol_error", 4)],
        "no silent fallback"
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn h2_over_tls_is_chosen_by_alpn() {
    let cert = TestCert::new();
    let server = InjectServer::start_h2_tls(
        |i, _| match i % 4 {
            0 => Action::RefusedStream,
            _ => Action::Ok,
        },
        &cert,
    );
    let url = format!("https://{}/", server.addr());
    let tls = TlsOptions {
        insecure: true,
        cacert: None,
    };
    let mut cfg = config(&[server.url("/")], 40, 2);
    cfg.targets = h2_targets(&[url], &tls);
    let report = load(cfg).await;
    assert_eq!(outcomes(&report), [("refused_stream", 10), ("success", 30)]);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn streams_multiplex_on_one_connection() {
    // 16 requests of 100ms each, 8 streams on one connection: two rounds, not
    // sixteen.
    let server = InjectServer::start_h2(|_, _| Action::Delay(Duration::from_millis(100)));
    let mut cfg = config(&[server.url("/")], 16, 1);
    cfg.targets = h2_targets(&[server.url("/")], &TlsOptions::default());
    cfg.streams = 8;
    let started = std::time::Instant::now();
    let report = load(cfg).await;
    assert_eq!(outcomes(&report), [("success", 16)]);
    assert_eq!(server.connections(), 1);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refused_streams_among_multiplexed_ones_are_counted_exactly() {
    let server = InjectServer::start_h2(|i, _| match i % 4 {
        0 => Action::RefusedStream,
        _ => Action::Ok,
    });
    let mut cfg = config(&[server.url("/")], 200, 2);
    cfg.targets = h2_targets(&[server.url("/")], &TlsOptions::default());
    cfg.streams = 4;
    let report = load(cfg).await;
    assert_eq!(
        outcomes(&report),
        [("refused_stream", 50), ("success", 150)]
    );
    assert_eq!(
        server.connections(),
        2,
        "a refused stream keeps its connection"
    );
}

#[tokio::test]
async fn streams_need_http2() {
    let server = InjectServer::start(|_, _| Action::Ok);
    let mut cfg = config(&[server.url("/")], 10, 1);
    cfg.streams = 2;
    let (_c, control) = lameduck_load::control();
    let e = lameduck_load::run(cfg, control).await.unwrap_err();
    assert!(e.to_string().contains("--streams"), "{e}");
}

#[tokio::test]
async fn a_stream_reset_mid_body_is_stream_reset() {
    let server = InjectServer::start_h2(|i, _| match i % 5 {
        0 => Action::ResetMidBody,
        _ => Action::Ok,
    });
    let report = load_h2(&server, 50, 2).await;
    assert_eq!(outcomes(&report), [("stream_reset", 10), ("success", 40)]);
}

#[tokio::test]
async fn a_connection_closed_mid_body_is_truncated_body() {
    let server = InjectServer::start_h2(|i, _| match i % 5 {
        0 => Action::Truncate,
        _ => Action::Ok,
    });
    let report = load_h2(&server, 50, 2).await;
    assert_eq!(outcomes(&report), [("success", 40), ("truncated_body", 10)]);
}
