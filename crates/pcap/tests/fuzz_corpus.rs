//! The `pcap_capture` fuzz corpus (`fuzz/corpus/pcap_capture/`), replayed
//! through the check the fuzz target runs, on stable; and the seeds of that
//! corpus, written by the crate's synth writer so that they stay real
//! captures (`LAMEDUCK_WRITE_SEEDS=1 cargo test -p lameduck-pcap --test
//! fuzz_corpus` rewrites them after a change to the writer).

use std::net::SocketAddr;

use lameduck_pcap::{
    analyze, analyze_bytes, fuzzing,
    synth::{Flow, Format, Link, Writer},
    CloseKind, Filter, Protocol, Side,
};
use lameduck_testkit::corpus::{dir, replay};

const TARGET: &str = "pcap_capture";
/// 2026-01-01T12:00:03Z.
const T0: u64 = 1_767_268_803_000_000_000;
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: app\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn pcap_capture_corpus() {
    let n = replay(TARGET, fuzzing::capture);
    assert!(n >= seeds().len(), "{n} files");
}

#[test]
fn the_seeds_are_the_synth_writers_captures() {
    let write = std::env::var_os("LAMEDUCK_WRITE_SEEDS").is_some();
    for (name, bytes) in seeds() {
        let path = dir(TARGET).join(name);
        if write {
            std::fs::write(&path, &bytes).unwrap();
        }
        let checked_in = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(checked_in == bytes, "{name} is stale: rewrite the seeds");
        assert!(bytes.len() < 20_000, "{name}: {} bytes", bytes.len());
    }
}

#[test]
fn the_seeds_read_as_what_they_show() {
    let read = |name: &str| {
        let (_, bytes) = seeds().into_iter().find(|(n, _)| *n == name).unwrap();
        analyze_bytes(name, &bytes, &Filter::default()).unwrap()
    };
    let fin = read("http1-fin-ethernet.pcap");
    let c = &fin.connections[0];
    assert_eq!((c.close, c.closed_by), (CloseKind::Fin, Some(Side::Client)));
    assert_eq!((c.requests, c.responses, c.in_flight_at_close), (1, 1, 0));

    let rst = read("http1-rst-in-flight-sll2.pcapng");
    let c = &rst.connections[0];
    assert_eq!((c.close, c.in_flight_at_close), (CloseKind::Rst, 1));

    let h2 = read("h2c-goaway-null.pcapng");
    let c = &h2.connections[0];
    assert_eq!(c.protocol, Protocol::H2c);
    let goaway = &c.h2.as_ref().unwrap().goaways;
    assert_eq!(goaway.len(), 1, "{c:?}");

    let cut = read("cut-short.pcap");
    assert!(cut.files[0].truncated, "{:?}", cut.files);
}

#[test]
fn a_capture_in_memory_reads_as_the_same_file_does() {
    let scratch = std::env::temp_dir().join(format!("lameduck-pcap-mem-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    for (name, bytes) in seeds() {
        let path = scratch.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let file = analyze(std::slice::from_ref(&path), &Filter::default()).unwrap();
        let memory = analyze_bytes(&path.to_string_lossy(), &bytes, &Filter::default()).unwrap();
        assert_eq!(memory, file, "{name}");
        assert!(!memory.connections.is_empty(), "{name}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The seed files: one per close kind, link layer and protocol worth a start.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = vec![
        ("http1-fin-ethernet.pcap", http1_fin()),
        ("http1-rst-in-flight-sll2.pcapng", http1_rst_in_flight()),
        ("refused-raw.pcap", refused()),
        ("h2c-goaway-null.pcapng", h2c_goaway()),
        ("h2c-upgrade-sll.pcap", h2c_upgrade()),
        ("ipv6-gap-two-conns.pcapng", ipv6_gap()),
    ];
    let mut cut = http1_fin();
    cut.truncate(cut.len() - 7);
    out.push(("cut-short.pcap", cut));
    out
}

fn capture(format: Format, link: Link, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), format, link).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.packet(T0 + i as u64 * 1_000_000, f).unwrap();
    }
    w.into_inner()
}

fn flow(link: Link) -> Flow {
    Flow::new(addr("10.0.0.9:40000"), addr("10.0.0.5:8080"), link)
}

