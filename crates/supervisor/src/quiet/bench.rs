//! What one sample costs: sock_diag netlink against a `/proc/net/tcp*` read.
//!
//! Not run by default (it opens 1,000 connections and leaves 10,000 TIME_WAIT
//! entries in the namespace for a minute). Run it with
//! `cargo test -p lameduck-supervisor bench_sample_cost -- --ignored --nocapture`.
//! For the same watched port: a live sample, the TIME_WAIT check that follows
//! it when a connection was accepted, and a `/proc/net/tcp*` read; for each,
//! the wall time (median of 200) and the thread's user and kernel time (over
//! the 200, divided by 200).

use std::{
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};

use super::{proc_net, sock_diag::SockDiag, Conn};

const SAMPLES: usize = 200;
const IDLE_CONNECTIONS: usize = 1_000;
const TIME_WAIT_ENTRIES: usize = 10_000;

/// The calling thread's (user, kernel) CPU time so far, from
/// `/proc/thread-self/stat` (clock ticks of 10 ms: fine over 200 samples).
fn thread_times() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("thread stat");
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let field = |i: usize| -> u64 {
        after_name
            .split_whitespace()
            .nth(i)
            .and_then(|f| f.parse().ok())
            .expect("stat field")
    };
    let tick = |t: u64| Duration::from_millis(t * 10);
    // utime and stime are fields 14 and 15; 11 and 12 after the name and state.
    (tick(field(11)), tick(field(12)))
}

/// Per sample: median wall time, mean user and mean kernel time, over `SAMPLES` calls.
fn measure(mut sample: impl FnMut()) -> [Duration; 3] {
    let mut walls = Vec::with_capacity(SAMPLES);
    let (user_before, sys_before) = thread_times();
    for _ in 0..SAMPLES {
        let w = Instant::now();
        sample();
        walls.push(w.elapsed());
    }
    let (user_after, sys_after) = thread_times();
    walls.sort_unstable();
    let n = SAMPLES as u32;
    [
        walls[SAMPLES / 2],
        (user_after - user_before) / n,
        (sys_after - sys_before) / n,
    ]
}

/// Prints one line per way of reading; returns the (netlink, proc) wall medians.
fn compare(what: &str, port: u16, live: usize) -> (Duration, Duration) {
    let mut diag = SockDiag::open(&[port]).expect("sock_diag");
    let mut conns: Vec<Conn> = Vec::new();
    diag.sample(&mut conns).expect("sample");
    assert_eq!(conns.len(), live, "netlink sees the live connections");
    diag.time_wait(&mut conns).expect("time_wait");
    // Fewer than were made: a new connection from a client port that has one
    // takes it over.
    let time_wait = conns.len();
    let netlink = measure(|| diag.sample(&mut conns).expect("sample"));
    let check = measure(|| {
        proc_net::passive_opens().expect("/proc/net/snmp");
        diag.time_wait(&mut conns).expect("time_wait");
    });
    let proc = measure(|| proc_net::sample(&[port], &mut conns));
    let lines = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .map(|f| std::fs::read_to_string(f).map_or(0, |t| t.lines().count() - 1))
        .sum::<usize>();
    println!(
        "{what}: {live} live, {time_wait} in TIME_WAIT on the port, {lines} sockets in the namespace's /proc/net/tcp*"
    );
    let rows = [
        ("sock_diag live sample", netlink),
        ("+ TIME_WAIT check", check),
        ("/proc/net/tcp* read", proc),
    ];
    for (name, [wall, user, sys]) in rows {
        println!(
            "  {name:22} {wall:>8.1?} wall (median), {user:>8.1?} user + {sys:>8.1?} kernel (mean)"
        );
    }
    let ratio = |i: usize| proc[i].as_secs_f64() / netlink[i].as_secs_f64();
    println!(
        "  /proc : live sample = {:.1}x wall, {:.1}x kernel",
        ratio(0),
        ratio(2)
    );
    (netlink[0], proc[0])
}

#[test]
#[ignore = "a benchmark: opens 1,000 connections and leaves 10,000 TIME_WAIT entries"]
fn bench_sample_cost() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    compare("no connection", port, 0);
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        idle.push((client, listener.accept().expect("accept").0));
    }
    let (netlink, proc) = compare("1,000 idle connections", port, IDLE_CONNECTIONS);
    assert!(netlink < proc, "netlink {netlink:?} vs /proc {proc:?}");
    // The app closes first: its side of each connection stays in TIME_WAIT.
    for _ in 0..TIME_WAIT_ENTRIES {
        let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        drop(listener.accept().expect("accept").0);
        let _ = std::io::Read::read(&mut &client, &mut [0u8; 1]);
    }
    compare(
        "1,000 idle connections + 10,000 TIME_WAIT",
        port,
        IDLE_CONNECTIONS,
    );
}
