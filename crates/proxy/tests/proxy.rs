//! `lameduck proxy` end to end, in-process: protocols, retries, reloads, drain.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use lameduck_drain::StopKind;
use lameduck_proxy::{Control, Exit};
use support::*;

#[tokio::test]
async fn http1_is_forwarded_with_forwarded_headers_and_without_hop_by_hop() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], "")).await;
    let mut c = h1(p.addr).await;
    let req = Request::get("/headers")
        .header("host", "shop.test")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .body(Full::default())
        .unwrap();
    let r = c.send(req).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("x-forwarded-for: 127.0.0.1"), "{}", r.body);
    assert!(r.body.contains("x-forwarded-proto: http"), "{}", r.body);
    assert!(
        r.body
            .contains("forwarded: for=127.0.0.1;proto=http;host=\"shop.test\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("host: shop.test"), "{}", r.body);
    for hop in ["x-hop", "keep-alive", "connection"] {
        assert!(
            !r.body.contains(&format!("{hop}:")),
            "{hop} was forwarded: {}",
            r.body
        );
    }
    // The same client connection keeps working (keepalive).
    assert_eq!(c.get("/x").await.unwrap().body, "a /x");
}

#[tokio::test]
async fn h2c_clients_and_http2_upstreams() {
    let app = upstream("a").await;
    for protocol in ["http1", "http2"] {
        let toml = config(&[app.addr], "").replace(
            "endpoints =",
            &format!("protocol = \"{protocol}\"\nendpoints ="),
        );
        let p = proxy_toml(&toml).await;
        let mut c = h2(p.addr).await;
        for i in 0..3 {
            let r = c.get(&format!("/h2/{i}")).await.unwrap();
            assert_eq!(
                (r.status, r.body.as_str()),
                (200, format!("a /h2/{i}").as_str()),
                "{protocol}"
            );
            // The upstream's own fields come through, whichever its protocol.
            assert_eq!(r.headers["x-upstream"], "a", "{protocol}");
        }
        let mut c = h1(p.addr).await;
        let r = c.get("/h1").await.unwrap();
        assert_eq!(r.body, "a /h1", "{protocol}");
        assert_eq!(r.headers["x-upstream"], "a", "{protocol}");
    }
}

#[tokio::test]
async fn a_response_that_does_not_come_in_time_is_a_504_on_a_reused_connection_too() {
    let app = upstream("a").await;
    let toml =
        config(&[app.addr], "").replace("endpoints =", "response_timeout = \"400ms\"\nendpoints =");
    let p = proxy_toml(&toml).await;
    let mut c = h1(p.addr).await;
    // One upstream connection: each response comes after the previous
    // exchange's deadline, within its own.
    for _ in 0..3 {
        assert_eq!(c.get("/slow?ms=250").await.unwrap().status, 200);
    }
    let started = std::time::Instant::now();
    let r = c.get("/slow?ms=3000").await.unwrap();
    assert_eq!(r.status, 504);
    assert_eq!(r.headers["lameduck-error"], "upstream-timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_connect_is_retried_on_another_endpoint_even_for_post() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[dead, app.addr], "")).await;
    let mut c = h1(p.addr).await;
    for i in 0..4 {
        let req = Request::post("/echo")
            .header("host", "t")
            .body(Full::new(Bytes::from(format!("order {i}"))))
            .unwrap();
        let r = c.send(req).await.unwrap();
        assert_eq!((r.status, r.body.clone()), (200, format!("order {i}")));
    }
    assert_eq!(
        app.requests.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "each POST reached the app once"
    );
    let metrics = admin(p.admin, "GET", "/metrics", "").await.body;
    assert!(
        !metrics.contains("lameduck_proxy_upstream_retries_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn errors_name_their_cause() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let p = proxy_toml(&config(&[dead], "")).await;
    let mut c = h1(p.addr).await;
    let r = c.get("/").await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.headers["lameduck-error"], "upstream-connect-refused");
    admin(p.admin, "PUT", "/upstreams/app", r#"{"endpoints": []}"#).await;
    let r = c.get("/").await.unwrap();
    assert_eq!(
        (r.status, r.headers["lameduck-error"].to_str().unwrap()),
        (503, "no-endpoints")
    );
}

#[tokio::test]
async fn a_bad_config_is_rejected_and_the_old_one_keeps_serving() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let toml = config(&[a.addr], "");
    let p = proxy_toml(&toml).await;
    let mut c = h1(p.addr).await;
    assert_eq!(c.get("/").await.unwrap().body, "a /");
    let bad = toml.replace("upstream = \"app\"", "upstream = \"missing\"");
    let r = admin(p.admin, "PUT", "/config", &bad).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("line 10: route[0].upstream: no [[upstream]] named \"missing\""),
        "{}",
        r.body
    );
    assert_eq!(
        c.get("/").await.unwrap().body,
        "a /",
        "old config still serves"
    );
    let good = config(&[b.addr], "");
    assert_eq!(admin(p.admin, "PUT", "/config", &good).await.status, 200);
    // The same client connection survives the reload and now reaches b.
    assert_eq!(c.get("/").await.unwrap().body, "b /");
    assert!(!c.closed.is_finished());
    let metrics = admin(p.admin, "GET", "/metrics", "").await.body;
    assert!(
        metrics.contains("lameduck_proxy_reloads_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lameduck_proxy_reloads_rejected_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_in_flight_to_a_removed_endpoint_finishes() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let p = proxy_toml(&config(&[a.addr], "")).await;
    let mut slow = h1(p.addr).await;
    let in_flight = tokio::spawn(async move { slow.get("/slow?ms=400").await });
    eventually("request reached a", 5, || async {
        a.requests.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    let body = format!(r#"{{"endpoints": ["{}"]}}"#, b.addr);
    assert_eq!(
        admin(p.admin, "PUT", "/upstreams/app", &body).await.status,
        200
    );
    let mut c = h1(p.addr).await;
    assert_eq!(
        c.get("/").await.unwrap().body,
        "b /",
        "new requests go to the new endpoint"
    );
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "a slow"),
        "the request to the removed endpoint finished"
    );
}

#[tokio::test]
async fn drain_lame_duck_then_stop_accepting_then_exit_clean() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], "[proxy]\ndrain_delay = \"600ms\"\n")).await;
    let mut h1c = h1(p.addr).await;
    let mut h2c = h2(p.addr).await;
    assert_eq!(h1c.get("/").await.unwrap().status, 200);
    assert_eq!(h2c.get("/").await.unwrap().status, 200);
    // A slow request in flight on HTTP/2 when the drain starts.
    let mut h2_slow = h2(p.addr).await;
    let slow = tokio::spawn(async move { (h2_slow.get("/slow?ms=300").await, h2_slow.closed) });
    eventually("slow request arrived", 5, || async {
        app.requests.load(std::sync::atomic::Ordering::SeqCst) >= 3
    })
    .await;
    p.control.send(Control::Stop(StopKind::Graceful)).unwrap();
    eventually("readyz 503", 5, || async {
        admin(p.admin, "GET", "/readyz", "").await.status == 503
    })
    .await;
    // Lame duck: HTTP/1.1 responses say Connection: close; new connections still work.
    let r = h1c.get("/").await.unwrap();
    assert_eq!(
        (
            r.status,
            r.headers.get("connection").map(|v| v.to_str().unwrap())
        ),
        (200, Some("close"))
    );
    let mut late = h1(p.addr).await;
    assert_eq!(
        late.get("/").await.unwrap().status,
        200,
        "still accepting in the lame-duck phase"
    );
    // HTTP/2: GOAWAY ends the connection gracefully; the in-flight request finishes.
    let (r, closed) = slow.await.unwrap();
    assert_eq!(r.unwrap().body, "a slow");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .unwrap()
            .unwrap()
            .is_ok(),
        "no reset"
    );
    assert!(tokio::time::timeout(Duration::from_secs(5), h2c.closed)
        .await
        .unwrap()
        .unwrap()
        .is_ok());
    // After the delay: stop accepting, exit once connections are done.
    let exit = tokio::time::timeout(Duration::from_secs(5), p.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, Exit::Clean);
    assert!(
        tokio::net::TcpStream::connect(p.addr).await.is_err(),
        "listener closed after the drain"
    );
}

