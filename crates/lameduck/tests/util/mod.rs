//! Small helpers for the black-box tests: start lameduck on a fixture app, send
//! it signals, read what the fixture recorded, probe the admin endpoints.

#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

pub use lameduck_testkit::{monotonic_ns, proc_ppid, proc_state, wait_for};
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

/// The default deadline for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub fn lameduck_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lameduck"))
}

/// `ld-fixture`, built next to `lameduck` by the testkit package.
pub fn fixture() -> PathBuf {
    let path = lameduck_bin().with_file_name("ld-fixture");
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace`",
        path.display()
    );
    path
}

/// A scratch directory removed at drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lameduck-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `lameduck` with its stderr captured to a file.
pub struct Lameduck {
    pub child: Child,
    pub stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Lameduck {
    /// Starts `lameduck ARGS…` (stdin null, stderr to `dir/stderr`).
    pub fn start(dir: &Scratch, args: &[&str]) -> Lameduck {
        Lameduck::start_cmd(dir, Command::new(lameduck_bin()).args(args))
    }

    pub fn start_cmd(dir: &Scratch, cmd: &mut Command) -> Lameduck {
        let stderr = dir.path("stderr");
        let file = std::fs::File::create(&stderr).expect("stderr file");
        let child = cmd
            .stdin(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start lameduck");
        Lameduck {
            child,
            stderr,
            status: None,
        }
    }

    /// Wraps a process started elsewhere (e.g. lameduck inside `script`).
    pub fn adopt(child: Child, stderr: PathBuf) -> Lameduck {
        Lameduck {
            child,
            stderr,
            status: None,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).expect("signal lameduck");
    }

    /// Sends a raw signal number (real-time signals included).
    pub fn signal_raw(&self, sig: i32) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for lameduck to exit and returns its exit code (panics after the deadline).
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        if let Some(s) = self.status {
            return s.code().expect("exit code");
        }
        let child = &mut self.child;
        let status = wait_for("lameduck to exit", timeout, || {
            child.try_wait().expect("try_wait")
        });
        self.status = Some(status);
        status
            .code()
            .unwrap_or_else(|| panic!("lameduck died of a signal: {status:?}\n{}", self.log()))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        wait_for(&format!("log line {needle:?}"), DEADLINE, || {
            self.log().contains(needle).then_some(())
        });
    }
}

impl Drop for Lameduck {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(-(self.child.id() as i32)), Signal::SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the fixture wrote: `READY pid`, then `SIGNAME ns` per signal.
pub struct Record(pub PathBuf);

impl Record {
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits for `READY` and returns the fixture's PID.
    pub fn wait_ready(&self) -> i32 {
        wait_for("fixture READY", DEADLINE, || {
            self.lines()
                .iter()
                .find_map(|l| l.strip_prefix("READY ")?.parse().ok())
        })
    }

    /// Monotonic times at which the fixture got `name` (e.g. "TERM").
    pub fn times(&self, name: &str) -> Vec<u64> {
        self.lines()
            .iter()
            .filter_map(|l| {
                let (sig, ns) = l.split_once(' ')?;
                (sig == name).then(|| ns.parse().ok()).flatten()
            })
            .collect()
    }

    pub fn got(&self, name: &str) -> bool {
        !self.times(name).is_empty()
    }

    /// Waits until the fixture got `name`; returns when (monotonic ns).
    pub fn wait_signal(&self, name: &str, timeout: Duration) -> u64 {
        wait_for(&format!("fixture to get {name}"), timeout, || {
            self.times(name).first().copied()
        })
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `GET path` on 127.0.0.1:port; returns the status code, or `None` if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path, None)
}

/// One HTTP/1.1 request (`body` as JSON when given) on a new connection.
pub fn http(port: u16, method: &str, path: &str, json: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = json.unwrap_or("");
    let content = if json.is_some() {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{content}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// Milliseconds between two monotonic timestamps.
pub fn ms_between(from_ns: u64, to_ns: u64) -> f64 {
    (to_ns as f64 - from_ns as f64) / 1e6
}

pub fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A minimal HTTP/1.1 upstream on 127.0.0.1 that answers every request with
/// `body` and closes the connection. Runs until the test process ends.
pub fn http_upstream(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// An upstream on 127.0.0.1 that answers every request with `body` and keeps
/// the connection, so a proxy out of descriptors can still reuse it.
pub fn keepalive_upstream(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    port
}

/// One GET on an open keepalive connection; true when a whole 200 came back
/// (its body delimited by `Content-Length`).
pub fn get_on(conn: &mut TcpStream, path: &str) -> bool {
    if write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
        return false;
    }
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return head.starts_with("http/1.1 200 ");
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Resident memory of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// CPU time (user + system) of `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
}

/// lameduck run with 64 file descriptors (`prlimit`) and more connections
/// queued on its main and admin listeners than it can accept, watched for
/// three seconds while a connection opened before keeps sending requests.
pub struct Starved {
    pub ld: Lameduck,
    /// Requests answered on the connection opened before.
    pub served: u32,
    /// CPU ticks lameduck used in the three seconds.
    pub ticks: u64,
}

impl Starved {
    pub fn run(dir: &Scratch, args: &[&str], main: u16, admin: u16, path: &str) -> Starved {
        let ld = Lameduck::start_cmd(
            dir,
            Command::new("prlimit")
                .args(["--nofile=64:64", "--"])
                .arg(lameduck_bin())
                .args(args),
        );
        let mut open = wait_for("lameduck up", DEADLINE, || {
            let mut c = TcpStream::connect(("127.0.0.1", main)).ok()?;
            c.set_read_timeout(Some(DEADLINE)).ok()?;
            get_on(&mut c, path).then_some(c)
        });
        // More connections than descriptors, on both listeners; held open.
        let _held: Vec<TcpStream> = (0..100)
            .map(|i| if i % 4 == 0 { admin } else { main })
            .filter_map(|port| TcpStream::connect(("127.0.0.1", port)).ok())
            .collect();
        ld.wait_log("accept failed");
        let (before, started) = (cpu_ticks(ld.child.id()), Instant::now());
        let mut served = 0;
        while started.elapsed() < Duration::from_secs(3) {
            assert!(
                get_on(&mut open, path),
                "an open connection is still served"
            );
            served += 1;
            std::thread::sleep(Duration::from_millis(50)); // pacing, not waiting
        }
        let ticks = cpu_ticks(ld.child.id()) - before;
        Starved { ld, served, ticks }
    }

    /// Few warnings, little CPU, and the open connection served all along.
    pub fn assert_calm(&self) {
        let log = self.ld.log();
        let warnings = log.matches("accept failed").count();
        eprintln!(
            "out of descriptors: {} requests served, {warnings} warnings, {} CPU ticks in 3 s",
            self.served, self.ticks
        );
        assert!(self.served >= 10, "served {}", self.served);
        assert!(warnings <= 4, "{warnings} warnings:\n{log}");
        // 3 s of a core is 300 ticks at 100 Hz: a spinning accept loop takes them all.
        assert!(self.ticks < 60, "{} ticks of CPU in 3 s", self.ticks);
    }
}

/// Starts `lameduck registry` on a free port; returns it and the port.
pub fn registry(dir: &Scratch) -> (Lameduck, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let reg = Lameduck::start(dir, &["registry", "--listen", &listen]);
    wait_for("registry up", DEADLINE, || http_get(port, "/eureka/apps"));
    (reg, port)
}
