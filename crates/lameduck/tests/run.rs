//! `lameduck run` and `lameduck prestop`, black-box: signals, exit codes,
//! reaping, and every step of the drain.

use std::{
    io::Write,
    process::Command,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;

use crate::util::*;

/// `lameduck run FLAGS… --control DIR/ctl.sock -- ld-fixture signals DIR/out APP_FLAGS…`
fn run_fixture(dir: &Scratch, flags: &[&str], app_flags: &[&str]) -> (Lameduck, Record) {
    let out = dir.path("out");
    let ctl = dir.path("ctl.sock");
    let fixture = fixture();
    let mut args: Vec<&str> = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[
        "--control",
        path_str(&ctl),
        "--",
        path_str(&fixture),
        "signals",
        path_str(&out),
    ]);
    args.extend_from_slice(app_flags);
    let ld = Lameduck::start(dir, &args);
    let rec = Record(out);
    rec.wait_ready();
    (ld, rec)
}

#[test]
fn forwards_every_non_stop_signal_to_the_app() {
    let dir = Scratch::new("forward");
    let (mut ld, rec) = run_fixture(&dir, &[], &[]);
    let rtmin = nix::libc::SIGRTMIN();
    let cases = [
        (Signal::SIGHUP as i32, "HUP"),
        (Signal::SIGUSR1 as i32, "USR1"),
        (Signal::SIGUSR2 as i32, "USR2"),
        (Signal::SIGALRM as i32, "ALRM"),
        (Signal::SIGWINCH as i32, "WINCH"),
        (Signal::SIGCONT as i32, "CONT"),
        (Signal::SIGURG as i32, "URG"),
        (Signal::SIGPWR as i32, "PWR"),
        (rtmin + 1, "RTMIN+1"),
        (
            nix::libc::SIGRTMAX(),
            &format!("RTMIN+{}", nix::libc::SIGRTMAX() - rtmin),
        ),
    ];
    for (sig, name) in &cases {
        ld.signal_raw(*sig);
        rec.wait_signal(name, DEADLINE);
    }
    // Each arrived exactly once: nothing duplicated on the way.
    for (_, name) in &cases {
        assert_eq!(rec.times(name).len(), 1, "{name}: {:?}", rec.lines());
    }
    ld.signal(Signal::SIGTERM);
    assert_eq!(ld.wait_exit(DEADLINE), 0, "{}", ld.log());
}

#[test]
fn rewrite_translates_and_drops_signals() {
    let dir = Scratch::new("rewrite");
    let flags = [
        "--rewrite",
        "TERM:QUIT",
        "--rewrite",
        "USR1:USR2",
        "--rewrite",
        "HUP:0",
    ];
    let (mut ld, rec) = run_fixture(&dir, &flags, &["--exit-on", "QUIT"]);
    ld.signal(Signal::SIGHUP);
    ld.signal(Signal::SIGUSR1);
    rec.wait_signal("USR2", DEADLINE);
    ld.signal(Signal::SIGTERM);
    rec.wait_signal("QUIT", DEADLINE);
    assert_eq!(ld.wait_exit(DEADLINE), 0);
    assert!(
        !rec.got("USR1") && !rec.got("HUP") && !rec.got("TERM"),
        "{:?}",
        rec.lines()
    );
    assert!(ld.log().contains("dropped SIGHUP"), "{}", ld.log());
}

