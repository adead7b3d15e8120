//! `lameduck rollout` and `lameduck demo` end to end: Kubernetes' termination
//! and rollout semantics against small manifests (read back from the JSON
//! report's pod events), and the demo's promise — naive setups lose
//! requests, the classic fix and lameduck lose none, lameduck is faster.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::util::{lameduck_bin, Scratch};

/// Runs `lameduck ARGS` to its end (killed after `limit`): exit code, stdout.
fn lameduck(args: &[&str], dir: &Path, limit: Duration) -> (i32, String) {
    let mut child = Command::new(lameduck_bin())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            panic!("lameduck {args:?} still running after {limit:?}; stderr:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    (status.code().unwrap_or(-1), out)
}

/// Plays `manifest` with no traffic and returns the JSON report.
fn play(name: &str, manifest: &str) -> Value {
    let dir = Scratch::new(name);
    std::fs::write(dir.path("m.yaml"), manifest).unwrap();
    let (code, out) = lameduck(
        &[
            "rollout",
            "m.yaml",
            "--no-load",
            "--ingress",
            "127.0.0.1:0",
            "--lag",
            "0.2s",
            "--warmup",
            "0s",
            "--cooldown",
            "0s",
            "--deadline",
            "60s",
            "--json",
            "r.json",
            "--out",
            "pods",
        ],
        &dir.0,
        Duration::from_secs(90),
    );
    let log = std::fs::read_to_string(dir.path("stderr.log")).unwrap_or_default();
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{log}");
    serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap()
}

/// Seconds at which `kind` happened to pods of `revision`, in order.
fn times(r: &Value, kind: &str, revision: u64) -> Vec<f64> {
    r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind && e["revision"] == revision)
        .map(|e| e["at_s"].as_f64().unwrap())
        .collect()
}

/// The first `kind` event of the pod of `revision` deleted first, relative to its deletion.
fn after_delete(r: &Value, kind: &str) -> Option<f64> {
    let events = r["events"].as_array().unwrap();
    let deleted = events
        .iter()
        .find(|e| e["kind"] == "deleted" && e["revision"] == 1)?;
    let pod = &deleted["pod"];
    let at = deleted["at_s"].as_f64()?;
    events
        .iter()
        .find(|e| e["kind"] == kind && &e["pod"] == pod)
        .map(|e| e["at_s"].as_f64().unwrap() - at)
}

fn manifest(replicas: u32, grace: u32, lifecycle: &str, command: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: t}}
spec:
  replicas: {replicas}
{extra_spec}  template:
    spec:
      terminationGracePeriodSeconds: {grace}
      containers:
        - name: app
          command: ["sh", "-c", "{command}"]
          readinessProbe:
            exec: {{command: ["true"]}}
            periodSeconds: 1
{lifecycle}"#
    )
}

const IGNORES_TERM: &str = "trap '' TERM; while :; do sleep 0.05; done";
const EXITS_ON_TERM: &str = "trap 'exit 0' TERM; while :; do sleep 0.05; done";

#[test]
fn rollout_sigkill_comes_at_the_grace_period_and_a_prestop_that_overran_gets_2s_more() {
    // preStop sleeps 10 s with a 2 s grace: the kubelet cuts it at 2 s, sends
    // SIGTERM (ignored), and SIGKILLs 2 s later.
    let lifecycle = "          lifecycle:\n            preStop:\n              exec: {command: [\"sleep\", \"10\"]}\n";
    let r = play("grace", &manifest(1, 2, lifecycle, IGNORES_TERM, ""));
    let signal = after_delete(&r, "stop_signal").expect("a stop signal");
    let killed = after_delete(&r, "killed").expect("a SIGKILL");
    assert!(
        (1.8..2.8).contains(&signal),
        "stop signal {signal:.2} s after deletion, want ~2 s"
    );
    assert!(
        (3.8..4.8).contains(&killed),
        "SIGKILL {killed:.2} s after deletion, want ~4 s (2 + 2)"
    );
}

#[test]
fn rollout_prestop_runs_before_the_stop_signal_and_no_sigkill_when_the_app_exits() {
    let lifecycle =
        "          lifecycle:\n            preStop:\n              sleep: {seconds: 1}\n";
    let r = play("prestop", &manifest(1, 10, lifecycle, EXITS_ON_TERM, ""));
    let pre = after_delete(&r, "pre_stop").expect("a preStop");
    let signal = after_delete(&r, "stop_signal").expect("a stop signal");
    let exited = after_delete(&r, "exited").expect("an exit");
    assert!(pre < 0.3, "preStop starts at deletion ({pre:.2} s)");
    assert!(
        (0.9..1.6).contains(&signal),
        "stop signal after the 1 s preStop ({signal:.2} s)"
    );
    assert!(
        exited >= signal && exited < signal + 1.0,
        "exits on SIGTERM ({exited:.2} s)"
    );
    assert_eq!(
        after_delete(&r, "killed"),
        None,
        "no SIGKILL for an app that exits"
    );
}

