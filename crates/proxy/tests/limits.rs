//! Limits that hold on every path a hostile client can take: the request body
//! limit (`max_body_bytes`) for HTTP/1 bodies with a length or chunked, and
//! for HTTP/2 bodies with or without `content-length`; each refusal is a 413
//! that names the limit and its key.

mod support;

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::{
    body::{Frame, Incoming},
    Request,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{config, proxy_toml, read, upstream, Raw};

const LIMIT: &str = "[proxy]\nmax_body_bytes = 1000\n";

/// What every 413 says: the limit and the key that sets it.
fn names_the_limit(body: &str) -> bool {
    body.contains("max_body_bytes") && body.contains("1000")
}

#[tokio::test]
async fn an_http1_content_length_over_the_limit_is_a_413_naming_it() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], LIMIT)).await;
    let mut c = Raw::connect(p.addr).await;
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n{}",
        "x".repeat(5000)
    ))
    .await;
    let reply = c.read_until(|s| s.ends_with('\n')).await;
    assert!(reply.starts_with("HTTP/1.1 413 "), "{reply}");
    assert!(names_the_limit(&reply), "{reply}");
    assert_eq!(app.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_http1_chunked_body_over_the_limit_is_a_413_naming_it() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], LIMIT)).await;
    let mut c = Raw::connect(p.addr).await;
    let chunk = "y".repeat(500);
    let body: String = (0..10).map(|_| format!("1f4\r\n{chunk}\r\n")).collect();
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}0\r\n\r\n"
    ))
    .await;
    let reply = c.read_until(|s| s.ends_with('\n')).await;
    assert!(reply.starts_with("HTTP/1.1 413 "), "{reply}");
    assert!(names_the_limit(&reply), "{reply}");
    assert!(!reply.contains(&chunk), "the body came back: {reply}");
}

#[tokio::test]
async fn an_http1_chunked_body_within_the_limit_passes() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], LIMIT)).await;
    let mut c = Raw::connect(p.addr).await;
    let chunk = "z".repeat(500);
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1f4\r\n{chunk}\r\n1f4\r\n{chunk}\r\n0\r\n\r\n"
    ))
    .await;
    let reply = c
        .read_until(|s| s.ends_with(&format!("{chunk}{chunk}")))
        .await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
}

/// A request body sent as `frames`, with no size known in advance (so no
/// `content-length` goes with it).
struct Frames(VecDeque<Bytes>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// Sends one POST over h2c with a body of `frames` of `size` bytes each.
async fn h2_post(
    addr: std::net::SocketAddr,
    frames: usize,
    size: usize,
    length: bool,
) -> support::Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let body = Frames((0..frames).map(|_| Bytes::from(vec![b'h'; size])).collect());
    let mut req = Request::post("http://test/echo");
    if length {
        req = req.header("content-length", (frames * size).to_string());
    }
    send.ready().await.unwrap();
    let resp: hyper::Response<Incoming> = send.send_request(req.body(body).unwrap()).await.unwrap();
    read(resp).await.unwrap()
}

#[tokio::test]
async fn an_http2_body_over_the_limit_is_a_413_with_or_without_content_length() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], LIMIT)).await;
    for length in [true, false] {
        let r = h2_post(p.addr, 10, 500, length).await;
        assert_eq!(r.status, 413, "content-length sent: {length}: {r:?}");
        assert!(names_the_limit(&r.body), "{}", r.body);
    }
    let r = h2_post(p.addr, 2, 500, false).await;
    assert_eq!((r.status, r.body.len()), (200, 1000), "within the limit");
}

#[tokio::test]
async fn a_client_whose_body_breaks_or_goes_over_does_not_eject_the_endpoint() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let eject = "eject_after = 1\neject_for = \"60s\"\n";
    let p = proxy_toml(&(config(&[a.addr, b.addr], LIMIT) + eject)).await;
    let bad: [&str; 2] = [
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
        &format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n{}\r\n0\r\n\r\n",
            "q".repeat(2000)
        ),
    ];
    for request in bad {
        for _ in 0..2 {
            let mut c = Raw::connect(p.addr).await;
            c.send(request).await;
            let reply = c.read_until(|s| s.ends_with('\n')).await;
            assert!(
                reply.starts_with("HTTP/1.1 400 ") || reply.starts_with("HTTP/1.1 413 "),
                "{reply}"
            );
        }
    }
    let mut answered = std::collections::BTreeSet::new();
    let mut c = Raw::connect(p.addr).await;
    for _ in 0..4 {
        let reply = c.get("/x", " /x").await;
        answered.insert(reply.ends_with("a /x"));
    }
    assert_eq!(answered.len(), 2, "both endpoints still take requests");
}

