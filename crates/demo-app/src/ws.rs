//! WebSocket echo at `/ws`: each text or binary message comes back after the
//! app's latency. When a graceful shutdown begins, the echo in progress is
//! finished, then the app sends a Close frame with 1001 (Going Away) and waits
//! for the client's reply, so the client knows to reconnect elsewhere; in
//! naive mode, or at the shutdown timeout, the socket is just dropped.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::{
    body::Incoming,
    header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE},
    Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::{
    tungstenite::{
        handshake::derive_accept_key,
        protocol::{frame::coding::CloseCode, CloseFrame, Role},
        Message,
    },
    WebSocketStream,
};

use crate::{
    body::{text, Body},
    shutdown::{Counted, Kind, Stage},
    App,
};

/// Answers the upgrade request with `101` and starts the echo on the
/// upgraded connection, or answers `400` to anything but a WebSocket upgrade.
pub(crate) fn upgrade(mut req: Request<Incoming>, app: &Arc<App>) -> Response<Body> {
    let Some(key) = handshake_key(&req) else {
        return text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n");
    };
    // Counted from now, so the drain never sees a moment with nothing open
    // between the HTTP connection's end and the echo's start.
    let open = app.life.count(Kind::WebSocket);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let app = Arc::clone(app);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                echo(ws, &app, open).await;
            }
            Err(e) => tracing::debug!("WebSocket upgrade failed: {e}"),
        }
    });
    let mut response = text(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The client's `Sec-WebSocket-Key`, if this is a WebSocket upgrade.
fn handshake_key(req: &Request<Incoming>) -> Option<String> {
    let has = |name, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has(UPGRADE, "websocket") || !has(CONNECTION, "upgrade") {
        return None;
    }
    let key = req.headers().get(SEC_WEBSOCKET_KEY)?.to_str().ok()?;
    Some(key.to_string())
}

/// Echoes messages until the client closes, the drain begins (then says
/// goodbye), or the cut.
async fn echo<S>(mut ws: WebSocketStream<S>, app: &App, _open: Counted)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut stage = app.life.stage();
    loop {
        let message = tokio::select! {
            m = ws.next() => m,
            _ = stage.wait_for(|s| *s >= Stage::Draining) => break,
        };
        match message {
            None | Some(Err(_)) => return,
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                // An echo in progress finishes, even once the drain has begun.
                tokio::select! {
                    () = tokio::time::sleep(app.latency) => {}
                    () = cut(&mut stage) => return,
                }
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            // Pings are answered and a client's Close is replied to by the
            // protocol layer, on the next read.
            Some(Ok(_)) => {}
        }
    }
    if *stage.borrow() == Stage::Cut {
        return;
    }
    let goodbye = CloseFrame {
        code: CloseCode::Away,
        reason: "server shutting down".into(),
    };
    tokio::select! {
        () = say_goodbye(&mut ws, goodbye) => {}
        () = cut(&mut stage) => {}
    }
}

/// Sends `frame` and reads until the client's Close reply ends the stream.
async fn say_goodbye<S>(ws: &mut WebSocketStream<S>, frame: CloseFrame)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    while let Some(Ok(_)) = ws.next().await {}
}

/// Returns at the cut.
async fn cut(stage: &mut watch::Receiver<Stage>) {
    let _ = stage.wait_for(|s| *s == Stage::Cut).await;
}
