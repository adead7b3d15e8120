//! A Eureka client: what `lameduck run`/`prestop` need to register, heartbeat,
//! mark an instance DOWN and cancel it, and what `lameduck proxy` needs to keep
//! a pool of upstreams current (full fetch, delta, hashcode reconciliation, and
//! lameduck's change feed).
//!
//! It speaks JSON to any Eureka server (Netflix, Spring Cloud, `lameduck
//! registry`) over plain HTTP/1.1 with keepalive, on `lameduck-http1`'s client
//! connection (the strict parser the proxy uses; the request runs in the
//! caller's task, and an idle connection is only its socket). Every call is
//! bounded by the client's timeout, so a slow registry never holds a drain;
//! retries and backoff are the caller's choice, because only the caller knows
//! its budget. The one retry made here is the keepalive race: a request whose
//! pooled connection turns out closed before anything was answered is sent
//! again on a new connection, within the same timeout.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{header, header::HeaderValue, Method, Request, StatusCode};
use lameduck_http1::{
    body::{self, Body},
    client::{self as http1, Failure, Outgoing},
};
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::model::{hashcode, BadInput, Instance, Status};
use crate::Error;

/// Idle connections kept per client (clones share them).
const MAX_IDLE: usize = 4;

/// A connection pool to one Eureka server.
#[derive(Debug, Clone)]
pub struct Client {
    base: BaseUrl,
    idle: Arc<Idle>,
    timeout: Duration,
}

/// The idle keepalive connections of a [`Client`] and its clones.
#[derive(Debug, Default)]
struct Idle(Mutex<Vec<http1::Conn>>);

impl Idle {
    /// An idle connection that is still open, if any.
    fn take(&self) -> Option<http1::Conn> {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(conn) = idle.pop() {
            if !conn.is_stale() {
                return Some(conn);
            }
        }
        None
    }
}

impl http1::Pool for Idle {
    fn put_idle(&self, conn: http1::Conn, max_idle: usize) {
        let mut idle = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < max_idle {
            idle.push(conn);
        }
    }
}

/// `http://[user:password@]host:port/path/`, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BaseUrl {
    authority: String,
    path: String,
    authorization: Option<String>,
}

impl BaseUrl {
    fn parse(url: &str) -> Result<BaseUrl, Error> {
        let bad = || Error::BadUrl(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let path = format!("/{}", path.trim_matches('/'));
        let path = if path == "/" {
            path
        } else {
            format!("{path}/")
        };
        let authorization = userinfo.map(|u| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(u)
            )
        });
        Ok(BaseUrl {
            authority: host.to_string(),
            path,
            authorization,
        })
    }

    fn url(&self, rest: &str) -> String {
        format!("http://{}{}{rest}", self.authority, self.path)
    }

    /// The address to connect to: the authority, with port 80 if it has none.
    fn connect_to(&self) -> String {
        let after_ip = self.authority.rfind(']').map_or(0, |i| i + 1);
        match self.authority[after_ip..].contains(':') {
            true => self.authority.clone(),
            false => format!("{}:80", self.authority),
        }
    }
}

/// What a renewal told the client to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewed {
    /// The lease is renewed.
    Yes,
    /// The server does not know the instance (or has older data): register again.
    RegisterAgain,
}

/// An answer of the change feed.
#[derive(Debug, Clone, PartialEq)]
pub enum Changes {
    /// The changes (maybe none) and the version to ask from next.
    Delta(Applications),
    /// The version asked from is too old: fetch the full registry.
    Gone,
}

/// A full registry or a delta, as a flat list of instances.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applications {
    /// `versions__delta`.
    pub version: u64,
    /// `apps__hashcode`: of the full registry, also in a delta.
    pub hashcode: String,
    /// The instances (with `action` set in a delta).
    pub instances: Vec<Instance>,
}

impl Applications {
    /// Reads `{"applications": {...}}`; an application or instance list may be
    /// a single object, as some servers write it.
    pub fn from_value(doc: &Value) -> Result<Applications, BadInput> {
        let apps = doc
            .get("applications")
            .ok_or_else(|| BadInput("no \"applications\" object".into()))?;
        let text = |k: &str| apps.get(k).and_then(Value::as_str).unwrap_or("");
        let mut instances = Vec::new();
        for app in one_or_many(apps.get("application")) {
            for i in one_or_many(app.get("instance")) {
                instances.push(Instance::from_value(i)?);
            }
        }
        Ok(Applications {
            version: text("versions__delta").parse().unwrap_or(0),
            hashcode: text("apps__hashcode").to_string(),
            instances,
        })
    }
}

