//! The one pass: every packet goes to its connection, found in a hash map
//! keyed by the (sorted) address pair; at the end every connection becomes
//! a record and the records are grouped into the summary.

use std::{collections::hash_map::Entry, net::SocketAddr};

use fnv::FnvHashMap;
use pcap_parser::Linktype;

use crate::{conn::Conn, link, CloseKind, ConnReport, FileReport, Filter, Group, Report, Side};

type Key = (SocketAddr, SocketAddr);

#[derive(Debug)]
pub(crate) struct Tracker {
    filter: Filter,
    conns: FnvHashMap<Key, Conn>,
    done: Vec<ConnReport>,
    packets: u64,
    tcp_segments: u64,
}

impl Tracker {
    pub(crate) fn new(filter: Filter) -> Tracker {
        Tracker {
            filter,
            conns: FnvHashMap::default(),
            done: Vec::new(),
            packets: 0,
            tcp_segments: 0,
        }
    }

    pub(crate) fn packet(&mut self, ts: u64, link: Linktype, frame: &[u8]) {
        self.packets += 1;
        let Some(seg) = link::tcp_segment(link, frame) else {
            return;
        };
        if !self.filter.matches(&seg.src, &seg.dst) {
            return;
        }
        self.tcp_segments += 1;
        let key = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let new_syn = seg.tcp.syn() && !seg.tcp.ack();
        let conn = match self.conns.entry(key) {
            Entry::Occupied(e) => {
                let conn = e.into_mut();
                if new_syn && conn.is_finished() {
                    let old = std::mem::replace(conn, Conn::new(ts, seg.src, seg.dst, &seg.tcp));
                    self.done.push(old.finish());
                }
                conn
            }
            Entry::Vacant(e) => e.insert(Conn::new(ts, seg.src, seg.dst, &seg.tcp)),
        };
        conn.segment(ts, seg.src, &seg.tcp);
    }

    pub(crate) fn finish(mut self, files: Vec<FileReport>) -> Report {
        self.done.extend(self.conns.into_values().map(Conn::finish));
        let mut connections = self.done;
        connections.sort_by_key(|c| (c.start_ns, c.client, c.server));
        let groups = groups(&connections);
        Report {
            files,
            packets: self.packets,
            tcp_segments: self.tcp_segments,
            connections,
            groups,
        }
    }
}

/// Connections grouped by server, close kind, closer and request in flight.
fn groups(conns: &[ConnReport]) -> Vec<Group> {
    let mut by_key: FnvHashMap<(SocketAddr, CloseKind, Option<Side>, bool), Group> =
        FnvHashMap::default();
    for c in conns {
        let in_flight = c.in_flight_at_close > 0;
        let at = c.closed_at_ns.unwrap_or(c.start_ns);
        let g = by_key
            .entry((c.server, c.close, c.closed_by, in_flight))
            .or_insert_with(|| Group {
                server: c.server,
                close: c.close,
                by: c.closed_by,
                in_flight,
                connections: 0,
                requests_in_flight: 0,
                from_ns: at,
                to_ns: at,
                longest_s: 0.0,
            });
        g.connections += 1;
        g.requests_in_flight += u64::from(c.in_flight_at_close);
        g.from_ns = g.from_ns.min(at);
        g.to_ns = g.to_ns.max(at);
        g.longest_s = g.longest_s.max(c.duration_s());
    }
    let mut groups: Vec<Group> = by_key.into_values().collect();
    groups.sort_by_key(|g| (!g.is_problem(), !g.in_flight, g.from_ns, g.server));
    groups
}