#[test]
fn signal_group_reaches_every_process_in_the_group() {
    for group in [false, true] {
        let dir = Scratch::new(if group { "group-on" } else { "group-off" });
        let (a, b) = (dir.path("a"), dir.path("b"));
        let script = format!(
            "{f} signals {a} & exec {f} signals {b}",
            f = path_str(&fixture()),
            a = path_str(&a),
            b = path_str(&b)
        );
        let ctl = dir.path("ctl.sock");
        let mut args = vec![
            "run",
            "--control",
            path_str(&ctl),
            "--cleanup-timeout",
            "1s",
        ];
        if group {
            args.push("--signal-group");
        }
        args.extend_from_slice(&["--", "sh", "-c", &script]);
        let mut ld = Lameduck::start(&dir, &args);
        let (ra, rb) = (Record(a), Record(b));
        ra.wait_ready();
        rb.wait_ready();
        ld.signal(Signal::SIGUSR1);
        rb.wait_signal("USR1", DEADLINE);
        if group {
            ra.wait_signal("USR1", DEADLINE);
        }
        ld.signal(Signal::SIGTERM);
        assert_eq!(ld.wait_exit(DEADLINE), 0);
        // Without --signal-group the background process got no USR1, only the
        // cleanup's SIGTERM after the app exited.
        assert_eq!(ra.got("USR1"), group, "{:?}", ra.lines());
        assert!(
            ra.got("TERM"),
            "leftover process was warned with SIGTERM: {:?}",
            ra.lines()
        );
    }
}

