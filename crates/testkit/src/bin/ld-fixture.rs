//! `ld-fixture`: the app that lameduck's black-box tests supervise.
//!
//! ```text
//! ld-fixture signals OUT [--ignore SIG]… [--exit-on SIG]… [--listen PORT]
//!                        [--listen-close PORT] [--notify FIFO]
//!     writes "READY <pid>" then "<SIGNAME> <monotonic ns>" per signal to OUT;
//!     with --listen, accepts connections on 127.0.0.1:PORT and reads each
//!     until the peer closes it; with --listen-close, closes each one itself
//!     after its first read, as a server answering `Connection: close` does;
//!     exits 0 on an --exit-on signal (default: TERM, INT, QUIT unless ignored);
//!     with --notify, writes the same lines to FIFO too, so a reader can block on
//!     it instead of polling OUT (ld-sigbench does)
//! ld-fixture exit CODE        exits with CODE
//! ld-fixture raise SIG        kills itself with SIG
//! ld-fixture orphans N OUT    leaves N orphaned grandchildren, then acts like
//!                             `signals OUT`; each orphan writes "ORPHAN <pid> <ppid>"
//!                             once re-parented, then exits (a zombie to reap)
//! ```

use std::{
    fs::{File, OpenOptions},
    io::Write,
    net::TcpListener,
    process::Command,
    time::{Duration, Instant},
};

use lameduck_drain::Sig;
use lameduck_testkit::monotonic_ns;
use signal_hook::iterator::Signals;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| usage());
    match arg(0).as_str() {
        "signals" => signals(&arg(1), &args[2..]),
        "exit" => std::process::exit(arg(1).parse().unwrap_or_else(|_| usage())),
        "raise" => raise(&arg(1)),
        "orphans" => {
            let n: usize = arg(1).parse().unwrap_or_else(|_| usage());
            for _ in 0..n {
                let exe = std::env::current_exe().expect("own path");
                Command::new(exe)
                    .args(["orphan-parent", &arg(2)])
                    .status()
                    .expect("spawn");
            }
            signals(&arg(2), &args[3..]);
        }
        "orphan-parent" => {
            // Start the grandchild and exit without waiting: it becomes an orphan.
            let exe = std::env::current_exe().expect("own path");
            let parent = std::process::id().to_string();
            // Dropping the handle without waiting is the point: an orphan is made.
            #[allow(clippy::zombie_processes)]
            let _child = Command::new(exe)
                .args(["orphan", &arg(1), &parent])
                .spawn()
                .expect("spawn");
        }
        "orphan" => orphan(&arg(1), arg(2).parse().unwrap_or_else(|_| usage())),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: ld-fixture signals|exit|raise|orphans … (see the source)");
    std::process::exit(64)
}

fn append(path: &str, line: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open OUT");
    f.write_all(format!("{line}\n").as_bytes())
        .expect("write OUT");
}

fn signals(out: &str, opts: &[String]) {
    let (mut ignore, mut exit_on, mut listen) = (Vec::new(), Vec::new(), None);
    let mut notify = None;
    let mut it = opts.iter();
    while let Some(flag) = it.next() {
        let val = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--ignore" => ignore.push(Sig::parse(val).unwrap_or_else(|_| usage())),
            "--exit-on" => exit_on.push(Sig::parse(val).unwrap_or_else(|_| usage())),
            "--listen" => listen = Some((val.parse::<u16>().unwrap_or_else(|_| usage()), false)),
            "--listen-close" => {
                listen = Some((val.parse::<u16>().unwrap_or_else(|_| usage()), true))
            }
            "--notify" => notify = Some(val.clone()),
            _ => usage(),
        }
    }
    if exit_on.is_empty() {
        exit_on = vec![Sig::TERM, Sig::INT, Sig::QUIT];
    }
    exit_on.retain(|s| !ignore.contains(s));
    let raw: Vec<i32> = Sig::forwardable().iter().map(|s| s.0).collect();
    let mut sigs = Signals::new(&raw).expect("register signals");
    if let Some((port, close)) = listen {
        let l = TcpListener::bind(("127.0.0.1", port)).expect("bind --listen");
        std::thread::spawn(move || serve(l, close));
    }
    // Opened after the handlers are in place: a reader that sees READY may signal.
    let mut notify = notify.map(|path| {
        OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open --notify FIFO")
    });
    record(
        out,
        notify.as_mut(),
        &format!("READY {}", std::process::id()),
    );
    for raw in sigs.forever() {
        let sig = Sig(raw);
        let line = format!("{} {}", sig.name(), monotonic_ns());
        record(out, notify.as_mut(), &line);
        if exit_on.contains(&sig) {
            std::process::exit(0);
        }
    }
}

/// Accepts each connection and reads (and drops) what comes on it: until the
/// peer closes it, so a keepalive client can send for as long as it likes, or
/// with `close` only once, then closes it first.
fn serve(listener: TcpListener, close: bool) {
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while matches!(std::io::Read::read(&mut &conn, &mut buf), Ok(n) if n > 0) {
                if close {
                    return;
                }
            }
        });
    }
}

/// Appends `line` to OUT, and to the --notify FIFO if there is one.
fn record(out: &str, notify: Option<&mut File>, line: &str) {
    append(out, line);
    if let Some(fifo) = notify {
        // One short write is atomic on a pipe. A reader that went away is not
        // this fixture's concern: OUT still has every line.
        let _ = fifo.write_all(format!("{line}\n").as_bytes());
    }
}

fn raise(sig: &str) -> ! {
    let sig = Sig::parse(sig).unwrap_or_else(|_| usage());
    let sig = nix::sys::signal::Signal::try_from(sig.0).unwrap_or_else(|_| usage());
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), sig);
    // A caught or ignored signal lands here: say so with a distinct code.
    std::process::exit(99)
}

fn orphan(out: &str, parent: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::process::parent_id() == parent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    append(
        out,
        &format!(
            "ORPHAN {} {}",
            std::process::id(),
            std::os::unix::process::parent_id()
        ),
    );
}
