//! An HTTP/1.1 upstream's response fields kept as the bytes that came, for an
//! HTTP/1 client to get them copied as they are.
//!
//! Why: building a header map from the upstream's head, dropping its
//! hop-by-hop fields, and writing the map out again field by field was the
//! largest part of the proxy's work per small response (hashing and
//! allocating for every field, twice). The fields of a plain response need
//! none of that: they are the head's field lines less the hop-by-hop ones.
//!
//! Kept raw only when copying is exactly what the map would have written:
//! every line ends in CRLF, at most [`MAX_SKIP`] hop-by-hop lines, one
//! `Content-Length` at most, `Connection` naming no other fields, and a
//! status that is neither `1xx` nor `204` (whose `Content-Length` goes). Any
//! other head gets a map, as before. An HTTP/2 client gets the map built from
//! these bytes ([`RawFields::append_to`]).

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::parse::MAX_HEADERS;

/// Hop-by-hop lines a raw head may leave out; more, and it gets a map.
const MAX_SKIP: usize = 4;

/// The field lines of a response head, less its hop-by-hop ones.
#[derive(Debug, Clone)]
pub struct RawFields {
    /// The head's field lines and the empty line that ends them.
    block: Bytes,
    /// Lines of `block` left out (start, end), in order.
    skip: [(u32, u32); MAX_SKIP],
    skipped: u8,
    /// The `Content-Length` value, when the upstream sent one.
    pub content_length: Option<u64>,
    /// The upstream sent a `Date`.
    pub has_date: bool,
}

/// Where the field lines lie in a head, and which to leave out; found before
/// the head is taken out of its buffer ([`Lines::into_fields`] after).
#[derive(Debug)]
pub struct Lines {
    start: u32,
    skip: [(u32, u32); MAX_SKIP],
    skipped: u8,
}

impl Lines {
    /// The lines of `fields` (parsed from `head`, the whole head) and those
    /// `forward` refuses; `None` when the head cannot be copied as it is.
    pub fn find(
        head: &[u8],
        fields: &[httparse::Header<'_>],
        forward: impl Fn(&[u8]) -> bool,
    ) -> Option<Lines> {
        if !head.ends_with(b"\r\n\r\n") {
            return None;
        }
        let at = |name: &str| (name.as_ptr() as usize - head.as_ptr() as usize) as u32;
        let end = head.len() as u32 - 2;
        let start = fields.first().map_or(end, |f| at(f.name));
        let mut lines = Lines {
            start,
            skip: [(0, 0); MAX_SKIP],
            skipped: 0,
        };
        for (i, f) in fields.iter().enumerate() {
            let from = at(f.name);
            let to = fields.get(i + 1).map_or(end, |next| at(next.name));
            if &head[to as usize - 2..to as usize] != b"\r\n" {
                return None;
            }
            if !forward(f.name.as_bytes()) {
                let slot = lines.skip.get_mut(usize::from(lines.skipped))?;
                *slot = (from - start, to - start);
                lines.skipped += 1;
            }
        }
        Some(lines)
    }

    /// The fields, from the head these lines were found in.
    pub fn into_fields(
        self,
        head: &Bytes,
        content_length: Option<u64>,
        has_date: bool,
    ) -> RawFields {
        RawFields {
            block: head.slice(self.start as usize..),
            skip: self.skip,
            skipped: self.skipped,
            content_length,
            has_date,
        }
    }
}

impl RawFields {
    /// Appends the forwarded field lines (each ending in CRLF) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let lines = &self.block[..self.block.len() - 2];
        let mut from = 0;
        for &(start, end) in &self.skip[..usize::from(self.skipped)] {
            out.extend_from_slice(&lines[from..start as usize]);
            from = end as usize;
        }
        out.extend_from_slice(&lines[from..]);
    }

    /// Appends the forwarded fields to `map` (for an HTTP/2 client), the
    /// values sharing the head's memory.
    pub fn append_to(&self, map: &mut HeaderMap) {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        // The lines were parsed once already: this cannot fail.
        let Ok(httparse::Status::Complete((_, fields))) =
            httparse::parse_headers(&self.block, &mut slots)
        else {
            return;
        };
        let skipped = &self.skip[..usize::from(self.skipped)];
        for f in fields {
            let at = (f.name.as_ptr() as usize - self.block.as_ptr() as usize) as u32;
            if skipped.iter().any(|&(start, _)| start == at) {
                continue;
            }
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(f.name.as_bytes()),
                HeaderValue::from_maybe_shared(self.block.slice_ref(f.value)),
            ) else {
                continue;
            };
            map.append(name, value);
        }
    }
}

/// The raw fields of a response head, for tests: `Connection` and
/// `Keep-Alive` left out, the rest as given.
#[cfg(test)]
pub fn for_test(head: &str, content_length: Option<u64>, has_date: bool) -> Option<RawFields> {
    let mut slots = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut slots);
    resp.parse(head.as_bytes()).unwrap();
    let lines = Lines::find(head.as_bytes(), resp.headers, |name| {
        !name.eq_ignore_ascii_case(b"connection") && !name.eq_ignore_ascii_case(b"keep-alive")
    })?;
    let head = Bytes::copy_from_slice(head.as_bytes());
    Some(lines.into_fields(&head, content_length, has_date))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(head: &str) -> Option<RawFields> {
        for_test(head, Some(5), true)
    }

    fn written(fields: &RawFields) -> String {
        let mut out = Vec::new();
        fields.write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hop_by_hop_lines_are_left_out_and_the_rest_copied_as_it_came() {
        let head = "HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nX-Odd:  spaced \r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n";
        let fields = raw(head).unwrap();
        assert_eq!(
            written(&fields),
            "Server: x\r\nX-Odd:  spaced \r\nContent-Length: 5\r\n"
        );
        let mut map = HeaderMap::new();
        fields.append_to(&mut map);
        let names: Vec<_> = map.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["server", "x-odd", "content-length"]);
        assert_eq!(map["x-odd"], "spaced");
    }

    #[test]
    fn a_head_without_fields_or_with_bare_line_feeds_or_too_many_skips() {
        assert_eq!(written(&raw("HTTP/1.1 200 OK\r\n\r\n").unwrap()), "");
        assert!(raw("HTTP/1.1 200 OK\nServer: x\n\n").is_none());
        assert!(raw("HTTP/1.1 200 OK\r\nServer: x\n\r\n").is_none());
        let many = "HTTP/1.1 200 OK\r\n".to_string() + &"Connection: a\r\n".repeat(5) + "\r\n";
        assert!(raw(&many).is_none());
        let four =
            "HTTP/1.1 200 OK\r\n".to_string() + &"Connection: a\r\n".repeat(4) + "X: y\r\n\r\n";
        assert_eq!(written(&raw(&four).unwrap()), "X: y\r\n");
    }
}
