//! `--retry-unprocessed`: only requests provably never processed are sent
//! again; the report says what was retried and what a retry saved.

mod support;

use lameduck_load::TlsOptions;
use lameduck_testkit::inject::{Action, InjectServer};
use support::{config, h2_targets, load, outcomes};

fn every_fourth(action: Action) -> impl Fn(u64, &str) -> Action + Send + Sync + 'static {
    move |i, _| if i % 4 == 0 { action } else { Action::Ok }
}

async fn h2_run(server: &InjectServer, retries: u32) -> lameduck_load::Report {
    // One connection: server request numbers follow the attempts in order.
    let mut cfg = config(&[server.url("/")], 20, 1);
    cfg.targets = h2_targets(&[server.url("/")], &TlsOptions::default());
    cfg.retry_unprocessed = retries;
    load(cfg).await
}

#[tokio::test]
async fn without_retry_refused_streams_are_lost() {
    let server = InjectServer::start_h2(every_fourth(Action::RefusedStream));
    let report = h2_run(&server, 0).await;
    assert_eq!(outcomes(&report), [("refused_stream", 5), ("success", 15)]);
    assert!(report.summary.retried.is_empty());
}

#[tokio::test]
async fn refused_streams_are_retried_and_saved() {
    let server = InjectServer::start_h2(every_fourth(Action::RefusedStream));
    let report = h2_run(&server, 3).await;
    // Attempts 0, 4, 8, … are refused; each is followed by a success. For 20
    // requests that is 27 attempts, 7 of them refused.
    assert_eq!(outcomes(&report), [("success", 20)]);
    assert_eq!(report.summary.retried["refused_stream"], 7);
    assert_eq!(report.summary.saved_by_retry, 7);
    assert_eq!(server.requests(), 27);
}

#[tokio::test]
async fn processed_failures_are_never_retried() {
    let server = InjectServer::start_h2(every_fourth(Action::StreamReset));
    let report = h2_run(&server, 3).await;
    assert_eq!(outcomes(&report), [("stream_reset", 5), ("success", 15)]);
    assert!(report.summary.retried.is_empty());
    assert_eq!(server.requests(), 20);
}

#[tokio::test]
async fn a_port_that_stays_closed_is_still_lost_after_the_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = config(&[format!("http://127.0.0.1:{port}/")], 5, 1);
    cfg.retry_unprocessed = 3;
    let report = load(cfg).await;
    assert_eq!(outcomes(&report), [("connect_refused", 5)]);
    assert_eq!(report.summary.retried["connect_refused"], 15);
    assert_eq!(report.summary.saved_by_retry, 0);
}
