//! Every request ends in exactly one outcome: a known number of requests against
//! a server that injects a known pattern of failures gives exact counts per
//! outcome, nothing counted twice, and outcomes summing to requests started.

mod support;

use std::time::Duration;

use lameduck_load::{ExpectStatus, Outcome};
use lameduck_testkit::inject::{Action, InjectServer};
use support::{config, load, outcomes};

/// Runs `n` requests over `c` connections to `path` on a server following
/// `plan`, and returns the report after checking the accounting invariant.
async fn load_with_plan(
    n: u64,
    c: usize,
    plan: impl Fn(u64) -> Action + Send + Sync + 'static,
) -> (lameduck_load::Report, InjectServer) {
    let server = InjectServer::start(move |i, _| plan(i));
    let report = load(config(&[server.url("/")], n, c)).await;
    (report, server)
}

#[tokio::test]
async fn a_healthy_server_gives_only_successes() {
    let (report, server) = load_with_plan(200, 4, |_| Action::Ok).await;
    assert_eq!(outcomes(&report), [("success", 200)]);
    assert_eq!(server.requests(), 200);
    assert_eq!(
        server.connections(),
        4,
        "keepalive reuses one connection per worker"
    );
    assert!(report.verdict.pass, "{:?}", report.verdict);
}

#[tokio::test]
async fn close_before_response_is_counted_exactly() {
    let (report, _s) = load_with_plan(100, 4, |i| every(i, 5, Action::Close)).await;
    assert_eq!(
        outcomes(&report),
        [("closed_before_response", 20), ("success", 80)]
    );
    assert!(!report.verdict.pass);
}

#[tokio::test]
async fn reset_before_response_is_counted_exactly() {
    let (report, _s) = load_with_plan(100, 4, |i| every(i, 4, Action::Reset)).await;
    assert_eq!(
        outcomes(&report),
        [("reset_before_response", 25), ("success", 75)]
    );
}

#[tokio::test]
async fn reset_mid_body_is_reset_during_response() {
    let (report, _s) = load_with_plan(60, 3, |i| every(i, 3, Action::ResetMidBody)).await;
    assert_eq!(
        outcomes(&report),
        [("reset_during_response", 20), ("success", 40)]
    );
}

#[tokio::test]
async fn a_short_body_is_truncated_body() {
    let (report, _s) = load_with_plan(60, 3, |i| every(i, 6, Action::Truncate)).await;
    assert_eq!(outcomes(&report), [("success", 50), ("truncated_body", 10)]);
}

#[tokio::test]
async fn unexpected_statuses_are_counted_per_code() {
    let plan = |i: u64| match (i % 4, i % 10) {
        (0, _) => Action::Status(503),
        (_, 5) => Action::Status(404),
        _ => Action::Ok,
    };
    let (report, _s) = load_with_plan(100, 4, plan).await;
    assert_eq!(
        outcomes(&report),
        [("status_404", 10), ("status_503", 25), ("success", 65)]
    );
    assert_eq!(
        report.summary.latency.count, 100,
        "every response's latency is measured"
    );
}

#[tokio::test]
async fn expect_status_turns_a_code_into_success() {
    let server = InjectServer::start(|i, _| every(i, 2, Action::Status(503)));
    let mut cfg = config(&[server.url("/")], 40, 2);
    cfg.expect = ExpectStatus::parse("2xx,503").unwrap();
    let report = load(cfg).await;
    assert_eq!(outcomes(&report), [("success", 40)]);
}

#[tokio::test]
async fn slow_responses_end_in_request_timeout() {
    let server = InjectServer::start(|i, _| every(i, 2, Action::Delay(Duration::from_secs(5))));
    let mut cfg = config(&[server.url("/")], 8, 4);
    cfg.timeout = Duration::from_millis(200);
    let report = load(cfg).await;
    let timeouts = report.summary.outcomes["request_timeout"];
    // Requests 0, 2, 4, 6 by arrival order are delayed; a worker whose request
    // timed out reconnects, so arrival order still decides: exactly half.
    assert_eq!(timeouts, 4, "{:?}", report.summary.outcomes);
    assert_eq!(report.summary.outcomes["success"], 4);
}

