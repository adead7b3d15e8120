//! The reload test of issue 3, as a test: nginx on loopback proxying to a
//! second nginx, the proxy reloaded every 200 ms under 50 keepalive
//! connections. nginx loses requests on each reload (it closes idle keepalive
//! connections under its clients); `lameduck load` must show them, by outcome,
//! inside the window of the `--during` command, and account for every request.
//!
//! Needs nginx on PATH, so it is ignored by default:
//! `cargo test -p lameduck --test tests nginx_reload -- --ignored`.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// Two nginx instances in a temporary directory, stopped on drop.
struct Nginx {
    dir: PathBuf,
    proxy_port: u16,
}

impl Nginx {
    fn start() -> Nginx {
        let dir = std::env::temp_dir().join(format!("ld-nginx-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (backend_port, proxy_port) = (free_port(), free_port());
        for (name, conf) in [
            ("backend", backend_conf(&dir, backend_port)),
            ("proxy", proxy_conf(&dir, proxy_port, backend_port)),
        ] {
            std::fs::create_dir_all(dir.join(name).join("logs")).unwrap();
            std::fs::write(dir.join(name).join("nginx.conf"), conf).unwrap();
            let status = nginx(&dir, name, &[]).status().expect("nginx on PATH");
            assert!(status.success(), "nginx {name} did not start");
        }
        let nginx = Nginx { dir, proxy_port };
        lameduck_testkit::wait_for("nginx to answer", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", nginx.proxy_port)).ok()
        });
        nginx
    }

    fn reload_command(&self, seconds: u32) -> String {
        let conf = self.dir.join("proxy/nginx.conf");
        let prefix = self.dir.join("proxy");
        format!(
            "end=$(( $(date +%s) + {seconds} )); while [ $(date +%s) -lt $end ]; do \
             nginx -p {} -c {} -s reload 2>/dev/null; sleep 0.2; done",
            prefix.display(),
            conf.display()
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        for name in ["proxy", "backend"] {
            let _ = nginx(&self.dir, name, &["-s", "stop"]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx(dir: &Path, name: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(dir.join(name));
    cmd.arg("-c").arg(dir.join(name).join("nginx.conf"));
    cmd.args(extra);
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn backend_conf(dir: &Path, port: u16) -> String {
    let d = dir.join("backend").display().to_string();
    format!(
        "worker_processes 1; pid {d}/nginx.pid; error_log {d}/logs/error.log warn;
         events {{ worker_connections 1024; }}
         http {{ access_log off; keepalive_requests 10000000;
           server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }} }}"
    )
}

fn proxy_conf(dir: &Path, port: u16, backend: u16) -> String {
    let d = dir.join("proxy").display().to_string();
    format!(
        "worker_processes 2; pid {d}/nginx.pid; error_log {d}/logs/error.log warn;
         events {{ worker_connections 1024; }}
         http {{ access_log off; keepalive_requests 10000000;
           upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
           server {{ listen 127.0.0.1:{port};
             location / {{ proxy_pass http://backend; proxy_http_version 1.1;
                           proxy_set_header Connection \"\"; }} }} }}"
    )
}

#[test]
#[ignore = "needs nginx on PATH"]
fn nginx_reloads_lose_requests_and_the_timeline_shows_when() {
    let nginx = Nginx::start();
    let json = nginx.dir.join("report.json");
    let url = format!("http://127.0.0.1:{}/", nginx.proxy_port);
    let out = Command::new(env!("CARGO_BIN_EXE_lameduck"))
        .args([
            "load",
            "-c",
            "50",
            "-d",
            "8s",
            "--warmup",
            "1s",
            "--cooldown",
            "1s",
        ])
        .args(["--bucket", "500ms", "--during", &nginx.reload_command(3)])
        .arg(format!("--json={}", json.display()))
        .arg(&url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "losses fail the run: {stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let summary = &report["summary"];
    let outcomes = summary["outcomes"].as_object().unwrap();
    let sum: u64 = outcomes.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(
        sum,
        summary["requests"].as_u64().unwrap(),
        "every request accounted"
    );
    assert!(
        summary["failures"].as_u64().unwrap() > 0,
        "reloads lose requests: {stdout}"
    );

    let at = |kind: &str| -> f64 {
        let events = report["events"].as_array().unwrap();
        let event = events.iter().find(|e| e["kind"] == kind).unwrap();
        event["at_s"].as_f64().unwrap()
    };
    let (start, end) = (at("during_start"), at("during_end"));
    for bucket in report["timeline"].as_array().unwrap() {
        let t = bucket["start_s"].as_f64().unwrap();
        if bucket["failures"].as_u64().unwrap() > 0 {
            assert!(
                t + 0.5 >= start && t <= end + 0.5,
                "failures at {t}s, outside {start}..{end}"
            );
        }
    }
}
