//! `lameduck demo-app` as the rollout demo runs it: it answers every protocol
//! it claims with no failure; graceful mode finishes what is in flight, says
//! goodbye to WebSockets and refuses new connections; naive mode cuts what is
//! in flight and is gone at once; it registers in Eureka and cancels.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode, Message};

use crate::util::*;

/// Starts `lameduck demo-app ARGS…` on a free port (through `$PORT`, as in a
/// pod), with debug logs so a test can see a request arrive; waits for /healthz.
fn demo_app(dir: &Scratch, args: &[&str]) -> (Lameduck, u16) {
    let port = free_port();
    let mut cmd = Command::new(lameduck_bin());
    cmd.arg("demo-app")
        .args(args)
        .env("PORT", port.to_string())
        .env("LAMEDUCK_LOG", "debug")
        .env("APP_VERSION", "v7")
        .env("POD_NAME", "demo-pod-1");
    let app = Lameduck::start_cmd(dir, &mut cmd);
    wait_for("demo-app /healthz", DEADLINE, || {
        http_get(port, "/healthz").filter(|(code, _)| *code == 200)
    });
    (app, port)
}

/// Runs `lameduck load ARGS…` and returns its exit status and stdout.
fn load(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(lameduck_bin())
        .arg("load")
        .args(args)
        .output()
        .expect("run lameduck load");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), text)
}

/// Sends `GET path` on a new keepalive connection, without reading the answer.
fn send_get(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n").unwrap();
    s
}

/// Everything the server sends until it closes: `Ok(bytes)`, or the error
/// (a reset) if the connection did not end with a clean EOF.
fn read_to_close(s: &mut TcpStream) -> std::io::Result<String> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Reads exactly one response with a Content-Length body (keeps the connection).
fn read_one_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("read head"), 1, "closed early");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read body");
    format!("{head}{}", String::from_utf8_lossy(&body))
}

/// Opens a WebSocket to /ws and checks one echo.
fn websocket(port: u16) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (mut ws, response) = tungstenite::client(url.as_str(), stream).expect("ws handshake");
    assert_eq!(response.status(), 101);
    ws.send(Message::text("ping-1")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("ping-1"));
    ws
}

#[test]
fn demo_app_answers_http1_h2c_websocket_and_grpc_health_without_a_failure() {
    let dir = Scratch::new("demo-app-protocols");
    let (_app, port) = demo_app(&dir, &["--latency", "2ms"]);
    let (code, body) = http_get(port, "/some/page").expect("GET /some/page");
    assert_eq!((code, body.as_str()), (200, "hello from v7 (demo-pod-1)\n"));
    assert_eq!(http_get(port, "/readyz").map(|r| r.0), Some(200));

    let base = format!("http://127.0.0.1:{port}");
    let runs: [(&str, Vec<String>); 4] = [
        ("HTTP/1.1", vec![format!("{base}/hello")]),
        ("h2c", vec!["--http2".into(), format!("{base}/hello")]),
        (
            "WebSocket",
            vec![
                "--ws".into(),
                "--ws-interval".into(),
                "5ms".into(),
                format!("ws://127.0.0.1:{port}/ws"),
            ],
        ),
        ("gRPC health", vec!["--grpc-health".into(), base.clone()]),
    ];
    for (what, args) in runs {
        let mut all = vec!["-n", "60", "-c", "3", "--warmup", "0s", "--cooldown", "0s"];
        all.extend(args.iter().map(String::as_str));
        let (code, stdout) = load(&all);
        assert_eq!(code, Some(0), "{what}: {stdout}");
        assert!(stdout.contains("60 requests in"), "{what}: {stdout}");
        assert!(stdout.contains("PASS"), "{what}: {stdout}");
    }
}

/// An h2c client (prior knowledge), by hyper: one request on a new connection.
mod h2c {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    pub struct Answer {
        pub http_status: u16,
        /// `grpc-status` in the headers (a trailers-only answer).
        pub head_status: Option<String>,
        pub body: Vec<u8>,
        /// `grpc-status` in the trailers.
        pub trailer_status: Option<String>,
    }

