//! HTTP/1.x, just enough to count: request and response heads (httparse),
//! then each message's framing (Content-Length, chunked, until close, no
//! body after HEAD/204/304) to know where the next one starts. Bodies are
//! skipped, never copied; only a head or a chunk-size line split across
//! segments is buffered.

use std::collections::VecDeque;

use crate::Side;

/// A head larger than this is not HTTP worth following.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 96;

/// Where one direction's parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data: bytes left to skip.
    ChunkEnd(u8),
    Trailers,
    /// A response framed by the server's FIN.
    UntilClose,
    /// After a 101 or CONNECT: no more HTTP/1 here.
    Tunnel,
    /// Lost sync (a hole in the stream): wait for a segment that starts a message.
    Resync,
    /// Not HTTP after all.
    Broken,
}

#[derive(Debug)]
struct Dir {
    state: State,
    buf: Vec<u8>,
}

/// Both directions of one HTTP/1 connection and the counts.
#[derive(Debug)]
pub(crate) struct Http1 {
    dirs: [Dir; 2],
    /// One entry per request not yet answered: was it a HEAD.
    pending_heads: VecDeque<bool>,
    pub(crate) requests: u32,
    pub(crate) responses: u32,
    /// The client asked for `Upgrade: h2c`.
    h2c_asked: bool,
}

/// A head's framing facts.
struct Head {
    content_length: Option<u64>,
    chunked: bool,
    upgrade_h2c: bool,
    method_head: bool,
    method_connect: bool,
    status: u16,
    /// Length of the head in bytes.
    len: usize,
}

impl Http1 {
    pub(crate) fn new() -> Http1 {
        let dir = || Dir {
            state: State::Head,
            buf: Vec::new(),
        };
        Http1 {
            dirs: [dir(), dir()],
            pending_heads: VecDeque::new(),
            requests: 0,
            responses: 0,
            h2c_asked: false,
        }
    }

    /// Requests whose response has not ended.
    pub(crate) fn outstanding(&self) -> u32 {
        self.requests.saturating_sub(self.responses)
    }

    /// Feeds in-order bytes from `side`. Returns `Some(n)` when the server
    /// switched to h2c (101): the bytes from `n` on are HTTP/2 frames.
    pub(crate) fn feed(&mut self, side: Side, mut data: &[u8]) -> Option<usize> {
        let total = data.len();
        while !data.is_empty() {
            let state = self.dirs[side.index()].state;
            let used = match state {
                State::Head => match self.head(side, data) {
                    Step::Used(n) => n,
                    Step::SwitchH2(n) => return Some(total - data.len() + n),
                },
                State::Body(left) | State::ChunkData(left) => self.skip(side, data, left),
                State::ChunkEnd(left) => {
                    let n = data.len().min(usize::from(left));
                    let left = left - n as u8;
                    self.dirs[side.index()].state = if left == 0 {
                        State::ChunkSize
                    } else {
                        State::ChunkEnd(left)
                    };
                    n
                }
                State::ChunkSize | State::Trailers => self.line(side, data),
                State::Resync => self.resync(side, data),
                State::UntilClose | State::Tunnel | State::Broken => data.len(),
            };
            data = &data[used..];
        }
        None
    }

    /// The sender at `side` closed (FIN): a response framed by the close ends.
    pub(crate) fn fin(&mut self, side: Side) {
        if side == Side::Server && self.dirs[1].state == State::UntilClose {
            self.end(side);
        }
    }

    /// A hole in `side`'s stream: counting goes on from the next message start.
    pub(crate) fn gap(&mut self, side: Side) {
        let dir = &mut self.dirs[side.index()];
        if !matches!(dir.state, State::Tunnel | State::Broken) {
            dir.state = State::Resync;
            dir.buf.clear();
        }
    }

    fn skip(&mut self, side: Side, data: &[u8], left: u64) -> usize {
        let n = (data.len() as u64).min(left);
        let left = left - n;
        let dir = &mut self.dirs[side.index()];
        dir.state = match (dir.state, left) {
            (State::Body(_), 0) => {
                self.end(side);
                return n as usize;
            }
            (State::Body(_), _) => State::Body(left),
            (_, 0) => State::ChunkEnd(2),
            _ => State::ChunkData(left),
        };
        n as usize
    }