#[tokio::test]
async fn refused_connections_are_connect_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let report = load(config(&[format!("http://127.0.0.1:{port}/")], 10, 2)).await;
    assert_eq!(outcomes(&report), [("connect_refused", 10)]);
    assert_eq!(report.summary.latency.count, 0);
}

#[tokio::test]
async fn chunked_bodies_are_read_whole_and_the_connection_reused() {
    let (report, server) = load_with_plan(50, 2, |_| Action::Chunked).await;
    assert_eq!(outcomes(&report), [("success", 50)]);
    // Reused: 50 requests on at most the 2 workers' connections. (Exactly 2
    // was a race: a fast worker can claim all 50 before the other connects.)
    let connections = server.connections();
    assert!(
        (1..=2).contains(&connections),
        "{connections} connections for 50 requests"
    );
}

#[tokio::test]
async fn no_keepalive_opens_one_connection_per_request() {
    let server = InjectServer::start(|_, _| Action::Ok);
    let mut cfg = config(&[server.url("/")], 30, 3);
    cfg.targets = support::targets(&[server.url("/")], false);
    let report = load(cfg).await;
    assert_eq!(outcomes(&report), [("success", 30)]);
    assert_eq!(server.connections(), 30);
}

#[tokio::test]
async fn a_mix_of_every_failure_adds_up_exactly() {
    let plan = |i: u64| match i % 10 {
        1 => Action::Close,
        3 => Action::Reset,
        5 => Action::ResetMidBody,
        7 => Action::Truncate,
        9 => Action::Status(502),
        _ => Action::Ok,
    };
    let (report, server) = load_with_plan(500, 8, plan).await;
    assert_eq!(
        outcomes(&report),
        [
            ("closed_before_response", 50),
            ("reset_before_response", 50),
            ("reset_during_response", 50),
            ("status_502", 50),
            ("success", 250),
            ("truncated_body", 50),
        ]
    );
    assert_eq!(server.requests(), 500);
    assert_eq!(report.summary.failures, 250);
    let in_timeline: u64 = report.timeline.iter().map(|b| b.requests).sum();
    assert_eq!(
        in_timeline, 500,
        "the timeline accounts for every request too"
    );
}

#[tokio::test]
async fn urls_take_turns() {
    let server = InjectServer::by_path();
    let urls = [
        server.url("/ok"),
        server.url("/status/500"),
        server.url("/close"),
    ];
    let report = load(config(&urls, 90, 3)).await;
    assert_eq!(
        outcomes(&report),
        [
            ("closed_before_response", 30),
            ("status_500", 30),
            ("success", 30)
        ]
    );
    assert_eq!(report.summary.urls.len(), 3);
    let per_url = &report.summary.per_url;
    assert_eq!(per_url[&urls[1]].get("status_500"), Some(&30));
    assert_eq!(per_url[&urls[2]].get("closed_before_response"), Some(&30));
    assert_eq!(per_url[&urls[0]].get("success"), Some(&30));
    let _ = Outcome::Success; // the enum is public API
}

fn every(i: u64, n: u64, action: Action) -> Action {
    if i % n == n - 1 {
        action
    } else {
        Action::Ok
    }
}

#[tokio::test]
async fn a_full_accept_queue_is_connect_timeout() {
    // A listener that never accepts, its queue filled: the kernel drops new
    // SYNs, so connecting hangs until --connect-timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            fillers.push(s);
        }
    }
    let mut cfg = config(&[format!("http://{addr}/")], 4, 2);
    cfg.connect_timeout = Duration::from_millis(200);
    let report = load(cfg).await;
    assert_eq!(outcomes(&report), [("connect_timeout", 4)]);
    drop((listener, fillers));
}

/// A server whose every answer could be framed two ways (a length and the
/// chunked coding): a proxy in front would refuse it, and so does `load`.
#[tokio::test]
async fn a_response_framed_two_ways_is_a_protocol_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut io, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if io.read(&mut buf).await.unwrap_or(0) > 0 {
                    let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\
                                  Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
                    let _ = io.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    let report = load(config(&[url], 10, 2)).await;
    assert_eq!(outcomes(&report), [("protocol_error", 10)]);
}
