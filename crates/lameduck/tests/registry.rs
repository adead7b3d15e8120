//! `lameduck registry` as a user runs it: it serves the Eureka API, and on
//! SIGTERM it answers readiness 503 for --drain-delay while still serving,
//! then stops and exits 0.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::*;

#[test]
fn registry_serves_and_drains_on_sigterm() {
    let dir = Scratch::new("registry-drain");
    let (api, admin) = (free_port(), free_port());
    let mut ld = Lameduck::start(
        &dir,
        &[
            "registry",
            "--listen",
            &format!("127.0.0.1:{api}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--drain-delay",
            "500ms",
        ],
    );
    wait_for("the registry to answer", DEADLINE, || {
        http_get(api, "/eureka/apps").filter(|(code, _)| *code == 200)
    });
    assert_eq!(http_get(admin, "/readyz").map(|r| r.0), Some(200));
    let sent = Instant::now();
    ld.signal(Signal::SIGTERM);
    wait_for("readiness 503", DEADLINE, || {
        http_get(admin, "/readyz").filter(|(code, _)| *code == 503)
    });
    // Lame duck: still serving the API.
    let during = http_get(api, "/eureka/apps").map(|r| r.0);
    assert_eq!(ld.wait_exit(DEADLINE), 0, "{}", ld.log());
    if sent.elapsed() < Duration::from_millis(450) {
        panic!("stopped before --drain-delay: {}", ld.log());
    }
    assert_eq!(during, Some(200));
    assert!(ld.log().contains("phase=lame-duck"), "{}", ld.log());
    assert!(http_get(api, "/eureka/apps").is_none(), "still listening");
}

#[test]
fn registry_refuses_a_drain_delay_that_does_not_fit_the_grace() {
    let dir = Scratch::new("registry-bad-flags");
    let mut ld = Lameduck::start(
        &dir,
        &[
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--grace",
            "5s",
            "--drain-delay",
            "10s",
        ],
    );
    assert_eq!(ld.wait_exit(DEADLINE), 2);
    assert!(
        ld.log().contains("--drain-delay 10.0s does not fit"),
        "{}",
        ld.log()
    );
}

#[test]
fn out_of_file_descriptors_the_registry_backs_off_and_serves_open_connections() {
    let dir = Scratch::new("registry-emfile");
    let (api, admin) = (free_port(), free_port());
    let args = [
        "registry",
        "--listen",
        &format!("127.0.0.1:{api}"),
        "--admin",
        &format!("127.0.0.1:{admin}"),
    ];
    let starved = Starved::run(&dir, &args, api, admin, "/eureka/apps");
    starved.assert_calm();
}

#[test]
fn registry_auth_scope_writes_leaves_reads_open_and_refuses_an_anonymous_delete() {
    let dir = Scratch::new("registry-auth-writes");
    let api = free_port();
    let _ld = Lameduck::start(
        &dir,
        &[
            "registry",
            "--listen",
            &format!("127.0.0.1:{api}"),
            "--auth",
            "eureka:s3cret",
            "--auth-scope",
            "writes",
        ],
    );
    let read = wait_for("the registry to answer", DEADLINE, || {
        http_get(api, "/eureka/apps")
    });
    assert_eq!(read.0, 200, "a read needs no credentials");
    let delete = http(api, "DELETE", "/eureka/apps/WEB/web-1", None).map(|r| r.0);
    assert_eq!(delete, Some(401), "a write does");
}

#[test]
fn registry_auth_scope_needs_auth() {
    let dir = Scratch::new("registry-scope-alone");
    let mut ld = Lameduck::start(
        &dir,
        &[
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--auth-scope",
            "writes",
        ],
    );
    assert_eq!(ld.wait_exit(DEADLINE), 2, "{}", ld.log());
    assert!(ld.log().contains("--auth"), "{}", ld.log());
}