#[tokio::test]
async fn the_deadline_closes_what_is_left() {
    let app = upstream("a").await;
    let extra = "[proxy]\ngrace = \"1s\"\nmargin = \"200ms\"\nstop_reserve = \"0s\"\n";
    let p = proxy_toml(&config(&[app.addr], extra)).await;
    let mut c = h1(p.addr).await;
    let stuck = tokio::spawn(async move { c.get("/slow?ms=5000").await });
    eventually("slow request arrived", 5, || async {
        app.requests.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    p.control.send(Control::Stop(StopKind::Fast)).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(5), p.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, Exit::Forced { connections: 1 });
    assert!(
        stuck.await.unwrap().is_err(),
        "the stuck request was cut at the deadline"
    );
}

/// A WebSocket echo upstream; reports each close code it receives.
async fn ws_upstream() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<u16>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    match msg {
                        Message::Close(frame) => {
                            let _ = tx.send(frame.map_or(0, |f| u16::from(f.code)));
                        }
                        Message::Text(_) | Message::Binary(_) => {
                            let _ = ws.send(msg).await;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn websockets_survive_reloads_and_get_1001_when_the_drain_starts() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};
    let (ws_addr, mut upstream_closes) = ws_upstream().await;
    let toml = config(&[ws_addr], "[proxy]\ndrain_delay = \"100ms\"\n");
    let p = proxy_toml(&toml).await;
    let stream = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async("ws://test/ws", stream)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let big = "x".repeat(70_000); // a frame with a 64-bit length, split across reads
    for text in ["hello", big.as_str()] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    // A reload that changes the route's upstream settings keeps the stream.
    let reloaded = toml.replace("endpoints =", "connect_timeout = \"2s\"\nendpoints =");
    assert_eq!(
        admin(p.admin, "PUT", "/config", &reloaded).await.status,
        200
    );
    ws.send(Message::text("after reload")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("after reload")
    );
    // The drain: the client gets a Close with 1001 Going Away, not a reset.
    p.control.send(Control::Stop(StopKind::Graceful)).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match msg {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected Close 1001, got {other:?}"),
    }
    let code = tokio::time::timeout(Duration::from_secs(5), upstream_closes.recv())
        .await
        .unwrap();
    assert_eq!(code, Some(1001), "the upstream app was told too");
    drop(ws);
    let exit = tokio::time::timeout(Duration::from_secs(5), p.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, Exit::Clean);
}

#[tokio::test]
async fn grpc_unary_and_streaming_through_the_proxy() {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    // A real gRPC server: tonic's standard health service.
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("shop", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let toml = config(&[grpc_addr], "").replace("endpoints =", "protocol = \"http2\"\nendpoints =");
    let p = proxy_toml(&toml).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", p.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    // Unary: the status comes back, and grpc-status travels in the trailers.
    let status = client
        .check(HealthCheckRequest {
            service: "shop".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let err = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::NotFound,
        "an error status in the trailers reaches the client"
    );
    // Server streaming: each change arrives as a message on the open stream.
    let mut stream = client
        .watch(HealthCheckRequest {
            service: "shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    reporter
        .set_service_status("shop", tonic_health::ServingStatus::NotServing)
        .await;
    let next = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
}

/// A self-signed certificate for `localhost`, written as PEM files in `dir`.
fn self_signed(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().to_vec())
}

/// Connects over TLS trusting `der`, offering `alpn`; returns the stream and
/// the certificate the server showed.
async fn tls_connect(
    addr: std::net::SocketAddr,
    der: &[u8],
    alpn: &[u8],
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(der.to_vec())).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let shown = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(alpn),
        "ALPN negotiated"
    );
    (stream, shown)
}

#[tokio::test]
async fn https_with_alpn_and_certificate_reload_without_restart() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let dir = std::env::temp_dir().join(format!("lameduck-proxy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, der1) = self_signed(&dir, "one");
    let app = upstream("a").await;
    let tls_line = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}\n",
        cert.display(),
        key.display()
    );
    let toml = config(&[app.addr], "").replace(
        "listen = \"127.0.0.1:0\"\n\n[[route]]",
        &format!("listen = \"127.0.0.1:0\"\n{tls_line}\n[[route]]"),
    );
    let p = proxy_toml(&toml).await;
    // HTTP/2 over TLS.
    let (stream, shown) = tls_connect(p.addr, &der1, b"h2").await;
    assert_eq!(shown, der1);
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://localhost/headers")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let r = read(send.send_request(req).await.unwrap()).await.unwrap();
    assert!(r.body.contains("x-forwarded-proto: https"), "{}", r.body);
    // HTTP/1.1 over TLS.
    let (stream, _) = tls_connect(p.addr, &der1, b"http/1.1").await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/x")
        .header("host", "localhost")
        .body(Full::<Bytes>::default())
        .unwrap();
    assert_eq!(
        read(send.send_request(req).await.unwrap())
            .await
            .unwrap()
            .body,
        "a /x"
    );
    // A new certificate in the same files: reloaded in memory, new connections see it.
    let (_, _, der2) = self_signed(&dir, "one");
    assert_eq!(admin(p.admin, "PUT", "/config", &toml).await.status, 200);
    let (_, shown) = tls_connect(p.addr, &der2, b"h2").await;
    assert_eq!(shown, der2);
    // A key that does not exist is rejected, naming the listener's tls and line.
    let bad = toml.replace(&key.display().to_string(), "/nonexistent/key.pem");
    let r = admin(p.admin, "PUT", "/config", &bad).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("listener[0].tls") && r.body.contains("/nonexistent/key.pem"),
        "{}",
        r.body
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn keepalive_limits_end_connections_gracefully() {
    let app = upstream("a").await;
    let extra = "[proxy]\nkeepalive_requests = 3\nkeepalive_timeout = \"300ms\"\n";
    let p = proxy_toml(&config(&[app.addr], extra)).await;
    // HTTP/1.1: the third response says Connection: close, then the connection ends.
    let mut c = h1(p.addr).await;
    for i in 1..=3 {
        let r = c.get("/").await.unwrap();
        let close = r.headers.get("connection").is_some_and(|v| v == "close");
        assert_eq!(close, i == 3, "request {i}");
    }
    assert!(tokio::time::timeout(Duration::from_secs(5), c.closed)
        .await
        .unwrap()
        .unwrap()
        .is_ok());
    // HTTP/2: GOAWAY after the third request, a graceful end.
    let mut c = h2(p.addr).await;
    for _ in 0..3 {
        assert_eq!(c.get("/").await.unwrap().status, 200);
    }
    assert!(tokio::time::timeout(Duration::from_secs(5), c.closed)
        .await
        .unwrap()
        .unwrap()
        .is_ok());
    // An idle connection is closed after keepalive_timeout, never mid-request.
    let mut c = h1(p.addr).await;
    assert_eq!(
        c.get("/slow?ms=500").await.unwrap().status,
        200,
        "a request longer than the idle timeout"
    );
    let started = tokio::time::Instant::now();
    assert!(tokio::time::timeout(Duration::from_secs(5), c.closed)
        .await
        .unwrap()
        .unwrap()
        .is_ok());
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the idle timeout"
    );
}

#[tokio::test]
async fn header_read_timeout_bounds_the_first_request_only() {
    let app = upstream("a").await;
    let extra = "[proxy]\nheader_read_timeout = \"200ms\"\nkeepalive_timeout = \"5s\"\n";
    let p = proxy_toml(&config(&[app.addr], extra)).await;
    // A kept-alive connection idle for longer than header_read_timeout stays open.
    let mut c = h1(p.addr).await;
    assert_eq!(c.get("/").await.unwrap().status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await; // idle time under test, not synchronisation
    assert_eq!(
        c.get("/").await.unwrap().status,
        200,
        "idle keepalive connection was closed early"
    );
    // A connection that never sends a request is closed after header_read_timeout.
    let mut silent = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await
    .unwrap()
    .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "closed after {:?}",
        started.elapsed()
    );
}

/// Starts `lameduck registry` in this process; returns its Eureka URL.
async fn registry() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(lameduck_drain::Phase::Serving);
    tokio::spawn(async move {
        let _keep_open = _tx;
        lameduck_registry::serve(lameduck_registry::Config::default(), listener, None, rx).await
    });
    format!("http://{addr}/eureka/")
}