#[test]
fn rollout_max_surge_1_max_unavailable_0_keeps_every_replica_ready() {
    let spec = "  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}\n";
    let r = play("surge", &manifest(2, 5, "", EXITS_ON_TERM, spec));
    let ready_new = times(&r, "ready", 2);
    let deleted_old = times(&r, "deleted", 1);
    assert_eq!(ready_new.len(), 2, "two new pods became ready");
    assert_eq!(deleted_old.len(), 2, "two old pods were deleted");
    // Each old pod goes only after one more new pod is ready.
    for (i, d) in deleted_old.iter().enumerate() {
        assert!(
            *d >= ready_new[i],
            "old pod {i} deleted at {d:.2} s before new pod {i} was ready at {:.2} s",
            ready_new[i]
        );
    }
    // Never more than replicas + maxSurge pods not terminating at once: the
    // second new pod is created only after the first old one was deleted.
    let created_new = times(&r, "created", 2);
    assert_eq!(created_new.len(), 2);
    assert!(
        created_new[1] >= deleted_old[0],
        "surge of 1: {created_new:?} vs {deleted_old:?}"
    );
    assert!(r["rollout_seconds"].as_f64().is_some());
}

#[test]
fn rollout_bad_manifest_is_exit_2_naming_the_field() {
    let dir = Scratch::new("bad-manifest");
    let bad = manifest(
        1,
        5,
        "",
        EXITS_ON_TERM,
        "  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}\n",
    );
    std::fs::write(dir.path("m.yaml"), bad).unwrap();
    let (code, _) = lameduck(&["rollout", "m.yaml"], &dir.0, Duration::from_secs(20));
    let log = std::fs::read_to_string(dir.path("stderr.log")).unwrap();
    assert_eq!(code, 2, "{log}");
    assert!(
        log.contains("maxUnavailable") && log.contains("may not be 0"),
        "{log}"
    );
}

#[test]
fn demo_naive_loses_requests_lameduck_loses_none_in_both_modes_and_is_faster_than_the_classic_fix()
{
    let dir = Scratch::new("demo");
    let (code, out) = lameduck(
        &["demo", "--out", "out", "--json", "demo.json"],
        &dir.0,
        Duration::from_secs(180),
    );
    let log = std::fs::read_to_string(dir.path("stderr.log")).unwrap_or_default();
    assert_eq!(
        code, 0,
        "the demo's verdict; stdout:\n{out}\nstderr:\n{log}"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("demo.json")).unwrap()).unwrap();
    let rows = json["scenarios"].as_array().unwrap();
    let lost = |name: &str| -> u64 {
        rows.iter()
            .filter(|r| r["name"] == name)
            .map(|r| r["failed"].as_u64().unwrap())
            .sum()
    };
    let secs = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r["rollout_seconds"].as_f64())
            .unwrap()
    };
    assert!(lost("naive") > 0, "the naive rollout loses requests\n{out}");
    assert!(
        lost("shell-pid1") > 0,
        "the shell PID 1 rollout loses requests\n{out}"
    );
    assert_eq!(lost("classic"), 0, "{out}");
    assert_eq!(lost("lameduck"), 0, "{out}");
    assert!(secs("classic") >= 2.0 * secs("lameduck"), "{out}");
    for proto in ["http1", "http2", "ws", "grpc"] {
        let row = rows
            .iter()
            .find(|r| r["name"] == "lameduck" && r["protocol"] == proto)
            .unwrap();
        assert!(
            row["requests"].as_u64().unwrap() > 50,
            "{proto} traffic was sent: {row}"
        );
    }
    let html = std::fs::read_to_string(dir.path("out/report.html")).unwrap();
    assert_eq!(
        html.matches("<svg class=\"timeline\"").count(),
        6,
        "one timeline per scenario"
    );
    assert!(
        html.contains("class=\"kill\""),
        "the shell PID 1 scenario shows its SIGKILLs"
    );
    assert!(html.contains("class=\"lost\""), "lost requests are drawn");
}

/// Headless Chromium, if installed (CI installs Debian's `chromium`).
fn chromium() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// Renders `page` in headless Chromium: a screenshot (`png`) or the DOM.
fn render(browser: &Path, dir: &Path, page: &Path, what: &str) -> Vec<u8> {
    let profile = dir.join("chromium-profile");
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1100,1300",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    let shot = dir.join("shot.png");
    if what == "png" {
        cmd.arg(format!("--screenshot={}", shot.display()));
    } else {
        cmd.arg("--dump-dom");
    }
    let out = cmd
        .arg(format!("file://{}", page.display()))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed: {:?}", out.status);
    if what == "png" {
        std::fs::read(shot).unwrap()
    } else {
        out.stdout
    }
}

/// How many pixels of the screenshot have exactly this colour.
fn pixels(png_bytes: &[u8], rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|px| px[..3] == rgb)
        .count()
}