    /// A unary gRPC call with `message`.
    pub fn grpc(port: u16, path: &str, message: &[u8]) -> Answer {
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(message);
        let req = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(framed)))
            .unwrap();
        send(port, req)
    }

    /// `GET path`.
    pub fn get(port: u16, path: &str) -> Answer {
        let req = hyper::Request::get(format!("http://127.0.0.1:{port}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(port, req)
    }

    fn send(port: u16, req: hyper::Request<Full<Bytes>>) -> Answer {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let response = send.send_request(req).await.expect("an answer");
            let text = |h: &hyper::HeaderMap| {
                h.get("grpc-status")
                    .map(|v| v.to_str().unwrap().to_string())
            };
            let http_status = response.status().as_u16();
            let head_status = text(response.headers());
            let collected = response.into_body().collect().await.expect("the body");
            let trailer_status = collected.trailers().and_then(text);
            Answer {
                http_status,
                head_status,
                body: collected.to_bytes().to_vec(),
                trailer_status,
            }
        })
    }
}

#[test]
fn demo_app_grpc_echo_returns_the_message_and_unknown_methods_get_status_12() {
    let dir = Scratch::new("demo-app-grpc");
    let (_app, port) = demo_app(&dir, &["--latency", "2ms"]);
    let message = b"\x0a\x05hello";
    let echo = h2c::grpc(port, "/lameduck.demo.Echo/Echo", message);
    assert_eq!(echo.http_status, 200);
    assert_eq!(echo.trailer_status.as_deref(), Some("0"));
    assert_eq!(&echo.body[..5], [0, 0, 0, 0, message.len() as u8]);
    assert_eq!(&echo.body[5..], message);

    let health = h2c::grpc(port, "/grpc.health.v1.Health/Check", b"");
    assert_eq!(health.trailer_status.as_deref(), Some("0"));
    assert_eq!(health.body, [0, 0, 0, 0, 2, 0x08, 1], "SERVING");

    let unknown = h2c::grpc(port, "/lameduck.demo.Echo/Shout", message);
    assert_eq!(unknown.http_status, 200);
    assert_eq!(unknown.head_status.as_deref(), Some("12"));
}

#[test]
fn demo_app_graceful_sigterm_finishes_in_flight_says_1001_and_refuses_new_connections() {
    let dir = Scratch::new("demo-app-graceful");
    let (mut app, port) = demo_app(&dir, &["--latency", "800ms"]);
    let mut ws = websocket(port);
    let mut idle = send_get(port, "/first");
    assert!(read_one_response(&mut idle).starts_with("http/1.1 200"));
    let mut slow = send_get(port, "/in-flight");
    app.wait_log("path=/in-flight");
    let h2_slow = std::thread::spawn(move || h2c::get(port, "/h2-in-flight"));
    app.wait_log("path=/h2-in-flight");

    let sent = Instant::now();
    app.signal(Signal::SIGTERM);
    // The idle keepalive connection is closed, not left to be reset later.
    assert_eq!(read_to_close(&mut idle).expect("clean close"), "");
    // New connections are refused once the listener is closed.
    app.wait_log("listener closed");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still accepting"
    );
    // The WebSocket gets a goodbye with 1001, and its reply ends it.
    match ws.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    while ws.read().is_ok() {} // sends the Close reply, then sees the end
                               // The request in flight gets its whole answer, told to close.
    let answer = read_to_close(&mut slow).expect("the in-flight request was cut");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("hello from v7 (demo-pod-1)\n"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    // So does the HTTP/2 stream in flight (its connection got GOAWAY).
    let h2 = h2_slow.join().expect("the HTTP/2 stream in flight was cut");
    assert_eq!(h2.http_status, 200);
    assert_eq!(h2.body, b"hello from v7 (demo-pod-1)\n");
    assert_eq!(app.wait_exit(DEADLINE), 0, "{}", app.log());
    assert!(sent.elapsed() < Duration::from_secs(5), "{}", app.log());
    assert!(
        app.log().contains("every request finished"),
        "{}",
        app.log()
    );
}

