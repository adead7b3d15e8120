//! HTTP/2 (`--http2`): h2c with prior knowledge on `http://`, ALPN `h2` on
//! `https://`; `--streams M` workers multiplex their streams on each connection
//! (like `h2load -m M`).
//!
//! Uses the `h2` crate, whose errors are precise enough for exact outcomes:
//! a stream failed by a GOAWAY (its id was above the GOAWAY's last stream id,
//! so the server never processed it) is a remote "go away" error; a stream the
//! server reset is a remote "reset" error carrying its reason (REFUSED_STREAM
//! means not processed either); a connection cut under an open stream is an
//! I/O error (broken pipe for a clean close, connection reset for an RST).

use std::time::Duration;

use bytes::Bytes;
use h2::{client::SendRequest, Reason};
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use tokio::sync::Mutex;

use crate::{
    config::{ExpectStatus, H2Request},
    grpc,
    stream::Stream,
    Outcome, Target,
};

/// One HTTP/2 connection: a handle to open streams on it. The task driving the
/// connection is not stopped when this is dropped: it ends by itself once no
/// handle is left and its streams are done, so dropping a connection never cuts
/// another worker's stream that is still running on it.
#[derive(Debug)]
pub(crate) struct Conn {
    send: SendRequest<Bytes>,
    /// Tells connections apart, so a worker only forgets the one that failed.
    id: u64,
}

/// A connection shared by the workers that multiplex streams on it (`--streams`).
pub(crate) type SharedConn = Arc<Mutex<Option<Conn>>>;

/// Sends one request as a stream on the shared connection (opening one if there
/// is none) and reads the whole response.
pub(crate) async fn exchange(
    shared: &SharedConn,
    target: &Target,
    request: &H2Request,
    connect_timeout: Duration,
    expect: &ExpectStatus,
) -> Outcome {
    let (send, id) = {
        let mut slot = shared.lock().await;
        match ready(&mut slot, target, connect_timeout).await {
            Ok(ready) => ready,
            Err(outcome) => return outcome,
        }
    };
    let outcome = stream(send, request, expect).await;
    // A stream-level failure leaves the connection usable; any other failure
    // means starting again on a fresh connection.
    let stream_level = matches!(outcome, Outcome::RefusedStream | Outcome::StreamReset);
    if !(outcome.has_response() || stream_level) {
        let mut slot = shared.lock().await;
        if slot.as_ref().is_some_and(|conn| conn.id == id) {
            *slot = None;
        }
    }
    outcome
}

/// A sender ready for a new stream (waiting, if need be, for the server's
/// stream limit). A kept connection that turns out to be closed (GOAWAY or EOF
/// while idle) is replaced once: nothing was sent on it.
async fn ready(
    slot: &mut Option<Conn>,
    target: &Target,
    timeout: Duration,
) -> Result<(SendRequest<Bytes>, u64), Outcome> {
    if let Some(conn) = slot.as_ref() {
        if let Ok(send) = conn.send.clone().ready().await {
            return Ok((send, conn.id));
        }
        *slot = None;
    }
    let conn = match tokio::time::timeout(timeout, connect(target)).await {
        Err(_elapsed) => return Err(Outcome::ConnectTimeout),
        Ok(result) => result?,
    };
    let send = conn
        .send
        .clone()
        .ready()
        .await
        .map_err(|e| outcome(&e, false))?;
    let id = conn.id;
    *slot = Some(conn);
    Ok((send, id))
}

async fn connect(target: &Target) -> Result<Conn, Outcome> {
    let stream = crate::http1::open(target).await?;
    if let Stream::Tls(tls) = &stream {
        // Offered only h2: a server that did not pick it speaks something else.
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(Outcome::ProtocolError);
        }
    }
    let (send, connection) = h2::client::handshake(stream)
        .await
        .map_err(|e| outcome(&e, false))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    Ok(Conn { send, id })
}

async fn stream(
    mut send: SendRequest<Bytes>,
    request: &H2Request,
    expect: &ExpectStatus,
) -> Outcome {
    let end = request.body.is_empty();
    let (response, mut body_out) = match send.send_request(request.head.clone(), end) {
        Ok(pair) => pair,
        Err(e) => return outcome(&e, false),
    };
    if !end {
        if let Err(e) = body_out.send_data(request.body.clone(), true) {
            return outcome(&e, false);
        }
    }
    let response = match response.await {
        Ok(response) => response,
        Err(e) => return outcome(&e, false),
    };
    let status = response.status().as_u16();
    let grpc_in_head = grpc::status(response.headers());
    let mut body = response.into_body();
    let mut kept = Vec::new();
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(bytes) => {
                let _ = body.flow_control().release_capacity(bytes.len());
                if request.grpc && kept.len() < 64 * 1024 {
                    kept.extend_from_slice(&bytes);
                }
            }
            Err(e) => return outcome(&e, true),
        }
    }
    let trailers = match body.trailers().await {
        Ok(trailers) => trailers,
        Err(e) => return outcome(&e, true),
    };
    if !expect.contains(status) {
        return Outcome::Status(status);
    }
    if request.grpc {
        let grpc_status = trailers.as_ref().and_then(grpc::status).or(grpc_in_head);
        return grpc::outcome(grpc_status, &kept);
    }
    Outcome::Success
}

/// The outcome of an `h2` error, by whether the response head had arrived.
fn outcome(e: &h2::Error, got_head: bool) -> Outcome {
    if e.is_go_away() && e.is_remote() && !got_head {
        return Outcome::RefusedByGoaway;
    }
    if e.is_reset() && e.is_remote() {
        return match e.reason() {
            Some(Reason::REFUSED_STREAM) if !got_head => Outcome::RefusedStream,
            _ => Outcome::StreamReset,
        };
    }
    let Some(io) = e.get_io() else {
        return Outcome::ProtocolError;
    };
    use std::io::ErrorKind::*;
    match (io.kind(), got_head) {
        (ConnectionReset | ConnectionAborted, false) => Outcome::ResetBeforeResponse,
        (ConnectionReset | ConnectionAborted, true) => Outcome::ResetDuringResponse,
        (BrokenPipe | UnexpectedEof, false) => Outcome::ClosedBeforeResponse,
        (BrokenPipe | UnexpectedEof, true) => Outcome::TruncatedBody,
        _ => Outcome::OtherError,
    }
}
