//! A small HTTP/1.1 server that fails on command, to prove that a client (or a
//! proxy) sees and names each failure exactly.
//!
//! Every request gets an [`Action`], chosen by a plan from the request's number
//! (0, 1, 2, … in arrival order across all connections) and its path. The plan
//! [`Action::from_path`] lets a URL say what to do (`/close`, `/reset-mid-body`,
//! `/status/503`, `/delay/200`, …), handy from a shell. The server runs on its
//! own thread and runtime, so sync and async tests use it alike; it stops when
//! dropped. It reads each request completely before acting, so a close is a
//! clean FIN (never a reset caused by unread bytes) unless a reset is asked for.

use std::{
    net::{SocketAddr, TcpListener as StdListener},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};
use tokio_rustls::TlsAcceptor;

/// What the server does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `200 OK` with a 2-byte body.
    Ok,
    /// A response with this status and a short body.
    Status(u16),
    /// Close the connection (FIN) without answering.
    Close,
    /// Reset the connection (RST, SO_LINGER 0) without answering.
    Reset,
    /// Send the head and part of the body, then reset the connection.
    ResetMidBody,
    /// Announce a 100-byte body, send 10 bytes, then close cleanly (FIN).
    Truncate,
    /// Wait this long, then answer `200 OK`.
    Delay(Duration),
    /// `200 OK` with a chunked body and a trailer.
    Chunked,
    /// HTTP/2: reset the stream with REFUSED_STREAM (HTTP/1.1: like `Reset`).
    RefusedStream,
    /// HTTP/2: reset the stream with INTERNAL_ERROR (HTTP/1.1: like `Reset`).
    StreamReset,
    /// gRPC: end the call with this `grpc-status` (HTTP/1.1: a 200).
    GrpcStatus(u16),
    /// gRPC health: answer NOT_SERVING (HTTP/1.1: a 200).
    NotServing,
    /// WebSocket: answer with a clean Close frame, 1001 Going Away (HTTP: a 200).
    WsGoingAway,
}

impl Action {
    /// The action a path asks for: `/close`, `/reset`, `/reset-mid-body`,
    /// `/truncate`, `/chunked`, `/refused-stream`, `/stream-reset`,
    /// `/status/CODE`, `/delay/MILLIS`; anything else
    /// is [`Action::Ok`].
    pub fn from_path(path: &str) -> Action {
        let path = path.split('?').next().unwrap_or("");
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let arg = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok());
        match (parts.next(), parts.next()) {
            (Some("close"), _) => Action::Close,
            (Some("reset"), _) => Action::Reset,
            (Some("reset-mid-body"), _) => Action::ResetMidBody,
            (Some("truncate"), _) => Action::Truncate,
            (Some("chunked"), _) => Action::Chunked,
            (Some("refused-stream"), _) => Action::RefusedStream,
            (Some("stream-reset"), _) => Action::StreamReset,
            (Some("status"), code) => match arg(code).and_then(|c| u16::try_from(c).ok()) {
                Some(code) => Action::Status(code),
                None => Action::Ok,
            },
            (Some("delay"), ms) => Action::Delay(Duration::from_millis(arg(ms).unwrap_or(0))),
            _ => Action::Ok,
        }
    }
}

/// Chooses the action for request number `n` with path `path`.
pub type Plan = dyn Fn(u64, &str) -> Action + Send + Sync;

/// A byte stream the server answers on: plain TCP or TLS over TCP. `tcp()`
/// gives the socket under it, to reset the connection (SO_LINGER 0).
trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Socket for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// A server certificate for `127.0.0.1` and `localhost`, self-signed.
pub struct TestCert {
    /// The certificate in PEM, to trust as a CA (`--cacert`).
    pub pem: String,
    acceptor: TlsAcceptor,
    h2_acceptor: TlsAcceptor,
}

impl TestCert {
    /// Makes a fresh key and certificate.
    pub fn new() -> TestCert {
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let key = rcgen::generate_simple_self_signed(names).expect("generate a test certificate");
        let private = rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], private.into())
            .expect("a valid test certificate");
        let mut h2_config = config.clone();
        h2_config.alpn_protocols = vec![b"h2".to_vec()];
        TestCert {
            pem: key.cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
            h2_acceptor: TlsAcceptor::from(Arc::new(h2_config)),
        }
    }
}

impl std::fmt::Debug for TestCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCert")
            .field("pem", &self.pem)
            .finish_non_exhaustive()
    }
}

impl Default for TestCert {
    fn default() -> Self {
        TestCert::new()
    }
}

