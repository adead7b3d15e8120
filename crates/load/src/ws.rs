//! WebSocket (`--ws`): `-c` long-lived connections, each exchanging one
//! message every `--ws-interval`; each exchange is one request with one outcome.
//!
//! A WebSocket server that drains properly says goodbye: a Close frame with
//! 1000 (normal) or 1001 (going away). A client then reconnects and carries on,
//! so that is not a loss: an exchange cut by a clean close is sent again, once,
//! on a new connection, and counted in `ws_clean_closes`. A connection that
//! ends any other way (EOF without a Close frame — code 1006 — a reset, another
//! close code) loses the exchange: `ws_abnormal_close`.

use std::{io, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::{
    tungstenite::{protocol::frame::coding::CloseCode, Error as WsError, Message},
    WebSocketStream,
};

use crate::{stream::Stream, Outcome, Target};

/// One open WebSocket connection.
#[derive(Debug)]
pub(crate) struct Conn {
    ws: WebSocketStream<Stream>,
}

/// How an exchange went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exchanged {
    pub(crate) outcome: Outcome,
    /// The server closed cleanly (1000/1001) under this exchange, which was
    /// then sent again on a new connection.
    pub(crate) clean_close: bool,
}

/// Sends message `seq` on `slot`'s connection (opening one if empty) and waits
/// for any message back. (`--expect-status` does not apply: the upgrade must
/// answer 101, anything else is `status_NNN`.)
pub(crate) async fn exchange(
    slot: &mut Option<Conn>,
    target: &Target,
    connect_timeout: Duration,
    seq: u64,
) -> Exchanged {
    let first = attempt(slot, target, connect_timeout, seq).await;
    if first != Attempt::CleanClose {
        return Exchanged {
            outcome: first.outcome(),
            clean_close: false,
        };
    }
    let again = attempt(slot, target, connect_timeout, seq).await;
    Exchanged {
        outcome: again.outcome(),
        clean_close: true,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Done(Outcome),
    CleanClose,
}

impl Attempt {
    /// A second clean close in a row is no longer a goodbye: the exchange is lost.
    fn outcome(self) -> Outcome {
        match self {
            Attempt::Done(outcome) => outcome,
            Attempt::CleanClose => Outcome::ClosedBeforeResponse,
        }
    }
}

async fn attempt(
    slot: &mut Option<Conn>,
    target: &Target,
    connect_timeout: Duration,
    seq: u64,
) -> Attempt {
    let mut conn = match slot.take() {
        Some(conn) => conn,
        None => match tokio::time::timeout(connect_timeout, connect(target)).await {
            Err(_elapsed) => return Attempt::Done(Outcome::ConnectTimeout),
            Ok(Err(outcome)) => return Attempt::Done(outcome),
            Ok(Ok(conn)) => conn,
        },
    };
    let message = Message::text(format!("lameduck {seq}"));
    if let Err(e) = conn.ws.send(message).await {
        return Attempt::Done(error_outcome(&e));
    }
    loop {
        match conn.ws.next().await {
            Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                *slot = Some(conn);
                return Attempt::Done(Outcome::Success);
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| f.code);
                return match code {
                    Some(CloseCode::Normal | CloseCode::Away) => Attempt::CleanClose,
                    _ => Attempt::Done(Outcome::WsAbnormalClose),
                };
            }
            Some(Err(e)) => return Attempt::Done(error_outcome(&e)),
            None => return Attempt::Done(Outcome::WsAbnormalClose),
        }
    }
}

async fn connect(target: &Target) -> Result<Conn, Outcome> {
    let stream = crate::http1::open(target).await?;
    match tokio_tungstenite::client_async(target.url.as_str(), stream).await {
        Ok((ws, _response)) => Ok(Conn { ws }),
        // Anything but 101 is a refused upgrade, whatever --expect-status says.
        Err(WsError::Http(response)) => Err(Outcome::Status(response.status().as_u16())),
        Err(e) => Err(handshake_outcome(&e)),
    }
}

fn handshake_outcome(e: &WsError) -> Outcome {
    match e {
        WsError::Io(io) => match io.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                Outcome::ResetBeforeResponse
            }
            io::ErrorKind::UnexpectedEof => Outcome::ClosedBeforeResponse,
            _ => Outcome::OtherError,
        },
        WsError::ConnectionClosed | WsError::AlreadyClosed => Outcome::ClosedBeforeResponse,
        _ => Outcome::ProtocolError,
    }
}

/// On an open connection, every way of losing it without a clean Close frame
/// is an abnormal close.
fn error_outcome(e: &WsError) -> Outcome {
    match e {
        WsError::Io(io) if io.kind() == io::ErrorKind::TimedOut => Outcome::OtherError,
        WsError::Io(_)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(_) => Outcome::WsAbnormalClose,
        _ => Outcome::OtherError,
    }
}
