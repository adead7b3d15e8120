//! One TCP connection as the capture shows it: which end is the client, the
//! byte stream of each direction put in order by sequence number (a
//! retransmit is fed once; a hole is counted and the parsers resync), the
//! first FIN and RST of each side, and the application parser fed on the way.

use std::net::SocketAddr;

use etherparse::TcpSlice;

use crate::{
    h2::{self, H2},
    http1::{self, Http1},
    CloseKind, ConnReport, Protocol, Side,
};

/// What the payload is parsed as.
#[derive(Debug)]
enum App {
    Unknown,
    Http1(Http1),
    H2(Box<H2>),
    Other,
}

#[derive(Debug)]
pub(crate) struct Conn {
    client: SocketAddr,
    server: SocketAddr,
    start_ns: u64,
    end_ns: u64,
    syn_seen: bool,
    syn_ack_seen: bool,
    /// The next sequence number expected from each side.
    next_seq: [Option<u32>; 2],
    payload_bytes: u64,
    gaps: u32,
    fin: [Option<u64>; 2],
    first_fin: Option<(Side, u64)>,
    rst: Option<(Side, u64)>,
    in_flight_at_rst: u32,
    app: App,
    /// The first payload bytes, while too few to tell the protocol.
    sniff: Vec<u8>,
}

impl Conn {
    /// A connection first seen with a segment from `src` to `dst`.
    pub(crate) fn new(ts: u64, src: SocketAddr, dst: SocketAddr, tcp: &TcpSlice<'_>) -> Conn {
        let src_is_client = if tcp.syn() {
            !tcp.ack()
        } else {
            // Seen mid-stream: the lower port is the likelier server.
            src.port() > dst.port()
        };
        let (client, server) = if src_is_client {
            (src, dst)
        } else {
            (dst, src)
        };
        Conn {
            client,
            server,
            start_ns: ts,
            end_ns: ts,
            syn_seen: false,
            syn_ack_seen: false,
            next_seq: [None; 2],
            payload_bytes: 0,
            gaps: 0,
            fin: [None; 2],
            first_fin: None,
            rst: None,
            in_flight_at_rst: 0,
            app: App::Unknown,
            sniff: Vec::new(),
        }
    }

    /// Reset, or closed from both ends: a new SYN on this address pair is
    /// a new connection.
    pub(crate) fn is_finished(&self) -> bool {
        self.rst.is_some() || (self.fin[0].is_some() && self.fin[1].is_some())
    }

    /// One segment from `src`.
    pub(crate) fn segment(&mut self, ts: u64, src: SocketAddr, tcp: &TcpSlice<'_>) {
        self.end_ns = ts;
        if self.rst.is_some() {
            return;
        }
        let side = if src == self.client {
            Side::Client
        } else {
            Side::Server
        };
        let seq = tcp.sequence_number();
        if tcp.syn() {
            self.syn_seen |= side == Side::Client;
            self.syn_ack_seen |= side == Side::Server;
            self.next_seq[side.index()] = Some(seq.wrapping_add(1));
        }
        let payload = tcp.payload();
        if !payload.is_empty() {
            self.data(side, seq, payload, ts);
        }
        if tcp.fin() && self.fin[side.index()].is_none() {
            self.fin[side.index()] = Some(ts);
            self.first_fin.get_or_insert((side, ts));
            if let App::Http1(h) = &mut self.app {
                h.fin(side);
            }
        }
        if tcp.rst() {
            self.rst = Some((side, ts));
            self.in_flight_at_rst = self.outstanding();
        }
    }

    /// Payload at `seq`: only bytes not seen before reach the parser.
    fn data(&mut self, side: Side, seq: u32, payload: &[u8], ts: u64) {
        let next = *self.next_seq[side.index()].get_or_insert(seq);
        let offset = seq.wrapping_sub(next) as i32;
        let end = seq.wrapping_add(payload.len() as u32);
        let fresh = match offset {
            0 => payload,
            o if o < 0 => {
                let seen = o.unsigned_abs() as usize;
                if seen >= payload.len() {
                    return; // a retransmit of bytes already fed
                }
                &payload[seen..]
            }
            _ => {
                self.gaps += 1;
                self.gap(side);
                payload
            }
        };
        self.next_seq[side.index()] = Some(end);
        self.payload_bytes += fresh.len() as u64;
        self.feed(side, fresh, ts);
    }