#[test]
fn demo_report_shows_lost_requests_and_each_pods_life_in_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium (.ci/run)"
        );
        eprintln!("SKIPPED: no chromium here (apt-get install chromium)");
        return;
    };
    let dir = Scratch::new("report");
    let (code, out) = lameduck(
        &[
            "demo",
            "--quick",
            "--only",
            "naive,lameduck",
            "--out",
            "out",
        ],
        &dir.0,
        Duration::from_secs(90),
    );
    assert_eq!(code, 0, "{out}");
    let page = dir.0.join("out/report.html");
    // What a person sees: the lost requests in red, pods serving in green,
    // pods the router still sent traffic to after deletion in orange, and
    // draining pods in yellow.
    let shot = render(&browser, &dir.0, &page, "png");
    for (what, rgb) in [
        ("lost requests", [0xc0, 0x39, 0x2b]),
        ("serving pods", [0x27, 0xae, 0x60]),
        ("deleted but still routed", [0xe6, 0x7e, 0x22]),
        ("draining", [0xf4, 0xd0, 0x3f]),
        ("requests per second", [0xae, 0xd6, 0xf1]),
    ] {
        let n = pixels(&shot, rgb);
        assert!(
            n > 100,
            "{what}: {n} pixels of #{:02x}{:02x}{:02x} in the screenshot",
            rgb[0],
            rgb[1],
            rgb[2]
        );
    }
    // The DOM after rendering: both timelines, every pod lane, every mark.
    let dom = String::from_utf8(render(&browser, &dir.0, &page, "dom")).unwrap();
    assert_eq!(dom.matches("<svg class=\"timeline\"").count(), 2);
    // 3 old and 3 new pods per scenario, each lane at least one bar.
    assert!(
        dom.matches("class=\"pod\"").count() >= 12,
        "pod lanes drawn"
    );
    assert!(dom.matches("class=\"exit\"").count() >= 6, "exits marked");
    assert!(
        dom.matches("class=\"sig\"").count() >= 6,
        "stop signals marked"
    );
    assert!(dom.contains("update starts") && dom.contains("rollout complete"));
}

/// The repository's `deploy/` directory.
fn deploy(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

#[test]
fn deploy_app_yaml_plays_locally_in_registry_mode_without_losing_a_request() {
    let dir = Scratch::new("deploy-app");
    let manifest = deploy("app.yaml");
    let (code, out) = lameduck(
        &[
            "rollout",
            manifest.to_str().unwrap(),
            "--registry",
            "--protocol",
            "http1,http2",
            "--time-scale",
            "0.5",
            "--warmup",
            "1s",
            "--cooldown",
            "1s",
            "--json",
            "r.json",
            "--out",
            "pods",
        ],
        &dir.0,
        Duration::from_secs(120),
    );
    let log = std::fs::read_to_string(dir.path("stderr.log")).unwrap_or_default();
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{log}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    let sent: u64 = r["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["report"]["summary"]["requests"].as_u64().unwrap())
        .sum();
    assert!(sent > 200, "traffic went through: {sent} requests\n{out}");
    assert!(out.contains("PASS: 0 of"), "{out}");
    // Every old pod was marked DOWN in the registry before it exited.
    assert_eq!(times(&r, "router_removed", 1).len(), 3, "{out}");
}

#[test]
fn deploy_proxy_yaml_config_passes_the_proxys_own_check() {
    let dir = Scratch::new("deploy-proxy");
    let yaml = std::fs::read_to_string(deploy("proxy.yaml")).unwrap();
    // The ConfigMap's `proxy.toml: |` block, without its indentation.
    let toml: String = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("proxy.toml: |"))
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(
        toml.contains("[[upstream]]"),
        "found the config in the ConfigMap:\n{toml}"
    );
    std::fs::write(dir.path("proxy.toml"), &toml).unwrap();
    let (code, out) = lameduck(
        &["proxy", "-c", "proxy.toml", "--check"],
        &dir.0,
        Duration::from_secs(20),
    );
    let log = std::fs::read_to_string(dir.path("stderr.log")).unwrap_or_default();
    assert_eq!(code, 0, "{out}\n{log}");
}

#[test]
fn rollout_a_command_that_does_not_exist_stops_at_once_naming_it() {
    let dir = Scratch::new("no-command");
    let m = manifest(2, 5, "", EXITS_ON_TERM, "").replace(
        r#"command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]"#,
        r#"command: ["/no/such/app", "--serve"]"#,
    );
    assert!(m.contains("/no/such/app"));
    std::fs::write(dir.path("m.yaml"), m).unwrap();
    let started = Instant::now();
    let (code, _) = lameduck(
        &["rollout", "m.yaml", "--no-load", "--ingress", "127.0.0.1:0"],
        &dir.0,
        Duration::from_secs(30),
    );
    let log = std::fs::read_to_string(dir.path("stderr.log")).unwrap();
    assert_eq!(code, 3, "{log}");
    assert!(
        log.contains("/no/such/app"),
        "the error names the command: {log}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no wait for a pod that cannot start"
    );
}
