//! Helpers for the registry's tests: a registry on 127.0.0.1:0 in its own
//! runtime thread, plain HTTP/1.1 requests, and the real Eureka clients.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use lameduck_drain::Phase;
use lameduck_registry::Config;
pub use lameduck_testkit::wait_for;
use serde_json::{json, Value};
use tokio::sync::watch;

/// The default deadline for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A registry serving on loopback until dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    phase: watch::Sender<Phase>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(config: Config) -> Server {
        Server::start_on("127.0.0.1:0".parse().unwrap(), config)
    }

    /// Starts on `addr` (a fixed port, to restart a registry in place).
    pub fn start_on(addr: SocketAddr, config: Config) -> Server {
        let api = std::net::TcpListener::bind(addr).expect("bind the API");
        let admin = std::net::TcpListener::bind("127.0.0.1:0").expect("bind admin");
        let (addr, admin_addr) = (api.local_addr().unwrap(), admin.local_addr().unwrap());
        api.set_nonblocking(true).unwrap();
        admin.set_nonblocking(true).unwrap();
        let (tx, rx) = watch::channel(Phase::Serving);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let api = tokio::net::TcpListener::from_std(api).unwrap();
                let admin = tokio::net::TcpListener::from_std(admin).unwrap();
                lameduck_registry::serve(config, api, Some(admin), rx)
                    .await
                    .unwrap();
            });
        });
        Server {
            addr,
            admin: admin_addr,
            phase: tx,
            thread: Some(thread),
        }
    }

    /// The base URL a Eureka client is given.
    pub fn url(&self) -> String {
        format!("http://{}/eureka/", self.addr)
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    /// True once `serve` has returned.
    pub fn stopped(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops at once (terminate phase) and waits for the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.phase.send_replace(Phase::Terminate);
        if let Some(t) = self.thread.take() {
            wait_for("the registry to stop", DEADLINE, || {
                t.is_finished().then_some(())
            });
            t.join().expect("registry thread");
        }
    }

    /// A metric's value from `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        metric_at(self.admin, name)
    }
}

