//! Captures crafted packet by packet (pcap and pcapng, every link layer the
//! reader knows), one per close kind and per way a request can be in flight,
//! and a real loopback capture made with tcpdump where it is installed.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use lameduck_pcap::{
    analyze, order_series,
    synth::{Flow, Format, Link, Writer},
    CloseKind, ConnReport, Filter, Protocol, Report, Side,
};

const CLIENT: &str = "10.0.0.9:40000";
const SERVER: &str = "10.0.0.5:8080";
/// 2026-01-01T12:00:03Z.
const T0: u64 = 1_767_268_803_000_000_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A scratch directory removed at drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lameduck-pcap-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `frames` 1 ms apart to `path`.
fn write(path: &Path, format: Format, link: Link, frames: &[Vec<u8>], start: u64) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = Writer::new(file, format, link).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.packet(start + i as u64 * 1_000_000, f).unwrap();
    }
    std::io::Write::flush(&mut w.into_inner()).unwrap();
}

/// Crafts `frames` into one capture and reads it back.
fn read_back(name: &str, format: Format, link: Link, frames: &[Vec<u8>]) -> Report {
    let dir = Scratch::new(name);
    let path = dir.0.join("c.pcap");
    write(&path, format, link, frames, T0);
    analyze(&[path], &Filter::default()).unwrap()
}

fn only(report: &Report) -> &ConnReport {
    assert_eq!(report.connections.len(), 1, "{:#?}", report.connections);
    &report.connections[0]
}

