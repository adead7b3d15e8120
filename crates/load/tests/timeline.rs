//! How a run ends, and what it lines up on its timeline: duration, a stop from
//! outside, marks, the `--during` command, the open-loop schedule, thresholds.

mod support;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use lameduck_load::During;
use lameduck_testkit::inject::{Action, InjectServer};
use support::{config, load};

#[tokio::test]
async fn duration_ends_the_run_and_in_flight_requests_still_count() {
    let server = InjectServer::start(|_, _| Action::Delay(Duration::from_millis(40)));
    let mut cfg = config(&[server.url("/")], 0, 4);
    cfg.requests = None;
    cfg.duration = Some(Duration::from_millis(300));
    let report = load(cfg).await;
    let s = &report.summary;
    assert!(s.elapsed_s >= 0.3 && s.elapsed_s < 3.0, "{}", s.elapsed_s);
    assert_eq!(s.outcomes["success"], s.requests, "nothing cut at the end");
    assert_eq!(server.requests(), s.requests);
    assert!(
        s.requests >= 8,
        "4 connections x 300ms / 40ms: {}",
        s.requests
    );
}

#[tokio::test]
async fn a_stop_from_outside_ends_the_run_and_marks_land_in_order() {
    let server = InjectServer::start(|_, _| Action::Ok);
    let mut cfg = config(&[server.url("/")], 0, 2);
    cfg.requests = None;
    cfg.duration = Some(Duration::from_secs(30));
    let (controller, control) = lameduck_load::control();
    let run = tokio::spawn(lameduck_load::run(cfg, control));
    wait_for_requests(&server, 50).await;
    controller.mark("first");
    wait_for_requests(&server, server.requests() + 50).await;
    controller.mark("second");
    controller.stop();
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("stops within 5s")
        .unwrap()
        .unwrap();
    let labels: Vec<_> = report
        .events
        .iter()
        .map(|e| (e.kind, e.label.as_str()))
        .collect();
    assert_eq!(labels, [("mark", "first"), ("mark", "second")]);
    assert!(report.events[0].at_s <= report.events[1].at_s);
    assert!(report.summary.requests >= 100);
    assert!(report.summary.elapsed_s < 5.0);
}

#[tokio::test]
async fn the_during_command_is_bracketed_by_events_and_ends_the_run() {
    let server = InjectServer::start(|_, _| Action::Ok);
    let mut cfg = config(&[server.url("/")], 0, 2);
    cfg.requests = None;
    cfg.during = Some(during("true", 100, 100));
    let report = load(cfg).await;
    let kinds: Vec<_> = report.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["during_start", "during_end"]);
    assert_eq!(report.events[1].label, "exit status 0");
    assert!(report.events[0].at_s >= 0.1, "after the warm-up");
    assert!(
        report.summary.elapsed_s >= report.events[1].at_s + 0.1,
        "after the cool-down"
    );
    assert!(report.verdict.pass, "{:?}", report.verdict);
}

#[tokio::test]
async fn a_failing_during_command_fails_the_run() {
    let server = InjectServer::start(|_, _| Action::Ok);
    let mut cfg = config(&[server.url("/")], 0, 1);
    cfg.requests = None;
    cfg.during = Some(during("exit 3", 0, 0));
    let report = load(cfg).await;
    assert_eq!(report.summary.failures, 0);
    assert!(!report.verdict.pass);
    assert!(
        report.verdict.reasons[0].contains("exit status 3"),
        "{:?}",
        report.verdict
    );
}

#[tokio::test]
async fn failures_line_up_with_the_disruption_on_the_timeline() {
    let flag = temp_path("down");
    let down = flag.clone();
    let server = InjectServer::start(move |_, _| match down.exists() {
        true => Action::Status(503),
        false => Action::Ok,
    });
    let mut cfg = config(&[server.url("/")], 0, 2);
    cfg.requests = None;
    cfg.bucket = Duration::from_millis(50);
    let f = flag.display();
    // The disruption: the server answers 503 while the file exists.
    cfg.during = Some(during(&format!("touch {f}; sleep 0.3; rm {f}"), 200, 200));
    let report = load(cfg).await;
    let (start, end) = (report.events[0].at_s, report.events[1].at_s);
    let failed: Vec<_> = report.timeline.iter().filter(|b| b.failures > 0).collect();
    assert!(!failed.is_empty(), "the disruption shows");
    for b in &failed {
        assert!(
            b.start_s + 0.05 >= start && b.start_s <= end + 0.05,
            "{} not in {start}..{end}",
            b.start_s
        );
        assert_eq!(b.outcomes.get("status_503"), Some(&b.failures));
    }
    let sum: u64 = report.timeline.iter().map(|b| b.requests).sum();
    assert_eq!(sum, report.summary.requests);
    assert!(report
        .timeline
        .iter()
        .any(|b| b.start_s > end && b.failures == 0 && b.requests > 0));
}