#[test]
fn exit_status_is_the_apps() {
    let dir = Scratch::new("exit");
    let f = fixture();
    let f = path_str(&f);
    let status = |args: &[&str]| {
        let out = Command::new(lameduck_bin())
            .args(["run", "--no-control", "--"])
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code().expect("code"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(status(&[f, "exit", "0"]).0, 0);
    assert_eq!(status(&[f, "exit", "3"]).0, 3);
    assert_eq!(status(&[f, "raise", "KILL"]).0, 128 + 9);
    assert_eq!(status(&[f, "raise", "USR1"]).0, 128 + 10);
    let (code, err) = status(&["no-such-command-anywhere"]);
    assert_eq!(code, 127);
    assert!(err.contains("command not found"), "{err}");
    let not_exec = dir.path("not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\necho hi\n").expect("write");
    let (code, err) = status(&[path_str(&not_exec)]);
    assert_eq!(code, 126);
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn reaps_orphaned_grandchildren_as_a_subreaper() {
    let dir = Scratch::new("orphans");
    let out = dir.path("out");
    let ctl = dir.path("ctl.sock");
    let f = fixture();
    let args = [
        "run",
        "--control",
        path_str(&ctl),
        "--",
        path_str(&f),
        "orphans",
        "3",
        path_str(&out),
    ];
    let mut ld = Lameduck::start(&dir, &args);
    let rec = Record(out);
    let orphans: Vec<(i32, i32)> = wait_for("3 orphans", DEADLINE, || {
        let o: Vec<(i32, i32)> = rec
            .lines()
            .iter()
            .filter_map(|l| {
                let mut it = l.strip_prefix("ORPHAN ")?.split(' ');
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
            .collect();
        (o.len() == 3).then_some(o)
    });
    for &(pid, ppid) in &orphans {
        assert_eq!(
            ppid,
            ld.pid().as_raw(),
            "orphan {pid} was re-parented to lameduck"
        );
        // Gone from /proc entirely: not left as a zombie.
        wait_for(&format!("orphan {pid} reaped"), DEADLINE, || {
            proc_state(pid).is_none().then_some(())
        });
    }
    ld.signal(Signal::SIGTERM);
    assert_eq!(ld.wait_exit(DEADLINE), 0);
}

#[test]
fn reaps_orphans_as_pid_1_in_a_pid_namespace() {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        eprintln!("SKIPPED reaps_orphans_as_pid_1: `unshare --pid --fork --mount-proc` is not permitted here");
        return;
    }
    let dir = Scratch::new("pid1");
    let out = dir.path("out");
    let f = fixture();
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"])
        .arg(lameduck_bin())
        .args([
            "run",
            "--no-control",
            "--",
            path_str(&f),
            "orphans",
            "2",
            path_str(&out),
        ]);
    let mut unshare = Lameduck::start_cmd(&dir, &mut cmd);
    let rec = Record(out);
    let ppids: Vec<i32> = wait_for("2 orphans", DEADLINE, || {
        let p: Vec<i32> = rec
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix("ORPHAN ")?.split(' ').nth(1)?.parse().ok())
            .collect();
        (p.len() == 2).then_some(p)
    });
    assert_eq!(
        ppids,
        [1, 1],
        "orphans were re-parented to lameduck as PID 1"
    );
    unshare.wait_log("running as PID 1");
    // lameduck is unshare's child on the host; signal it there.
    let host_pid = wait_for("lameduck inside the namespace", DEADLINE, || {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            (proc_ppid(pid)? == unshare.pid().as_raw()).then_some(pid)
        })
    });
    // The orphans have exited; as PID 1 lameduck must leave no zombie child.
    wait_for("no zombie children of lameduck", DEADLINE, || {
        let zombies = std::fs::read_dir("/proc").ok()?.flatten().filter(|e| {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                return false;
            };
            proc_ppid(pid) == Some(host_pid) && proc_state(pid) == Some('Z')
        });
        (zombies.count() == 0).then_some(())
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(host_pid), Signal::SIGTERM).expect("kill");
    assert_eq!(unshare.wait_exit(DEADLINE), 0, "{}", unshare.log());
}

#[test]
fn the_app_gets_its_signal_only_after_the_drain_delay() {
    let dir = Scratch::new("delay");
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    let flags = [
        "--admin",
        &admin,
        "--drain-delay",
        "1s",
        "--grace",
        "10s",
        "--stop-reserve",
        "2s",
    ];
    let (mut ld, rec) = run_fixture(&dir, &flags, &[]);
    wait_for("admin up", DEADLINE, || http_get(port, "/readyz"));
    assert_eq!(http_get(port, "/readyz").map(|r| r.0), Some(200));
    let sent = monotonic_ns();
    ld.signal(Signal::SIGTERM);
    // Readiness flips at once, while the app is still serving.
    wait_for("readyz 503", DEADLINE, || {
        (http_get(port, "/readyz")?.0 == 503).then_some(())
    });
    assert!(
        !rec.got("TERM"),
        "app got SIGTERM during the lame-duck phase"
    );
    assert_eq!(
        http_get(port, "/healthz").map(|r| r.0),
        Some(200),
        "liveness stays up while draining"
    );
    let got = rec.wait_signal("TERM", DEADLINE);
    let waited = ms_between(sent, got);
    assert!(
        waited >= 1000.0,
        "app got SIGTERM after {waited:.0} ms, before the 1 s drain delay"
    );
    assert!(
        waited < 1800.0,
        "app got SIGTERM after {waited:.0} ms, too late"
    );
    assert_eq!(ld.wait_exit(DEADLINE), 0);
    let log = ld.log();
    for phase in ["phase=lame-duck", "phase=drain", "budget_left="] {
        assert!(log.contains(phase), "log lacks {phase}: {log}");
    }
}

#[test]
fn until_quiet_ends_early_when_no_connection_comes() {
    let dir = Scratch::new("quiet-early");
    let port = free_port().to_string();
    let flags = [
        "--until-quiet",
        "300ms",
        "--port",
        &port,
        "--drain-delay",
        "5s",
        "--grace",
        "10s",
        "--stop-reserve",
        "1s",
    ];
    let (mut ld, rec) = run_fixture(&dir, &flags, &["--listen", &port]);
    let sent = monotonic_ns();
    ld.signal(Signal::SIGTERM);
    let waited = ms_between(sent, rec.wait_signal("TERM", DEADLINE));
    assert!(
        waited >= 300.0,
        "quiet period not respected: {waited:.0} ms"
    );
    assert!(
        waited < 2000.0,
        "did not end early: {waited:.0} ms (max was 5 s)"
    );
    assert_eq!(ld.wait_exit(DEADLINE), 0);
}

#[test]
fn until_quiet_waits_while_connections_keep_coming() {
    let dir = Scratch::new("quiet-busy");
    let port = free_port();
    let p = port.to_string();
    let flags = [
        "--until-quiet",
        "400ms",
        "--port",
        &p,
        "--drain-delay",
        "6s",
        "--grace",
        "10s",
        "--stop-reserve",
        "1s",
    ];
    let (mut ld, rec) = run_fixture(&dir, &flags, &["--listen", &p]);
    let sent = monotonic_ns();
    ld.signal(Signal::SIGTERM);
    // New connections every 100 ms for 1.5 s: the lame-duck phase must go on.
    let traffic_until = Instant::now() + Duration::from_millis(1500);
    let mut conns = Vec::new();
    let mut last = monotonic_ns();
    while Instant::now() < traffic_until {
        conns.push(std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"));
        // Quiet counts from the last connection, not from the end of the pause after it.
        last = monotonic_ns();
        assert!(
            !rec.got("TERM"),
            "app stopped while traffic was still arriving"
        );
        std::thread::sleep(Duration::from_millis(100)); // the traffic's pace, not synchronisation
    }
    drop(conns);
    let got = rec.wait_signal("TERM", DEADLINE);
    let after_last = ms_between(last, got);
    assert!(ms_between(sent, got) >= 1500.0);
    // Q is 400 ms; the kernel dates a connection to the jiffy.
    assert!(
        after_last >= 350.0,
        "stopped only {after_last:.0} ms after the last new connection"
    );
    assert!(
        after_last < 2000.0,
        "kept waiting {after_last:.0} ms after traffic stopped"
    );
    assert_eq!(ld.wait_exit(DEADLINE), 0);
    assert!(ld.log().contains("quiet"), "{}", ld.log());
}

/// Regression: `--until-quiet` once watched only for new connections, so a
/// router sending requests on its pooled keepalive connection looked quiet and
/// the app was stopped while requests still came.
#[test]
fn until_quiet_waits_while_requests_come_on_one_keepalive_connection() {
    let dir = Scratch::new("quiet-keepalive");
    let port = free_port();
    let p = port.to_string();
    let flags = [
        "--until-quiet",
        "1s",
        "--port",
        &p,
        "--drain-delay",
        "8s",
        "--grace",
        "15s",
        "--stop-reserve",
        "1s",
    ];
    let (mut ld, rec) = run_fixture(&dir, &flags, &["--listen", &p]);
    ld.wait_log("sock_diag netlink");
    // The router's pooled connection: opened before the drain, the only one.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let sent = monotonic_ns();
    ld.signal(Signal::SIGTERM);
    // A small request every 200 ms for 2 s, all on that one connection.
    let traffic_until = Instant::now() + Duration::from_secs(2);
    let mut last = sent;
    while Instant::now() < traffic_until {
        conn.write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
            .expect("send on the keepalive connection");
        last = monotonic_ns();
        assert!(
            !rec.got("TERM"),
            "app stopped {:.0} ms into the drain while requests still came on its keepalive connection",
            ms_between(sent, last)
        );
        std::thread::sleep(Duration::from_millis(200)); // the traffic's pace, not synchronisation
    }
    let got = rec.wait_signal("TERM", DEADLINE);
    let after_last = ms_between(last, got);
    assert!(
        after_last >= 900.0,
        "stopped {after_last:.0} ms after the last request, within the 1 s quiet period"
    );
    assert!(
        after_last < 2000.0,
        "kept waiting {after_last:.0} ms after the last request (quiet period 1 s)"
    );
    drop(conn);
    assert_eq!(ld.wait_exit(DEADLINE), 0);
    let log = ld.log();
    assert!(log.contains("quiet: routers have stopped sending"), "{log}");
    assert!(!log.contains("bytes_received=0"), "no data counted: {log}");
}

/// Panics: the app refused or cut a connection, so it was stopped under traffic.
fn stopped_under_traffic<T>(sent: u64, e: std::io::Error) -> T {
    let at = ms_between(sent, monotonic_ns());
    panic!("app stopped {at:.0} ms into the drain while connections still came: {e}")
}

/// Short connections that the app closes, one request each, come and go
/// between two samples of the live connections: they must still hold the
/// lame duck open (they are seen in TIME_WAIT).
#[test]
fn until_quiet_waits_while_short_connections_come_and_go() {
    let dir = Scratch::new("quiet-short");
    let port = free_port();
    let p = port.to_string();
    let flags = [
        "--until-quiet",
        "1s",
        "--port",
        &p,
        "--drain-delay",
        "8s",
        "--grace",
        "15s",
        "--stop-reserve",
        "1s",
    ];
    let (mut ld, rec) = run_fixture(&dir, &flags, &["--listen-close", &p]);
    let sent = monotonic_ns();
    ld.signal(Signal::SIGTERM);
    // One request per connection every 200 ms for 2 s; the app closes each.
    let traffic_until = Instant::now() + Duration::from_secs(2);
    let mut last = sent;
    while Instant::now() < traffic_until {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| stopped_under_traffic(sent, e));
        conn.write_all(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            .unwrap_or_else(|e| stopped_under_traffic(sent, e));
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut conn, &mut rest)
            .unwrap_or_else(|e| stopped_under_traffic(sent, e));
        last = monotonic_ns();
        drop(conn);
        assert!(
            !rec.got("TERM"),
            "app stopped {:.0} ms into the drain while short connections still came",
            ms_between(sent, last)
        );
        std::thread::sleep(Duration::from_millis(200)); // the traffic's pace, not synchronisation
    }
    let after_last = ms_between(last, rec.wait_signal("TERM", DEADLINE));
    assert!(
        after_last >= 900.0,
        "stopped {after_last:.0} ms after the last connection, within the 1 s quiet period"
    );
    assert!(
        after_last < 2000.0,
        "kept waiting {after_last:.0} ms after the last connection (quiet period 1 s)"
    );
    assert_eq!(ld.wait_exit(DEADLINE), 0);
}

#[test]
fn sigkill_at_the_deadline_for_an_app_that_ignores_sigterm() {
    let dir = Scratch::new("deadline");
    let flags = ["--grace", "2s", "--margin", "500ms", "--stop-reserve", "0s"];
    let (mut ld, rec) = run_fixture(&dir, &flags, &["--ignore", "TERM"]);
    let start = Instant::now();
    ld.signal(Signal::SIGTERM);
    rec.wait_signal("TERM", DEADLINE);
    assert_eq!(ld.wait_exit(DEADLINE), 128 + 9, "{}", ld.log());
    let took = elapsed_ms(start);
    assert!(
        (1400.0..3000.0).contains(&took),
        "SIGKILL after {took:.0} ms, expected 1.5 s"
    );
    assert!(ld.log().contains("SIGKILL"), "{}", ld.log());
}

#[test]
fn prestop_blocks_until_the_lame_duck_phase_is_over() {
    let dir = Scratch::new("prestop");
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    let flags = [
        "--admin",
        &admin,
        "--drain-delay",
        "1s",
        "--grace",
        "10s",
        "--stop-reserve",
        "2s",
    ];
    let (mut ld, rec) = run_fixture(&dir, &flags, &[]);
    wait_for("admin up", DEADLINE, || http_get(port, "/readyz"));
    let start = Instant::now();
    let out = Command::new(lameduck_bin())
        .args(["prestop", "--control", path_str(&dir.path("ctl.sock"))])
        .output()
        .expect("prestop");
    let took = elapsed_ms(start);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took >= 1000.0,
        "prestop returned after {took:.0} ms, before the drain delay"
    );
    assert!(took < 2500.0, "prestop took {took:.0} ms");
    // The app is still serving: it gets its signal only from the kubelet's SIGTERM.
    assert!(!rec.got("TERM"), "app stopped before the kubelet's SIGTERM");
    assert_eq!(http_get(port, "/readyz").map(|r| r.0), Some(503));
    let sent = monotonic_ns();
    ld.signal(Signal::SIGTERM);
    let waited = ms_between(sent, rec.wait_signal("TERM", DEADLINE));
    assert!(
        waited < 500.0,
        "SIGTERM after preStop waited {waited:.0} ms: the delay ran twice"
    );
    assert_eq!(ld.wait_exit(DEADLINE), 0);
}

