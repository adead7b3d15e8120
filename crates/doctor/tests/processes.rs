//! The doctor against real processes: a shell that ignores SIGTERM, a shell
//! that traps it while its child runs, a shell that catches it alone, a
//! parent that leaves zombies, a PID 1 in its own PID namespace, and the
//! listening socket of this test process.

use std::{
    io::Write,
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use lameduck_doctor::{examine, Diagnosis, Disposition, Options};
use lameduck_testkit::wait_for;
use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};

/// A process group started for a test, killed at drop.
struct Group(Child);

impl Group {
    fn start(cmd: &mut Command) -> Group {
        let child = cmd
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start the test process");
        Group(child)
    }

    fn sh(script: &str) -> Group {
        Group::start(Command::new("sh").args(["-c", script]))
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

fn options(pid: i32) -> Options {
    Options {
        pid,
        podinfo: PathBuf::from("/nonexistent"),
        ..Options::default()
    }
}

/// Examines `pid` once `ready` holds of what is seen.
fn examine_when(pid: i32, what: &str, ready: impl Fn(&Diagnosis) -> bool) -> Diagnosis {
    wait_for(what, Duration::from_secs(10), || {
        let d = examine(&options(pid)).ok()?;
        ready(&d).then_some(d)
    })
}

fn has_child(name: &'static str) -> impl Fn(&Diagnosis) -> bool {
    move |d| d.children.iter().any(|c| c.name == name && !c.is_zombie())
}

#[test]
fn a_shell_that_ignores_term_gets_its_child_sigkilled() {
    let g = Group::sh("trap '' TERM; sleep 300; true");
    let d = examine_when(g.pid(), "sleep under sh", has_child("sleep"));
    assert!(d.shell);
    assert_eq!(d.on_stop_signal, Disposition::Ignored);
    assert!(!d.healthy);
    assert!(
        d.verdict
            .contains("ignores SIGTERM; its child sleep will be SIGKILLed after 30 s"),
        "{}",
        d.verdict
    );
    assert!(d.verdict.contains("`exec`"), "{}", d.verdict);
}

#[test]
fn a_shell_that_traps_term_while_its_child_runs_is_flagged() {
    let g = Group::sh("trap 'kill $!; exit 0' TERM; sleep 300 & wait");
    let d = examine_when(g.pid(), "sleep under sh", has_child("sleep"));
    assert_eq!(d.on_stop_signal, Disposition::Caught);
    assert!(!d.healthy);
    assert!(
        d.verdict
            .contains("traps SIGTERM while sleep runs as its child"),
        "{}",
        d.verdict
    );
}

#[test]
fn a_process_that_catches_term_itself_can_stop_gracefully() {
    // `read` is a builtin: the shell has no child, and its trap runs at once.
    let g = Group::sh("trap 'exit 0' TERM; read line");
    let d = examine_when(g.pid(), "the trap in place", |d| {
        d.on_stop_signal == Disposition::Caught
    });
    assert!(d.children.is_empty());
    assert!(d.healthy, "{:#?}", d.findings);
    assert!(
        d.verdict
            .contains("catches SIGTERM: a graceful stop is possible"),
        "{}",
        d.verdict
    );
}

#[test]
fn a_parent_that_never_waits_leaves_zombies() {
    // `true` exits at once; `exec sleep` never reaps it.
    let g = Group::sh("true & true & exec sleep 300");
    let d = examine_when(g.pid(), "two zombies", |d| d.zombies.len() == 2);
    assert!(d
        .zombies
        .iter()
        .all(|z| z.ppid == g.pid() && z.state == 'Z'));
    assert!(!d.healthy);
    let finding = d
        .findings
        .iter()
        .find(|f| f.text.contains("zombie"))
        .expect("a zombie finding");
    assert!(
        finding.problem && finding.text.starts_with("2 zombie"),
        "{}",
        finding.text
    );
}

#[test]
fn a_pid_1_without_a_handler_never_sees_sigterm() {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PID namespace test as root"
        );
        eprintln!("SKIPPED PID namespace test: not root");
        return;
    }
    let g = Group::start(Command::new("unshare").args([
        "--pid",
        "--fork",
        "sh",
        "-c",
        "sleep 300; true",
    ]));
    let unshare = examine_when(g.pid(), "sh under unshare", has_child("sh"));
    let sh = unshare
        .children
        .iter()
        .find(|c| c.name == "sh")
        .unwrap()
        .pid;
    let d = examine_when(sh, "sleep under sh", has_child("sleep"));
    assert_eq!(d.process.ns_pid, 1);
    assert!(
        d.verdict
            .starts_with("PID 1 (sh) does not catch SIGTERM (the kernel drops it"),
        "{}",
        d.verdict
    );
    assert!(
        d.verdict
            .contains("its child sleep will be SIGKILLed after 30 s"),
        "{}",
        d.verdict
    );
}

