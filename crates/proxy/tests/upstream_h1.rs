//! The proxy's HTTP/1.1 client, seen from both ends: raw-TCP upstreams in the
//! test write exactly the bytes a case needs, and raw clients read exactly
//! what the proxy answers. Keepalive reuse, the retry of a request whose
//! pooled connection died, bodies cut short, chunked bodies both ways, 1xx,
//! bodyless responses, HTTP/1.0 upstreams and upgrades.

mod support;

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use support::{config, proxy_toml, Proxy, Raw};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// An upstream that runs a script on each connection it accepts; the script
/// is told the connection's number (0 for the first).
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Request heads as received, in order, with the connection's number.
    seen: Arc<Mutex<Vec<(usize, String)>>>,
    task: JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<(usize, String)> {
        self.seen.lock().unwrap().clone()
    }
}

/// One upstream connection, from the script's side.
struct Up {
    n: usize,
    stream: TcpStream,
    buf: Vec<u8>,
    seen: Arc<Mutex<Vec<(usize, String)>>>,
}

impl Up {
    /// The next request head (and records it), or `None` at EOF.
    async fn head(&mut self) -> Option<String> {
        let end = self.until(b"\r\n\r\n").await?;
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let head = String::from_utf8_lossy(&head).into_owned();
        self.seen.lock().unwrap().push((self.n, head.clone()));
        Some(head)
    }

    /// Reads until `needle` is buffered; returns the index just past it.
    async fn until(&mut self, needle: &[u8]) -> Option<usize> {
        loop {
            if let Some(i) = self.buf.windows(needle.len()).position(|w| w == needle) {
                return Some(i + needle.len());
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(n) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads `n` body bytes.
    async fn body(&mut self, n: usize) -> String {
        while self.buf.len() < n {
            let mut chunk = [0u8; 4096];
            let got = self.stream.read(&mut chunk).await.unwrap();
            assert!(got > 0, "the proxy closed in the request body");
            self.buf.extend_from_slice(&chunk[..got]);
        }
        String::from_utf8_lossy(&self.buf.drain(..n).collect::<Vec<_>>()).into_owned()
    }

    async fn send(&mut self, bytes: &str) {
        let _ = self.stream.write_all(bytes.as_bytes()).await;
    }
}

async fn scripted<F, Fut>(script: F) -> Scripted
where
    F: Fn(Up) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (count, log) = (Arc::clone(&accepted), Arc::clone(&seen));
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let up = Up {
                n,
                stream,
                buf: Vec::new(),
                seen: Arc::clone(&log),
            };
            tokio::spawn(script(up));
        }
    });
    Scripted {
        addr,
        accepted,
        seen,
        task,
    }
}

async fn proxy_to(up: &Scripted) -> Proxy {
    proxy_toml(&config(&[up.addr], "")).await
}

/// Answers every request with `ok`, keeping the connection.
async fn keepalive(mut up: Up) {
    while up.head().await.is_some() {
        up.send("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
    }
}

#[tokio::test]
async fn keepalive_connections_are_reused() {
    let up = scripted(keepalive).await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    for i in 0..3 {
        let reply = c.get(&format!("/{i}"), "ok").await;
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    }
    let mut other = Raw::connect(p.addr).await;
    other.get("/other", "ok").await;
    assert_eq!(up.accepted(), 1, "one upstream connection served all");
}

#[tokio::test]
async fn a_pooled_connection_that_dies_under_a_request_is_retried_on_a_fresh_one() {
    // The first connection answers one request, then takes the next one and
    // closes without a byte: the keepalive race.
    let up = scripted(|mut up: Up| async move {
        while let Some(head) = up.head().await {
            let body = match head.contains("content-length: 4") {
                true => up.body(4).await,
                false => String::new(),
            };
            if up.n == 0 && up.seen.lock().unwrap().len() > 1 {
                return;
            }
            let answer = format!("{} {body}", up.n);
            up.send(&format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            ))
            .await;
        }
    })
    .await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    let first = c.get("/first", "0 ").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // A body that is all there goes out with the head and can be replayed.
    c.send("POST /second HTTP/1.1\r\nHost: t\r\ncontent-length: 4\r\n\r\nbody")
        .await;
    let second = c.read_next(|s| s.ends_with("1 body")).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    let seen = up.seen();
    let posts: Vec<usize> = seen
        .iter()
        .filter(|(_, h)| h.starts_with("POST /second"))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        posts,
        [0, 1],
        "sent on the dead connection, then on a new one"
    );
}

