//! Two gRPC methods, framed by hand (no code generation for two messages):
//!
//! - `/grpc.health.v1.Health/Check`: `SERVING`, or `NOT_SERVING` once a
//!   graceful shutdown has begun, at once (it is a probe). Every service name
//!   gets the same answer.
//! - `/lameduck.demo.Echo/Echo`: unary; answers the request message's bytes
//!   unchanged after the app's latency.
//!
//! Any other method gets `grpc-status: 12` (UNIMPLEMENTED). A message is the
//! 5-byte gRPC prefix (compressed flag, big-endian length) and the protobuf
//! bytes; an answer is headers, one message and `grpc-status: 0` trailers.

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::{
    body::{Frame, Incoming},
    header::{HeaderMap, HeaderValue, CONTENT_TYPE},
    Request, Response,
};

use crate::{body::Body, App};

/// The health check method.
pub(crate) const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// The echo method.
pub(crate) const ECHO: &str = "/lameduck.demo.Echo/Echo";

/// The largest request message read (gRPC's default limit).
const MAX_MESSAGE: usize = 4 << 20;

/// gRPC status codes used here.
const OK: u16 = 0;
const UNIMPLEMENTED: u16 = 12;
const INTERNAL: u16 = 13;
const RESOURCE_EXHAUSTED: u16 = 8;

/// `HealthCheckResponse.status` values.
const SERVING: u8 = 1;
const NOT_SERVING: u8 = 2;

/// True for a gRPC call (by its content type).
pub(crate) fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Answers one gRPC call.
pub(crate) async fn handle(req: Request<Incoming>, app: &App) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path != HEALTH_CHECK && path != ECHO {
        return status_only(UNIMPLEMENTED, "unknown method");
    }
    let message = match read_message(req.into_body()).await {
        Ok(m) => m,
        Err((code, why)) => return status_only(code, why),
    };
    if path == HEALTH_CHECK {
        let status = if app.life.draining() {
            NOT_SERVING
        } else {
            SERVING
        };
        // HealthCheckResponse { status = 1: enum }
        return unary(Bytes::from(vec![0x08, status]));
    }
    tokio::time::sleep(app.latency).await;
    unary(message)
}

/// Reads the one message of a unary call, checking its frame.
async fn read_message(body: Incoming) -> Result<Bytes, (u16, &'static str)> {
    let bytes = Limited::new(body, MAX_MESSAGE + 5)
        .collect()
        .await
        .map_err(|_| (RESOURCE_EXHAUSTED, "request too large or cut"))?
        .to_bytes();
    unframe(&bytes)
}

/// The message inside one gRPC frame.
fn unframe(bytes: &Bytes) -> Result<Bytes, (u16, &'static str)> {
    let Some((&[flag, a, b, c, d], rest)) = bytes.split_first_chunk::<5>() else {
        return Err((INTERNAL, "a unary call needs exactly one message"));
    };
    if flag != 0 {
        return Err((UNIMPLEMENTED, "compressed messages are not supported"));
    }
    if u32::from_be_bytes([a, b, c, d]) as usize != rest.len() {
        return Err((INTERNAL, "a unary call needs exactly one message"));
    }
    Ok(bytes.slice(5..))
}

/// One message in a gRPC frame.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// A successful unary answer: headers, the message, `grpc-status: 0` trailers.
fn unary(message: Bytes) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(OK));
    let frames: [Result<Frame<Bytes>, Infallible>; 2] = [
        Ok(Frame::data(frame(&message))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = StreamBody::new(futures_util::stream::iter(frames));
    grpc_response(body.boxed())
}

/// A "trailers-only" answer: the status in the headers, no message.
fn status_only(code: u16, message: &'static str) -> Response<Body> {
    let mut response = grpc_response(Full::new(Bytes::new()).boxed());
    let headers = response.headers_mut();
    headers.insert("grpc-status", HeaderValue::from(code));
    headers.insert("grpc-message", HeaderValue::from_static(message));
    response
}

fn grpc_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let framed = frame(b"\x0a\x02hi");
        assert_eq!(&framed[..], b"\x00\x00\x00\x00\x04\x0a\x02hi");
        assert_eq!(&unframe(&framed).unwrap()[..], b"\x0a\x02hi");
        assert_eq!(&unframe(&frame(b"")).unwrap()[..], b"");
    }

    #[test]
    fn bad_frames_are_refused_with_a_status() {
        assert_eq!(unframe(&Bytes::from_static(b"")).unwrap_err().0, INTERNAL);
        let short = Bytes::from_static(b"\x00\x00\x00\x00\x09abc");
        assert_eq!(unframe(&short).unwrap_err().0, INTERNAL);
        let compressed = Bytes::from_static(b"\x01\x00\x00\x00\x00");
        assert_eq!(unframe(&compressed).unwrap_err().0, UNIMPLEMENTED);
    }

    #[tokio::test]
    async fn an_answer_ends_with_status_0_trailers() {
        let body = unary(Bytes::from_static(b"\x08\x01")).into_body();
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(&collected.to_bytes()[..], b"\x00\x00\x00\x00\x02\x08\x01");
    }
}