#[test]
fn demo_app_graceful_shutdown_timeout_cuts_what_is_left_and_exits_3() {
    let dir = Scratch::new("demo-app-timeout");
    let args = ["--latency", "20s", "--shutdown-timeout", "300ms"];
    let (mut app, port) = demo_app(&dir, &args);
    let mut slow = send_get(port, "/too-slow");
    app.wait_log("path=/too-slow");
    app.signal(Signal::SIGTERM);
    assert_eq!(app.wait_exit(DEADLINE), 3, "{}", app.log());
    let answer = read_to_close(&mut slow).unwrap_or_default();
    assert!(!answer.contains("200 OK"), "{answer}");
    let log = app.log();
    assert!(
        log.contains("shutdown timeout") && log.contains("requests=1"),
        "{log}"
    );
}

#[test]
fn demo_app_naive_sigterm_cuts_the_request_in_flight_and_exits_at_once() {
    let dir = Scratch::new("demo-app-naive");
    let (mut app, port) = demo_app(&dir, &["--naive", "--latency", "20s"]);
    let mut slow = send_get(port, "/in-flight");
    app.wait_log("path=/in-flight");
    let sent = Instant::now();
    app.signal(Signal::SIGTERM);
    // Far sooner than the request's 20 s: nothing waited for it.
    assert_eq!(app.wait_exit(Duration::from_secs(3)), 0, "{}", app.log());
    assert!(sent.elapsed() < Duration::from_secs(3));
    // The client sees the connection closed (or reset) with no response.
    let answer = read_to_close(&mut slow).unwrap_or_default();
    assert_eq!(answer, "", "a response came through");
    assert!(
        app.log().contains("naive mode, exiting at once"),
        "{}",
        app.log()
    );
}

/// The registry's answer for `app` (XML), or `None` when it has no instance.
fn registered(port: u16, app: &str) -> Option<String> {
    let (code, body) = http_get(port, &format!("/eureka/apps/{app}"))?;
    (code == 200).then_some(body)
}

#[test]
fn demo_app_registers_in_eureka_and_cancels_at_a_graceful_shutdown() {
    let (reg_dir, dir) = (
        Scratch::new("demo-app-reg"),
        Scratch::new("demo-app-eureka"),
    );
    let (_registry, reg_port) = registry(&reg_dir);
    let url = format!("http://127.0.0.1:{reg_port}/eureka/");
    let args = ["--eureka", &url, "--app", "shop", "--instance-id", "shop-1"];
    let (mut app, port) = demo_app(&dir, &args);
    let body = wait_for("registered", DEADLINE, || registered(reg_port, "SHOP"));
    assert!(body.contains("<instanceId>shop-1</instanceId>"), "{body}");
    assert!(body.contains("<status>UP</status>"), "{body}");
    assert!(body.contains(&format!(">{port}</port>")), "{body}");

    app.signal(Signal::SIGTERM);
    assert_eq!(app.wait_exit(DEADLINE), 0, "{}", app.log());
    assert!(registered(reg_port, "SHOP").is_none(), "still registered");
    assert!(
        app.log().contains("registration cancelled"),
        "{}",
        app.log()
    );
}

#[test]
fn demo_app_naive_with_no_deregister_leaves_its_registration_behind() {
    let (reg_dir, dir) = (
        Scratch::new("demo-app-reg2"),
        Scratch::new("demo-app-eureka2"),
    );
    let (_registry, reg_port) = registry(&reg_dir);
    let url = format!("http://127.0.0.1:{reg_port}/eureka/");
    let args = [
        "--naive",
        "--no-deregister",
        "--eureka",
        &url,
        "--app",
        "shop",
    ];
    let (mut app, _port) = demo_app(&dir, &args);
    wait_for("registered", DEADLINE, || registered(reg_port, "SHOP"));
    app.signal(Signal::SIGTERM);
    assert_eq!(app.wait_exit(DEADLINE), 0, "{}", app.log());
    let body = registered(reg_port, "SHOP").expect("the registration is gone");
    // The default instance id is the pod name.
    assert!(
        body.contains("<instanceId>demo-pod-1</instanceId>"),
        "{body}"
    );
}