    /// A message of `side` ended.
    fn end(&mut self, side: Side) {
        if side == Side::Server {
            self.responses += 1;
        }
        self.dirs[side.index()].state = State::Head;
    }

    fn resync(&mut self, side: Side, data: &[u8]) -> usize {
        if starts_message(side, data) {
            self.dirs[side.index()].state = State::Head;
            0
        } else {
            data.len()
        }
    }
}

enum Step {
    Used(usize),
    SwitchH2(usize),
}

impl Http1 {
    /// Parses a head at the start of `data` (after what is buffered).
    fn head(&mut self, side: Side, data: &[u8]) -> Step {
        let dir = &mut self.dirs[side.index()];
        let buffered = dir.buf.len();
        let parsed = if buffered == 0 {
            parse_head(side, data)
        } else {
            dir.buf.extend_from_slice(data);
            parse_head(side, &dir.buf)
        };
        let head = match parsed {
            Parsed::Complete(head) => head,
            Parsed::Partial if buffered + data.len() <= MAX_HEAD => {
                if buffered == 0 {
                    dir.buf.extend_from_slice(data);
                }
                return Step::Used(data.len());
            }
            Parsed::Partial | Parsed::Invalid => {
                dir.state = State::Broken;
                dir.buf = Vec::new();
                return Step::Used(data.len());
            }
        };
        dir.buf.clear();
        let used = head.len - buffered;
        match side {
            Side::Client => self.request(&head),
            Side::Server => {
                if self.response(&head) {
                    return Step::SwitchH2(used);
                }
            }
        }
        Step::Used(used)
    }

    fn request(&mut self, head: &Head) {
        self.requests += 1;
        self.pending_heads.push_back(head.method_head);
        self.h2c_asked |= head.upgrade_h2c;
        self.dirs[0].state = if head.method_connect {
            State::Tunnel
        } else if head.chunked {
            State::ChunkSize
        } else {
            match head.content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        };
    }

    /// Returns true when the response switches the connection to h2c.
    fn response(&mut self, head: &Head) -> bool {
        if head.status == 101 {
            self.dirs[0].state = State::Tunnel;
            self.dirs[1].state = State::Tunnel;
            return self.h2c_asked;
        }
        if head.status < 200 {
            return false; // 100 Continue and friends: the real response follows
        }
        let after_head = self.pending_heads.pop_front().unwrap_or(false);
        let dir = &mut self.dirs[1];
        dir.state = if after_head || head.status == 204 || head.status == 304 {
            State::Head
        } else if head.chunked {
            State::ChunkSize
        } else {
            match head.content_length {
                Some(0) => State::Head,
                Some(n) => State::Body(n),
                None => State::UntilClose,
            }
        };
        if dir.state == State::Head {
            self.responses += 1;
        }
        false
    }

    /// A chunk-size line or a trailer line.
    fn line(&mut self, side: Side, data: &[u8]) -> usize {
        let dir = &mut self.dirs[side.index()];
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            if dir.buf.len() + data.len() > MAX_HEAD {
                dir.state = State::Broken;
            } else {
                dir.buf.extend_from_slice(data);
            }
            return data.len();
        };
        let line_owned;
        let line: &[u8] = if dir.buf.is_empty() {
            &data[..nl]
        } else {
            dir.buf.extend_from_slice(&data[..nl]);
            line_owned = std::mem::take(&mut dir.buf);
            &line_owned
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match dir.state {
            State::ChunkSize => match chunk_size(line) {
                Some(0) => dir.state = State::Trailers,
                Some(n) => dir.state = State::ChunkData(n),
                None => dir.state = State::Broken,
            },
            _ if line.is_empty() => self.end(side),
            _ => {}
        }
        self.dirs[side.index()].buf.clear();
        nl + 1
    }
}

enum Parsed {
    Complete(Head),
    Partial,
    Invalid,
}

