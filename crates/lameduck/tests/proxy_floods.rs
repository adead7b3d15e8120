//! `lameduck proxy` under HTTP/2 floods from one connection, black-box: a
//! raw client writes h2c frames by hand (rapid reset, CONTINUATION flood)
//! while a normal client is served on another connection. The proxy must cut
//! each flooding connection (GOAWAY ENHANCE_YOUR_CALM), keep its memory
//! bounded and serve on.

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use crate::util::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// `GET /` with `:authority: x`, HPACK-encoded from the static table only.
const GET_BLOCK: &[u8] = &[0x82, 0x86, 0x84, 0x01, 0x01, b'x'];

/// One HTTP/2 frame: 9-byte header, then the payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// How a flood ended, as the flooding client saw it.
#[derive(Debug)]
enum Cut {
    /// The proxy sent GOAWAY with this error code.
    GoAway(u32),
    /// The connection ended (EOF or reset) without a GOAWAY.
    Closed,
}

/// Reads frames until GOAWAY or the end of the connection.
fn read_until_cut(mut s: TcpStream) -> Cut {
    let mut head = [0u8; 9];
    loop {
        if s.read_exact(&mut head).is_err() {
            return Cut::Closed;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).is_err() {
            return Cut::Closed;
        }
        if head[3] == GOAWAY && len >= 8 {
            let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
            return Cut::GoAway(code);
        }
    }
}

/// What one flood measured.
struct Flood {
    /// How each flooding connection was cut, and after how long.
    cuts: Vec<Option<(Cut, Duration)>>,
    /// Batches written, over every connection.
    sent: usize,
    rss_before: u64,
    rss_peak: u64,
    served: usize,
}

/// A function that returns the flood's `i`-th batch of frames.
type Batch = dyn Fn(usize) -> Vec<u8> + Send + Sync;

/// Floods one h2c connection: the preface, `first`, then `batch(i)` for i =
/// 0.. up to `batches` times or until the proxy cuts it.
fn flood_one(
    listen: u16,
    first: &[u8],
    batches: usize,
    batch: &Batch,
) -> (Option<(Cut, Duration)>, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", listen)).expect("connect");
    // No read timeout: the reader sees the cut, or the end of the test.
    s.set_write_timeout(Some(DEADLINE)).expect("timeout");
    let started = Instant::now();
    let cut_seen = Arc::new(AtomicBool::new(false));
    let (cut_tx, cut_rx) = std::sync::mpsc::channel();
    {
        let s = s.try_clone().expect("clone");
        let cut_seen = Arc::clone(&cut_seen);
        thread::spawn(move || {
            let cut = read_until_cut(s);
            cut_seen.store(true, Ordering::Relaxed);
            let _ = cut_tx.send((cut, started.elapsed()));
        });
    }
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(first);
    let mut sent = 0;
    if s.write_all(&out).is_ok() {
        while sent < batches && !cut_seen.load(Ordering::Relaxed) {
            if s.write_all(&batch(sent)).is_err() {
                break;
            }
            sent += 1;
        }
    }
    let left = DEADLINE.saturating_sub(started.elapsed());
    (cut_rx.recv_timeout(left).ok(), sent)
}