/// A running failure-injection server on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct InjectServer {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InjectServer {
    /// Starts a server whose actions come from `plan(request number, path)`.
    pub fn start(plan: impl Fn(u64, &str) -> Action + Send + Sync + 'static) -> InjectServer {
        InjectServer::start_with(plan, Kind::Plain)
    }

    /// Like [`InjectServer::start`], but speaks TLS with `cert` (use
    /// `https://` URLs: [`InjectServer::url`] gives `http://`).
    pub fn start_tls(
        plan: impl Fn(u64, &str) -> Action + Send + Sync + 'static,
        cert: &TestCert,
    ) -> InjectServer {
        InjectServer::start_with(plan, Kind::Tls(cert.acceptor.clone()))
    }

    /// Like [`InjectServer::start`], but speaks HTTP/2 without TLS (h2c, prior
    /// knowledge). Supports `Ok`, `Status`, `Delay`, `RefusedStream`,
    /// `StreamReset`, `Close` (FIN, no GOAWAY), `ResetMidBody` (head, part of
    /// the body, RST_STREAM) and `Truncate` (head, part of the body, then a
    /// clean close); for gRPC calls (content-type
    /// `application/grpc`) `Ok` is a SERVING health answer, and `NotServing`
    /// and `GrpcStatus` answer as they say.
    pub fn start_h2(plan: impl Fn(u64, &str) -> Action + Send + Sync + 'static) -> InjectServer {
        InjectServer::start_with(plan, Kind::H2)
    }

    /// A WebSocket server (`ws://`): each message gets its action. `Ok` echoes
    /// it, `WsGoingAway` closes cleanly with 1001, `Close` drops the connection
    /// without a Close frame (the client sees 1006), `Reset` resets it.
    pub fn start_ws(plan: impl Fn(u64, &str) -> Action + Send + Sync + 'static) -> InjectServer {
        InjectServer::start_with(plan, Kind::Ws)
    }

    /// Like [`InjectServer::start_h2`], over TLS with `cert`, choosing `h2` by ALPN.
    pub fn start_h2_tls(
        plan: impl Fn(u64, &str) -> Action + Send + Sync + 'static,
        cert: &TestCert,
    ) -> InjectServer {
        InjectServer::start_with(plan, Kind::H2Tls(cert.h2_acceptor.clone()))
    }

    /// An HTTP/2 (h2c) server that answers the first stream of every connection
    /// with GOAWAY(last stream id 0, NO_ERROR): that stream was provably not
    /// processed. Written at the frame level, because a real HTTP/2 server
    /// counts a stream it has read as processed.
    pub fn start_h2_goaway() -> InjectServer {
        InjectServer::start_with(|_, _| Action::Close, Kind::H2GoAway)
    }

    fn start_with(
        plan: impl Fn(u64, &str) -> Action + Send + Sync + 'static,
        kind: Kind,
    ) -> InjectServer {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("listener address");
        let requests = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = oneshot::channel();
        let plan: Arc<Plan> = Arc::new(plan);
        let counters = (requests.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test server runtime");
            rt.block_on(serve(listener, plan, counters, kind, stopped));
        });
        InjectServer {
            addr,
            requests,
            connections,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Starts a server whose actions come from the request paths.
    pub fn by_path() -> InjectServer {
        InjectServer::start(|_, path| Action::from_path(path))
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many complete requests it has read.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for InjectServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the server speaks.
#[derive(Clone)]
enum Kind {
    Plain,
    Tls(TlsAcceptor),
    H2,
    H2Tls(TlsAcceptor),
    H2GoAway,
    Ws,
}

async fn serve(
    listener: StdListener,
    plan: Arc<Plan>,
    (requests, connections): (Arc<AtomicU64>, Arc<AtomicU64>),
    kind: Kind,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_nodelay(true);
                    let (plan, requests) = (plan.clone(), requests.clone());
                    match kind.clone() {
                        Kind::Plain => drop(tokio::spawn(connection(stream, plan, requests))),
                        Kind::Tls(tls) => drop(tokio::spawn(async move {
                            if let Ok(stream) = tls.accept(stream).await {
                                connection(stream, plan, requests).await;
                            }
                        })),
                        Kind::H2 => drop(tokio::spawn(h2_connection(stream, plan, requests))),
                        Kind::H2Tls(tls) => drop(tokio::spawn(async move {
                            if let Ok(stream) = tls.accept(stream).await {
                                h2_connection(stream, plan, requests).await;
                            }
                        })),
                        Kind::H2GoAway => drop(tokio::spawn(goaway_connection(stream, requests))),
                        Kind::Ws => drop(tokio::spawn(ws_connection(stream, plan, requests))),
                    }
                }
            }
        }
    }
}

