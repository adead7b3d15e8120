//! The check the fuzz target (`fuzz/`, `pcap_capture`) and the corpus replay
//! test (`tests/fuzz_corpus.rs`) run on capture bytes: a capture comes from
//! whatever tcpdump, a sidecar or a user's upload wrote, so every byte of it
//! is untrusted.
//!
//! Why a public module: a fuzz target is a separate crate, and the replay test
//! must call exactly what the fuzz target calls; so the check lives here,
//! once, hidden from the docs.
//!
//! The check reads the bytes as one in-memory capture, all the way to the
//! per-connection report, and panics when the report contradicts itself:
//! more responses than requests (one spare: a response may answer a request
//! the capture missed), more requests in flight than requests, a close kind
//! that disagrees with who closed, or summary lines whose counts do not add up
//! to the connections.

use crate::{analyze_bytes, CloseKind, ConnReport, Filter, Protocol, Report};

/// One capture, pcap or pcapng.
pub fn capture(data: &[u8]) {
    let Ok(report) = analyze_bytes("fuzz.pcap", data, &Filter::default()) else {
        return;
    };
    for conn in &report.connections {
        connection(conn);
    }
    summary(&report);
}

/// A connection's record agrees with itself.
fn connection(c: &ConnReport) {
    assert!(
        c.responses <= c.requests.saturating_add(1),
        "more responses than requests: {c:?}"
    );
    assert!(
        c.in_flight_at_close <= c.requests,
        "more requests in flight than requests: {c:?}"
    );
    let open = c.close == CloseKind::Open;
    assert_eq!(open, c.closed_by.is_none(), "close vs closer: {c:?}");
    assert_eq!(open, c.closed_at_ns.is_none(), "close vs close time: {c:?}");
    let rst = matches!(
        c.close,
        CloseKind::Rst | CloseKind::RstAfterFin | CloseKind::Refused
    );
    assert_eq!(rst, c.rst_by.is_some(), "close vs reset: {c:?}");
    if c.close == CloseKind::RstAfterFin {
        assert!(c.fin_by.is_some(), "reset after a FIN without one: {c:?}");
    }
    assert_eq!(
        c.protocol == Protocol::H2c,
        c.h2.is_some(),
        "h2 record vs protocol: {c:?}"
    );
    if matches!(c.protocol, Protocol::None | Protocol::Other) {
        assert_eq!(
            (c.requests, c.responses),
            (0, 0),
            "requests without HTTP: {c:?}"
        );
    }
}

/// The summary lines count every connection once and render.
fn summary(report: &Report) {
    let grouped: u64 = report.groups.iter().map(|g| g.connections).sum();
    assert_eq!(
        grouped,
        report.connections.len() as u64,
        "groups vs connections"
    );
    let in_flight: u64 = report
        .connections
        .iter()
        .map(|c| u64::from(c.in_flight_at_close))
        .sum();
    let grouped_in_flight: u64 = report.groups.iter().map(|g| g.requests_in_flight).sum();
    assert_eq!(grouped_in_flight, in_flight, "groups vs requests in flight");
    for g in &report.groups {
        assert!(g.from_ns <= g.to_ns, "group times out of order: {g:?}");
        let line = g.sentence();
        assert!(line.starts_with(&g.connections.to_string()), "{line}");
    }
    assert!(
        report.tcp_segments <= report.packets,
        "more segments than packets"
    );
    assert_eq!(report.packets, report.files[0].packets, "packets vs file");
}
