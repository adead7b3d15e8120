//! The checks the fuzz targets (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`) run on untrusted bytes the proxy alone reads: the
//! WebSocket frame tracker and the TOML config. The HTTP/1 checks are the
//! `lameduck-http1` crate's (`lameduck_http1::fuzzing`).
//!
//! Why a public module: the checked types are crate-private (they are not
//! part of the proxy's API), but a fuzz target is a separate crate, and the
//! replay test must call exactly what the fuzz targets call. So the checks
//! live here, once, hidden from the docs; the production API is unchanged.
//!
//! Each check returns normally for any input the proxy handles correctly
//! (accepted or refused) and panics when a property that must hold does not.

use crate::{websocket::Frames, Config};

/// Bytes through a WebSocket tunnel: the frame tracker ends in the same
/// state however the bytes are split, and at a frame boundary exactly when
/// the bytes are whole frames (read here independently).
pub fn ws_frames(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let mut whole = Frames::default();
    whole.advance(input);
    let mut split = Frames::default();
    for piece in input.chunks(usize::from(step).max(1)) {
        split.advance(piece);
    }
    assert_eq!(whole, split, "split every {step} bytes");
    assert_eq!(whole.at_boundary(), whole_frames(input), "{input:?}");
}

/// Whether `bytes` are a sequence of whole WebSocket frames (RFC 6455 §5.2).
fn whole_frames(mut bytes: &[u8]) -> bool {
    while let [_, second, rest @ ..] = bytes {
        let (ext, masked) = (second & 0x7f, second & 0x80 != 0);
        let ext_len = match ext {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let Some(rest) = rest.get(ext_len..) else {
            return false;
        };
        let len = match ext {
            126 | 127 => rest_len(&bytes[2..2 + ext_len]),
            n => u64::from(n),
        };
        let key = if masked { 4 } else { 0 };
        let Some(payload) = rest.get(key..) else {
            return false;
        };
        if (payload.len() as u64) < len {
            return false;
        }
        bytes = &payload[len as usize..];
    }
    bytes.is_empty()
}

/// A big-endian length of 2 or 8 bytes.
fn rest_len(be: &[u8]) -> u64 {
    be.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

/// A config file: one that loads passes the drain plan check start runs
/// (`proxy --check` must refuse what start would). Inputs naming a
/// `token_file` are skipped: reading files is not what is fuzzed.
pub fn proxy_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("token_file") {
        return;
    }
    if let Ok(config) = Config::from_toml(text) {
        if let Err(e) = config.proxy.plan() {
            panic!("loaded, but start would refuse it: {e}");
        }
    }
}
