//! Black-box tests of `ld-fixture`'s `--notify FIFO`, which ld-sigbench blocks on
//! instead of polling the fixture's output file.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::PathBuf,
    process::Command,
    sync::mpsc::{self, Receiver},
    time::Duration,
};

use nix::{
    sys::{
        signal::{kill, Signal},
        stat::Mode,
    },
    unistd::{mkfifo, Pid},
};

#[test]
fn notify_fifo_gets_the_same_lines_as_out() {
    let dir = std::env::temp_dir().join(format!("ld-fixture-notify.{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (out, fifo) = (dir.join("out"), dir.join("fifo"));
    mkfifo(&fifo, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ld-fixture"))
        .arg("signals")
        .args([&out, &"--notify".into(), &fifo])
        .spawn()
        .unwrap();
    let lines = read_lines(fifo);
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(5))
            .expect("a line on the FIFO")
    };
    let ready = next();
    assert_eq!(ready, format!("READY {}", child.id()));
    let sent = lameduck_testkit::monotonic_ns();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGUSR1).unwrap();
    let line = next();
    let (name, ns) = line.split_once(' ').unwrap();
    assert_eq!(name, "USR1");
    assert!(
        ns.parse::<u64>().unwrap() >= sent,
        "timestamp before the signal was sent"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(next().starts_with("TERM "));
    let logged = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        logged.lines().count(),
        3,
        "OUT has READY, USR1 and TERM: {logged}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The FIFO's lines, read on a thread so that a fixture that never opens its
/// end fails the test after a timeout instead of hanging it.
fn read_lines(fifo: PathBuf) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let fifo = File::open(fifo).expect("open the FIFO");
        for line in BufReader::new(fifo).lines() {
            let _ = tx.send(line.expect("read the FIFO"));
        }
    });
    rx
}
