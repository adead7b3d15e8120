//! Hostile input: random bytes after a valid capture header, random
//! payloads on a real TCP flow, and random cuts of a good capture. The reader
//! must return a report or an error, never panic, and the counts of a good
//! flow must not depend on how its bytes were cut into segments.

use std::path::PathBuf;

use lameduck_pcap::{
    analyze,
    synth::{Flow, Format, Link, Writer},
    Filter, Side,
};
use proptest::{collection::vec, prelude::*, test_runner::Config};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lameduck-pcap-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn capture(format: Format, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), format, Link::Ethernet).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.packet(1_000_000_000 + i as u64 * 1000, f).unwrap();
    }
    w.into_inner()
}

fn flow_frames(client: &[Vec<u8>], server: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut f = Flow::new(
        "10.0.0.9:40000".parse().unwrap(),
        "10.0.0.5:80".parse().unwrap(),
        Link::Ethernet,
    );
    let mut frames: Vec<Vec<u8>> = f.handshake().into();
    for (c, s) in client
        .iter()
        .zip(server.iter().chain(std::iter::repeat(&Vec::new())))
    {
        frames.push(f.data(Side::Client, c));
        frames.push(f.data(Side::Server, s));
    }
    frames.push(f.rst(Side::Server));
    frames
}

proptest! {
    #![proptest_config(Config { cases: 200, ..Config::default() })]

    #[test]
    fn random_bytes_after_a_header_never_panic(ng in any::<bool>(), tail in vec(any::<u8>(), 0..2000)) {
        let format = if ng { Format::PcapNg } else { Format::Pcap };
        let mut bytes = capture(format, &[]);
        bytes.extend_from_slice(&tail);
        let path = scratch(&format!("random-{ng}.pcap"));
        std::fs::write(&path, &bytes).unwrap();
        let _ = analyze(&[path], &Filter::default());
    }

    #[test]
    fn random_payloads_on_a_flow_never_panic(
        client in vec(vec(any::<u8>(), 0..300), 1..8),
        server in vec(vec(any::<u8>(), 0..300), 0..8),
        prefix in prop_oneof![Just(&b""[..]), Just(&b"GET / HTTP/1.1\r\n"[..]), Just(&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..])],
    ) {
        let mut client = client;
        client[0].splice(0..0, prefix.iter().copied());
        let path = scratch("payloads.pcap");
        std::fs::write(&path, capture(Format::Pcap, &flow_frames(&client, &server))).unwrap();
        let report = analyze(&[path], &Filter::default()).unwrap();
        prop_assert_eq!(report.connections.len(), 1);
    }

    #[test]
    fn a_keepalive_stream_counts_the_same_however_it_is_segmented(cuts in vec(1usize..40, 1..30)) {
        let requests = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /c HTTP/1.1\r\n\r\n".to_vec();
        let mut pieces = Vec::new();
        let mut rest = &requests[..];
        for c in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*c).min(rest.len());
            pieces.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        let path = scratch("segmented.pcap");
        std::fs::write(&path, capture(Format::PcapNg, &flow_frames(&pieces, &[]))).unwrap();
        let report = analyze(&[path], &Filter::default()).unwrap();
        let c = &report.connections[0];
        prop_assert_eq!((c.requests, c.in_flight_at_close), (3, 3));
    }
}
