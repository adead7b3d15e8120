//! What the analysis returns: one record per TCP connection, the files read,
//! and the connections grouped by what happened to them (the summary lines).

use std::{net::SocketAddr, path::PathBuf};

use serde::Serialize;

/// One end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The end that opened the connection (sent the SYN).
    Client,
    /// The end that accepted it.
    Server,
}

impl Side {
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseKind {
    /// A FIN: an orderly close.
    Fin,
    /// A reset with no FIN before it.
    Rst,
    /// A FIN, then a reset (e.g. the server closed, the client still sent).
    RstAfterFin,
    /// The server answered the SYN with a reset: nobody listened.
    Refused,
    /// Still open when the capture ends.
    Open,
}

/// What the connection spoke, as far as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// No payload seen.
    None,
    /// HTTP/1.x.
    Http1,
    /// Cleartext HTTP/2 (prior knowledge or `Upgrade: h2c`).
    H2c,
    /// Anything else (TLS included).
    Other,
}

/// A GOAWAY frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoAway {
    /// Who sent it.
    pub by: Side,
    /// When, in nanoseconds since the epoch.
    pub at_ns: u64,
    /// The last stream the sender will process.
    pub last_stream: u32,
    /// The HTTP/2 error code (0 = NO_ERROR, a graceful shutdown).
    pub error_code: u32,
}

/// The HTTP/2 part of a connection's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct H2Report {
    /// GOAWAY frames, in order.
    pub goaways: Vec<GoAway>,
    /// RST_STREAM frames sent by the client.
    pub rst_streams_by_client: u32,
    /// RST_STREAM frames sent by the server.
    pub rst_streams_by_server: u32,
    /// RST_STREAM frames that cut a stream whose response had not ended.
    pub streams_reset_in_flight: u32,
}

/// One TCP connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnReport {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// First packet, nanoseconds since the epoch.
    pub start_ns: u64,
    /// Last packet.
    pub end_ns: u64,
    pub close: CloseKind,
    /// Who sent the first FIN or RST (none while open).
    pub closed_by: Option<Side>,
    /// When that was.
    pub closed_at_ns: Option<u64>,
    /// Who sent the first FIN, if any.
    pub fin_by: Option<Side>,
    /// Who sent the first RST, if any.
    pub rst_by: Option<Side>,
    pub protocol: Protocol,
    /// Requests seen (HTTP/1 request heads, HTTP/2 streams opened by the client).
    pub requests: u32,
    /// Responses seen through to their end.
    pub responses: u32,
    /// Requests whose response had not ended when the connection closed
    /// (HTTP/2: streams open at close, reset streams not counted).
    pub in_flight_at_close: u32,
    /// Present for h2c connections.
    pub h2: Option<H2Report>,
    /// Holes in the byte stream (packets the capture missed): counts may be
    /// short when this is not 0.
    pub gaps: u32,
}

impl ConnReport {
    /// Seconds from the first packet to the last.
    pub fn duration_s(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

/// One file read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub packets: u64,
    /// Cut short: the last packet was only partly written.
    pub truncated: bool,
}

/// Connections that ended the same way at the same server: one summary line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub server: SocketAddr,
    pub close: CloseKind,
    /// Who closed (none while open).
    pub by: Option<Side>,
    /// With at least one request outstanding at the close.
    pub in_flight: bool,
    pub connections: u64,
    /// Requests outstanding at the close, summed.
    pub requests_in_flight: u64,
    /// First and last close (for open connections: first and last start).
    pub from_ns: u64,
    pub to_ns: u64,
    /// The longest connection of the group, in seconds.
    pub longest_s: f64,
}

impl Group {
    /// A problem a user should look at: a reset, a refusal, or a close with
    /// a request outstanding.
    pub fn is_problem(&self) -> bool {
        self.in_flight
            || matches!(
                self.close,
                CloseKind::Rst | CloseKind::RstAfterFin | CloseKind::Refused
            )
    }
}