/// A metric's value from `/metrics` on the admin address `admin`.
pub fn metric_at(admin: SocketAddr, name: &str) -> u64 {
    {
        let text = get(admin, "/metrics", &[]).text();
        let line = format!("lameduck_registry_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a new connection (`Connection: close`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut stream = TcpStream::connect(addr).expect("connect to the registry");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    parse_response(&raw)
}

/// Parses one whole HTTP/1.1 response with a Content-Length body.
pub fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    http(addr, "GET", path, headers, b"")
}

pub fn get_json(addr: SocketAddr, path: &str) -> Resp {
    get(addr, path, &[("Accept", "application/json")])
}

/// A register body as Spring Cloud sends it (JSON).
pub fn instance_json(app: &str, id: &str, port: u16) -> Value {
    json!({"instance": {
        "instanceId": id,
        "hostName": "127.0.0.1",
        "app": app,
        "ipAddr": "127.0.0.1",
        "status": "UP",
        "overriddenStatus": "UNKNOWN",
        "port": {"$": port, "@enabled": "true"},
        "securePort": {"$": 443, "@enabled": "false"},
        "countryId": 1,
        "dataCenterInfo": {
            "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
            "name": "MyOwn"
        },
        "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
        "metadata": {"@class": "java.util.LinkedHashMap", "zone": "a"},
        "vipAddress": app.to_lowercase(),
        "secureVipAddress": format!("{}-secure", app.to_lowercase()),
        "lastDirtyTimestamp": "1700000000000",
    }})
}

/// Registers `APP/ID` on `port` (eureka-js-client tells instances apart by
/// host and port, so each test instance gets its own port).
pub fn register(addr: SocketAddr, app: &str, id: &str, port: u16) -> Resp {
    let body = instance_json(app, id, port).to_string();
    http(
        addr,
        "POST",
        &format!("/eureka/apps/{app}"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// The ids and statuses in an applications document (JSON).
pub fn listed(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for app in doc["applications"]["application"].as_array().unwrap() {
        for i in app["instance"].as_array().unwrap() {
            out.push((
                i["instanceId"].as_str().unwrap().to_string(),
                i["status"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// Where `.ci/setup-eureka-clients.sh` installs the real clients.
pub fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/eureka-clients")
}

/// The installed client at `path`; on a fresh checkout, installs the clients
/// first with `.ci/setup-eureka-clients.sh` (pip and npm, pinned versions), once
/// per test run, so `cargo test --workspace` works on its own.
fn require(path: PathBuf, what: &str) -> PathBuf {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    if !path.exists() {
        INSTALL.call_once(|| {
            let script =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/setup-eureka-clients.sh");
            eprintln!(
                "installing the real Eureka clients with {}",
                script.display()
            );
            let ok = Command::new("bash")
                .arg(&script)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "{} failed: see its output above", script.display());
        });
    }
    assert!(
        path.exists(),
        "{what} is not installed ({} is missing): run .ci/setup-eureka-clients.sh",
        path.display()
    );
    path
}

/// A real Eureka client running one of the scripts in `tests/clients/`,
/// answering commands on stdin with JSON lines on stdout.
pub struct RealClient {
    child: Child,
    stdin: ChildStdin,
    lines: Arc<Mutex<Vec<Value>>>,
    seq: u64,
}

impl RealClient {
    /// py-eureka-client, through `tests/clients/py_client.py`.
    pub fn python(url: &str, app: &str, id: &str) -> RealClient {
        let python = require(clients_dir().join("venv/bin/python"), "py-eureka-client");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/py_client.py");
        RealClient::spawn(Command::new(python).arg(script).args([url, app, id]))
    }

    /// eureka-js-client, through `tests/clients/js_client.js`.
    pub fn node(url: &str, app: &str, id: &str) -> RealClient {
        let modules = require(
            clients_dir().join("node_modules/eureka-js-client"),
            "eureka-js-client",
        );
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/js_client.js");
        RealClient::spawn(
            Command::new("node")
                .env("NODE_PATH", modules.parent().unwrap())
                .arg(script)
                .args([url, app, id]),
        )
    }

    fn spawn(cmd: &mut Command) -> RealClient {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the client script");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str(&line) {
                    Ok(v) => sink.lock().unwrap().push(v),
                    Err(_) => eprintln!("client: {line}"),
                }
            }
        });
        RealClient {
            child,
            stdin,
            lines,
            seq: 0,
        }
    }

    /// Sends `cmd` and waits for its answer.
    pub fn ask(&mut self, cmd: &str) -> Value {
        self.seq += 1;
        let seq = self.seq;
        writeln!(self.stdin, "{seq} {cmd}").expect("write to the client");
        self.stdin.flush().unwrap();
        wait_for(&format!("the client's answer to {cmd:?}"), DEADLINE, || {
            let lines = self.lines.lock().unwrap();
            lines.iter().find(|l| l["seq"] == seq).cloned()
        })
    }

    /// The (app, id, status) the client's own registry copy holds.
    pub fn view(&mut self) -> Vec<(String, String, String)> {
        let answer = self.ask("apps");
        answer["instances"]
            .as_array()
            .unwrap_or_else(|| panic!("no instances in {answer}"))
            .iter()
            .map(|i| {
                let s = |k: &str| i[k].as_str().unwrap_or("").to_string();
                (s("app"), s("id"), s("status"))
            })
            .collect()
    }

    /// Waits for the process to exit and returns whether it succeeded.
    pub fn wait_exit(&mut self) -> bool {
        let child = &mut self.child;
        wait_for("the client to exit", DEADLINE, || {
            child.try_wait().unwrap().map(|s| s.success())
        })
    }
}

impl Drop for RealClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