#[test]
fn the_grace_period_and_stop_signal_come_from_the_manifest() {
    let dir = std::env::temp_dir().join(format!("lameduck-doctor-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("deploy.yaml");
    std::fs::write(
        &manifest,
        "kind: Deployment\nspec:\n  template:\n    spec:\n      terminationGracePeriodSeconds: 45\n      \
         containers:\n        - name: app\n          lifecycle: {stopSignal: SIGQUIT}\n",
    )
    .unwrap();
    let g = Group::sh("trap '' QUIT; sleep 300; true");
    wait_for("sleep under sh", Duration::from_secs(10), || {
        examine(&options(g.pid())).ok().filter(has_child("sleep"))
    });
    let d = examine(&Options {
        manifest: Some(manifest.clone()),
        ..options(g.pid())
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        (d.stop_signal.value.as_str(), d.grace_s.value),
        ("QUIT", 45.0)
    );
    assert!(d.grace_s.source.contains("deploy.yaml"));
    assert!(
        d.verdict
            .contains("ignores SIGQUIT; its child sleep will be SIGKILLed after 45 s"),
        "{}",
        d.verdict
    );
}

#[test]
fn listening_ports_are_counted_with_their_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let (_server, _) = listener.accept().unwrap();
    client.write_all(b"x").unwrap();
    let d = examine(&options(std::process::id() as i32)).unwrap();
    let l = d.listeners.iter().find(|l| l.addr == addr);
    assert_eq!(l.map(|l| l.established), Some(1), "{:?}", d.listeners);
}

#[test]
fn a_pid_that_does_not_exist_is_a_clear_error() {
    let err = examine(&options(i32::MAX)).unwrap_err().to_string();
    assert!(err.contains("is PID 2147483647 running"), "{err}");
}

#[test]
fn lameducks_budget_is_the_grace_period_when_nothing_else_says() {
    let g = Group::start(
        Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 300; true"])
            .env("LAMEDUCK_GRACE_SECONDS", "12s"),
    );
    let d = examine_when(g.pid(), "sleep under sh", has_child("sleep"));
    assert_eq!(d.grace_s.value, 12.0);
    assert!(d.grace_s.source.contains("LAMEDUCK_GRACE_SECONDS"));
    assert!(d.verdict.contains("SIGKILLed after 12 s"), "{}", d.verdict);
}

#[test]
fn a_budget_longer_than_the_pods_grace_period_is_a_problem() {
    let dir = std::env::temp_dir().join(format!("lameduck-doctor-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("pod.yaml");
    std::fs::write(
        &manifest,
        "kind: Pod\nspec:\n  terminationGracePeriodSeconds: 30\n  containers: [{name: app}]\n",
    )
    .unwrap();
    let g = Group::start(
        Command::new("sh")
            .args(["-c", "trap 'exit 0' TERM; read line"])
            .env("LAMEDUCK_GRACE_SECONDS", "60"),
    );
    wait_for("the trap in place", Duration::from_secs(10), || {
        examine(&options(g.pid()))
            .ok()
            .filter(|d| d.on_stop_signal == Disposition::Caught)
    });
    let d = examine(&Options {
        manifest: Some(manifest),
        ..options(g.pid())
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(d.grace_s.value, 30.0);
    let f = d
        .findings
        .iter()
        .find(|f| f.text.contains("LAMEDUCK_GRACE_SECONDS is 60 s"))
        .expect("budget finding");
    assert!(f.problem && !d.healthy, "{f:?}");
}