    fn gap(&mut self, side: Side) {
        match &mut self.app {
            App::Http1(h) => h.gap(side),
            App::H2(h) => h.gap(side),
            App::Unknown | App::Other => {}
        }
    }

    /// Feeds the application parser, once the first bytes tell which one.
    fn feed(&mut self, side: Side, data: &[u8], ts: u64) {
        if !matches!(self.app, App::Unknown) {
            return self.feed_app(side, data, ts);
        }
        if side == Side::Server && !self.sniff.is_empty() {
            // The server spoke while the client's first bytes were undecided.
            self.app = App::Other;
            return;
        }
        let mut held = std::mem::take(&mut self.sniff);
        held.extend_from_slice(data);
        match detect(side, &held) {
            Some(app) => {
                self.app = app;
                self.feed_app(side, &held, ts);
            }
            None => self.sniff = held,
        }
    }

    fn feed_app(&mut self, side: Side, data: &[u8], ts: u64) {
        match &mut self.app {
            App::Http1(h) => {
                if let Some(at) = h.feed(side, data) {
                    let mut h2 = Box::new(H2::upgraded());
                    h2.feed(side, &data[at..], ts);
                    self.app = App::H2(h2);
                }
            }
            App::H2(h) => h.feed(side, data, ts),
            App::Unknown | App::Other => {}
        }
    }

    fn outstanding(&self) -> u32 {
        match &self.app {
            App::Http1(h) => h.outstanding(),
            App::H2(h) => h.outstanding(),
            App::Unknown | App::Other => 0,
        }
    }

    /// The record of this connection, as it stands.
    pub(crate) fn finish(self) -> ConnReport {
        let close = self.close_kind();
        let closed = match (self.first_fin, self.rst) {
            (Some(f), Some(r)) => Some(if f.1 <= r.1 { f } else { r }),
            (f, r) => f.or(r),
        };
        let in_flight = if self.rst.is_some() {
            self.in_flight_at_rst
        } else {
            self.outstanding()
        };
        let (protocol, requests, responses, h2) = match self.app {
            App::Unknown => (Protocol::None, 0, 0, None),
            App::Other => (Protocol::Other, 0, 0, None),
            App::Http1(h) => (Protocol::Http1, h.requests, h.responses, None),
            App::H2(h) => (Protocol::H2c, h.requests, h.responses, Some(h.report)),
        };
        ConnReport {
            client: self.client,
            server: self.server,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            close,
            closed_by: closed.map(|c| c.0),
            closed_at_ns: closed.map(|c| c.1),
            fin_by: self.first_fin.map(|f| f.0),
            rst_by: self.rst.map(|r| r.0),
            protocol,
            requests,
            responses,
            in_flight_at_close: in_flight,
            h2,
            gaps: self.gaps,
        }
    }

    fn close_kind(&self) -> CloseKind {
        match (self.first_fin, self.rst) {
            (_, Some((Side::Server, _)))
                if self.syn_seen && !self.syn_ack_seen && self.payload_bytes == 0 =>
            {
                CloseKind::Refused
            }
            (Some(f), Some(r)) if f.1 <= r.1 => CloseKind::RstAfterFin,
            (_, Some(_)) => CloseKind::Rst,
            (Some(_), None) => CloseKind::Fin,
            (None, None) => CloseKind::Open,
        }
    }
}

/// What the first payload bytes say the connection speaks; `None` while
/// the client's bytes are too few to tell (a request line cut after "GE").
fn detect(side: Side, data: &[u8]) -> Option<App> {
    let n = data.len().min(h2::PREFACE.len());
    if side == Side::Client && data[..n] == h2::PREFACE[..n] {
        // "PRI " is no method; "P" alone could still be POST, PUT or PATCH.
        return (n >= 4).then(|| App::H2(Box::new(H2::new())));
    }
    if http1::starts_message(side, data) {
        Some(App::Http1(Http1::new()))
    } else if side == Side::Client && data.len() < 8 && http1::may_start_request(data) {
        None
    } else {
        Some(App::Other)
    }
}