#[tokio::test]
async fn a_pooled_connection_closed_while_idle_is_dropped_without_a_retry() {
    // Every connection answers one request and closes.
    let closed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&closed);
    let up = scripted(move |mut up: Up| {
        let closed = Arc::clone(&counter);
        async move {
            if up.head().await.is_some() {
                up.send("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                let _ = up.stream.shutdown().await;
                closed.fetch_add(1, Ordering::SeqCst);
                // Keep the socket until the proxy closes its side.
                let _ = up.until(b"never").await;
            }
        }
    })
    .await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    for i in 0..3 {
        let reply = c.get(&format!("/{i}"), "ok").await;
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        support::eventually("the upstream closed", 5, || async {
            closed.load(Ordering::SeqCst) > i
        })
        .await;
    }
    assert_eq!(up.accepted(), 3);
    let metrics = support::admin(p.admin, "GET", "/metrics", "").await.body;
    assert!(
        metrics.contains("lameduck_proxy_upstream_retries_total 0"),
        "a connection seen closed is not tried: {metrics}"
    );
}

#[tokio::test]
async fn an_upstream_that_closes_mid_body_breaks_the_response() {
    let up = scripted(|mut up: Up| async move {
        let Some(head) = up.head().await else { return };
        if head.starts_with("GET /length") {
            up.send("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..")
                .await;
        } else {
            up.send("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
                .await;
        }
    })
    .await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    c.send("GET /length HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(c.closed().await, "the client connection is closed");
    let reply = String::from_utf8_lossy(&c.seen).into_owned();
    assert!(reply.contains("content-length: 100"), "{reply}");
    assert!(!reply.contains("HTTP/1.1 502"), "{reply}");
    let mut c = Raw::connect(p.addr).await;
    c.send("GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(c.closed().await, "the client connection is closed");
    let reply = String::from_utf8_lossy(&c.seen).into_owned();
    assert!(reply.contains("hello"), "{reply}");
    assert!(!reply.ends_with("0\r\n\r\n"), "no last chunk: {reply}");
}

#[tokio::test]
async fn chunked_bodies_both_ways_with_trailers() {
    let up = scripted(|mut up: Up| async move {
        while let Some(head) = up.head().await {
            assert!(head.contains("transfer-encoding: chunked"), "{head}");
            let Some(end) = up.until(b"0\r\nx-t: 1\r\n\r\n").await else {
                return;
            };
            let body: Vec<u8> = up.buf.drain(..end).collect();
            let body = String::from_utf8_lossy(&body).into_owned();
            assert!(body.contains("hello"), "{body}");
            up.send(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\ngrpc-status: 0\r\n\r\n",
            )
            .await;
        }
    })
    .await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    for _ in 0..2 {
        c.send("POST / HTTP/1.1\r\nHost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n")
            .await;
        let reply = c
            .read_next(|s| s.ends_with("\r\n\r\n") && s.contains("grpc-status"))
            .await;
        assert!(reply.contains("transfer-encoding: chunked"), "{reply}");
        assert!(
            reply.contains("3\r\nabc\r\n2\r\nde\r\n0\r\ngrpc-status: 0\r\n\r\n"),
            "{reply}"
        );
    }
    assert_eq!(up.accepted(), 1, "chunked exchanges keep the connection");
}

#[tokio::test]
async fn interim_responses_are_skipped_and_100_continue_answered_by_the_proxy() {
    let up = scripted(|mut up: Up| async move {
        while let Some(_head) = up.head().await {
            up.send("HTTP/1.1 100 Continue\r\n\r\n").await;
            let body = up.body(4).await;
            up.send("HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n")
                .await;
            up.send(&format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n{body}"
            ))
            .await;
        }
    })
    .await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    c.send("PUT / HTTP/1.1\r\nHost: t\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
        .await;
    let interim = c.read_next(|s| s.ends_with("\r\n\r\n")).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    c.send("ping").await;
    let reply = c.read_next(|s| s.ends_with("ping")).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(!reply.contains("103"), "{reply}");
}

#[tokio::test]
async fn bodyless_responses_keep_the_connection_in_step() {
    let up = scripted(|mut up: Up| async move {
        while let Some(head) = up.head().await {
            let answer = if head.starts_with("HEAD") {
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
            } else if head.starts_with("GET /204") {
                "HTTP/1.1 204 No Content\r\n\r\n"
            } else if head.starts_with("GET /304") {
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n"
            } else {
                "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlast"
            };
            up.send(answer).await;
        }
    })
    .await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    c.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let reply = c.read_next(|s| s.ends_with("\r\n\r\n")).await;
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.contains("content-length: 5"),
        "{reply}"
    );
    let reply = c.get("/204", "\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 204"), "{reply}");
    let reply = c.get("/304", "\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 304"), "{reply}");
    let reply = c.get("/last", "last").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(up.accepted(), 1, "no body was expected where none came");
}