fn flow(link: Link) -> Flow {
    Flow::new(addr(CLIENT), addr(SERVER), link)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: app\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// A keepalive connection with one exchange, then what `close` adds.
fn exchange(link: Link, close: impl FnOnce(&mut Flow) -> Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut f = flow(link);
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    frames.push(f.data(Side::Client, GET));
    frames.push(f.data(Side::Server, OK));
    frames.extend(close(&mut f));
    frames
}

#[test]
fn a_clean_fin_close_by_the_client_in_every_format_and_link() {
    for format in [Format::Pcap, Format::PcapNg] {
        for link in [Link::Ethernet, Link::Sll, Link::Sll2, Link::Raw, Link::Null] {
            let frames = exchange(link, |f| vec![f.fin(Side::Client), f.fin(Side::Server)]);
            let r = read_back("fin", format, link, &frames);
            let c = only(&r);
            let what = format!("{format:?} {link:?}");
            assert_eq!(c.close, CloseKind::Fin, "{what}");
            assert_eq!(c.closed_by, Some(Side::Client), "{what}");
            assert_eq!((c.client, c.server), (addr(CLIENT), addr(SERVER)), "{what}");
            assert_eq!(c.protocol, Protocol::Http1, "{what}");
            assert_eq!(
                (c.requests, c.responses, c.in_flight_at_close),
                (1, 1, 0),
                "{what}"
            );
            assert_eq!(c.start_ns, T0, "{what}: stamps read back");
            assert!(
                (c.duration_s() - 0.006).abs() < 1e-6,
                "{what}: {}",
                c.duration_s()
            );
        }
    }
}

#[test]
fn ipv6_connections_are_followed_too() {
    let mut f = Flow::new(
        addr("[fd00::9]:40000"),
        addr("[fd00::5]:8080"),
        Link::Ethernet,
    );
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    frames.push(f.data(Side::Client, GET));
    frames.push(f.rst(Side::Server));
    let r = read_back("v6", Format::PcapNg, Link::Ethernet, &frames);
    let c = only(&r);
    assert_eq!(
        (c.close, c.closed_by, c.in_flight_at_close),
        (CloseKind::Rst, Some(Side::Server), 1)
    );
}

#[test]
fn a_server_reset_with_a_request_outstanding_is_in_flight() {
    let frames = exchange(Link::Ethernet, |f| {
        vec![f.data(Side::Client, GET), f.rst(Side::Server)]
    });
    let r = read_back("rst-inflight", Format::Pcap, Link::Ethernet, &frames);
    let c = only(&r);
    assert_eq!(c.close, CloseKind::Rst);
    assert_eq!(c.rst_by, Some(Side::Server));
    assert_eq!((c.requests, c.responses, c.in_flight_at_close), (2, 1, 1));
    let g = &r.groups[0];
    assert!(g.in_flight && g.is_problem(), "{g:?}");
    assert_eq!(
        (g.server, g.by, g.connections),
        (addr(SERVER), Some(Side::Server), 1)
    );
}

#[test]
fn a_reset_of_an_idle_keepalive_connection_is_not_in_flight() {
    let frames = exchange(Link::Ethernet, |f| vec![f.rst(Side::Server)]);
    let c = only(&read_back(
        "rst-idle",
        Format::Pcap,
        Link::Ethernet,
        &frames,
    ))
    .clone();
    assert_eq!(
        (c.close, c.closed_by, c.in_flight_at_close),
        (CloseKind::Rst, Some(Side::Server), 0)
    );
}

#[test]
fn a_response_cut_in_its_body_by_a_reset_is_in_flight() {
    let mut f = flow(Link::Sll2);
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    frames.push(f.data(Side::Client, GET));
    frames.push(f.data(
        Side::Server,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
    ));
    frames.push(f.rst(Side::Server));
    let c = only(&read_back("cut-body", Format::PcapNg, Link::Sll2, &frames)).clone();
    assert_eq!((c.responses, c.in_flight_at_close), (0, 1));
}

#[test]
fn a_server_fin_while_the_client_sends_then_a_reset_is_rst_after_fin() {
    // The server closes an idle keepalive connection; the client's next
    // request crosses the FIN and the server's kernel resets it.
    let frames = exchange(Link::Ethernet, |f| {
        vec![
            f.fin(Side::Server),
            f.data(Side::Client, GET),
            f.rst(Side::Server),
        ]
    });
    let c = only(&read_back(
        "rst-after-fin",
        Format::Pcap,
        Link::Ethernet,
        &frames,
    ))
    .clone();
    assert_eq!(c.close, CloseKind::RstAfterFin);
    assert_eq!(
        (c.fin_by, c.rst_by, c.closed_by),
        (Some(Side::Server), Some(Side::Server), Some(Side::Server))
    );
    assert_eq!(
        c.in_flight_at_close, 1,
        "the request that crossed the FIN was lost"
    );
}

#[test]
fn a_client_reset_is_told_from_a_server_reset() {
    let frames = exchange(Link::Ethernet, |f| {
        vec![f.data(Side::Client, GET), f.rst(Side::Client)]
    });
    let c = only(&read_back(
        "rst-client",
        Format::Pcap,
        Link::Ethernet,
        &frames,
    ))
    .clone();
    assert_eq!(
        (c.close, c.rst_by, c.in_flight_at_close),
        (CloseKind::Rst, Some(Side::Client), 1)
    );
}

#[test]
fn a_syn_answered_by_a_reset_is_refused() {
    let mut f = flow(Link::Ethernet);
    let frames: Vec<Vec<u8>> = f.refused().into();
    let c = only(&read_back("refused", Format::Pcap, Link::Ethernet, &frames)).clone();
    assert_eq!(
        (c.close, c.closed_by),
        (CloseKind::Refused, Some(Side::Server))
    );
}

#[test]
fn a_connection_without_close_is_open_at_the_end() {
    let frames = exchange(Link::Ethernet, |f| vec![f.data(Side::Client, GET)]);
    let r = read_back("open", Format::Pcap, Link::Ethernet, &frames);
    let c = only(&r);
    assert_eq!(
        (c.close, c.closed_by, c.in_flight_at_close),
        (CloseKind::Open, None, 1)
    );
}

#[test]
fn a_retransmitted_request_is_counted_once() {
    let mut f = flow(Link::Ethernet);
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    let req = f.data(Side::Client, GET);
    frames.push(req.clone());
    frames.push(req);
    frames.push(f.data(Side::Server, OK));
    frames.push(f.fin(Side::Server));
    frames.push(f.fin(Side::Client));
    let c = only(&read_back(
        "retransmit",
        Format::Pcap,
        Link::Ethernet,
        &frames,
    ))
    .clone();
    assert_eq!((c.requests, c.responses, c.gaps), (1, 1, 0));
    assert_eq!((c.close, c.closed_by), (CloseKind::Fin, Some(Side::Server)));
}

#[test]
fn a_missed_segment_is_a_gap_and_counting_resyncs() {
    let mut f = flow(Link::Ethernet);
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    frames.push(f.data(
        Side::Client,
        b"POST / HTTP/1.1\r\nContent-Length: 8\r\n\r\nabcd",
    ));
    let _missed = f.data(Side::Client, b"efgh");
    frames.push(f.data(Side::Client, GET));
    let c = only(&read_back("gap", Format::Pcap, Link::Ethernet, &frames)).clone();
    assert_eq!((c.requests, c.gaps), (2, 1));
}

#[test]
fn the_address_pair_reused_after_a_close_is_a_new_connection() {
    let mut frames = exchange(Link::Ethernet, |f| {
        vec![f.fin(Side::Client), f.fin(Side::Server)]
    });
    frames.extend(exchange(Link::Ethernet, |f| vec![f.rst(Side::Server)]));
    let r = read_back("reuse", Format::Pcap, Link::Ethernet, &frames);
    let kinds: Vec<_> = r.connections.iter().map(|c| c.close).collect();
    assert_eq!(kinds, [CloseKind::Fin, CloseKind::Rst]);
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[test]
fn h2c_goaway_then_reset_with_streams_open() {
    let mut f = flow(Link::Ethernet);
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    let mut hello = PREFACE.to_vec();
    hello.extend(h2_frame(4, 0, 0, &[]));
    hello.extend(h2_frame(1, 0x5, 1, b"hpack")); // HEADERS, END_STREAM|END_HEADERS
    frames.push(f.data(Side::Client, &hello));
    let mut answer = h2_frame(4, 0, 0, &[]);
    answer.extend(h2_frame(1, 0x4, 1, b"h"));
    answer.extend(h2_frame(0, 0x1, 1, b"done"));
    frames.push(f.data(Side::Server, &answer));
    frames.push(f.data(Side::Client, &h2_frame(1, 0x5, 3, b"hpack")));
    frames.push(f.data(Side::Client, &h2_frame(1, 0x5, 5, b"hpack")));
    frames.push(f.data(Side::Server, &h2_frame(3, 0, 5, &8u32.to_be_bytes())));
    let mut goaway = 3u32.to_be_bytes().to_vec();
    goaway.extend(0u32.to_be_bytes());
    frames.push(f.data(Side::Server, &h2_frame(7, 0, 0, &goaway)));
    frames.push(f.rst(Side::Server));
    let c = only(&read_back("h2c", Format::PcapNg, Link::Ethernet, &frames)).clone();
    assert_eq!(c.protocol, Protocol::H2c);
    assert_eq!((c.requests, c.responses), (3, 1));
    assert_eq!(c.in_flight_at_close, 1, "stream 3 was open at the reset");
    let h2 = c.h2.unwrap();
    assert_eq!(
        (h2.rst_streams_by_server, h2.streams_reset_in_flight),
        (1, 1)
    );
    assert_eq!(h2.goaways.len(), 1);
    assert_eq!(
        (h2.goaways[0].by, h2.goaways[0].last_stream),
        (Side::Server, 3)
    );
}

#[test]
fn h2c_graceful_close_leaves_nothing_in_flight() {
    let mut f = flow(Link::Sll);
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    let mut hello = PREFACE.to_vec();
    hello.extend(h2_frame(4, 0, 0, &[]));
    hello.extend(h2_frame(1, 0x5, 1, b"hpack"));
    frames.push(f.data(Side::Client, &hello));
    let mut answer = h2_frame(1, 0x5, 1, b"h");
    answer.extend(h2_frame(7, 0, 0, &[0; 8]));
    frames.push(f.data(Side::Server, &answer));
    frames.push(f.fin(Side::Server));
    frames.push(f.fin(Side::Client));
    let c = only(&read_back("h2c-clean", Format::Pcap, Link::Sll, &frames)).clone();
    assert_eq!(
        (c.close, c.requests, c.responses, c.in_flight_at_close),
        (CloseKind::Fin, 1, 1, 0)
    );
}

#[test]
fn a_rotated_series_reads_as_one_capture_in_order() {
    let dir = Scratch::new("series");
    let frames = exchange(Link::Ethernet, |f| {
        vec![f.data(Side::Client, GET), f.rst(Side::Server)]
    });
    let base = dir.0.join("tcp.pcap");
    let mut paths = vec![];
    // tcp.pcap, tcp.pcap1 … tcp.pcap10, given in glob (text) order.
    for (i, chunk) in frames.chunks(1).enumerate() {
        let path = if i == 0 {
            base.clone()
        } else {
            PathBuf::from(format!("{}{i}", base.display()))
        };
        write(
            &path,
            Format::Pcap,
            Link::Ethernet,
            &[chunk[0].clone()],
            T0 + i as u64 * 1_000_000,
        );
        paths.push(path);
    }
    paths.sort();
    let r = analyze(&order_series(&paths), &Filter::default()).unwrap();
    let c = only(&r);
    assert_eq!(
        (c.close, c.in_flight_at_close, c.requests),
        (CloseKind::Rst, 1, 2)
    );
    assert_eq!(r.files.len(), frames.len());
}

#[test]
fn port_and_host_filters_keep_only_matching_connections() {
    let mut frames = exchange(Link::Ethernet, |f| vec![f.rst(Side::Server)]);
    let mut other = Flow::new(
        addr("10.0.0.9:40001"),
        addr("10.0.0.6:9090"),
        Link::Ethernet,
    );
    frames.extend(other.handshake());
    let dir = Scratch::new("filter");
    let path = dir.0.join("c.pcap");
    write(&path, Format::Pcap, Link::Ethernet, &frames, T0);
    let by_port = analyze(
        std::slice::from_ref(&path),
        &Filter {
            port: Some(9090),
            host: None,
        },
    )
    .unwrap();
    assert_eq!(only(&by_port).server, addr("10.0.0.6:9090"));
    let by_host = analyze(
        &[path],
        &Filter {
            port: None,
            host: Some("10.0.0.5".parse().unwrap()),
        },
    )
    .unwrap();
    assert_eq!(only(&by_host).server, addr(SERVER));
}

#[test]
fn a_capture_cut_mid_packet_reads_up_to_the_cut() {
    let dir = Scratch::new("cut");
    let path = dir.0.join("c.pcap");
    let frames = exchange(Link::Ethernet, |f| vec![f.data(Side::Client, GET)]);
    write(&path, Format::Pcap, Link::Ethernet, &frames, T0);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let r = analyze(&[path], &Filter::default()).unwrap();
    assert!(r.files[0].truncated);
    assert_eq!(only(&r).requests, 1, "the last, cut request is not read");
}

#[test]
fn a_file_that_is_not_a_capture_is_a_clear_error() {
    let dir = Scratch::new("bad");
    let path = dir.0.join("notes.txt");
    std::fs::write(&path, b"hello, this is not a capture file at all").unwrap();
    let err = analyze(&[path], &Filter::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a pcap or pcapng capture"), "{err}");
}

/// Found by the segmentation property test: a first segment of "G" was
/// taken for a protocol other than HTTP.
#[test]
fn a_request_line_cut_after_its_first_bytes_is_still_http() {
    for cut in [1, 2, 3] {
        let mut f = flow(Link::Ethernet);
        let mut frames: Vec<Vec<u8>> = f.handshake().into();
        frames.push(f.data(Side::Client, &GET[..cut]));
        frames.push(f.data(Side::Client, &GET[cut..]));
        frames.push(f.rst(Side::Server));
        let r = read_back("cut-line", Format::Pcap, Link::Ethernet, &frames);
        let c = only(&r);
        assert_eq!(
            (c.protocol, c.requests, c.in_flight_at_close),
            (Protocol::Http1, 1, 1),
            "cut {cut}"
        );
    }
}