fn one_or_many(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    }
}

/// A client's local copy of the registry, kept current by deltas and checked
/// against the server's hashcode, as Eureka clients do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// `(APP, id)` → instance.
    pub instances: BTreeMap<(String, String), Instance>,
    /// The version of the last full fetch or delta applied.
    pub version: u64,
}

impl Snapshot {
    /// A snapshot of a full fetch.
    pub fn full(apps: Applications) -> Snapshot {
        let mut s = Snapshot {
            version: apps.version,
            ..Snapshot::default()
        };
        for i in apps.instances {
            s.instances.insert((i.app.clone(), i.id.clone()), i);
        }
        s
    }

    /// Applies a delta. Returns false when the result's hashcode differs from
    /// the server's: the caller must then fetch the full registry.
    pub fn apply(&mut self, delta: &Applications) -> bool {
        use crate::model::Action;
        for i in &delta.instances {
            let key = (i.app.clone(), i.id.clone());
            match i.action {
                Some(Action::Deleted) => {
                    self.instances.remove(&key);
                }
                _ => {
                    self.instances.insert(key, i.clone());
                }
            }
        }
        self.version = self.version.max(delta.version);
        self.hashcode() == delta.hashcode
    }

    /// The reconcile hashcode of this copy.
    pub fn hashcode(&self) -> String {
        hashcode(self.instances.values().map(|i| i.status))
    }

    /// The UP instances of `app`.
    pub fn up(&self, app: &str) -> impl Iterator<Item = &Instance> {
        let app = app.to_ascii_uppercase();
        self.instances
            .values()
            .filter(move |i| i.app == app && i.status == Status::Up)
    }
}