async fn connection(mut stream: impl Socket, plan: Arc<Plan>, requests: Arc<AtomicU64>) {
    let mut buf = Vec::new();
    while let Some(path) = read_request(&mut stream, &mut buf).await {
        let n = requests.fetch_add(1, Ordering::SeqCst);
        if act(&mut stream, plan(n, &path)).await.is_err() {
            return;
        }
    }
}

/// Carries out `action`; `Err` when the connection is finished.
async fn act(stream: &mut impl Socket, action: Action) -> Result<(), ()> {
    let bytes = match action {
        Action::Ok | Action::GrpcStatus(_) | Action::NotServing | Action::WsGoingAway => {
            response(200, "ok")
        }
        Action::Status(code) => response(code, "injected"),
        Action::Delay(d) => {
            tokio::time::sleep(d).await;
            response(200, "ok")
        }
        Action::Chunked => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            3\r\nabc\r\n5;ext=1\r\ndefgh\r\n0\r\nX-Trailer: 1\r\n\r\n"
            .to_vec(),
        Action::Close => return Err(()),
        Action::Reset | Action::RefusedStream | Action::StreamReset => {
            let _ = stream.tcp().set_zero_linger();
            return Err(());
        }
        Action::ResetMidBody => {
            let _ = stream.write_all(&partial_response()).await;
            let _ = stream.flush().await;
            let _ = stream.tcp().set_zero_linger();
            return Err(());
        }
        Action::Truncate => {
            let _ = stream.write_all(&partial_response()).await;
            let _ = stream.shutdown().await; // TLS: close_notify, then FIN
            return Err(());
        }
    };
    stream.write_all(&bytes).await.map_err(|_| ())?;
    stream.flush().await.map_err(|_| ())
}

fn response(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} Injected\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A head announcing 100 body bytes, and the first 10 of them.
fn partial_response() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec()
}