#[tokio::test]
async fn http_1_0_and_closing_upstream_connections_are_not_reused() {
    let up = scripted(|mut up: Up| async move {
        while let Some(head) = up.head().await {
            if head.starts_with("GET /old") {
                up.send("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            } else {
                up.send("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        }
    })
    .await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    c.get("/old", "ok").await;
    c.get("/old", "ok").await;
    c.get("/close", "ok").await;
    c.get("/close", "ok").await;
    assert_eq!(up.accepted(), 4, "each request had a connection of its own");
    let requests_per_connection: Vec<usize> = up.seen().iter().map(|(n, _)| *n).collect();
    assert_eq!(requests_per_connection, [0, 1, 2, 3]);
}

#[tokio::test]
async fn an_upgrade_tunnels_bytes_read_ahead_and_after() {
    let up = scripted(|mut up: Up| async move {
        let Some(head) = up.head().await else { return };
        assert!(head.contains("upgrade: echo"), "{head}");
        // The first tunnelled bytes come in the same write as the 101.
        up.send("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\nhello ")
            .await;
        let mut buf = [0u8; 1024];
        while let Ok(n) = up.stream.read(&mut buf).await {
            if n == 0 || up.stream.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    })
    .await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    c.send("GET /ws HTTP/1.1\r\nHost: t\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await;
    let reply = c.read_next(|s| s.ends_with("hello ")).await;
    assert!(
        reply.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{reply}"
    );
    c.send("ping").await;
    let echoed = c.read_next(|s| s.ends_with("ping")).await;
    assert_eq!(echoed, "ping");
}

#[tokio::test]
async fn a_response_head_that_is_not_http_is_a_502() {
    let up = scripted(|mut up: Up| async move {
        if up.head().await.is_some() {
            up.send("SSH-2.0-OpenSSH\r\n\r\n").await;
        }
    })
    .await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    let reply = c.get("/", "\n").await;
    assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
    assert!(
        reply.contains("lameduck-error: upstream-protocol-error"),
        "{reply}"
    );
}

/// An upstream that answers `101` to whatever it is sent, then echoes the
/// bytes that follow as a tunnel (never parsing them as requests).
async fn always_101(mut up: Up) {
    let Some(head) = up.head().await else { return };
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |n| n.trim().parse().unwrap_or(0));
    let _ = up.body(length).await;
    up.send("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await;
    let mut buf = [0u8; 1024];
    while let Ok(n) = up.stream.read(&mut buf).await {
        if n == 0 || up.stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn an_upgrade_request_with_a_body_is_not_upgraded_and_nothing_after_it_is_parsed() {
    let up = scripted(always_101).await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    c.send(
        "POST /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: echo\r\n\
         Content-Length: 5\r\n\r\nhello\
         GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    assert!(c.closed().await, "the connection ends after the answer");
    let reply = String::from_utf8_lossy(&c.seen).into_owned();
    assert!(reply.starts_with("HTTP/1.1 502 "), "{reply}");
    assert!(
        reply.contains("lameduck-error: upstream-protocol-error"),
        "{reply}"
    );
    assert!(!reply.contains("smuggled"), "{reply}");
    let heads: Vec<String> = up.seen().into_iter().map(|(_, h)| h).collect();
    assert_eq!(
        heads.len(),
        1,
        "one request reached the upstream: {heads:?}"
    );
    assert!(heads[0].starts_with("POST /ws "), "{heads:?}");
    assert!(
        !heads[0].to_ascii_lowercase().contains("upgrade"),
        "forwarded without the upgrade: {heads:?}"
    );
}

#[tokio::test]
async fn a_101_to_a_request_that_asked_for_no_upgrade_is_a_502() {
    let up = scripted(always_101).await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    let reply = c.get("/", "upstream-protocol-error\n").await;
    assert!(reply.starts_with("HTTP/1.1 502 "), "{reply}");
}

#[tokio::test]
async fn after_a_101_the_connection_is_a_tunnel_never_parsed_again() {
    let up = scripted(always_101).await;
    let p = proxy_to(&up).await;
    let mut c = Raw::connect(p.addr).await;
    c.send("GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
        .await;
    let reply = c.read_next(|s| s.ends_with("\r\n\r\n")).await;
    assert!(reply.starts_with("HTTP/1.1 101 "), "{reply}");
    let inner = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    c.send(inner).await;
    let echoed = c.read_next(|s| s.ends_with(inner)).await;
    assert_eq!(echoed, inner, "tunnelled as bytes, not answered");
    assert_eq!(up.seen().len(), 1, "the upstream parsed one head only");
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn an_open_tunnel_shows_in_the_active_upgraded_metric() {
    let up = scripted(always_101).await;
    let p = proxy_to(&up).await;
    let gauge = || async {
        let m = support::admin(p.admin, "GET", "/metrics", "").await.body;
        m.lines()
            .find_map(|l| l.strip_prefix("lameduck_proxy_open_upgraded_streams "))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(gauge().await.as_deref(), Some("0"));
    let mut c = Raw::connect(p.addr).await;
    c.send("GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
        .await;
    let reply = c.read_next(|s| s.ends_with("\r\n\r\n")).await;
    assert!(reply.starts_with("HTTP/1.1 101 "), "{reply}");
    support::eventually("the gauge to count the tunnel", 5, || async {
        gauge().await.as_deref() == Some("1")
    })
    .await;
    drop(c);
    support::eventually("the gauge to drop", 5, || async {
        gauge().await.as_deref() == Some("0")
    })
    .await;
}