#[test]
fn a_second_stop_signal_escalates_one_phase() {
    let dir = Scratch::new("escalate");
    let flags = [
        "--drain-delay",
        "5s",
        "--grace",
        "20s",
        "--stop-reserve",
        "2s",
    ];
    let (mut ld, rec) = run_fixture(&dir, &flags, &["--ignore", "TERM"]);
    let start = Instant::now();
    ld.signal(Signal::SIGTERM);
    ld.wait_log("phase=lame-duck");
    ld.signal(Signal::SIGTERM); // lame duck → drain: the app gets SIGTERM now
    rec.wait_signal("TERM", DEADLINE);
    assert!(
        elapsed_ms(start) < 3000.0,
        "second signal did not skip the 5 s delay"
    );
    ld.wait_log("phase=drain");
    ld.signal(Signal::SIGTERM); // drain → terminate: SIGKILL
    assert_eq!(ld.wait_exit(DEADLINE), 128 + 9, "{}", ld.log());
    assert!(elapsed_ms(start) < 3000.0);
}

#[test]
fn sigint_is_a_fast_drain_that_skips_the_lame_duck_phase() {
    let dir = Scratch::new("fast");
    let flags = ["--drain-delay", "5s", "--grace", "20s"];
    let (mut ld, rec) = run_fixture(&dir, &flags, &[]);
    let sent = monotonic_ns();
    ld.signal(Signal::SIGINT);
    let waited = ms_between(sent, rec.wait_signal("INT", DEADLINE));
    assert!(waited < 500.0, "SIGINT waited {waited:.0} ms");
    assert_eq!(ld.wait_exit(DEADLINE), 0);
    assert!(!ld.log().contains("phase=lame-duck"), "{}", ld.log());
}