impl Client {
    /// A client for the server at `base_url` (`http://host:8761/eureka/`; a
    /// `user:password@` in it is sent as basic auth). Each call gives up after
    /// `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Client, Error> {
        Ok(Client {
            base: BaseUrl::parse(base_url)?,
            idle: Arc::default(),
            timeout,
        })
    }

    /// `POST /apps/APP`: registers (or re-registers) `instance`.
    pub async fn register(&self, instance: &Instance) -> Result<(), Error> {
        let body = json!({"instance": instance.to_value()});
        let path = format!("apps/{}", enc(&instance.app));
        self.expect(Method::POST, &path, Some(body), &[StatusCode::NO_CONTENT])
            .await
            .map(drop)
    }

    /// `PUT /apps/APP/ID`: renews the lease.
    pub async fn renew(
        &self,
        app: &str,
        id: &str,
        last_dirty: Option<u64>,
    ) -> Result<Renewed, Error> {
        let mut path = format!("apps/{}/{}", enc(app), enc(id));
        if let Some(d) = last_dirty {
            path.push_str(&format!("?status=UP&lastDirtyTimestamp={d}"));
        }
        let ok = [StatusCode::OK, StatusCode::NOT_FOUND];
        let (status, _) = self.expect(Method::PUT, &path, None, &ok).await?;
        Ok(if status == StatusCode::OK {
            Renewed::Yes
        } else {
            Renewed::RegisterAgain
        })
    }

    /// `PUT /apps/APP/ID/status?value=S`: sets a status override (DOWN at the
    /// start of a drain).
    pub async fn set_status(&self, app: &str, id: &str, status: Status) -> Result<(), Error> {
        let path = format!("apps/{}/{}/status?value={status}", enc(app), enc(id));
        self.expect(Method::PUT, &path, None, &[StatusCode::OK])
            .await
            .map(drop)
    }

    /// `DELETE /apps/APP/ID/status[?value=S]`: removes the override.
    pub async fn delete_status_override(
        &self,
        app: &str,
        id: &str,
        status: Option<Status>,
    ) -> Result<(), Error> {
        let mut path = format!("apps/{}/{}/status", enc(app), enc(id));
        if let Some(s) = status {
            path.push_str(&format!("?value={s}"));
        }
        self.expect(Method::DELETE, &path, None, &[StatusCode::OK])
            .await
            .map(drop)
    }

    /// `DELETE /apps/APP/ID`: cancels the lease. Returns false when the server
    /// did not know the instance (already gone, which is fine for a drain).
    pub async fn cancel(&self, app: &str, id: &str) -> Result<bool, Error> {
        let path = format!("apps/{}/{}", enc(app), enc(id));
        let ok = [StatusCode::OK, StatusCode::NOT_FOUND];
        let (status, _) = self.expect(Method::DELETE, &path, None, &ok).await?;
        Ok(status == StatusCode::OK)
    }

    /// `GET /apps`: the full registry.
    pub async fn fetch_full(&self) -> Result<Applications, Error> {
        self.fetch_applications("apps/").await
    }

    /// `GET /apps/delta`: the changes of the last three minutes.
    pub async fn fetch_delta(&self) -> Result<Applications, Error> {
        self.fetch_applications("apps/delta").await
    }

    /// lameduck's change feed: the changes after `version`, waiting up to
    /// `wait` for one. Only `lameduck registry` serves it (others answer 404).
    pub async fn changes(&self, version: u64, wait: Duration) -> Result<Changes, Error> {
        let path = format!(
            "lameduck/changes?after={version}&wait={}",
            wait.as_secs_f64()
        );
        let ok = [StatusCode::OK, StatusCode::GONE];
        let deadline = wait + self.timeout;
        let (status, body) = self
            .request(Method::GET, &path, None, deadline, &ok)
            .await?;
        if status == StatusCode::GONE {
            return Ok(Changes::Gone);
        }
        self.applications(&path, &body).map(Changes::Delta)
    }

    /// `GET /apps/APP`: the app's instances, or `None` when it is not registered.
    pub async fn fetch_app(&self, app: &str) -> Result<Option<Vec<Instance>>, Error> {
        let path = format!("apps/{}", enc(app));
        let ok = [StatusCode::OK, StatusCode::NOT_FOUND];
        let (status, body) = self.expect(Method::GET, &path, None, &ok).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let wrapped: Value = serde_json::from_slice(&body).map_err(|e| Error::Body {
            url: self.base.url(&path),
            reason: e.to_string(),
        })?;
        let doc = json!({"applications": {"application": wrapped["application"].clone()}});
        let apps = self.applications_from(&path, &doc)?;
        Ok(Some(apps.instances))
    }

    /// The instance of `app` registered for `ip:port`, if any: how a drain finds
    /// the id of an app that registered itself (Spring's ids vary by setup).
    pub async fn find_instance(
        &self,
        app: &str,
        ip: &str,
        port: u16,
    ) -> Result<Option<Instance>, Error> {
        let instances = self.fetch_app(app).await?.unwrap_or_default();
        Ok(instances
            .into_iter()
            .find(|i| i.ip_addr == ip && i.port.port == port))
    }

    async fn fetch_applications(&self, path: &str) -> Result<Applications, Error> {
        let (_, body) = self
            .expect(Method::GET, path, None, &[StatusCode::OK])
            .await?;
        self.applications(path, &body)
    }

    fn applications(&self, path: &str, body: &[u8]) -> Result<Applications, Error> {
        let doc: Value = serde_json::from_slice(body).map_err(|e| Error::Body {
            url: self.base.url(path),
            reason: e.to_string(),
        })?;
        self.applications_from(path, &doc)
    }

    fn applications_from(&self, path: &str, doc: &Value) -> Result<Applications, Error> {
        Applications::from_value(doc).map_err(|reason| Error::Body {
            url: self.base.url(path),
            reason: reason.0,
        })
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        ok: &[StatusCode],
    ) -> Result<(StatusCode, Bytes), Error> {
        self.request(method, path, body, self.timeout, ok).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
        ok: &[StatusCode],
    ) -> Result<(StatusCode, Bytes), Error> {
        let url = self.base.url(path);
        let failed = |reason: String| Error::Request {
            url: url.clone(),
            reason,
        };
        let req = self
            .build(method, path, body)
            .map_err(|e| failed(e.to_string()))?;
        let call = async {
            let resp = self.send(req, timeout).await.map_err(&failed)?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| failed(e.to_string()))?
                .to_bytes();
            Ok::<_, Error>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| failed(format!("no answer within {timeout:?}")))??;
        if !ok.contains(&status) {
            return Err(Error::Status {
                url,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            });
        }
        Ok((status, bytes))
    }

    /// Sends `req` on an idle connection, or a new one when there is none or
    /// the idle one was closed before it answered (the keepalive race: nothing
    /// reached the server, so sending again is safe even for a POST). The head
    /// must come within `timeout` (the call's: a change-feed request waits
    /// longer than the others).
    async fn send(
        &self,
        req: Request<Body>,
        timeout: Duration,
    ) -> Result<hyper::Response<Body>, String> {
        let mut out = Outgoing::new(req, false);
        let home = || {
            Some(http1::Home {
                pool: Arc::clone(&self.idle) as Arc<dyn http1::Pool>,
                max_idle: MAX_IDLE,
            })
        };
        while let Some(conn) = self.idle.take() {
            match http1::send(conn, &mut out, timeout, home()).await {
                Ok((response, raw)) => return Ok(with_fields(response, raw)),
                Err(Failure::NotSent | Failure::NoResponse) if out.replayable() => {}
                Err(failure) => return Err(failure.to_string()),
            }
        }
        let io = TcpStream::connect(self.base.connect_to())
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let _ = io.set_nodelay(true);
        match http1::send(http1::Conn::new(io), &mut out, timeout, home()).await {
            Ok((response, raw)) => Ok(with_fields(response, raw)),
            Err(failure) => Err(failure.to_string()),
        }
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Request<Body>, hyper::http::Error> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base.path))
            .header(header::HOST, &self.base.authority)
            .header(header::ACCEPT, "application/json");
        if let Some(auth) = &self.base.authorization {
            req = req.header(header::AUTHORIZATION, auth);
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(&v).expect("a Value always serializes"))
            }
            None => Bytes::new(),
        };
        req = req.header(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        req.body(body::full(body))
    }
}

