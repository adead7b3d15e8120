//! gRPC health checking (`grpc.health.v1.Health/Check`), just enough of it:
//! the request is one length-prefixed protobuf message with the service name;
//! the answer is judged by `grpc-status` and the `status` field (1 = SERVING).
//! Built with the target by `config`, sent and judged by `http2`.

use crate::Outcome;

/// The method's path.
pub(crate) const PATH: &str = "/grpc.health.v1.Health/Check";

/// A `HealthCheckRequest { service }`, framed for gRPC.
pub(crate) fn request_body(service: &str) -> bytes::Bytes {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        varint(service.len() as u64, &mut message);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = vec![0u8]; // not compressed
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed.into()
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The `grpc-status` in a header map.
pub(crate) fn status(headers: &http::HeaderMap) -> Option<u16> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The outcome of a finished call.
pub(crate) fn outcome(grpc_status: Option<u16>, body: &[u8]) -> Outcome {
    match grpc_status {
        None => Outcome::ProtocolError,
        Some(0) if serving(body) => Outcome::Success,
        Some(0) => Outcome::GrpcNotServing,
        Some(code) => Outcome::GrpcStatus(code),
    }
}

/// Whether a framed `HealthCheckResponse` says SERVING (field 1 = 1).
fn serving(body: &[u8]) -> bool {
    match body {
        [0, _, _, _, _, message @ ..] => message.windows(2).any(|w| w == [0x08, 0x01]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_the_request_and_reads_the_answer() {
        assert_eq!(&request_body("")[..], [0, 0, 0, 0, 0]);
        assert_eq!(
            &request_body("web")[..],
            [0, 0, 0, 0, 5, 0x0a, 3, b'w', b'e', b'b']
        );
        assert_eq!(
            outcome(Some(0), &[0, 0, 0, 0, 2, 0x08, 1]),
            Outcome::Success
        );
        assert_eq!(
            outcome(Some(0), &[0, 0, 0, 0, 2, 0x08, 2]),
            Outcome::GrpcNotServing
        );
        assert_eq!(outcome(Some(14), &[]), Outcome::GrpcStatus(14));
        assert_eq!(outcome(None, &[]), Outcome::ProtocolError);
    }
}
