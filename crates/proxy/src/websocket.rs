//! Upgraded connections (WebSocket and others) and how they end in a drain.
//!
//! Bytes are copied both ways unchanged. For WebSocket, each direction also
//! tracks frame boundaries (headers only; payloads are never decoded), so that
//! when the drain reaches phase 2 the proxy can put a Close frame with code 1001
//! (Going Away) *between* two frames, to the client (unmasked) and to the
//! upstream (masked, as a client must), instead of cutting the TCP connection.
//! Clients then reconnect through a router that no longer sends them here.
//! Other upgrades are copied until either side closes, or cut at the deadline.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use lameduck_drain::Phase;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::state::State;

/// Close code 1001, Going Away.
const GOING_AWAY: u16 = 1001;
/// How long a direction may take to reach a frame boundary once a close is due.
const BOUNDARY_WAIT: Duration = Duration::from_millis(500);

/// Follows frame boundaries in one direction of a WebSocket stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Frames {
    /// Bytes of the current frame's header seen so far.
    header: Vec<u8>,
    /// Payload bytes left in the current frame.
    payload_left: u64,
}

impl Frames {
    /// True when the next byte starts a new frame.
    pub(crate) fn at_boundary(&self) -> bool {
        self.header.is_empty() && self.payload_left == 0
    }

    /// Accounts for `bytes` passing through.
    pub(crate) fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = (self.payload_left.min(bytes.len() as u64)) as usize;
                self.payload_left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            if let Some(len) = header_len(&self.header) {
                if self.header.len() == len {
                    self.payload_left = payload_len(&self.header);
                    self.header.clear();
                }
            }
        }
    }
}

/// The full header length once enough of it is known.
fn header_len(h: &[u8]) -> Option<usize> {
    if h.len() < 2 {
        return None;
    }
    let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
    let ext = match h[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    Some(2 + ext + mask)
}

fn payload_len(h: &[u8]) -> u64 {
    match h[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
        127 => u64::from_be_bytes(h[2..10].try_into().unwrap_or([0; 8])),
        n => u64::from(n),
    }
}

/// A Close frame with `code`; masked (with a fixed key: masking is framing, not
/// secrecy) when sent by the proxy acting as a client.
pub(crate) fn close_frame(code: u16, masked: bool) -> Vec<u8> {
    let payload = code.to_be_bytes();
    if masked {
        let key = [0x6c, 0x64, 0x75, 0x6b];
        let mut f = vec![0x88, 0x80 | 2];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    } else {
        vec![0x88, 2, payload[0], payload[1]]
    }
}

/// Runs an upgraded connection to its end: `client` is the client's
/// connection after the `101` was written to it, `upstream` the upstream's
/// after it sent that `101` (each with the bytes read ahead of the tunnel).
pub(crate) async fn tunnel<C, U>(client: C, upstream: U, websocket: bool, state: Arc<State>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    state
        .metrics
        .active_upgrades
        .fetch_add(1, Ordering::Relaxed);
    let _open = Open(Arc::clone(&state));
    let mut phase = state.phase.subscribe();
    if !websocket {
        let (mut client, mut upstream) = (client, upstream);
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
            _ = phase.wait_for(|p| *p == Phase::Terminate) => {}
        }
        return;
    }
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    // To the upstream the proxy is a client: its frames must be masked.
    let up = direction(client_r, upstream_w, state.phase.subscribe(), true);
    let down = direction(upstream_r, client_w, state.phase.subscribe(), false);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = phase.wait_for(|p| *p == Phase::Terminate) => {}
    }
}

/// Counts an upgraded stream as open until it ends.
struct Open(Arc<State>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0
            .metrics
            .active_upgrades
            .fetch_sub(1, Ordering::Relaxed);
        self.0.closed.notify_waiters();
    }
}

/// Copies one direction; once the drain phase begins, inserts a 1001 Close at
/// the next frame boundary and then copies only what the peer still sends
/// (its Close reply) until it closes.
async fn direction<R, W>(
    mut from: R,
    mut to: W,
    mut phase: tokio::sync::watch::Receiver<Phase>,
    masked: bool,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = Frames::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut closing_since: Option<tokio::time::Instant> = None;
    let mut sent_close = false;
    loop {
        if !sent_close && *phase.borrow() >= Phase::Drain {
            let since = *closing_since.get_or_insert_with(tokio::time::Instant::now);
            if frames.at_boundary() || since.elapsed() >= BOUNDARY_WAIT {
                if to
                    .write_all(&close_frame(GOING_AWAY, masked))
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = to.flush().await;
                sent_close = true;
            }
        }
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => {
                    frames.advance(&buf[..n]);
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
            _ = phase.changed(), if !sent_close => {}
            () = tokio::time::sleep(BOUNDARY_WAIT), if closing_since.is_some() && !sent_close => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_boundaries_across_split_reads() {
        let mut f = Frames::default();
        assert!(f.at_boundary());
        // Unmasked text frame "hello": 0x81 0x05 + 5 bytes, fed in pieces.
        f.advance(&[0x81]);
        assert!(!f.at_boundary());
        f.advance(&[0x05, b'h', b'e']);
        assert!(!f.at_boundary());
        f.advance(b"llo");
        assert!(f.at_boundary());
        // Masked frame with 16-bit length 300.
        let mut frame = vec![0x82, 0x80 | 126, 0x01, 0x2c, 1, 2, 3, 4];
        frame.extend(std::iter::repeat_n(0u8, 300));
        f.advance(&frame[..100]);
        assert!(!f.at_boundary());
        f.advance(&frame[100..]);
        assert!(f.at_boundary());
    }

    #[test]
    fn close_frames_carry_1001() {
        assert_eq!(close_frame(1001, false), [0x88, 2, 0x03, 0xe9]);
        let m = close_frame(1001, true);
        assert_eq!((m[0], m[1]), (0x88, 0x82));
        let key = &m[2..6];
        assert_eq!([m[6] ^ key[0], m[7] ^ key[1]], [0x03, 0xe9]);
    }
}
