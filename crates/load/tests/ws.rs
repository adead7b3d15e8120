//! `--ws`: long-lived WebSocket connections exchanging messages. A clean close
//! (1001) and a reconnect lose nothing; a close without a Close frame (1006)
//! or a reset loses the exchange: `ws_abnormal_close`, counted exactly.

mod support;

use std::time::Duration;

use lameduck_testkit::inject::{Action, InjectServer};
use support::{config, load, outcomes, targets};

async fn ws_run(server: &InjectServer, n: u64, c: usize) -> lameduck_load::Report {
    let url = format!("ws://{}/chat", server.addr());
    let mut cfg = config(&[server.url("/")], n, c);
    cfg.targets = targets(&[url], true);
    cfg.ws_interval = Some(Duration::ZERO);
    load(cfg).await
}

fn every_fifth(action: Action) -> impl Fn(u64, &str) -> Action + Send + Sync + 'static {
    move |i, _| if i % 5 == 0 { action } else { Action::Ok }
}

#[tokio::test]
async fn messages_are_exchanged_over_long_lived_connections() {
    let server = InjectServer::start_ws(|_, _| Action::Ok);
    let report = ws_run(&server, 40, 2).await;
    assert_eq!(outcomes(&report), [("success", 40)]);
    assert_eq!(server.connections(), 2);
    assert_eq!(report.summary.ws_clean_closes, 0);
}

#[tokio::test]
async fn a_clean_close_and_reconnect_is_not_a_loss() {
    let server = InjectServer::start_ws(every_fifth(Action::WsGoingAway));
    let report = ws_run(&server, 20, 1).await;
    // Messages 0, 5, 10, 15, 20 get a 1001 close; each is sent again on a new
    // connection: 25 messages, 5 clean closes, 6 connections.
    assert_eq!(outcomes(&report), [("success", 20)]);
    assert_eq!(report.summary.ws_clean_closes, 5);
    assert_eq!(server.requests(), 25);
    assert_eq!(server.connections(), 6);
}

#[tokio::test]
async fn a_close_without_close_frame_is_ws_abnormal_close() {
    let server = InjectServer::start_ws(every_fifth(Action::Close));
    let report = ws_run(&server, 20, 1).await;
    assert_eq!(
        outcomes(&report),
        [("success", 16), ("ws_abnormal_close", 4)]
    );
    assert_eq!(report.summary.ws_clean_closes, 0);
}

#[tokio::test]
async fn a_reset_is_ws_abnormal_close() {
    let server = InjectServer::start_ws(every_fifth(Action::Reset));
    let report = ws_run(&server, 20, 2).await;
    assert_eq!(
        outcomes(&report),
        [("success", 16), ("ws_abnormal_close", 4)]
    );
}

#[tokio::test]
async fn a_refused_upgrade_is_counted_by_status() {
    let server = InjectServer::by_path();
    let url = format!("ws://{}/status/503", server.addr());
    let mut cfg = config(&[server.url("/")], 6, 2);
    cfg.targets = targets(&[url], true);
    cfg.ws_interval = Some(Duration::ZERO);
    let report = load(cfg).await;
    assert_eq!(outcomes(&report), [("status_503", 6)]);
}
