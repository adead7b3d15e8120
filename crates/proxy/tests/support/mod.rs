//! Test support: upstream servers, clients, and a proxy started in-process on
//! 127.0.0.1 port 0, driven by `Control` messages instead of signals.

#![allow(dead_code, unreachable_pub)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{body::Incoming, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lameduck_proxy::{Config, Control, Exit, Source};
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};

/// A test upstream: answers `NAME path` (and `x-upstream: NAME`) and echoes
/// what the proxy sent.
///
/// - `/slow?ms=N` answers after N ms;
/// - `/echo` answers with the request body;
/// - `/headers` answers with the request headers, one per line.
pub struct Upstream {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn upstream(name: &'static str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&requests);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    count.fetch_add(1, Ordering::SeqCst);
                    answer(name, req)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        requests,
        task,
    }
}

async fn answer(
    name: &'static str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = match path.as_str() {
        "/slow" => {
            let ms: u64 = query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            format!("{name} slow")
        }
        "/echo" => {
            let bytes = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        "/headers" => {
            let mut lines: Vec<String> = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                .collect();
            lines.sort();
            lines.join("\n")
        }
        _ => format!("{name} {path}"),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert("x-upstream", hyper::header::HeaderValue::from_static(name));
    Ok(response)
}

/// A proxy running in this process.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The probe listener, when the config has one.
    pub probe: Option<SocketAddr>,
    pub control: mpsc::UnboundedSender<Control>,
    pub task: JoinHandle<Exit>,
}

/// Starts a proxy from TOML whose `listen` addresses may be port 0.
pub async fn proxy_toml(toml: &str) -> Proxy {
    let config = Config::from_toml(toml).expect("test config is valid");
    proxy(config).await
}

pub async fn proxy(config: Config) -> Proxy {
    let bound = lameduck_proxy::bind(Source::Inline(Box::new(config)))
        .await
        .expect("bind");
    let addr = bound.listener_addrs()[0].1;
    let admin = bound
        .admin_addr()
        .expect("tests configure an admin address");
    let probe = bound.probe_addr();
    let (control, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(bound.run(rx));
    Proxy {
        addr,
        admin,
        probe,
        control,
        task,
    }
}

/// A config with one listener and one upstream `app` on `endpoints`.
pub fn config(endpoints: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "{extra}\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\n\
         [[route]]\nupstream = \"app\"\n\n[[upstream]]\nname = \"app\"\nendpoints = [{}]\n",
        list.join(", ")
    )
}

/// An HTTP/1.1 keepalive client connection.
pub struct H1 {
    pub send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub closed: JoinHandle<Result<(), hyper::Error>>,
}

pub async fn h1(addr: SocketAddr) -> H1 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    H1 {
        send,
        closed: tokio::spawn(conn),
    }
}

/// A reply, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl H1 {
    pub async fn get(&mut self, path: &str) -> Result<Reply, hyper::Error> {
        self.send(
            Request::get(path)
                .header("host", "test")
                .body(Full::default())
                .unwrap(),
        )
        .await
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Reply, hyper::Error> {
        self.send.ready().await?;
        read(self.send.send_request(req).await?).await
    }
}

pub async fn read(resp: Response<Incoming>) -> Result<Reply, hyper::Error> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// An h2c (prior knowledge) client connection.
pub struct H2 {
    pub send: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    pub closed: JoinHandle<Result<(), hyper::Error>>,
}

pub async fn h2(addr: SocketAddr) -> H2 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    H2 {
        send,
        closed: tokio::spawn(conn),
    }
}

impl H2 {
    pub async fn get(&mut self, path: &str) -> Result<Reply, hyper::Error> {
        let req = Request::get(format!("http://test{path}"))
            .body(Empty::new())
            .unwrap();
        self.send.ready().await?;
        read(self.send.send_request(req).await?).await
    }
}

/// One request on a new connection to the admin API.
pub async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    admin_as(addr, None, method, path, body).await
}

/// Like [`admin`], with `Authorization: Bearer TOKEN` when `token` is given.
pub async fn admin_as(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> Reply {
    let mut c = h1(addr).await;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    c.send(req).await.unwrap()
}

/// Polls `cond` until it holds, or panics after `secs` seconds.
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long a raw client waits for the proxy.
const RAW_WAIT: Duration = Duration::from_secs(5);

/// A raw client connection: bytes exactly as written, for what a well-behaved
/// HTTP client library would never send, and for reading the wire as it is.
pub struct Raw {
    stream: tokio::net::TcpStream,
    /// Everything read and not yet cleared.
    pub seen: Vec<u8>,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: tokio::net::TcpStream::connect(addr).await.unwrap(),
            seen: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes.as_ref()).await.unwrap();
    }

    /// Reads until `done` holds for everything read so far (or EOF), with a
    /// deadline; returns everything read.
    pub async fn read_until(&mut self, done: impl Fn(&str) -> bool) -> String {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + RAW_WAIT;
        let mut buf = [0u8; 8192];
        while !done(&String::from_utf8_lossy(&self.seen)) {
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .expect("the proxy answered in time")
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            self.seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Like [`Raw::read_until`], over what is read from now on only.
    pub async fn read_next(&mut self, done: impl Fn(&str) -> bool) -> String {
        self.seen.clear();
        self.read_until(done).await
    }

    /// One GET, answered with a body ending in `end`; returns that answer.
    pub async fn get(&mut self, path: &str, end: &str) -> String {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"))
            .await;
        self.read_next(|s| s.ends_with(end)).await
    }

    /// True when the proxy closes the connection (EOF or reset) in time.
    pub async fn closed(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(RAW_WAIT, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.seen.extend_from_slice(&buf[..n]),
                Err(_) => return false,
            }
        }
    }
}
