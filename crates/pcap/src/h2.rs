//! Cleartext HTTP/2, just enough to count: the client preface, then frame
//! headers (9 bytes) in each direction. Streams open with the client's
//! HEADERS and end with the server's END_STREAM; RST_STREAM and GOAWAY are
//! recorded with their error codes. Payloads are skipped, except the 8 bytes
//! of a GOAWAY or RST_STREAM that carry the codes.

use fnv::FnvHashSet;

use crate::{GoAway, H2Report, Side};

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;

/// One direction's frame reader.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; 9],
    header_len: u8,
    /// Payload bytes of the current frame still to come.
    left: u32,
    /// The first payload bytes (GOAWAY and RST_STREAM only).
    payload: [u8; 8],
    payload_len: u8,
    /// Lost sync: nothing more is read in this direction.
    lost: bool,
}

/// Both directions of an h2c connection.
#[derive(Debug)]
pub(crate) struct H2 {
    /// Preface bytes the client has still to send.
    preface_left: usize,
    frames: [Frames; 2],
    /// Streams the client opened whose response has not ended.
    open: FnvHashSet<u32>,
    pub(crate) requests: u32,
    pub(crate) responses: u32,
    pub(crate) report: H2Report,
}

/// A frame header, decoded.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
}

impl H2 {
    /// A connection that starts with the client preface (prior knowledge).
    pub(crate) fn new() -> H2 {
        H2 {
            preface_left: PREFACE.len(),
            frames: [Frames::default(), Frames::default()],
            open: FnvHashSet::default(),
            requests: 0,
            responses: 0,
            report: H2Report::default(),
        }
    }

    /// A connection upgraded from HTTP/1.1: the upgrade request is stream 1.
    pub(crate) fn upgraded() -> H2 {
        let mut h2 = H2::new();
        h2.open.insert(1);
        h2.requests = 1;
        h2
    }

    /// Streams open now (a request sent, its response not ended).
    pub(crate) fn outstanding(&self) -> u32 {
        self.open.len() as u32
    }

    /// A hole in `side`'s stream: frame boundaries are lost for good.
    pub(crate) fn gap(&mut self, side: Side) {
        self.frames[side.index()].lost = true;
    }

    /// Feeds in-order bytes from `side`, sent at `ts`.
    pub(crate) fn feed(&mut self, side: Side, mut data: &[u8], ts: u64) {
        if side == Side::Client && self.preface_left > 0 {
            let n = data.len().min(self.preface_left);
            self.preface_left -= n;
            data = &data[n..];
        }
        while !data.is_empty() && !self.frames[side.index()].lost {
            let used = self.step(side, data, ts);
            data = &data[used..];
        }
    }

    /// Reads some of a frame header or payload; returns the bytes used.
    fn step(&mut self, side: Side, data: &[u8], ts: u64) -> usize {
        let f = &mut self.frames[side.index()];
        if f.header_len < 9 {
            let at = usize::from(f.header_len);
            let n = data.len().min(9 - at);
            f.header[at..at + n].copy_from_slice(&data[..n]);
            f.header_len += n as u8;
            if f.header_len == 9 {
                f.left = u32::from_be_bytes([0, f.header[0], f.header[1], f.header[2]]);
                f.payload_len = 0;
                if f.left == 0 {
                    self.frame_done(side, ts);
                }
            }
            return n;
        }
        let n = (data.len() as u32).min(f.left) as usize;
        let keep = (8 - usize::from(f.payload_len)).min(n);
        if keep > 0 && matches!(f.header[3], GOAWAY | RST_STREAM) {
            let at = usize::from(f.payload_len);
            f.payload[at..at + keep].copy_from_slice(&data[..keep]);
            f.payload_len += keep as u8;
        }
        f.left -= n as u32;
        if f.left == 0 {
            self.frame_done(side, ts);
        }
        n
    }

    /// A whole frame was read.
    fn frame_done(&mut self, side: Side, ts: u64) {
        let f = &mut self.frames[side.index()];
        f.header_len = 0;
        let h = f.header;
        let frame = Frame {
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        };
        let payload = f.payload;
        let code = |at: usize| {
            u32::from_be_bytes([
                payload[at],
                payload[at + 1],
                payload[at + 2],
                payload[at + 3],
            ])
        };
        match frame.kind {
            HEADERS | DATA => self.data_or_headers(side, &frame),
            RST_STREAM => {
                match side {
                    Side::Client => self.report.rst_streams_by_client += 1,
                    Side::Server => self.report.rst_streams_by_server += 1,
                }
                if self.open.remove(&frame.stream) {
                    self.report.streams_reset_in_flight += 1;
                }
            }
            GOAWAY => self.report.goaways.push(GoAway {
                by: side,
                at_ns: ts,
                last_stream: code(0) & 0x7fff_ffff,
                error_code: code(4),
            }),
            _ => {}
        }
    }

    fn data_or_headers(&mut self, side: Side, frame: &Frame) {
        let end = frame.flags & END_STREAM != 0;
        match side {
            Side::Client => {
                if frame.kind == HEADERS && frame.stream % 2 == 1 && self.open.insert(frame.stream)
                {
                    self.requests += 1;
                }
            }
            Side::Server => {
                if end && self.open.remove(&frame.stream) {
                    self.responses += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn counts_streams_resets_and_goaway_across_split_frames() {
        let mut client = PREFACE.to_vec();
        client.extend(frame(4, 0, 0, &[]));
        client.extend(frame(HEADERS, 0x4 | END_STREAM, 1, b"hpack"));
        client.extend(frame(HEADERS, 0x4 | END_STREAM, 3, b"hpack"));
        client.extend(frame(HEADERS, 0x4, 5, b"hpack"));
        let mut server = frame(4, 0, 0, &[0; 6]);
        server.extend(frame(HEADERS, 0x4, 1, b"h"));
        server.extend(frame(DATA, END_STREAM, 1, b"body"));
        server.extend(frame(RST_STREAM, 0, 3, &2u32.to_be_bytes()));
        let mut goaway = 5u32.to_be_bytes().to_vec();
        goaway.extend(0u32.to_be_bytes());
        server.extend(frame(GOAWAY, 0, 0, &goaway));
        for piece in [1, 5, 1000] {
            let mut h2 = H2::new();
            client
                .chunks(piece)
                .for_each(|c| h2.feed(Side::Client, c, 1));
            server
                .chunks(piece)
                .for_each(|c| h2.feed(Side::Server, c, 2));
            assert_eq!((h2.requests, h2.responses), (3, 1), "piece {piece}");
            assert_eq!(h2.report.rst_streams_by_server, 1);
            assert_eq!(h2.report.streams_reset_in_flight, 1);
            assert_eq!(h2.outstanding(), 1, "stream 5 is open");
            let g = &h2.report.goaways[0];
            assert_eq!(
                (g.by, g.last_stream, g.error_code, g.at_ns),
                (Side::Server, 5, 0, 2)
            );
        }
    }
}
