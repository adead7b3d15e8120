//! The listener as a client sees it: the probe listener answers the three
//! probes and nothing else, the admin listener asks for the token off the
//! probes, and a shutdown closes the listener.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use hyper::{body::Incoming, Request, StatusCode};
use lameduck_admin::{text, Metrics, Options, Reply, Role, Routes, Token};
use lameduck_drain::BoxFuture;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

#[derive(Debug)]
struct Part {
    ready: AtomicBool,
    token: Option<Token>,
    metrics: Metrics,
}

impl Routes for Part {
    fn ready(&self) -> BoxFuture<'_, Result<(), lameduck_admin::NotReady>> {
        let ready = self.ready.load(Ordering::SeqCst);
        Box::pin(async move { ready.then_some(()).ok_or_else(|| "draining (drain)".into()) })
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }

    fn token(&self) -> Option<Token> {
        self.token.clone()
    }

    fn admin(&self, req: Request<Incoming>) -> BoxFuture<'_, Option<Reply>> {
        let found = req.uri().path() == "/change";
        Box::pin(async move { found.then(|| text(StatusCode::OK, "changed\n")) })
    }
}

async fn start(
    role: Role,
    token: Option<&str>,
) -> (
    SocketAddr,
    Arc<Part>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let part = Arc::new(Part {
        ready: AtomicBool::new(true),
        token: token.and_then(Token::new),
        metrics: Metrics::new("test"),
    });
    let options = Options {
        role,
        part: "test",
        header_read_timeout: Duration::from_secs(5),
        not_found: "try elsewhere",
        token_from: "TEST_TOKEN",
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(lameduck_admin::serve(
        listener,
        options,
        Arc::clone(&part),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, part, stop, task)
}

/// One request on its own connection: the status and the whole response.
async fn request(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out)
}

#[tokio::test]
async fn the_probe_listener_serves_the_probes_and_nothing_else() {
    let (addr, part, _stop, _task) = start(Role::Probe, None).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(request(addr, "GET", path, None).await.0, 200, "GET {path}");
        let (status, head) = request(addr, "HEAD", path, None).await;
        assert_eq!(status, 200, "HEAD {path}");
        assert!(
            head.ends_with("\r\n\r\n"),
            "a HEAD answer has no body: {head:?}"
        );
        let (status, reply) = request(addr, "PUT", path, None).await;
        assert_eq!(status, 405, "PUT {path}");
        assert!(reply.contains("allow: GET, HEAD\r\n"), "{reply}");
    }
    let (status, reply) = request(addr, "GET", "/change", None).await;
    assert_eq!(status, 404, "the admin route is not on the probe listener");
    assert!(reply.contains("try elsewhere"), "{reply}");
    part.ready.store(false, Ordering::SeqCst);
    let (status, reply) = request(addr, "GET", "/readyz", None).await;
    assert_eq!(status, 503);
    assert!(reply.ends_with("draining (drain)\n"), "{reply}");
    let (_, metrics) = request(addr, "GET", "/metrics", None).await;
    assert!(
        metrics.contains("content-type: text/plain; version=0.0.4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_a_token_the_admin_listener_asks_for_it_off_the_probes() {
    let (addr, _part, _stop, _task) = start(Role::Admin, Some("s3cret")).await;
    for token in [None, Some("wrong"), Some("s3cre")] {
        let (status, reply) = request(addr, "POST", "/change", token).await;
        assert_eq!(status, 401, "token {token:?}");
        assert!(reply.contains("www-authenticate: Bearer\r\n"), "{reply}");
        assert!(reply.contains("TEST_TOKEN"), "{reply}");
    }
    assert_eq!(
        request(addr, "GET", "/readyz", None).await.0,
        200,
        "probes stay open"
    );
    assert_eq!(
        request(addr, "POST", "/change", Some("s3cret")).await.0,
        200
    );
    assert_eq!(request(addr, "POST", "/other", Some("s3cret")).await.0, 404);
}

#[tokio::test]
async fn a_shutdown_closes_the_listener() {
    let (addr, _part, stop, task) = start(Role::Probe, None).await;
    assert_eq!(request(addr, "GET", "/healthz", None).await.0, 200);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returns after the shutdown")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
