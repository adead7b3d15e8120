//! `lameduck load` black-box: the exit status gates CI, the summary names the
//! outcomes, and `--json` holds the same numbers.

use std::process::{Command, Output};

use lameduck_testkit::inject::{Action, InjectServer};

fn load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lameduck"))
        .arg("load")
        .args(args)
        .output()
        .expect("run lameduck load")
}

#[test]
fn no_failure_exits_0_with_the_summary_on_stdout() {
    let server = InjectServer::start(|_, _| Action::Ok);
    let out = load(&["-n", "50", "-c", "2", &server.url("/")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("50 requests in"), "{stdout}");
    assert!(stdout.contains("success"), "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
}

#[test]
fn failures_beyond_max_failures_exit_1_and_json_has_them() {
    let server = InjectServer::start(|i, _| match i % 10 {
        0 => Action::Close,
        _ => Action::Ok,
    });
    let dir = std::env::temp_dir().join(format!("ld-load-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let url = server.url("/");
    let json_arg = format!("--json={}", json.display());
    let out = load(&["-n", "40", "-c", "2", &json_arg, &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("closed_before_response"), "{stdout}");
    assert!(stdout.contains("FAIL: 4 requests failed"), "{stdout}");
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(report.contains("\"closed_before_response\": 4"), "{report}");
    assert!(report.contains("\"success\": 36"), "{report}");

    let tolerated = load(&["-n", "40", "-c", "2", "--max-failures", "4", &url]);
    assert_eq!(tolerated.status.code(), Some(0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_url_exits_2_and_names_the_url() {
    let out = load(&["-n", "1", "localhost:8080/x"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("localhost:8080/x"), "{stderr}");
}

#[test]
fn sigusr1_marks_the_timeline_and_sigint_stops_with_a_report() {
    use nix::{sys::signal::Signal, unistd::Pid};
    use std::{process::Stdio, time::Duration};

    let server = InjectServer::start(|_, _| Action::Ok);
    let child = Command::new(env!("CARGO_BIN_EXE_lameduck"))
        .args(["load", "-c", "2", "-d", "60s", &server.url("/")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    lameduck_testkit::wait_for("requests to flow", Duration::from_secs(10), || {
        (server.requests() > 20).then_some(())
    });
    nix::sys::signal::kill(pid, Signal::SIGUSR1).unwrap();
    let seen = server.requests();
    lameduck_testkit::wait_for("more requests", Duration::from_secs(10), || {
        (server.requests() > seen + 20).then_some(())
    });
    nix::sys::signal::kill(pid, Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("mark         SIGUSR1 #1"), "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
}

#[test]
fn a_during_command_still_running_at_the_end_is_stopped_and_fails_the_run() {
    let server = InjectServer::start(|_, _| Action::Ok);
    let dir = std::env::temp_dir().join(format!("ld-load-during-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("pid");
    // A disruption that outlives the run, as a forgotten reload loop would.
    // Bounded, so that without the fix the test fails instead of hanging.
    let command = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let url = server.url("/");
    let args = [
        "-c", "2", "-d", "1s", "--warmup", "100ms", "--during", &command, &url,
    ];
    let started = std::time::Instant::now();
    let out = load(&args);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        took < std::time::Duration::from_secs(15),
        "the run waited {took:?} for the --during command"
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("had not ended when the load stopped, and was stopped"),
        "{stdout}"
    );
    assert!(stdout.contains("killed by signal 15"), "{stdout}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the --during command (pid {}) outlived the run",
        pid.trim()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn grpc_health_takes_the_url_and_a_service_name() {
    let server = InjectServer::start_h2(|_, path| match path {
        "/grpc.health.v1.Health/Check" => Action::Ok,
        _ => Action::Status(404),
    });
    let url = server.url("/");
    let out = load(&["-n", "10", "--grpc-health", "--grpc-service", "web", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("10 requests in"), "{stdout}");
}

#[test]
fn during_marks_the_timeline_and_html_is_written() {
    let server = InjectServer::start(|_, _| Action::Ok);
    let dir = std::env::temp_dir().join(format!("ld-load-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("report.html");
    let html_arg = format!("--html={}", html.display());
    let url = server.url("/");
    let args = [
        "-c",
        "2",
        "--warmup",
        "100ms",
        "--cooldown",
        "100ms",
        "--during",
        "echo rolling",
        &html_arg,
        &url,
    ];
    let out = load(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("during_start echo rolling"), "{stdout}");
    assert!(stdout.contains("during_end   exit status 0"), "{stdout}");
    assert!(
        stderr.contains("rolling"),
        "the command's output goes to stderr: {stderr}"
    );
    assert!(
        !stdout.lines().any(|line| line == "rolling"),
        "stdout stays the report: {stdout}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_ws_url_without_ws_is_loaded_as_a_websocket_never_as_plain_http() {
    // A plain HTTP server: 200 to everything, no WebSocket handshake.
    let server = InjectServer::start(|_, _| Action::Ok);
    let ws = server.url("/").replacen("http://", "ws://", 1);
    let out = load(&["-d", "1s", "-c", "1", &ws]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains("PASS"), "{stdout}");

    let mixed = load(&["-n", "1", &ws, &server.url("/")]);
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert_eq!(mixed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ws://"), "{stderr}");
}

#[test]
fn a_rate_so_low_that_the_schedule_overflows_is_no_panic() {
    let server = InjectServer::start(|_, _| Action::Ok);
    let out = load(&["--rate", "1e-300", "-d", "300ms", &server.url("/")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 requests in"));
}
