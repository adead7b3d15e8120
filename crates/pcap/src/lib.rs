//! `lameduck pcap`: reads packet captures (pcap and pcapng, one file or a
//! rotated `tcpdump -C` series) in one pass and tells, for every TCP
//! connection, who closed it and how (FIN or RST, which side, RST after FIN),
//! how many HTTP/1.1 or cleartext HTTP/2 requests and responses it carried,
//! and whether a request was still outstanding when it closed: the one fact
//! that says a deploy lost a request.
//!
//! The reading is zero-copy past the file buffer: packets are slices into
//! pcap-parser's buffer, layers are sliced by etherparse, and only the few
//! bytes of an HTTP head or frame header split across segments are copied.
//! Connections live in one hash map keyed by the address pair.

#![forbid(unsafe_code)]

mod conn;
mod files;
#[doc(hidden)]
pub mod fuzzing;
mod h2;
mod http1;
mod link;
mod report;
pub mod synth;
mod tracker;

use std::{net::IpAddr, path::PathBuf};

pub use files::order_series;
pub use report::{
    clock, CloseKind, ConnReport, FileReport, GoAway, Group, H2Report, Protocol, Report, Side,
};

/// Which connections to keep: a connection matches when either end has the
/// port (and the address) asked for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Keep connections with this port at either end.
    pub port: Option<u16>,
    /// Keep connections with this address at either end.
    pub host: Option<IpAddr>,
}

impl Filter {
    fn matches(&self, a: &std::net::SocketAddr, b: &std::net::SocketAddr) -> bool {
        let port = self.port.is_none_or(|p| a.port() == p || b.port() == p);
        let host = self.host.is_none_or(|h| a.ip() == h || b.ip() == h);
        port && host
    }
}

/// What can go wrong reading captures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a capture this reader knows.
    #[error("{path}: not a pcap or pcapng capture ({detail})")]
    Format { path: PathBuf, detail: String },
    /// The file is damaged past the point where reading can go on.
    #[error("{path}: damaged capture at byte {offset}: {detail}")]
    Damaged {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
}

/// Reads `paths` (put in rotation order by [`order_series`] first) and
/// returns the report of every matching TCP connection.
pub fn analyze(paths: &[PathBuf], filter: &Filter) -> Result<Report, Error> {
    let mut tracker = tracker::Tracker::new(filter.clone());
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let file = files::read(path, |ts, link, data| tracker.packet(ts, link, data))?;
        files.push(file);
    }
    Ok(tracker.finish(files))
}

/// Reads one capture held in memory (pcap or pcapng), named `name` in the
/// report and in errors, and returns the report of every matching TCP
/// connection, as [`analyze`] does for a file.
pub fn analyze_bytes(name: &str, capture: &[u8], filter: &Filter) -> Result<Report, Error> {
    let mut tracker = tracker::Tracker::new(filter.clone());
    let path = PathBuf::from(name);
    let bytes = capture.len() as u64;
    let file = files::read_from(&path, bytes, capture, |ts, link, data| {
        tracker.packet(ts, link, data)
    })?;
    Ok(tracker.finish(vec![file]))
}
