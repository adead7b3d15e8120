//! The registry drains per lameduck's model: lame duck (readiness 503,
//! `Connection: close`, waiting feed requests answered), then drain (listener
//! closed, in-flight requests finish).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lameduck_drain::Phase;
use lameduck_registry::Config;

use crate::util::*;

#[test]
fn lame_duck_flips_readiness_and_closes_keepalive_connections() {
    let s = Server::start(Config::default());
    register(s.addr, "WEB", "web-1", 8081);
    assert_eq!(get(s.admin, "/readyz", &[]).status, 200);
    let keepalive = |addr| {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(DEADLINE)).unwrap();
        conn.write_all(b"GET /eureka/apps HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 65536];
        let n = conn.read(&mut buf).unwrap();
        (conn, parse_response(&buf[..n]))
    };
    let (_, before) = keepalive(s.addr);
    assert_eq!(before.header("connection"), None);
    s.set_phase(Phase::LameDuck);
    wait_for("readiness 503", DEADLINE, || {
        (get(s.admin, "/readyz", &[]).status == 503).then_some(())
    });
    // Still serving, but telling keepalive clients to reconnect.
    let (mut conn, during) = keepalive(s.addr);
    assert_eq!(during.status, 200);
    assert_eq!(during.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(
        conn.read_to_end(&mut rest).unwrap(),
        0,
        "the server closed it"
    );
    assert_eq!(get(s.admin, "/healthz", &[]).status, 200);
}

#[test]
fn a_waiting_feed_request_returns_when_the_drain_starts_and_the_listener_closes() {
    let s = Server::start(Config::default());
    let addr = s.addr;
    let full = get_json(addr, "/eureka/apps").json();
    let version = full["applications"]["versions__delta"]
        .as_str()
        .unwrap()
        .to_string();
    let waiting = std::thread::spawn(move || {
        let start = Instant::now();
        let r = get_json(
            addr,
            &format!("/eureka/lameduck/changes?after={version}&wait=20"),
        );
        (start.elapsed(), r.status)
    });
    wait_for("the request to wait", DEADLINE, || {
        (s.metric("feed_waiters") == 1).then_some(())
    });
    s.set_phase(Phase::LameDuck);
    let (took, status) = waiting.join().unwrap();
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    s.set_phase(Phase::Drain);
    wait_for("serve to return", DEADLINE, || s.stopped().then_some(()));
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is still open"
    );
}

#[test]
fn the_drain_lets_an_in_flight_request_finish() {
    let s = Server::start(Config::default());
    // A register whose body is still on its way when the drain starts.
    let mut conn = TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = instance_json("WEB", "web-1", 8081).to_string();
    let head = format!(
        "POST /eureka/apps/WEB HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body.as_bytes()[..10]).unwrap();
    wait_for("the request to be in flight", DEADLINE, || {
        (s.metric("requests_in_flight") == 1).then_some(())
    });
    s.set_phase(Phase::Drain);
    conn.write_all(&body.as_bytes()[10..]).unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_response(&raw).status, 204);
    wait_for("serve to return", DEADLINE, || s.stopped().then_some(()));
}