#[test]
fn leftover_processes_get_sigterm_then_sigkill() {
    let dir = Scratch::new("leftover");
    let bg = dir.path("bg");
    let ctl = dir.path("ctl.sock");
    // The shell exits once the fixture is ready (bounded at 10 s), so that
    // the leftover is a process that ignores TERM, not one still starting.
    let script = format!(
        "{fx} signals {bg} --ignore TERM & i=0; \
         until grep -q READY {bg} 2>/dev/null || [ $i -ge 1000 ]; do sleep 0.01; i=$((i+1)); done; \
         exit 0",
        fx = path_str(&fixture()),
        bg = path_str(&bg)
    );
    let args = [
        "run",
        "--control",
        path_str(&ctl),
        "--cleanup-timeout",
        "500ms",
        "--",
        "sh",
        "-c",
        &script,
    ];
    let start = Instant::now();
    let mut ld = Lameduck::start(&dir, &args);
    let rec = Record(bg);
    let bg_pid = rec.wait_ready();
    assert_eq!(ld.wait_exit(DEADLINE), 0, "{}", ld.log());
    assert!(
        rec.got("TERM"),
        "leftover process was not warned: {:?}",
        rec.lines()
    );
    assert!(
        elapsed_ms(start) >= 500.0,
        "SIGKILL came before the cleanup timeout"
    );
    assert!(
        proc_state(bg_pid).is_none(),
        "leftover process {bg_pid} still exists"
    );
}

