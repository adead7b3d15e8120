//! A real capture: tcpdump on loopback while a server on 127.0.0.1 answers
//! one request and then drops a connection with a request unread (the kernel
//! resets it). Needs tcpdump and root: outside CI the test says so and
//! passes; in CI (`CI` set) a missing tcpdump fails it.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use lameduck_pcap::{analyze, CloseKind, Filter, Side};
use lameduck_testkit::wait_for;

/// Whether tcpdump can run here; in CI its absence is a failure.
fn tcpdump_usable() -> bool {
    let found = Command::new("tcpdump").arg("--version").output().is_ok();
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if found && root {
        return true;
    }
    let why = if found {
        "not root"
    } else {
        "tcpdump is not installed"
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the tcpdump test: {why}"
    );
    eprintln!("SKIPPED loopback capture test: {why} (apt-get install tcpdump, run as root)");
    false
}

#[test]
fn a_loopback_capture_shows_the_reset_with_a_request_in_flight() {
    if !tcpdump_usable() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("lameduck-pcap-tcpdump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lo.pcap");
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "lo", "-U", "-n", "-w"])
        .arg(&file)
        .args(["tcp", "port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump says "listening on lo" once its filter is in place.
    let mut stderr = BufReader::new(tcpdump.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "tcpdump: {line}");

    // One clean exchange, closed by the client.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0);
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .unwrap();
    let n = c.read(&mut buf).unwrap();
    assert!(buf[..n].ends_with(b"ok"));
    drop(c);
    drop(s);

    // A request the server never reads: closing with it unread sends a RST.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (s, _) = listener.accept().unwrap();
    c.write_all(b"GET /lost HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    s.peek(&mut buf).unwrap();
    drop(s);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let reset = c.read(&mut buf);
    assert!(reset.is_err(), "the client sees a reset: {reset:?}");

    // Stop tcpdump once both connections are on file.
    let filter = Filter {
        port: Some(port),
        host: None,
    };
    let report = wait_for(
        "both connections closed on file",
        Duration::from_secs(10),
        || {
            let r = analyze(std::slice::from_ref(&file), &filter).ok()?;
            let closed = r
                .connections
                .iter()
                .filter(|c| c.close != CloseKind::Open)
                .count();
            (closed == 2).then_some(r)
        },
    );
    let _ = Command::new("kill")
        .args(["-INT", &tcpdump.id().to_string()])
        .status();
    let _ = tcpdump.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let conns = &report.connections;
    assert_eq!(conns.len(), 2, "{conns:#?}");
    assert_eq!(
        (conns[0].close, conns[0].closed_by),
        (CloseKind::Fin, Some(Side::Client))
    );
    assert_eq!((conns[0].requests, conns[0].responses), (1, 1));
    assert_eq!(
        (conns[1].close, conns[1].rst_by),
        (CloseKind::Rst, Some(Side::Server))
    );
    assert_eq!(conns[1].in_flight_at_close, 1, "{:#?}", conns[1]);
    assert_eq!(conns[1].server.port(), port);
}
