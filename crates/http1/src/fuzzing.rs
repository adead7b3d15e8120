//! The checks the fuzz targets (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`) run on untrusted bytes: the HTTP/1 request head
//! and its body framing, the chunked decoder and the response head.
//!
//! Why a public module: the fuzz targets are a separate crate, and the replay
//! test must call exactly what the fuzz targets call. So the checks live here,
//! once, hidden from the docs.
//!
//! Each check returns normally for any input the parsers handle correctly
//! (accepted or refused) and panics when a property that must hold does not:
//! beyond "no panic", a parsed head written out again must parse to the same
//! request, a body must decode the same however it is split, and so on.

use bytes::BytesMut;
use http::{header, HeaderMap, StatusCode};

use crate::{
    chunked::{Decoder, Invalid, Piece},
    client::response::{self, Fields},
    hop::is_hop_by_hop,
    parse::{self, Framing, Head},
};

/// Requests read from one connection's bytes at most (pipelining).
const MAX_PIPELINED: usize = 8;

/// An HTTP/1 client's bytes: heads and bodies, pipelined, as the connection
/// loop reads them. Each accepted head, written out again, parses to the same
/// request; its framing agrees with its headers.
pub fn h1_request(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    for _ in 0..MAX_PIPELINED {
        let before = buf.len();
        let Ok(Some(head)) = parse::parse(&mut buf) else {
            return;
        };
        assert!(buf.len() < before, "a head was parsed from no bytes");
        check_framing(&head);
        check_reencoded(&head);
        if !skip_body(head.framing, &mut buf) {
            return;
        }
    }
}

/// `Content-Length` and `Transfer-Encoding` never both decide the framing.
fn check_framing(head: &Head) {
    let headers = head.request.headers();
    let te = headers.contains_key(header::TRANSFER_ENCODING);
    let length = parse::content_length(headers).expect("an accepted head has a valid length");
    match head.framing {
        Framing::Chunked => assert!(te && length.is_none(), "chunked with a length"),
        Framing::Length(n) => assert!(!te && length == Some(n), "length {n} vs {length:?}"),
        Framing::None => assert!(!te && length.unwrap_or(0) == 0, "no body, yet framed"),
    }
}

/// The head written out canonically parses to the same request.
fn check_reencoded(head: &Head) {
    let req = &head.request;
    let version = match req.version() {
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let mut text = format!("{} {} {version}\r\n", req.method(), req.uri()).into_bytes();
    for (name, value) in req.headers() {
        text.extend_from_slice(name.as_str().as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(value.as_bytes());
        text.extend_from_slice(b"\r\n");
    }
    text.extend_from_slice(b"\r\n");
    let mut again = BytesMut::from(&text[..]);
    let shown = String::from_utf8_lossy(&text).into_owned();
    let second = match parse::parse(&mut again) {
        Ok(Some(h)) => h,
        other => panic!("re-encoded head {shown:?} not accepted: {other:?}"),
    };
    assert!(again.is_empty(), "bytes left after {shown:?}");
    let (a, b) = (&head.request, &second.request);
    assert_eq!(a.method(), b.method(), "{shown:?}");
    assert_eq!(a.uri(), b.uri(), "{shown:?}");
    assert_eq!(a.version(), b.version(), "{shown:?}");
    assert_eq!(a.headers(), b.headers(), "{shown:?}");
    assert_eq!(head.framing, second.framing, "{shown:?}");
    assert_eq!(head.keep_alive, second.keep_alive, "{shown:?}");
    assert_eq!(head.expect_continue, second.expect_continue, "{shown:?}");
}

/// Takes the body off `buf`; false when it is incomplete or broken (the
/// connection would end there).
fn skip_body(framing: Framing, buf: &mut BytesMut) -> bool {
    match framing {
        Framing::None => true,
        Framing::Length(n) if (buf.len() as u64) < n => false,
        Framing::Length(n) => {
            let _ = buf.split_to(n as usize);
            true
        }
        Framing::Chunked => matches!(decode_chunked(buf, &[]), Ok(d) if d.end),
    }
}

/// What a chunked body decoded to.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    /// The last chunk was read.
    end: bool,
    /// Bytes left after the body (all of them unread when it did not end).
    rest: usize,
}

/// Decodes the chunked body at the front of `buf` then of `more` (fed in
/// pieces), until its end or until the bytes run out.
fn decode_chunked(buf: &mut BytesMut, more: &[&[u8]]) -> Result<Decoded, Invalid> {
    let mut d = Decoder::new();
    let mut out = Decoded {
        data: Vec::new(),
        trailers: None,
        end: false,
        rest: 0,
    };
    let mut pieces = more.iter();
    loop {
        while let Some(piece) = d.next(buf)? {
            match piece {
                Piece::Data(b) => out.data.extend_from_slice(&b),
                Piece::Trailers(t) => out.trailers = Some(t),
                Piece::End => {
                    out.end = true;
                    out.rest = buf.len() + pieces.map(|p| p.len()).sum::<usize>();
                    return Ok(out);
                }
            }
        }
        match pieces.next() {
            Some(p) => buf.extend_from_slice(p),
            None => {
                out.rest = buf.len();
                return Ok(out);
            }
        }
    }
}

/// A chunked body: the first byte says how to split the rest. Decoding in
/// pieces gives what decoding it whole gives; a body that decoded, encoded
/// again in other chunks, decodes to the same data.
pub fn h1_chunked(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let whole = decode_chunked(&mut BytesMut::from(input), &[]);
    let pieces: Vec<&[u8]> = input.chunks(step).collect();
    let split = decode_chunked(&mut BytesMut::new(), &pieces);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "split every {step} bytes"),
        (Err(_), Err(_)) => {}
        _ => panic!("whole {whole:?} but split every {step} bytes {split:?}"),
    }
    if let Some(d) = whole.as_ref().ok().filter(|d| d.end) {
        let mut encoded = Vec::new();
        for chunk in d.data.chunks(step) {
            encoded.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            encoded.extend_from_slice(chunk);
            encoded.extend_from_slice(b"\r\n");
        }
        encoded.extend_from_slice(b"0\r\n\r\n");
        let again = decode_chunked(&mut BytesMut::from(&encoded[..]), &[]);
        let again = again.expect("a body the proxy encodes decodes");
        assert_eq!(again.data, d.data);
        assert!(again.end && again.rest == 0);
    }
}

