//! The chunked transfer coding (RFC 9112 §7.1) of request bodies from clients
//! and response bodies from servers, decoded incrementally from the
//! connection's read buffer.
//!
//! Strict where leniency would let the proxy and the upstream see different
//! bodies: a chunk size is 1–16 hex digits, every line ends in CRLF (a bare LF
//! is refused), chunk extensions are skipped but may not hold control bytes,
//! and the data of a chunk must be followed by CRLF. Trailer fields are parsed
//! like header fields and handed on as a trailers frame.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::parse::{MAX_HEADERS, MAX_HEAD_BYTES};

/// The longest chunk-size line accepted (size and extensions).
const MAX_LINE: usize = 4096;

/// What the decoder found.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The last chunk and (empty) trailer section: the body is complete.
    End,
}

/// The coding is broken; the connection cannot be trusted any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Incremental decoder; see [`Decoder::next`].
#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder { state: State::Size }
    }

    /// The next piece from the front of `buf`, consuming it; `Ok(None)` when
    /// `buf` does not hold enough yet (read more and call again).
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Piece>, Invalid> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = take_line(buf, MAX_LINE)? else {
                        return Ok(None);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(buf.len() as u64) as usize;
                    let data = buf.split_to(n).freeze();
                    self.state = match left - n as u64 {
                        0 => State::DataEnd,
                        rest => State::Data(rest),
                    };
                    return Ok(Some(Piece::Data(data)));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Invalid("chunk data not followed by CRLF"));
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => return self.trailers(buf),
                State::Done => return Ok(Some(Piece::End)),
            }
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Option<Piece>, Invalid> {
        if buf.starts_with(b"\r\n") {
            let _ = buf.split_to(2);
            self.state = State::Done;
            return Ok(Some(Piece::End));
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (len, map) = match httparse::parse_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete((len, fields))) => (len, trailer_map(fields)?),
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => return Ok(None),
            Ok(httparse::Status::Partial) => return Err(Invalid("trailer section too large")),
            Err(_) => return Err(Invalid("invalid trailer field")),
        };
        let _ = buf.split_to(len);
        // The final CRLF was part of what httparse consumed.
        self.state = State::Done;
        Ok(Some(Piece::Trailers(map)))
    }
}

fn trailer_map(fields: &[httparse::Header<'_>]) -> Result<HeaderMap, Invalid> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| Invalid("invalid trailer name"))?;
        let value =
            HeaderValue::from_bytes(f.value).map_err(|_| Invalid("invalid trailer value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Takes one CRLF-terminated line (without the CRLF) off the front of `buf`.
fn take_line(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, Invalid> {
    let Some(lf) = buf.iter().take(max).position(|b| *b == b'\n') else {
        return if buf.len() >= max {
            Err(Invalid("chunk size line too long"))
        } else {
            Ok(None)
        };
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(Invalid("bare LF in chunked coding"));
    }
    let mut line = buf.split_to(lf + 1);
    line.truncate(lf - 1);
    Ok(Some(line))
}

/// `1*HEXDIG [ BWS ";" extensions ]`, the size as a number.
fn chunk_size(line: &[u8]) -> Result<u64, Invalid> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(Invalid("invalid chunk size"));
    }
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    if !(ext.is_empty() || ext[0] == b';')
        || rest.iter().any(|b| b.is_ascii_control() && *b != b'\t')
    {
        return Err(Invalid("invalid chunk extension"));
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| Invalid("invalid chunk size"))?;
    u64::from_str_radix(hex, 16).map_err(|_| Invalid("invalid chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes.
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, Option<HeaderMap>, bool), Invalid> {
        let mut d = Decoder::new();
        let mut buf = BytesMut::new();
        let (mut data, mut trailers, mut end) = (Vec::new(), None, false);
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(p) = d.next(&mut buf)? {
                match p {
                    Piece::Data(b) => data.extend_from_slice(&b),
                    Piece::Trailers(t) => trailers = Some(t),
                    Piece::End => {
                        end = true;
                        break;
                    }
                }
            }
            if end {
                break;
            }
        }
        Ok((data, trailers, end))
    }

    #[test]
    fn decodes_in_any_split() {
        let body = b"5\r\nhello\r\n6;name=value\r\n world\r\n0\r\n\r\n";
        for step in 1..body.len() {
            let (data, trailers, end) = decode(body, step).unwrap();
            assert_eq!(data, b"hello world", "step {step}");
            assert!(trailers.is_none() && end);
        }
    }

    #[test]
    fn trailers_become_a_frame() {
        let body = b"3\r\nabc\r\n0\r\ngrpc-status: 0\r\nx-t: 1\r\n\r\nGET";
        let mut d = Decoder::new();
        let mut buf = BytesMut::from(&body[..]);
        assert_eq!(
            d.next(&mut buf).unwrap(),
            Some(Piece::Data(Bytes::from("abc")))
        );
        let Some(Piece::Trailers(t)) = d.next(&mut buf).unwrap() else {
            panic!("no trailers")
        };
        assert_eq!(t["grpc-status"], "0");
        assert_eq!(d.next(&mut buf).unwrap(), Some(Piece::End));
        assert_eq!(&buf[..], b"GET", "the next request stays buffered");
    }

    #[test]
    fn refuses_what_could_be_read_two_ways() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"x\r\n",
            b"11111111111111111\r\n",
            b"5 garbage\r\nhello\r\n",
            b"5;a\x00b\r\nhello\r\n",
        ] {
            assert!(
                decode(bad, bad.len()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'1'; MAX_LINE + 1];
        assert!(decode(&long, long.len()).is_err());
    }
}