#[tokio::test]
async fn open_loop_sends_on_schedule() {
    let server = InjectServer::start(|_, _| Action::Ok);
    let mut cfg = config(&[server.url("/")], 40, 4);
    cfg.rate = Some(200.0);
    let started = Instant::now();
    let report = load(cfg).await;
    let took = started.elapsed();
    assert_eq!(report.summary.outcomes["success"], 40);
    assert!(
        took >= Duration::from_millis(195),
        "40 requests at 200/s take 195ms: {took:?}"
    );
    assert_eq!(report.summary.mode, "open");
}

#[tokio::test]
async fn open_loop_latency_counts_from_the_intended_send_time() {
    // One connection, 100 requests/s; the first response takes 60ms. Requests
    // 1..5 were due during that stall: their latency must include the wait.
    let plan = |i: u64, _: &str| match i {
        0 => Action::Delay(Duration::from_millis(60)),
        _ => Action::Ok,
    };
    let server = InjectServer::start(plan);
    let mut cfg = config(&[server.url("/")], 10, 1);
    cfg.rate = Some(100.0);
    let open = load(cfg).await;
    let p90 = open.summary.latency.p90_us.unwrap();
    assert!(p90 >= 25_000, "queued requests show the stall: p90 {p90}µs");
    assert!(
        open.summary.sent_late >= 4,
        "requests 1..5 were sent late: {}",
        open.summary.sent_late
    );

    let server = InjectServer::start(plan);
    let closed = load(config(&[server.url("/")], 10, 1)).await;
    let p90 = closed.summary.latency.p90_us.unwrap();
    assert!(
        p90 < 25_000,
        "closed loop hides it (coordinated omission): p90 {p90}µs"
    );
}

#[tokio::test]
async fn max_p99_fails_a_slow_run() {
    let server = InjectServer::start(|_, _| Action::Delay(Duration::from_millis(20)));
    let mut cfg = config(&[server.url("/")], 10, 2);
    cfg.thresholds.max_p99 = Some(Duration::from_millis(5));
    let report = load(cfg).await;
    assert_eq!(report.summary.failures, 0);
    assert!(!report.verdict.pass);
    assert!(
        report.verdict.reasons[0].contains("--max-p99"),
        "{:?}",
        report.verdict
    );
}

fn during(command: &str, warmup_ms: u64, cooldown_ms: u64) -> During {
    During {
        command: command.into(),
        warmup: Duration::from_millis(warmup_ms),
        cooldown: Duration::from_millis(cooldown_ms),
    }
}

fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!("ld-load-{}-{nanos}-{name}", std::process::id()))
}

/// Polls (not sleeps for) the server's request count, with a deadline.
async fn wait_for_requests(server: &InjectServer, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.requests() < n {
        assert!(
            Instant::now() < deadline,
            "server saw {} < {n} requests",
            server.requests()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn lines_on_the_mark_socket_become_named_marks() {
    use std::io::{Read, Write};

    let server = InjectServer::start(|_, _| Action::Ok);
    let mut cfg = config(&[server.url("/")], 0, 1);
    cfg.requests = None;
    cfg.duration = Some(Duration::from_secs(30));
    let (controller, control) = lameduck_load::control();
    let socket = temp_path("marks.sock");
    let marks = lameduck_load::listen_for_marks(&socket, controller.clone()).unwrap();
    let listening = tokio::spawn(marks);
    let run = tokio::spawn(lameduck_load::run(cfg, control));
    wait_for_requests(&server, 10).await;
    let path = socket.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = std::os::unix::net::UnixStream::connect(path).unwrap();
        client.write_all(b"canary at 10%\n\nstep 2\n").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        // The server closes once it has read every line: all marks are in.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
    })
    .await
    .unwrap();
    controller.stop();
    let report = run.await.unwrap().unwrap();
    let labels: Vec<_> = report
        .events
        .iter()
        .map(|e| (e.kind, e.label.as_str()))
        .collect();
    assert_eq!(labels, [("mark", "canary at 10%"), ("mark", "step 2")]);
    listening.abort();
    let _ = listening.await;
    assert!(!socket.exists(), "the socket file is removed");
}