fn instance(id: &str, addr: std::net::SocketAddr) -> lameduck_eureka::model::Instance {
    let v = serde_json::json!({
        "instanceId": id, "hostName": addr.ip().to_string(), "app": "SHOP",
        "ipAddr": addr.ip().to_string(), "status": "UP",
        "port": {"$": addr.port(), "@enabled": "true"},
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}
    });
    lameduck_eureka::model::Instance::from_value(&v).unwrap()
}

/// Sends requests until `n` in a row come from `want`; returns how long it took.
async fn until_only(c: &mut H1, want: &str, n: usize) -> Duration {
    let started = tokio::time::Instant::now();
    let mut streak = 0;
    while streak < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "traffic never settled on {want}"
        );
        let r = c.get("/").await.unwrap();
        streak = if r.body.starts_with(want) {
            streak + 1
        } else {
            0
        };
    }
    started.elapsed()
}

#[tokio::test]
async fn eureka_discovery_follows_down_at_once_with_the_change_feed_and_by_polling() {
    use lameduck_eureka::{client::Client, model::Status};
    for (feed, bound) in [
        (true, Duration::from_millis(500)),
        (false, Duration::from_millis(1500)),
    ] {
        let (a, b) = (upstream("a").await, upstream("b").await);
        let url = registry().await;
        let eureka = Client::new(&url, Duration::from_secs(2)).unwrap();
        eureka.register(&instance("a-1", a.addr)).await.unwrap();
        eureka.register(&instance("b-1", b.addr)).await.unwrap();
        let extra = format!(
            "[[upstream]]\nname = \"shop\"\ndiscovery = {{ eureka = \"{url}\", app = \"shop\", interval = \"300ms\", feed = {feed} }}\n"
        );
        // One connection sends requests in a tight loop until the DOWN lands:
        // more than the default 1000 a connection on a fast machine.
        let toml = config(&[a.addr], "[proxy]\nkeepalive_requests = 1000000\n")
            .replace("upstream = \"app\"", "upstream = \"shop\"")
            + &extra;
        let p = proxy_toml(&toml).await;
        let mut c = h1(p.addr).await;
        // Both instances get traffic once discovered.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while a.requests.load(std::sync::atomic::Ordering::SeqCst) == 0
            || b.requests.load(std::sync::atomic::Ordering::SeqCst) == 0
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "feed={feed}: the pool never had both instances"
            );
            let _ = c.get("/").await.unwrap();
        }
        eureka
            .set_status("SHOP", "a-1", Status::Down)
            .await
            .unwrap();
        let took = until_only(&mut c, "b", 20).await;
        assert!(
            took < bound,
            "feed={feed}: DOWN took {took:?} to reach the pool (bound {bound:?})"
        );
        // A reload keeps the discovered pool.
        assert_eq!(admin(p.admin, "PUT", "/config", &toml).await.status, 200);
        assert_eq!(c.get("/").await.unwrap().body, "b /", "feed={feed}");
    }
}