/// Everything read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub files: Vec<FileReport>,
    /// Packets read, all kinds.
    pub packets: u64,
    /// TCP segments that matched the filter.
    pub tcp_segments: u64,
    /// Sorted by start.
    pub connections: Vec<ConnReport>,
    /// Problems first, then by time.
    pub groups: Vec<Group>,
}

impl Report {
    /// Bytes of capture read.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

impl Group {
    /// The summary line, e.g. "37 connections reset by 10.0.0.5:8080 with a
    /// request in flight, between 12:00:03.200 and 12:00:03.900".
    pub fn sentence(&self) -> String {
        let n = self.connections;
        let conns = if n == 1 { "connection" } else { "connections" };
        let server = self.server;
        let who = match self.by {
            Some(Side::Server) => "the server".to_string(),
            _ => "the client".to_string(),
        };
        let flight = if self.in_flight {
            let r = self.requests_in_flight;
            format!(
                " with a request in flight ({r} {})",
                if r == 1 { "request" } else { "requests" }
            )
        } else {
            String::new()
        };
        let what = match (self.close, self.by) {
            (CloseKind::Rst, Some(Side::Server)) => format!("{n} {conns} reset by {server}"),
            (CloseKind::Rst, _) => format!("{n} {conns} to {server} reset by the client"),
            (CloseKind::RstAfterFin, _) => {
                format!("{n} {conns} to {server} closed by {who} (FIN), then reset")
            }
            (CloseKind::Refused, _) => {
                format!("{n} {conns} refused by {server} (nothing listening)")
            }
            (CloseKind::Fin, Some(Side::Server)) => format!("{n} {conns} closed by {server} (FIN)"),
            (CloseKind::Fin, _) => format!("{n} {conns} to {server} closed by the client (FIN)"),
            (CloseKind::Open, _) => {
                let s = format!("{n} {conns} to {server} still open at the end");
                return format!("{s}{flight} (longest {:.1} s)", self.longest_s);
            }
        };
        let idle =
            if !self.in_flight && matches!(self.close, CloseKind::Rst | CloseKind::RstAfterFin) {
                " while idle"
            } else {
                ""
            };
        let when = if self.from_ns / 1_000_000 == self.to_ns / 1_000_000 {
            format!(", at {}", clock(self.from_ns))
        } else {
            format!(
                ", between {} and {}",
                clock(self.from_ns),
                clock(self.to_ns)
            )
        };
        format!("{what}{flight}{idle}{when}")
    }
}

/// `12:00:03.200`: the UTC time of day of a stamp, to the millisecond.
pub fn clock(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let day_ms = ms % 86_400_000;
    let (h, m) = (day_ms / 3_600_000, day_ms / 60_000 % 60);
    let (s, milli) = (day_ms / 1000 % 60, day_ms % 1000);
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(close: CloseKind, by: Option<Side>, in_flight: bool) -> Group {
        Group {
            server: "10.0.0.5:8080".parse().unwrap(),
            close,
            by,
            in_flight,
            connections: 37,
            requests_in_flight: if in_flight { 37 } else { 0 },
            from_ns: 1_767_268_803_200_000_000,
            to_ns: 1_767_268_803_900_000_000,
            longest_s: 59.25,
        }
    }

    #[test]
    fn resets_by_the_server_with_requests_in_flight_read_as_a_sentence() {
        assert_eq!(
            group(CloseKind::Rst, Some(Side::Server), true).sentence(),
            "37 connections reset by 10.0.0.5:8080 with a request in flight (37 requests), \
             between 12:00:03.200 and 12:00:03.900"
        );
    }

    #[test]
    fn idle_resets_and_open_connections_say_so() {
        let idle = group(CloseKind::Rst, Some(Side::Client), false).sentence();
        assert!(
            idle.starts_with("37 connections to 10.0.0.5:8080 reset by the client while idle"),
            "{idle}"
        );
        let open = group(CloseKind::Open, None, false).sentence();
        assert_eq!(
            open,
            "37 connections to 10.0.0.5:8080 still open at the end (longest 59.2 s)"
        );
    }
}