/// The response with all its fields in its map (the client reads
/// `Content-Type` and the like from it, never copies them on).
fn with_fields(
    mut response: hyper::Response<Body>,
    raw: Option<lameduck_http1::raw::RawFields>,
) -> hyper::Response<Body> {
    if let Some(raw) = raw {
        raw.append_to(response.headers_mut());
    }
    response
}

/// Keeps `instance` registered with `client` until `stop` resolves: registers,
/// renews every `interval` (at least 1 ms), and registers again whenever a renewal is answered
/// 404 (the registry restarted, evicted it, or wants fresher data). Failures are
/// logged and retried at the next tick. It does not cancel: the caller decides
/// when (after marking the instance DOWN and waiting for routers, in a drain).
/// This is the sidecar loop for apps that do not speak Eureka themselves.
pub async fn keep_registered(
    client: &Client,
    instance: &Instance,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    // tokio's interval panics on zero; a caller may pass anything.
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = false;
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {}
        }
        let result = if registered {
            client
                .renew(&instance.app, &instance.id, Some(instance.last_dirty))
                .await
                .map(|r| r == Renewed::Yes)
        } else {
            client.register(instance).await.map(|()| true)
        };
        registered = match result {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(app = %instance.app, id = %instance.id, "{e}");
                registered
            }
        };
    }
}