/// Starts a proxy and floods it from `rounds` h2c connections, one after
/// the other (see [`flood_one`]), while a normal HTTP/1.1 client is served on
/// another connection all along. Measures the proxy's RSS.
fn flood(name: &str, rounds: usize, first: Vec<u8>, batches: usize, batch: Box<Batch>) -> Flood {
    let dir = Scratch::new(name);
    let upstream = keepalive_upstream("K");
    let listen = free_port();
    let file = dir.path("proxy.toml");
    let toml = format!(
        "[admin]\nlisten = \"127.0.0.1:{}\"\n\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:{listen}\"\n\n\
         [[route]]\nupstream = \"app\"\n\n[[upstream]]\nname = \"app\"\nendpoints = [\"127.0.0.1:{upstream}\"]\n",
        free_port()
    );
    std::fs::write(&file, toml).expect("write");
    let mut ld = Lameduck::start(&dir, &["proxy", "-c", path_str(&file)]);
    let mut normal = wait_for("proxy up", DEADLINE, || {
        let mut c = TcpStream::connect(("127.0.0.1", listen)).ok()?;
        c.set_read_timeout(Some(DEADLINE)).ok()?;
        get_on(&mut c, "/").then_some(c)
    });
    let rss_before = rss_kib(ld.child.id());
    let flooder = thread::spawn(move || {
        let mut cuts = Vec::new();
        let mut sent = 0;
        for _ in 0..rounds {
            let (cut, n) = flood_one(listen, &first, batches, &*batch);
            sent += n;
            let never_cut = cut.is_none();
            cuts.push(cut);
            if never_cut {
                break; // one is enough to fail; do not wait for more
            }
        }
        (cuts, sent)
    });
    let (mut rss_peak, mut served) = (rss_before, 0);
    while !flooder.is_finished() {
        if !get_on(&mut normal, "/") {
            let status = ld.child.try_wait();
            panic!(
                "a normal request failed during the flood; the proxy: {status:?}, its log:\n{}",
                tail(&ld.log())
            );
        }
        served += 1;
        rss_peak = rss_peak.max(rss_kib(ld.child.id()));
    }
    let (cuts, sent) = flooder.join().expect("flooder");
    assert!(get_on(&mut normal, "/"), "served after the flood");
    rss_peak = rss_peak.max(rss_kib(ld.child.id()));
    Flood {
        cuts,
        sent,
        rss_before,
        rss_peak,
        served,
    }
}

/// The last lines of a log, enough to tell why a test failed.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Flood {
    fn assert_bounded(&self, what: &str) {
        let Flood {
            cuts,
            sent,
            rss_before,
            rss_peak,
            served,
        } = self;
        let slowest = cuts.iter().flatten().map(|(_, t)| *t).max();
        let goaways = cuts
            .iter()
            .flatten()
            .filter(|(c, _)| matches!(c, Cut::GoAway(ENHANCE_YOUR_CALM)))
            .count();
        eprintln!(
            "{what}: {} connections, {sent} batches sent in all; {goaways} cut by GOAWAY ENHANCE_YOUR_CALM, \
             the slowest cut after {slowest:?}; {served} normal requests served meanwhile; \
             RSS {rss_before} KiB before, {rss_peak} KiB peak",
            cuts.len()
        );
        assert!(
            cuts.iter().all(Option::is_some),
            "a flooding connection was never cut: {cuts:?}"
        );
        let slowest = slowest.expect("at least one round");
        assert!(slowest < Duration::from_secs(2), "cut after {slowest:?}");
        assert!(
            *rss_peak < rss_before + 50 * 1024,
            "RSS grew from {rss_before} to {rss_peak} KiB"
        );
        assert!(*served > 0, "normal requests were served during the flood");
    }
}

#[test]
fn an_http2_rapid_reset_flood_is_cut_and_memory_stays_bounded() {
    // 100 streams a batch, each opened and cancelled at once: up to 20,000
    // on each of 200 connections.
    let f = flood(
        "proxy-rapid-reset",
        200,
        Vec::new(),
        200,
        Box::new(|b| {
            let mut out = Vec::new();
            for i in 0..100u32 {
                let stream = 2 * (b as u32 * 100 + i) + 1;
                out.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, GET_BLOCK));
                out.extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
            }
            out
        }),
    );
    f.assert_bounded("rapid reset");
}

#[test]
fn an_http2_continuation_flood_is_cut_and_memory_stays_bounded() {
    // One header field `x-flood: a…` (100 bytes), literal, never indexed.
    let mut field = vec![0x10, 7];
    field.extend(b"x-flood");
    field.push(100);
    field.extend([b'a'; 100]);
    let fragment: Vec<u8> = field
        .iter()
        .copied()
        .cycle()
        .take(field.len() * 140)
        .collect();
    // HEADERS without END_HEADERS, then CONTINUATION frames that never end
    // the block: up to 10,000 of ~15 KiB (150 MB) on each of 200 connections.
    let first = frame(HEADERS, END_STREAM, 1, GET_BLOCK);
    let f = flood(
        "proxy-continuation",
        200,
        first,
        10_000,
        Box::new(move |_| frame(CONTINUATION, 0, 1, &fragment)),
    );
    f.assert_bounded("CONTINUATION flood");
}
