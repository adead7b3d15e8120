//! HTTP/1.x as clients write it on the wire, through the proxy's own
//! HTTP/1 loop: body framings, 100-continue, pipelining, HTTP/1.0, HEAD,
//! streamed (chunked) responses with trailers, and the heads it must refuse.

mod support;

use std::sync::atomic::Ordering;

use support::{config, proxy_toml, upstream, Raw};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

#[tokio::test]
async fn a_chunked_request_body_in_small_pieces_reaches_the_upstream_whole() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], "")).await;
    let mut c = Raw::connect(p.addr).await;
    let body = "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: t\r\n\r\n";
    let request =
        format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
    for piece in request.as_bytes().chunks(7) {
        c.send(piece).await;
        tokio::task::yield_now().await;
    }
    let reply = c.read_until(|s| s.ends_with("hello, world")).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("content-length: 12\r\n"), "{reply}");
    // The connection is kept for the next request.
    c.seen.clear();
    c.send(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let reply = c.read_until(|s| s.ends_with("a /next")).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], "")).await;
    let mut c = Raw::connect(p.addr).await;
    c.send(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let interim = c.read_until(|s| s.contains("\r\n\r\n")).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"ping").await;
    let reply = c.read_until(|s| s.ends_with("ping")).await;
    assert!(reply.contains("HTTP/1.1 200 OK"), "{reply}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], "")).await;
    let mut c = Raw::connect(p.addr).await;
    c.send(
        b"GET /one HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\ntwoGET /three HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    let reply = c.read_until(|s| s.ends_with("a /three")).await;
    let one = reply.find("a /one").expect("first");
    let two = reply.find("two").expect("second");
    let three = reply.find("a /three").expect("third");
    assert!(one < two && two < three, "{reply}");
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 3, "{reply}");
}

#[tokio::test]
async fn http_1_0_closes_unless_keep_alive_and_head_has_no_body() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], "")).await;
    let mut c = Raw::connect(p.addr).await;
    c.send(b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(c.closed().await, "HTTP/1.0 without keep-alive is closed");
    let reply = String::from_utf8_lossy(&c.seen).into_owned();
    assert!(
        reply.contains("connection: close") && reply.ends_with("a /old"),
        "{reply}"
    );

    let mut c = Raw::connect(p.addr).await;
    c.send(b"HEAD /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let reply = c.read_until(|s| s.contains("\r\n\r\n")).await;
    assert!(reply.contains("connection: keep-alive"), "{reply}");
    assert!(
        reply.contains("content-length: 4"),
        "HEAD keeps the length: {reply}"
    );
    assert!(reply.ends_with("\r\n\r\n"), "no body after a HEAD: {reply}");
    c.seen.clear();
    c.send(b"GET /y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let reply = c.read_until(|s| s.ends_with("a /y")).await;
    assert!(
        reply.starts_with("HTTP/1.1 200 OK"),
        "the connection was kept: {reply}"
    );
}

/// An upstream that answers every request with a chunked body and trailers,
/// written by hand so the framing is exactly what a streaming app sends.
async fn chunked_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n\
                                     3\r\nabc\r\n4\r\ndefg\r\n0\r\nx-sum: 7\r\n\r\n";
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_streamed_response_is_chunked_for_1_1_with_trailers_and_close_delimited_for_1_0() {
    let up = chunked_upstream().await;
    let p = proxy_toml(&config(&[up], "")).await;
    let mut c = Raw::connect(p.addr).await;
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n\r\n")
        .await;
    let reply = c
        .read_until(|s| s.ends_with("\r\n0\r\nx-sum: 7\r\n\r\n"))
        .await;
    assert!(reply.contains("transfer-encoding: chunked\r\n"), "{reply}");
    let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    let data: String = body
        .split("\r\n")
        .collect::<Vec<_>>()
        .chunks(2)
        .filter(|c| c.len() == 2 && c[0] != "0")
        .map(|c| c[1])
        .collect();
    assert_eq!(data, "abcdefg", "{reply}");

    let mut c = Raw::connect(p.addr).await;
    c.send(b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(c.closed().await);
    let reply = String::from_utf8_lossy(&c.seen).into_owned();
    assert!(
        !reply.contains("chunked") && reply.ends_with("\r\n\r\nabcdefg"),
        "{reply}"
    );
}

#[tokio::test]
async fn ambiguous_or_oversized_heads_are_refused_and_nothing_behind_them_is_forwarded() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], "")).await;
    let cases: [(&[u8], &str, &str); 4] = [
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
            "400 Bad Request",
            "bad-request",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "400 Bad Request",
            "bad-request",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
            "501 Not Implemented",
            "unsupported-transfer-coding",
        ),
        (
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "405 Method Not Allowed",
            "method-not-allowed",
        ),
    ];
    for (request, status, cause) in cases {
        let mut c = Raw::connect(p.addr).await;
        c.send(request).await;
        assert!(c.closed().await, "closed after {status}");
        let reply = String::from_utf8_lossy(&c.seen).into_owned();
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{reply}"
        );
        assert!(
            reply.contains(&format!("lameduck-error: {cause}\r\n")),
            "{reply}"
        );
        assert!(reply.contains("connection: close\r\n"), "{reply}");
    }
    let mut c = Raw::connect(p.addr).await;
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70_000)
    );
    c.send(huge.as_bytes()).await;
    assert!(c.closed().await);
    let reply = String::from_utf8_lossy(&c.seen).into_owned();
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
    assert_eq!(
        app.requests.load(Ordering::SeqCst),
        0,
        "nothing reached the app"
    );
}

#[tokio::test]
async fn a_chunked_body_over_max_body_bytes_is_a_413_and_the_connection_stays_in_step() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], "[proxy]\nmax_body_bytes = 8\n")).await;
    let mut c = Raw::connect(p.addr).await;
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
        .await;
    let reply = c.read_until(|s| s.ends_with("bytes)\n")).await;
    assert!(reply.starts_with("HTTP/1.1 413 "), "{reply}");
    assert!(
        !reply.contains("0123456789abcdef"),
        "the body was cut: {reply}"
    );
    // The rest of the chunked body was read and dropped: the next request on
    // the connection is parsed from its own first byte.
    let next = c.get("/after", "a /after").await;
    assert!(next.starts_with("HTTP/1.1 200 OK"), "{next}");
}

#[tokio::test]
async fn a_client_that_leaves_mid_body_does_not_hold_the_proxy() {
    let app = upstream("a").await;
    let p = proxy_toml(&config(&[app.addr], "")).await;
    let mut c = Raw::connect(p.addr).await;
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly part")
        .await;
    drop(c);
    let mut next = Raw::connect(p.addr).await;
    next.send(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let reply = next.read_until(|s| s.ends_with("a /after")).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
}