#[test]
fn prestop_without_a_supervisor() {
    let dir = Scratch::new("prestop-alone");
    let sock = dir.path("none.sock");
    let out = Command::new(lameduck_bin())
        .args(["prestop", "--control", path_str(&sock)])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no `lameduck run` answers"), "{err}");
    let start = Instant::now();
    let out = Command::new(lameduck_bin())
        .args([
            "prestop",
            "--control",
            path_str(&sock),
            "--drain-delay",
            "300ms",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(elapsed_ms(start) >= 300.0);
}

#[test]
fn a_drain_delay_that_does_not_fit_is_refused_at_start() {
    let out = Command::new(lameduck_bin())
        .args([
            "run",
            "--no-control",
            "--grace",
            "10s",
            "--drain-delay",
            "9s",
            "--",
            "true",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--drain-delay 9.0s does not fit the budget"),
        "{err}"
    );
}

#[test]
fn json_logs_carry_phase_and_budget() {
    let dir = Scratch::new("json");
    let (mut ld, rec) = run_fixture(
        &dir,
        &["--log-format", "json", "--drain-delay", "100ms"],
        &[],
    );
    ld.signal(Signal::SIGTERM);
    rec.wait_signal("TERM", DEADLINE);
    assert_eq!(ld.wait_exit(DEADLINE), 0);
    let log = ld.log();
    let phase_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"phase\":\"lame-duck\""))
        .collect();
    assert!(!phase_lines.is_empty(), "{log}");
    for line in log.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not JSON: {line}"
        );
    }
    assert!(
        phase_lines[0].contains("\"budget_left\""),
        "{}",
        phase_lines[0]
    );
}

