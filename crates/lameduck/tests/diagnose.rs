//! `lameduck doctor` and `lameduck pcap`, black-box: the doctor on an app
//! under `lameduck run` and on a bare shell, and pcap on a crafted capture.

use std::{os::unix::process::CommandExt, process::Command};

use lameduck_pcap::{
    synth::{Flow, Format, Link, Writer},
    Side,
};

use crate::util::*;

/// `lameduck doctor --pid PID --json`: the exit code and the parsed diagnosis.
fn doctor(pid: u32) -> (i32, serde_json::Value) {
    let out = Command::new(lameduck_bin())
        .args([
            "doctor",
            "--pid",
            &pid.to_string(),
            "--json",
            "--podinfo",
            "/nonexistent",
        ])
        .output()
        .expect("run lameduck doctor");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), json)
}

#[test]
fn doctor_finds_lameduck_run_catching_sigterm_for_its_app() {
    let dir = Scratch::new("doctor-run");
    let ld = Lameduck::start(&dir, &["run", "--no-control", "--", "sleep", "300"]);
    let pid = ld.child.id();
    let (code, d) = wait_for("lameduck run with its child sleep", DEADLINE, || {
        let (code, d) = doctor(pid);
        let has_sleep = d["children"]
            .as_array()?
            .iter()
            .any(|c| c["name"] == "sleep");
        let caught = d["on_stop_signal"] == "caught";
        (has_sleep && caught).then_some((code, d))
    });
    assert_eq!(d["init"], true);
    let verdict = d["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("catches SIGTERM and passes it on to sleep"),
        "{verdict}"
    );
    assert_eq!(code, 0, "healthy: {d:#}");
}

#[test]
fn doctor_text_ends_with_the_verdict_and_fails_on_a_problem() {
    let mut sh = Command::new("sh")
        .args(["-c", "trap '' TERM; sleep 300; true"])
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = sh.id();
    wait_for("sleep under sh", DEADLINE, || {
        let (_, d) = doctor(pid);
        d["children"]
            .as_array()?
            .iter()
            .any(|c| c["name"] == "sleep")
            .then_some(())
    });
    let out = Command::new(lameduck_bin())
        .args([
            "doctor",
            "--pid",
            &pid.to_string(),
            "--podinfo",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = sh.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "verdict: PID {pid} (sh) ignores SIGTERM; its child sleep will be SIGKILLed after 30 s"
        )),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn pcap_tells_who_reset_a_connection_with_a_request_in_flight() {
    let dir = Scratch::new("pcap-cli");
    let path = dir.path("tcp.pcap");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = Writer::new(std::io::BufWriter::new(file), Format::PcapNg, Link::Sll2).unwrap();
    let mut ts = 1_767_268_803_200_000_000u64; // 12:00:03.200 UTC
    for n in 0..3u16 {
        let client = format!("10.0.0.9:{}", 40_000 + n).parse().unwrap();
        let mut f = Flow::new(client, "10.0.0.5:8080".parse().unwrap(), Link::Sll2);
        let mut frames: Vec<Vec<u8>> = f.handshake().into();
        frames.push(f.data(Side::Client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        frames.push(f.rst(Side::Server));
        for fr in frames {
            w.packet(ts, &fr).unwrap();
            ts += 50_000_000;
        }
    }
    std::io::Write::flush(&mut w.into_inner()).unwrap();
    let out = Command::new(lameduck_bin())
        .args(["pcap", "--port", "8080"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "! 3 connections reset by 10.0.0.5:8080 with a request in flight (3 requests), \
             between 12:00:03.400 and 12:00:03.900"
        ),
        "{text}"
    );
}
