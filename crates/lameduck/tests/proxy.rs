//! `lameduck proxy`, black-box: config checks, reloads by signal and by file
//! change, and the drain on SIGTERM.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;

use crate::util::*;

fn proxy_toml(listen: u16, admin: u16, upstream: u16) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:{listen}\"\n\n\
         [[route]]\nupstream = \"app\"\n\n[[upstream]]\nname = \"app\"\nendpoints = [\"127.0.0.1:{upstream}\"]\n"
    )
}

#[test]
fn check_names_the_key_and_line_of_a_bad_config() {
    let dir = Scratch::new("proxy-check");
    let file = dir.path("proxy.toml");
    std::fs::write(
        &file,
        proxy_toml(1, 2, 3).replace("upstream = \"app\"", "upstream = \"ap\""),
    )
    .expect("write");
    let out = Command::new(lameduck_bin())
        .args(["proxy", "-c", path_str(&file), "--check"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 9: route[0].upstream: no [[upstream]] named \"ap\""),
        "{err}"
    );
    std::fs::write(&file, proxy_toml(1, 2, 3)).expect("write");
    let out = Command::new(lameduck_bin())
        .args(["proxy", "-c", path_str(&file), "--check"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reloads_on_sighup_and_file_change_and_drains_on_sigterm() {
    let dir = Scratch::new("proxy-reload");
    let (a, b, c) = (http_upstream("A"), http_upstream("B"), http_upstream("C"));
    let (listen, admin) = (free_port(), free_port());
    let file = dir.path("proxy.toml");
    std::fs::write(&file, proxy_toml(listen, admin, a)).expect("write");
    let mut ld = Lameduck::start(&dir, &["proxy", "-c", path_str(&file)]);
    let body = || http_get(listen, "/").map(|(_, b)| b);
    wait_for("proxy up", DEADLINE, || (body()? == "A").then_some(()));
    // SIGHUP reloads at once.
    std::fs::write(&file, proxy_toml(listen, admin, b)).expect("write");
    ld.signal(Signal::SIGHUP);
    wait_for("reload to B", DEADLINE, || (body()? == "B").then_some(()));
    // A change of the file is picked up by itself.
    std::fs::write(&file, proxy_toml(listen, admin, c)).expect("write");
    wait_for("reload to C", DEADLINE, || (body()? == "C").then_some(()));
    // A broken file is rejected; C keeps serving.
    std::fs::write(&file, "[[listener]\n").expect("write");
    ld.wait_log("reload rejected");
    assert_eq!(body().as_deref(), Some("C"));
    assert!(http_get(admin, "/metrics")
        .expect("metrics")
        .1
        .contains("lameduck_proxy_reloads_rejected_total 1"));
    ld.signal(Signal::SIGTERM);
    assert_eq!(ld.wait_exit(DEADLINE), 0, "{}", ld.log());
    let log = ld.log();
    assert!(
        log.contains("phase=lame-duck") && log.contains("phase=drain"),
        "{log}"
    );
}

#[test]
fn quick_mode_proxies_to_the_upstreams_given() {
    let dir = Scratch::new("proxy-quick");
    let up = http_upstream("quick");
    let listen = free_port();
    let (l, u) = (format!("127.0.0.1:{listen}"), format!("127.0.0.1:{up}"));
    let mut ld = Lameduck::start(&dir, &["proxy", "--listen", &l, "--upstream", &u]);
    wait_for("proxy up", DEADLINE, || {
        (http_get(listen, "/")?.1 == "quick").then_some(())
    });
    ld.signal(Signal::SIGINT);
    assert_eq!(ld.wait_exit(DEADLINE), 0, "{}", ld.log());
}

#[test]
fn check_refuses_a_duration_too_large_naming_the_key() {
    let dir = Scratch::new("proxy-check-huge");
    let file = dir.path("proxy.toml");
    let toml = format!("[proxy]\ndrain_delay = \"1e30\"\n\n{}", proxy_toml(1, 2, 3));
    std::fs::write(&file, toml).expect("write");
    let out = Command::new(lameduck_bin())
        .args(["proxy", "-c", path_str(&file), "--check"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 2: proxy.drain_delay"), "{err}");
    assert!(err.contains("\"1e30\""), "{err}");
}

#[test]
fn out_of_file_descriptors_the_proxy_backs_off_and_serves_open_connections() {
    let dir = Scratch::new("proxy-emfile");
    let upstream = keepalive_upstream("K");
    let (listen, admin) = (free_port(), free_port());
    let file = dir.path("proxy.toml");
    std::fs::write(&file, proxy_toml(listen, admin, upstream)).expect("write");
    let starved = Starved::run(&dir, &["proxy", "-c", path_str(&file)], listen, admin, "/");
    starved.assert_calm();
}

#[test]
fn check_runs_the_drain_plan_check_of_start_and_names_keys() {
    let dir = Scratch::new("proxy-check-plan");
    let file = dir.path("proxy.toml");
    let toml = format!(
        "[proxy]\ngrace = \"10s\"\ndrain_delay = \"20s\"\n\n{}",
        proxy_toml(1, 2, 3)
    );
    std::fs::write(&file, toml).expect("write");
    let out = Command::new(lameduck_bin())
        .args(["proxy", "-c", path_str(&file), "--check"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(path_str(&file)), "names the file: {err}");
    assert!(err.contains("line 3: proxy.drain_delay"), "{err}");
    assert!(!err.contains("--grace"), "names keys, not flags: {err}");
}

#[test]
fn an_admin_api_off_loopback_without_a_token_is_refused_before_start() {
    let dir = Scratch::new("proxy-admin-open");
    let file = dir.path("proxy.toml");
    let open = proxy_toml(1, 9901, 3).replace("127.0.0.1:9901", "0.0.0.0:9901");
    std::fs::write(&file, open).expect("write");
    let check = |token: Option<&str>| {
        let mut cmd = Command::new(lameduck_bin());
        cmd.args(["proxy", "-c", path_str(&file), "--check"])
            .env_remove("LAMEDUCK_ADMIN_TOKEN");
        if let Some(t) = token {
            cmd.env("LAMEDUCK_ADMIN_TOKEN", t);
        }
        cmd.output().expect("run")
    };
    let out = check(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 2: admin.listen"), "{err}");
    assert!(err.contains("admin.token_file"), "{err}");
    let out = check(Some("s3cret"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The quick mode's --admin follows the same rule. (192.0.2.1, a
    // documentation address, is not this machine's: were the rule broken,
    // the bind would fail instead of listening off loopback.)
    let mut quick = Lameduck::start_cmd(
        &dir,
        Command::new(lameduck_bin())
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:9",
            ])
            .args(["--admin", "192.0.2.1:9901"])
            .env_remove("LAMEDUCK_ADMIN_TOKEN"),
    );
    assert_eq!(quick.wait_exit(DEADLINE), 2, "{}", quick.log());
    assert!(quick.log().contains("--admin"), "{}", quick.log());
}

#[test]
fn slowloris_connections_are_cut_while_normal_requests_are_served() {
    use std::io::{Read, Write};
    let dir = Scratch::new("proxy-slowloris");
    let upstream = keepalive_upstream("K");
    let (listen, admin) = (free_port(), free_port());
    let file = dir.path("proxy.toml");
    let toml = format!(
        "[proxy]\nheader_read_timeout = \"1s\"\n\n{}",
        proxy_toml(listen, admin, upstream)
    );
    std::fs::write(&file, toml).expect("write");
    let ld = Lameduck::start(&dir, &["proxy", "-c", path_str(&file)]);
    let mut normal = wait_for("proxy up", DEADLINE, || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", listen)).ok()?;
        c.set_read_timeout(Some(DEADLINE)).ok()?;
        get_on(&mut c, "/").then_some(c)
    });
    let before = rss_kib(ld.child.id());
    // 500 clients that each start a head and then trickle it, a byte at a time.
    let mut slow: Vec<std::net::TcpStream> = (0..500)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", listen)).expect("connect");
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("write");
            c.set_nonblocking(true).expect("nonblocking");
            c
        })
        .collect();
    let started = Instant::now();
    let (mut peak, mut served) = (before, 0);
    let mut cut = vec![false; slow.len()];
    while cut.iter().any(|c| !c) {
        assert!(
            started.elapsed() < DEADLINE,
            "{} slow clients still connected",
            cut.iter().filter(|c| !**c).count()
        );
        for (c, done) in slow.iter_mut().zip(cut.iter_mut()).filter(|(_, d)| !**d) {
            let mut buf = [0u8; 512];
            *done = match c.read(&mut buf) {
                Ok(_) => true, // the 408 or the end
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => c.write_all(b"a").is_err(),
                Err(_) => true,
            };
        }
        assert!(
            get_on(&mut normal, "/"),
            "a normal request is served meanwhile"
        );
        served += 1;
        peak = peak.max(rss_kib(ld.child.id()));
        std::thread::sleep(Duration::from_millis(200)); // the trickle's pace
    }
    let took = started.elapsed();
    eprintln!(
        "slowloris: 500 cut in {took:?}; {served} normal requests served; RSS {before} KiB before, {peak} KiB peak"
    );
    assert!(took < Duration::from_secs(4), "cut after {took:?}");
    assert!(
        peak < before + 32 * 1024,
        "RSS grew from {before} to {peak} KiB"
    );
}