#[test]
fn metrics_show_phase_and_forwarded_signals() {
    let dir = Scratch::new("metrics");
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    let (mut ld, rec) = run_fixture(&dir, &["--admin", &admin], &[]);
    wait_for("admin up", DEADLINE, || http_get(port, "/metrics"));
    ld.signal(Signal::SIGHUP);
    rec.wait_signal("HUP", DEADLINE);
    let (code, body) = http_get(port, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("lameduck_run_drain_phase{phase=\"serving\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("lameduck_run_signals_forwarded_total{signal=\"HUP\"} 1"),
        "{body}"
    );
    assert!(body.contains("lameduck_run_app_running 1"), "{body}");
    ld.signal(Signal::SIGTERM);
    assert_eq!(ld.wait_exit(DEADLINE), 0);
}

/// Runs `lameduck run --no-control -- APP…` on a fresh terminal made by
/// `script`, whose stdin the test writes to as if typing.
fn on_a_terminal(dir: &Scratch, app: &str) -> (Lameduck, std::process::ChildStdin) {
    // `exec`: some shells (dash) fork even for a single command, and a
    // shell between `script` and lameduck would not stop with the job.
    let line = format!(
        "exec {} run --no-control -- {app}",
        path_str(&lameduck_bin())
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .stdout(std::process::Stdio::null());
    let stderr = dir.path("stderr");
    let child = cmd
        .stdin(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("stderr"))
        .spawn()
        .expect("script (util-linux) is needed for terminal tests");
    let mut ld = Lameduck::adopt(child, stderr);
    let stdin = ld.child.stdin.take().expect("stdin");
    (ld, stdin)
}

#[test]
fn ctrl_c_on_a_terminal_reaches_the_app() {
    use std::io::Write;
    let dir = Scratch::new("tty-int");
    let out = dir.path("out");
    let app = format!("{} signals {}", path_str(&fixture()), path_str(&out));
    let (mut script, mut keys) = on_a_terminal(&dir, &app);
    let rec = Record(out);
    rec.wait_ready();
    keys.write_all(b"\x03").expect("type Ctrl-C");
    rec.wait_signal("INT", DEADLINE);
    assert_eq!(script.wait_exit(DEADLINE), 0);
}

#[test]
fn ctrl_z_on_a_terminal_stops_the_app_and_sigcont_resumes_it() {
    use std::io::Write;
    let dir = Scratch::new("tty-tstp");
    let (mut script, mut keys) = on_a_terminal(&dir, "sleep 30");
    let pid_of = |name: &str, parent: i32| {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == name && proc_ppid(pid)? == parent).then_some(pid)
        })
    };
    let ld = wait_for("lameduck under script", DEADLINE, || {
        pid_of("lameduck", script.pid().as_raw())
    });
    let app = wait_for("the app", DEADLINE, || pid_of("sleep", ld));
    keys.write_all(b"\x1a").expect("type Ctrl-Z");
    // The app stops, and lameduck stops too, as a shell job would.
    wait_for("app stopped", DEADLINE, || {
        (proc_state(app) == Some('T')).then_some(())
    });
    wait_for("lameduck stopped", DEADLINE, || {
        (proc_state(ld) == Some('T')).then_some(())
    });
    // `script` stops itself like a job; continuing it (what `fg` does) makes it
    // send SIGCONT to lameduck, which gives the terminal back to the app.
    let script_pid = script.pid().as_raw();
    wait_for("script stopped", DEADLINE, || {
        (proc_state(script_pid) == Some('T')).then_some(())
    });
    nix::sys::signal::kill(script.pid(), Signal::SIGCONT).expect("CONT");
    wait_for("app running", DEADLINE, || {
        (proc_state(app) == Some('S')).then_some(())
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(ld), Signal::SIGTERM).expect("TERM");
    assert_eq!(script.wait_exit(DEADLINE), 128 + 15, "{}", script.log());
}