/// Runs `op` until it succeeds, fails in a way a retry cannot fix, or
/// `deadline` passes (each try is cut at the deadline too). Between tries it
/// waits `backoff`, doubling up to one second. This is how a drain talks to a
/// registry that is slow or down without ever holding the drain past its share
/// of the budget: the last error comes back, and the drain goes on.
pub async fn retry<T, F, Fut>(
    deadline: tokio::time::Instant,
    mut backoff: Duration,
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    loop {
        let err = match tokio::time::timeout_at(deadline, op()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if !e.is_retryable() => return Err(e),
            Ok(Err(e)) => e,
            Err(_) => return Err(Error::Deadline),
        };
        let next = tokio::time::Instant::now() + backoff;
        if next >= deadline {
            return Err(err);
        }
        tracing::debug!("{err}; retrying in {backoff:?}");
        tokio::time::sleep_until(next).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Percent-encodes a path segment (ids such as `host:app:8080` are safe, `/` is not).
fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Action;

    #[test]
    fn base_urls_are_split_with_their_credentials() {
        let b = BaseUrl::parse("http://u:p@127.0.0.1:8761/eureka").unwrap();
        assert_eq!(b.authority, "127.0.0.1:8761");
        assert_eq!(b.url("apps/"), "http://127.0.0.1:8761/eureka/apps/");
        assert_eq!(b.authorization.as_deref(), Some("Basic dTpw"));
        let root = BaseUrl::parse("http://h:1").unwrap();
        assert_eq!(root.url("apps/"), "http://h:1/apps/");
        assert!(BaseUrl::parse("https://h/eureka/").is_err());
        assert!(BaseUrl::parse("http:///eureka/").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_at_the_deadline_with_the_last_error() {
        let start = tokio::time::Instant::now();
        let mut tries = 0;
        let result: Result<(), Error> = retry(
            start + Duration::from_secs(2),
            Duration::from_millis(100),
            || {
                tries += 1;
                async {
                    Err(Error::Status {
                        url: "u".into(),
                        status: 503,
                        body: String::new(),
                    })
                }
            },
        )
        .await;
        assert!(matches!(result, Err(Error::Status { status: 503, .. })));
        // 0, 0.1, 0.3, 0.7, 1.5 s: the next try would start after the deadline.
        assert_eq!(tries, 5);
        assert!(start.elapsed() <= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_at_an_error_a_retry_cannot_fix() {
        let start = tokio::time::Instant::now();
        let mut tries = 0;
        let result: Result<(), Error> = retry(
            start + Duration::from_secs(2),
            Duration::from_millis(100),
            || {
                tries += 1;
                async {
                    Err(Error::Status {
                        url: "u".into(),
                        status: 400,
                        body: String::new(),
                    })
                }
            },
        )
        .await;
        assert!(result.is_err());
        assert_eq!(tries, 1);
    }

    /// A server on 127.0.0.1 that answers `200` with an empty body to each
    /// request head, `per_conn` requests per connection at most (then it
    /// closes without saying so, as a server's idle timeout does), and
    /// counts the connections it accepted. `per_conn == 0`: never answers.
    async fn server(per_conn: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut io, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut answered = 0;
                    let mut chunk = [0u8; 1024];
                    while let Ok(n @ 1..) = io.read(&mut chunk).await {
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            if per_conn == 0 {
                                continue;
                            }
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            io.write_all(ok).await.unwrap();
                            answered += 1;
                            if answered == per_conn {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn calls_share_one_keepalive_connection() {
        let (url, accepted) = server(100).await;
        let client = Client::new(&url, Duration::from_secs(5)).unwrap();
        for _ in 0..3 {
            assert!(client.cancel("web", "a").await.unwrap());
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_pooled_connection_the_server_closed_is_replaced_not_an_error() {
        let (url, accepted) = server(1).await;
        let client = Client::new(&url, Duration::from_secs(5)).unwrap();
        for _ in 0..3 {
            assert!(client.cancel("web", "a").await.unwrap());
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_never_answers_fails_the_call_at_the_timeout() {
        let (url, _) = server(0).await;
        let client = Client::new(&url, Duration::from_secs(2)).unwrap();
        let start = tokio::time::Instant::now();
        let err = client.cancel("web", "a").await.unwrap_err();
        assert!(matches!(err, Error::Request { .. }), "{err}");
        assert!(err.is_retryable());
        assert!(
            start.elapsed() >= Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_feed_answer_may_take_longer_than_the_client_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut io, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = io.read(&mut buf).await;
            // A long poll: the change (here, "too old") comes after 2 s.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let gone = b"HTTP/1.1 410 Gone\r\ncontent-length: 0\r\n\r\n";
            io.write_all(gone).await.unwrap();
        });
        let client = Client::new(&url, Duration::from_secs(1)).unwrap();
        let changes = client.changes(7, Duration::from_secs(3)).await;
        assert_eq!(changes.unwrap(), Changes::Gone);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(enc("h:web:8080"), "h:web:8080");
        assert_eq!(enc("a/b c"), "a%2Fb%20c");
    }

    fn inst(id: &str, status: Status, action: Option<Action>) -> Instance {
        let mut i = Instance::from_body(&json!({"instance": {
            "instanceId": id, "hostName": id, "app": "web", "ipAddr": "127.0.0.1",
            "dataCenterInfo": {"name": "MyOwn"},
        }}))
        .unwrap();
        i.status = status;
        i.action = action;
        i
    }

    #[test]
    fn a_snapshot_follows_deltas_and_checks_the_hashcode() {
        let mut s = Snapshot::full(Applications {
            version: 2,
            hashcode: "UP_2_".into(),
            instances: vec![inst("a", Status::Up, None), inst("b", Status::Up, None)],
        });
        let delta = Applications {
            version: 4,
            hashcode: "DOWN_1_".into(),
            instances: vec![
                inst("a", Status::Down, Some(Action::Modified)),
                inst("b", Status::Up, Some(Action::Deleted)),
            ],
        };
        assert!(s.apply(&delta));
        assert_eq!(s.version, 4);
        assert_eq!(s.up("web").count(), 0);
        // A delta that does not add up asks for a full fetch.
        let wrong = Applications {
            hashcode: "UP_7_".into(),
            ..Applications::default()
        };
        assert!(!s.apply(&wrong));
    }

    #[test]
    fn single_objects_are_read_as_lists() {
        let doc = json!({"applications": {"versions__delta": "3", "apps__hashcode": "UP_1_",
            "application": {"name": "WEB", "instance": inst("a", Status::Up, None).to_value()}}});
        let apps = Applications::from_value(&doc).unwrap();
        assert_eq!((apps.version, apps.instances.len()), (3, 1));
    }
}