/// Reads one request (head and Content-Length body); its path, or `None` at
/// the end of the connection.
async fn read_request(stream: &mut impl Socket, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = request.parse(buf) {
            let path = request.path.unwrap_or("/").to_string();
            let body = content_length(request.headers);
            buf.drain(..len);
            read_body(stream, buf, body).await?;
            return Some(path);
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn content_length(headers: &[httparse::Header<'_>]) -> usize {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .unwrap_or(0)
}

async fn read_body(stream: &mut impl Socket, buf: &mut Vec<u8>, len: usize) -> Option<()> {
    while buf.len() < len {
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.drain(..len);
    Some(())
}

/// HTTP/2: each stream gets its action; responses are sent from their own
/// task so the connection keeps being driven.
async fn h2_connection<S: H2Socket>(stream: S, plan: Arc<Plan>, requests: Arc<AtomicU64>) {
    // A second handle on the socket, to close it cleanly under the h2 state
    // machine: FIN, then read what the client still sends, so no unread byte
    // turns the close into a reset.
    let Some((stream, mut spare)) = stream.split_handle() else {
        return;
    };
    let Ok(mut conn) = h2::server::handshake(stream).await else {
        return;
    };
    while let Some(Ok((request, mut respond))) = conn.accept().await {
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let action = plan(n, request.uri().path());
        let grpc = request
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        match action {
            Action::Ok if grpc => grpc_respond(respond, 1, 0),
            Action::NotServing => grpc_respond(respond, 2, 0),
            Action::GrpcStatus(code) => grpc_respond(respond, 0, code),
            Action::Close => {
                if let Some(spare) = spare.as_mut() {
                    let _ = spare.shutdown().await;
                    drain(spare).await;
                }
                return;
            }
            Action::RefusedStream => respond.send_reset(h2::Reason::REFUSED_STREAM),
            Action::StreamReset | Action::Reset => respond.send_reset(h2::Reason::INTERNAL_ERROR),
            Action::ResetMidBody => {
                // HEADERS, part of the body, then RST_STREAM, in that order.
                if let Some(mut body) = h2_partial(&mut respond) {
                    body.send_reset(h2::Reason::INTERNAL_ERROR);
                }
            }
            Action::Truncate => {
                // HEADERS and part of the body; the connection writes them on
                // its next poll; then a clean close (FIN) under the stream.
                let _body = h2_partial(&mut respond);
                let flush = Duration::from_millis(50);
                while let Ok(Some(Ok(_))) = tokio::time::timeout(flush, conn.accept()).await {}
                if let Some(spare) = spare.as_mut() {
                    let _ = spare.shutdown().await;
                    drain(spare).await;
                }
                return;
            }
            Action::Ok | Action::Chunked | Action::WsGoingAway => h2_respond(respond, 200),
            Action::Status(code) => h2_respond(respond, code),
            Action::Delay(d) => drop(tokio::spawn(async move {
                tokio::time::sleep(d).await;
                h2_respond(respond, 200);
            })),
        }
    }
}

/// A gRPC health answer: `serving` (1 SERVING, 2 NOT_SERVING) and `grpc-status`
/// in the trailers; a non-zero status is a trailers-only answer.
fn grpc_respond(mut respond: h2::server::SendResponse<bytes::Bytes>, serving: u8, code: u16) {
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc");
    if code != 0 {
        let head = head
            .header("grpc-status", code)
            .body(())
            .expect("a valid response");
        let _ = respond.send_response(head, true);
        return;
    }
    let Ok(mut body) = respond.send_response(head.body(()).expect("a valid response"), false)
    else {
        return;
    };
    let message = bytes::Bytes::from(vec![0, 0, 0, 0, 2, 0x08, serving]);
    let _ = body.send_data(message, false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = body.send_trailers(trailers);
}

/// What HTTP/2 runs on: plain TCP (with a spare handle for a clean close) or
/// TLS (closed through the TLS session: no spare).
trait H2Socket: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    fn split_handle(self) -> Option<(Self, Option<TcpStream>)>;
}

impl H2Socket for TcpStream {
    fn split_handle(self) -> Option<(Self, Option<TcpStream>)> {
        let std = self.into_std().ok()?;
        let spare = std.try_clone().ok()?;
        Some((
            TcpStream::from_std(std).ok()?,
            Some(TcpStream::from_std(spare).ok()?),
        ))
    }
}

impl H2Socket for tokio_rustls::server::TlsStream<TcpStream> {
    fn split_handle(self) -> Option<(Self, Option<TcpStream>)> {
        Some((self, None))
    }
}

/// Sends a head announcing 100 body bytes and the first 10 of them.
fn h2_partial(
    respond: &mut h2::server::SendResponse<bytes::Bytes>,
) -> Option<h2::SendStream<bytes::Bytes>> {
    let head = http::Response::builder()
        .status(200)
        .header("content-length", "100")
        .body(())
        .expect("a valid response");
    let mut body = respond.send_response(head, false).ok()?;
    body.send_data(bytes::Bytes::from_static(b"0123456789"), false)
        .ok()?;
    Some(body)
}

fn h2_respond(mut respond: h2::server::SendResponse<bytes::Bytes>, status: u16) {
    let response = http::Response::builder()
        .status(status)
        .header("content-length", "2")
        .body(())
        .expect("a valid response");
    if let Ok(mut body) = respond.send_response(response, false) {
        let _ = body.send_data(bytes::Bytes::from_static(b"ok"), true);
    }
}

/// HTTP/2 at the frame level: SETTINGS, then GOAWAY(0) on the first HEADERS.
async fn goaway_connection(mut stream: TcpStream, requests: Arc<AtomicU64>) {
    const SETTINGS: [u8; 9] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    const GOAWAY: [u8; 17] = [0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const PREFACE: usize = 24;
    if stream.write_all(&SETTINGS).await.is_err() {
        return;
    }
    let mut buf = Vec::new();
    let mut pos = PREFACE;
    loop {
        // Frames: 3 bytes length, 1 type, 1 flags, 4 stream id, payload.
        while buf.len() >= pos + 9 {
            let len = u32::from_be_bytes([0, buf[pos], buf[pos + 1], buf[pos + 2]]) as usize;
            if buf[pos + 3] == 0x1 {
                requests.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(&GOAWAY).await;
                drain(&mut stream).await;
                return;
            }
            pos += 9 + len;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads until the peer closes (at most 5 s), so closing sends FIN, not RST.
async fn drain(stream: &mut TcpStream) {
    let mut chunk = [0u8; 4096];
    let read_all = async {
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read_all).await;
}

/// WebSocket: every data message gets its action.
async fn ws_connection(stream: TcpStream, plan: Arc<Plan>, requests: Arc<AtomicU64>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if !(message.is_text() || message.is_binary()) {
            continue;
        }
        let n = requests.fetch_add(1, Ordering::SeqCst);
        match plan(n, "/") {
            Action::WsGoingAway => {
                let frame = CloseFrame {
                    code: CloseCode::Away,
                    reason: "going away".into(),
                };
                let _ = ws.close(Some(frame)).await;
                let drain = async { while let Some(Ok(_)) = ws.next().await {} };
                let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
                return;
            }
            Action::Close => return,
            Action::Reset | Action::ResetMidBody => {
                let _ = ws.get_ref().set_zero_linger();
                return;
            }
            _ => {
                if ws.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}
