//! `lameduck run` with Eureka, against `lameduck registry`: DOWN when the drain
//! starts, cancel when the lame-duck phase ends, registration for apps that do
//! not speak Eureka, and a registry that is down never holding the drain.

use std::time::Instant;

use nix::sys::signal::Signal;

use crate::util::*;

/// The instance's status in the registry (XML), or `None` once it is gone.
fn status(port: u16, app: &str) -> Option<String> {
    let (code, body) = http_get(port, &format!("/eureka/apps/{app}"))?;
    if code == 404 {
        return None;
    }
    let start = body.find("<status>")? + "<status>".len();
    Some(body[start..start + body[start..].find('<')?].to_string())
}

fn run_with(dir: &Scratch, flags: &[String]) -> (Lameduck, Record) {
    let out = dir.path("out");
    let ctl = dir.path("ctl.sock");
    let fixture = fixture();
    let mut args: Vec<&str> = vec!["run", "--control", path_str(&ctl)];
    args.extend(flags.iter().map(String::as_str));
    args.extend_from_slice(&["--", path_str(&fixture), "signals", path_str(&out)]);
    let ld = Lameduck::start(dir, &args);
    let rec = Record(out);
    rec.wait_ready();
    (ld, rec)
}

fn flags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn registers_an_app_then_marks_it_down_before_stopping_it_and_cancels() {
    let (reg_dir, dir) = (Scratch::new("eureka-reg-1"), Scratch::new("eureka-run-1"));
    let (_registry, port) = registry(&reg_dir);
    let url = format!("http://127.0.0.1:{port}/eureka/");
    let mut f = flags(&[
        "--eureka",
        &url,
        "--eureka-app",
        "shop",
        "--eureka-register",
    ]);
    f.extend(flags(&[
        "--eureka-ip",
        "127.0.0.1",
        "--eureka-port",
        "18080",
        "--drain-delay",
        "800ms",
    ]));
    f.extend(flags(&["--grace", "10s", "--stop-reserve", "2s"]));
    let (mut ld, rec) = run_with(&dir, &f);
    wait_for("registered UP", DEADLINE, || {
        (status(port, "SHOP")? == "UP").then_some(())
    });
    let sent = monotonic_ns();
    ld.signal(Signal::SIGTERM);
    wait_for("marked DOWN", DEADLINE, || {
        (status(port, "SHOP")? == "DOWN").then_some(())
    });
    assert!(
        !rec.got("TERM"),
        "the app was stopped before routers could see DOWN"
    );
    let got = rec.wait_signal("TERM", DEADLINE);
    assert!(
        ms_between(sent, got) >= 800.0,
        "the drain delay was skipped"
    );
    assert_eq!(
        status(port, "SHOP"),
        None,
        "the registration was cancelled before the app stopped"
    );
    assert_eq!(ld.wait_exit(DEADLINE), 0, "{}", ld.log());
    assert!(
        ld.log().contains("Eureka: instance marked DOWN"),
        "{}",
        ld.log()
    );
}

#[test]
fn finds_an_app_that_registered_itself_by_its_address() {
    let (reg_dir, dir) = (Scratch::new("eureka-reg-2"), Scratch::new("eureka-run-2"));
    let (_registry, port) = registry(&reg_dir);
    // The app registers itself, as a Spring Cloud app would.
    let body = r#"{"instance": {"instanceId": "pod-7:orders:9090", "hostName": "10.0.0.7", "app": "ORDERS",
        "ipAddr": "127.0.0.7", "status": "UP", "port": {"$": 9090, "@enabled": "true"},
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}}}"#;
    assert_eq!(
        http(port, "POST", "/eureka/apps/ORDERS", Some(body)).map(|r| r.0),
        Some(204)
    );
    let url = format!("http://127.0.0.1:{port}/eureka/");
    let f = flags(&[
        "--eureka",
        &url,
        "--eureka-app",
        "orders",
        "--eureka-ip",
        "127.0.0.7",
        "--eureka-port",
        "9090",
    ]);
    let (mut ld, rec) = run_with(&dir, &f);
    ld.signal(Signal::SIGTERM);
    rec.wait_signal("TERM", DEADLINE);
    assert_eq!(ld.wait_exit(DEADLINE), 0);
    assert_eq!(status(port, "ORDERS"), None, "cancelled");
    assert!(
        ld.log().contains("id=pod-7:orders:9090"),
        "found by address: {}",
        ld.log()
    );
}

#[test]
fn a_registry_that_is_down_never_holds_the_drain_past_its_share() {
    let dir = Scratch::new("eureka-down");
    let dead = format!("http://127.0.0.1:{}/eureka/", free_port());
    // Share = 4 s − 0.5 s − 1.5 s = 2 s.
    let f = flags(&[
        "--eureka",
        &dead,
        "--eureka-app",
        "shop",
        "--eureka-instance-id",
        "x",
    ]);
    let mut f = f;
    f.extend(flags(&[
        "--grace",
        "4s",
        "--margin",
        "500ms",
        "--stop-reserve",
        "1500ms",
    ]));
    let (mut ld, rec) = run_with(&dir, &f);
    let started = Instant::now();
    ld.signal(Signal::SIGTERM);
    rec.wait_signal("TERM", DEADLINE);
    let took = elapsed_ms(started);
    assert!(
        took < 2600.0,
        "the app's signal waited {took:.0} ms for a dead registry"
    );
    assert_eq!(ld.wait_exit(DEADLINE), 0);
    assert!(
        ld.log().contains("could not mark the instance DOWN"),
        "{}",
        ld.log()
    );
}

#[test]
fn eureka_flags_that_cannot_work_are_refused_at_start() {
    let out = std::process::Command::new(lameduck_bin())
        .args([
            "run",
            "--no-control",
            "--eureka",
            "http://127.0.0.1:1/eureka/",
            "--eureka-app",
            "a",
            "--",
            "true",
        ])
        .env_remove("POD_IP")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--eureka-ip"), "{err}");
}

#[test]
fn a_renew_interval_under_a_second_is_refused_naming_the_flag() {
    let out = std::process::Command::new(lameduck_bin())
        .args(["run", "--eureka-renew-interval", "0", "--", "true"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--eureka-renew-interval"), "{err}");
}