/// An upstream's response head (the first byte's low bit: the request was a
/// `HEAD`). Bodiless statuses get no body; fields kept as they came are the
/// forwarded fields exactly, and never a hop-by-hop one.
pub fn h1_response(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let head_request = flags & 1 == 1;
    let mut buf = BytesMut::from(input);
    let Ok(Some(head)) = response::parse(&mut buf, head_request) else {
        return;
    };
    let bodiless = head_request
        || head.status.is_informational()
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED;
    if bodiless {
        assert_eq!(head.framing, response::Framing::None, "{}", head.status);
    }
    match &head.fields {
        Fields::Raw(raw) => {
            let mut lines = Vec::new();
            raw.write(&mut lines);
            lines.extend_from_slice(b"\r\n");
            let mut slots = [httparse::EMPTY_HEADER; parse::MAX_HEADERS];
            let Ok(httparse::Status::Complete((len, fields))) =
                httparse::parse_headers(&lines, &mut slots)
            else {
                panic!(
                    "raw fields {:?} do not parse",
                    String::from_utf8_lossy(&lines)
                );
            };
            assert_eq!(len, lines.len());
            let mut map = HeaderMap::new();
            raw.append_to(&mut map);
            assert_eq!(map.len(), fields.len(), "raw lines and map differ");
            for f in fields.iter() {
                assert!(!is_hop_by_hop(f.name.as_bytes()), "{}", f.name);
                assert!(map.get_all(f.name).iter().any(|v| v.as_bytes() == f.value));
            }
        }
        Fields::Map(map) => {
            if !map.contains_key(header::CONNECTION)
                && head.status != StatusCode::SWITCHING_PROTOCOLS
            {
                let hop = map.keys().find(|k| is_hop_by_hop(k.as_ref()));
                assert!(hop.is_none(), "hop-by-hop field {hop:?} kept");
            }
        }
    }
    if head.framing == response::Framing::Chunked {
        let _ = decode_chunked(&mut buf, &[]);
    }
}

/// How the HTTP/1 parser reads a request head, for the proxy's differential
/// tests (`crates/proxy/tests/differential.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The head is not complete yet.
    Partial,
    /// Refused, with the reason the client is told.
    Refused(&'static str),
    /// Accepted: the head's length and its body's framing.
    Accepted { consumed: usize, body: BodyFraming },
}

/// A request body's framing, as the proxy reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// The proxy's reading of the head at the start of `data`.
pub fn h1_verdict(data: &[u8]) -> Verdict {
    let mut buf = BytesMut::from(data);
    match parse::parse(&mut buf) {
        Ok(None) => Verdict::Partial,
        Err(reject) => Verdict::Refused(reject.reason()),
        Ok(Some(head)) => Verdict::Accepted {
            consumed: data.len() - buf.len(),
            body: match head.framing {
                Framing::None => BodyFraming::None,
                Framing::Length(n) => BodyFraming::Length(n),
                Framing::Chunked => BodyFraming::Chunked,
            },
        },
    }
}