fn parse_head(side: Side, bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = Head {
        content_length: None,
        chunked: false,
        upgrade_h2c: false,
        method_head: false,
        method_connect: false,
        status: 0,
        len: 0,
    };
    let status = match side {
        Side::Client => {
            let mut req = httparse::Request::new(&mut headers);
            let status = req.parse(bytes);
            head.method_head = req.method == Some("HEAD");
            head.method_connect = req.method == Some("CONNECT");
            status
        }
        Side::Server => {
            let mut resp = httparse::Response::new(&mut headers);
            let status = resp.parse(bytes);
            head.status = resp.code.unwrap_or(0);
            status
        }
    };
    match status {
        Ok(httparse::Status::Complete(len)) => head.len = len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    }
    for h in headers.iter().take_while(|h| !h.name.is_empty()) {
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = ends_with_chunked(h.value);
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            head.upgrade_h2c = h.value.eq_ignore_ascii_case(b"h2c");
        }
    }
    Parsed::Complete(head)
}

fn ends_with_chunked(value: &[u8]) -> bool {
    let last = value.rsplit(|&b| b == b',').next().unwrap_or(value);
    last.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// `1a3f;ext=1` → 0x1a3f.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let hex = line.split(|&b| b == b';').next()?.trim_ascii();
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Could `data` be the first bytes of a request line, cut short?
pub(crate) fn may_start_request(data: &[u8]) -> bool {
    METHODS.iter().any(|m| m.starts_with(data))
}

/// Does `data` look like the start of a request (client) or response (server)?
pub(crate) fn starts_message(side: Side, data: &[u8]) -> bool {
    match side {
        Side::Client => METHODS.iter().any(|m| data.starts_with(m)),
        Side::Server => data.starts_with(b"HTTP/1."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(h: &mut Http1, side: Side, bytes: &[u8], piece: usize) {
        for chunk in bytes.chunks(piece) {
            assert_eq!(h.feed(side, chunk), None);
        }
    }

    #[test]
    fn counts_keepalive_exchanges_split_anywhere() {
        let req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloHEAD /c HTTP/1.1\r\n\r\n";
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nwiki\r\n0\r\nT: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n";
        for piece in [1, 3, 7, 1000] {
            let mut h = Http1::new();
            feed_all(&mut h, Side::Client, req, piece);
            assert_eq!(h.requests, 3, "piece {piece}");
            feed_all(&mut h, Side::Server, resp, piece);
            assert_eq!(h.responses, 3, "piece {piece}: HEAD has no body");
            assert_eq!(h.outstanding(), 0);
        }
    }

    #[test]
    fn a_response_cut_in_its_body_is_outstanding() {
        let mut h = Http1::new();
        h.feed(Side::Client, b"GET / HTTP/1.1\r\n\r\n");
        h.feed(
            Side::Server,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        );
        assert_eq!(h.outstanding(), 1);
    }

    #[test]
    fn a_close_delimited_response_ends_at_the_servers_fin() {
        let mut h = Http1::new();
        h.feed(Side::Client, b"GET / HTTP/1.0\r\n\r\n");
        h.feed(Side::Server, b"HTTP/1.0 200 OK\r\n\r\nbody");
        assert_eq!(h.outstanding(), 1);
        h.fin(Side::Server);
        assert_eq!(h.outstanding(), 0);
    }

    #[test]
    fn interim_responses_do_not_count() {
        let mut h = Http1::new();
        h.feed(
            Side::Client,
            b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
        );
        h.feed(
            Side::Server,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!((h.requests, h.responses), (1, 1));
    }

    #[test]
    fn the_h2c_upgrade_hands_over_after_the_101() {
        let mut h = Http1::new();
        h.feed(Side::Client, b"GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
        let head =
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        assert_eq!(h.feed(Side::Server, &bytes), Some(head.len()));
    }

    #[test]
    fn binary_garbage_stops_the_parser_without_counting() {
        let mut h = Http1::new();
        h.feed(
            Side::Client,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        );
        assert_eq!(h.requests, 0);
    }
}
