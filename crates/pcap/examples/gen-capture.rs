//! Writes a synthetic `tcpdump -C` series for the benchmark
//! (bench/pcap-vs-tshark.sh): `gen-capture DIR TOTAL_MB FILE_MB` writes
//! DIR/tcp.pcap, DIR/tcp.pcap1, … of about FILE_MB each, TOTAL_MB in all.
//!
//! The traffic looks like a keepalive HTTP/1.1 service under load: 64
//! connections open at a time, interleaved, each carrying 1–20 exchanges with
//! 0.2–12 kB responses cut into 1448-byte segments, then closed by a FIN
//! (most), a server reset with a request in flight, or a reset while idle.

use std::{
    fs::File,
    io::{BufWriter, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
};

use lameduck_pcap::{
    synth::{Flow, Format, Link, Writer},
    Side,
};

const ACTIVE: usize = 64;
const MSS: usize = 1448;

/// Rotates to the next file past `limit` bytes, as `tcpdump -C` does.
struct Series {
    dir: PathBuf,
    limit: u64,
    total: u64,
    written: u64,
    in_file: u64,
    files: u32,
    out: Writer<BufWriter<File>>,
}

impl Series {
    fn new(dir: &Path, limit: u64, total: u64) -> std::io::Result<Series> {
        let out = open(&dir.join("tcp.pcap"))?;
        Ok(Series {
            dir: dir.to_path_buf(),
            limit,
            total,
            written: 24,
            in_file: 24,
            files: 1,
            out,
        })
    }

    fn packet(&mut self, ts: u64, frame: &[u8]) -> std::io::Result<()> {
        if self.in_file >= self.limit {
            let path = self.dir.join(format!("tcp.pcap{}", self.files));
            let old = std::mem::replace(&mut self.out, open(&path)?);
            old.into_inner().flush()?;
            self.files += 1;
            self.in_file = 24;
            self.written += 24;
        }
        self.out.packet(ts, frame)?;
        let n = 16 + frame.len() as u64;
        self.in_file += n;
        self.written += n;
        Ok(())
    }

    fn done(&self) -> bool {
        self.written >= self.total
    }

    fn finish(self) -> std::io::Result<()> {
        self.out.into_inner().flush()
    }
}

fn open(path: &Path) -> std::io::Result<Writer<BufWriter<File>>> {
    Writer::new(
        BufWriter::with_capacity(1 << 20, File::create(path)?),
        Format::Pcap,
        Link::Ethernet,
    )
}

/// One simulated connection: its flow and the exchanges left.
struct Conn {
    flow: Flow,
    left: u32,
}

fn new_conn(n: u64) -> Conn {
    let client = SocketAddr::from((
        [10, 1, (n >> 16) as u8, (n >> 8) as u8],
        1024 + (n % 60_000) as u16,
    ));
    let server = SocketAddr::from(([10, 0, 0, 5], 8080));
    Conn {
        flow: Flow::new(client, server, Link::Ethernet),
        left: fastrand::u32(1..=20),
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: gen-capture DIR TOTAL_MB FILE_MB";
    let (Some(dir), Some(total), Some(file)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let mb = |s: &str| {
        s.parse::<u64>().map(|v| v * 1_000_000).unwrap_or_else(|_| {
            eprintln!("{usage}");
            std::process::exit(2)
        })
    };
    std::fs::create_dir_all(dir)?;
    fastrand::seed(7);
    let mut series = Series::new(Path::new(dir), mb(file), mb(total))?;
    let mut ts: u64 = 1_767_268_800_000_000_000;
    let mut next_id = 0u64;
    let mut active: Vec<Conn> = Vec::with_capacity(ACTIVE);
    let mut frames = Vec::new();
    while !series.done() {
        while active.len() < ACTIVE {
            let mut c = new_conn(next_id);
            next_id += 1;
            frames.extend(c.flow.handshake());
            active.push(c);
        }
        let i = fastrand::usize(..active.len());
        step(&mut active, i, &mut frames);
        for f in frames.drain(..) {
            ts += 20_000;
            series.packet(ts, &f)?;
        }
    }
    eprintln!(
        "wrote {} files, {} MB, {next_id} connections",
        series.files,
        series.written / 1_000_000
    );
    series.finish()
}

/// One exchange on connection `i`, or its close when it has none left.
fn step(active: &mut Vec<Conn>, i: usize, frames: &mut Vec<Vec<u8>>) {
    let c = &mut active[i];
    if c.left > 0 {
        c.left -= 1;
        frames.push(c.flow.data(
            Side::Client,
            b"GET /api/items?page=2 HTTP/1.1\r\nHost: app\r\nUser-Agent: gen\r\n\r\n",
        ));
        let body = fastrand::usize(200..12_000);
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body}\r\n\r\n"
        )
        .into_bytes();
        response.resize(response.len() + body, b'x');
        for seg in response.chunks(MSS) {
            frames.push(c.flow.data(Side::Server, seg));
        }
        frames.push(
            c.flow
                .segment(Side::Client, lameduck_pcap::synth::Flags::ACK, b""),
        );
        return;
    }
    let mut c = active.swap_remove(i);
    match fastrand::u8(..10) {
        0 => {
            frames.push(
                c.flow
                    .data(Side::Client, b"GET /lost HTTP/1.1\r\nHost: app\r\n\r\n"),
            );
            frames.push(c.flow.rst(Side::Server));
        }
        1 => frames.push(c.flow.rst(Side::Server)),
        _ => {
            frames.push(c.flow.fin(Side::Client));
            frames.push(c.flow.fin(Side::Server));
            frames.push(
                c.flow
                    .segment(Side::Client, lameduck_pcap::synth::Flags::ACK, b""),
            );
        }
    }
}