#[test]
fn drain_hooks_run_before_the_app_is_stopped_and_see_the_drain() {
    let dir = Scratch::new("hooks");
    let marker = dir.path("hook-ran");
    let hook = format!(
        "sh -c 'sleep 0.4; echo \"$LAMEDUCK_PHASE $LAMEDUCK_APP_PID\" > {}'",
        path_str(&marker)
    );
    let flags = ["--on-drain", &hook, "--grace", "10s"];
    let (mut ld, rec) = run_fixture(&dir, &flags, &[]);
    let app_pid = rec.wait_ready();
    let sent = monotonic_ns();
    ld.signal(Signal::SIGTERM);
    let got = rec.wait_signal("TERM", DEADLINE);
    assert!(
        ms_between(sent, got) >= 400.0,
        "app stopped before the hook finished"
    );
    let seen = std::fs::read_to_string(&marker).expect("hook output");
    assert_eq!(seen.trim(), format!("lame-duck {app_pid}"));
    assert_eq!(ld.wait_exit(DEADLINE), 0);
    assert!(ld.log().contains("drain hook done"), "{}", ld.log());
}

#[test]
fn a_hanging_hook_is_killed_when_the_lame_duck_share_runs_out() {
    let dir = Scratch::new("hook-hang");
    let pidfile = dir.path("hook.pid");
    let hook = format!("sh -c 'echo $$ > {}; exec sleep 30'", path_str(&pidfile));
    // Share = 3 s − 0.5 s − 1 s = 1.5 s.
    let flags = [
        "--on-drain",
        &hook,
        "--grace",
        "3s",
        "--margin",
        "500ms",
        "--stop-reserve",
        "1s",
    ];
    let (mut ld, rec) = run_fixture(&dir, &flags, &[]);
    let sent = monotonic_ns();
    ld.signal(Signal::SIGTERM);
    let waited = ms_between(sent, rec.wait_signal("TERM", DEADLINE));
    assert!(
        (1400.0..2500.0).contains(&waited),
        "app got SIGTERM after {waited:.0} ms"
    );
    assert_eq!(ld.wait_exit(DEADLINE), 0);
    let hook_pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    assert!(
        proc_state(hook_pid).is_none(),
        "the hung hook {hook_pid} is still there"
    );
    assert!(ld.log().contains("killed it"), "{}", ld.log());
}

#[test]
fn out_of_file_descriptors_run_backs_off_and_serves_open_admin_connections() {
    let dir = Scratch::new("run-emfile");
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    let args = ["run", "--admin", &admin, "--", "sleep", "30"];
    let starved = Starved::run(&dir, &args, port, port, "/healthz");
    starved.assert_calm();
}

#[test]
fn runs_admin_listener_is_read_only_probes() {
    let dir = Scratch::new("run-admin-read-only");
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    let _ld = Lameduck::start(&dir, &["run", "--admin", &admin, "--", "sleep", "30"]);
    wait_for("admin up", DEADLINE, || http_get(port, "/healthz"));
    for path in ["/readyz", "/healthz", "/metrics"] {
        assert_eq!(http_get(port, path).map(|r| r.0), Some(200), "{path}");
        for method in ["PUT", "POST", "DELETE"] {
            let r = http(port, method, path, Some("{}")).map(|r| r.0);
            assert_eq!(r, Some(405), "{method} {path}");
        }
    }
}