fn http1_fin() -> Vec<u8> {
    let mut f = flow(Link::Ethernet);
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    frames.push(f.data(Side::Client, GET));
    frames.push(f.data(Side::Server, OK));
    frames.push(f.fin(Side::Client));
    frames.push(f.fin(Side::Server));
    capture(Format::Pcap, Link::Ethernet, &frames)
}

fn http1_rst_in_flight() -> Vec<u8> {
    let mut f = flow(Link::Sll2);
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    frames.push(f.data(Side::Client, b"POST /x HTTP/1.1\r\nHost: app\r\n"));
    frames.push(f.data(
        Side::Client,
        b"Transfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n",
    ));
    frames.push(f.data(Side::Server, b"HTTP/1.1 100 Continue\r\n\r\n"));
    frames.push(f.data(Side::Server, OK));
    frames.push(f.data(Side::Client, GET));
    frames.push(f.rst(Side::Server));
    capture(Format::PcapNg, Link::Sll2, &frames)
}

fn refused() -> Vec<u8> {
    let mut f = flow(Link::Raw);
    capture(Format::Pcap, Link::Raw, &f.refused())
}

/// An HTTP/2 frame: length, type, flags, stream, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A request on stream 1 answered, one on stream 3 cut by the GOAWAY.
fn h2c_exchange(f: &mut Flow, frames: &mut Vec<Vec<u8>>, preface: bool) {
    let mut client = Vec::new();
    if preface {
        client.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    }
    client.extend(h2_frame(4, 0, 0, &[]));
    client.extend(h2_frame(1, 0x5, 1, &[0x82, 0x86, 0x84]));
    frames.push(f.data(Side::Client, &client));
    let mut server = h2_frame(4, 0, 0, &[]);
    server.extend(h2_frame(1, 0x4, 1, &[0x88]));
    server.extend(h2_frame(0, 0x1, 1, b"ok"));
    frames.push(f.data(Side::Server, &server));
    frames.push(f.data(Side::Client, &h2_frame(1, 0x5, 3, &[0x82, 0x86, 0x84])));
    let mut goaway = 1u32.to_be_bytes().to_vec();
    goaway.extend_from_slice(&0u32.to_be_bytes());
    frames.push(f.data(Side::Server, &h2_frame(7, 0, 0, &goaway)));
    frames.push(f.data(Side::Client, &h2_frame(3, 0, 3, &8u32.to_be_bytes())));
    frames.push(f.fin(Side::Server));
    frames.push(f.fin(Side::Client));
}

fn h2c_goaway() -> Vec<u8> {
    let mut f = flow(Link::Null);
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    h2c_exchange(&mut f, &mut frames, true);
    capture(Format::PcapNg, Link::Null, &frames)
}

fn h2c_upgrade() -> Vec<u8> {
    let mut f = flow(Link::Sll);
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    frames.push(f.data(
        Side::Client,
        b"GET / HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    ));
    let mut switch =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    switch.extend(h2_frame(4, 0, 0, &[]));
    switch.extend(h2_frame(1, 0x5, 1, &[0x88]));
    frames.push(f.data(Side::Server, &switch));
    frames.push(f.data(Side::Client, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    h2c_exchange(&mut f, &mut frames, false);
    capture(Format::Pcap, Link::Sll, &frames)
}

/// Two IPv6 connections interleaved; the first misses a segment.
fn ipv6_gap() -> Vec<u8> {
    let mut a = Flow::new(
        addr("[fd00::9]:40000"),
        addr("[fd00::5]:8080"),
        Link::Ethernet,
    );
    let mut b = Flow::new(
        addr("[fd00::9]:40001"),
        addr("[fd00::5]:8080"),
        Link::Ethernet,
    );
    let mut frames: Vec<Vec<u8>> = a.handshake().into();
    frames.extend(b.handshake());
    frames.push(a.data(Side::Client, GET));
    let _missed = a.data(
        Side::Server,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234",
    );
    frames.push(a.data(Side::Server, b"56789"));
    frames.push(b.data(Side::Client, GET));
    frames.push(a.data(Side::Client, GET));
    frames.push(b.rst(Side::Client));
    frames.push(a.fin(Side::Server));
    capture(Format::PcapNg, Link::Ethernet, &frames)
}