#[tokio::test]
async fn a_request_body_that_stalls_is_a_408_and_the_connection_closes() {
    let app = upstream("a").await;
    let extra = "[proxy]\nbody_idle_timeout = \"200ms\"\n";
    let p = proxy_toml(&config(&[app.addr], extra)).await;
    let mut c = Raw::connect(p.addr).await;
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf-")
        .await;
    assert!(c.closed().await, "the connection ends");
    let reply = String::from_utf8_lossy(&c.seen).into_owned();
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
    assert!(
        reply.contains("lameduck-error: request-body-timeout"),
        "{reply}"
    );
    assert!(reply.contains("body_idle_timeout"), "{reply}");
}

#[tokio::test]
async fn an_http2_header_list_over_16_kib_is_refused_and_the_connection_serves_on() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], "")).await;
    let stream = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let get = |big: usize| {
        Request::get("http://test/x")
            .header("x-big", "b".repeat(big))
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap()
    };
    send.ready().await.unwrap();
    let refused = send.send_request(get(20 * 1024)).await;
    assert!(
        refused.as_ref().map_or(true, |r| r.status() == 431),
        "{:?}",
        refused.map(|r| r.status())
    );
    send.ready().await.unwrap();
    let ok = read(send.send_request(get(1024)).await.unwrap())
        .await
        .unwrap();
    assert_eq!((ok.status, ok.body.as_str()), (200, "a /x"));
    assert_eq!(app.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A request body that sends one frame and then nothing, ever.
struct Stall(Option<Bytes>);

impl hyper::body::Body for Stall {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None => Poll::Pending,
        }
    }
}

#[tokio::test]
async fn an_http2_request_body_that_stalls_is_a_408() {
    let app = upstream("a").await;
    let extra = "[proxy]\nbody_idle_timeout = \"200ms\"\n";
    let p = proxy_toml(&config(&[app.addr], extra)).await;
    let stream = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    send.ready().await.unwrap();
    let req = Request::post("http://test/echo")
        .body(Stall(Some(Bytes::from_static(b"half"))))
        .unwrap();
    let sent = tokio::time::timeout(std::time::Duration::from_secs(5), send.send_request(req));
    let resp = sent.await.expect("answered in time").unwrap();
    let r = read(resp).await.unwrap();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.body.contains("body_idle_timeout"), "{}", r.body);
}

#[tokio::test]
async fn a_connection_over_max_connections_gets_a_503_at_once_and_the_others_are_served() {
    let up = upstream("a").await;
    let p = proxy_toml(&config(&[up.addr], "[proxy]\nmax_connections = 2\n")).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut c = Raw::connect(p.addr).await;
        assert!(c.get("/", "a /").await.starts_with("HTTP/1.1 200"));
        open.push(c);
    }
    // One more: refused with a 503 that says why and when to come back,
    // promptly, and closed.
    let asked = std::time::Instant::now();
    let mut extra = Raw::connect(p.addr).await;
    extra.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let refusal = extra.read_until(|_| false).await;
    let took = asked.elapsed();
    eprintln!("refused in {took:?}: {refusal:?}");
    assert!(refusal.starts_with("HTTP/1.1 503 "), "{refusal}");
    assert!(refusal.contains("Retry-After: 1\r\n"), "{refusal}");
    assert!(refusal.contains("Connection: close\r\n"), "{refusal}");
    assert!(refusal.contains("max_connections"), "{refusal}");
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
    assert_eq!(
        up.requests.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "the refused request never reached the upstream"
    );
    // The two open connections are served on.
    for c in &mut open {
        assert!(c.get("/", "a /").await.starts_with("HTTP/1.1 200"));
    }
    let metrics = support::admin(p.admin, "GET", "/metrics", "").await;
    assert!(
        metrics
            .body
            .contains("lameduck_proxy_connections_refused_total 1\n"),
        "{}",
        metrics.body
    );
    // Once one closes, a new connection is served again.
    drop(open.pop());
    support::eventually("a new connection is served", 5, || async {
        let mut c = Raw::connect(p.addr).await;
        c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
        c.read_until(|s| s.ends_with("a /") || s.ends_with("retry later\n"))
            .await
            .starts_with("HTTP/1.1 200")
    })
    .await;
}
