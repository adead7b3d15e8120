//! The outcome table: every request `lameduck load` starts ends in exactly one
//! [`Outcome`]. This is the whole point of the tool, so the table lives in one
//! enum, each outcome has a stable snake_case name (used in the summary, the JSON
//! report and `docs/load.md`) and one line saying what it means for a user.

use std::{borrow::Cow, collections::BTreeMap};

/// How one request ended. Exactly one per request started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// A complete response arrived with an expected status (`--expect-status`).
    Success,
    /// A complete response arrived, but its status was not expected (counted per code).
    Status(u16),
    /// gRPC: the call ended with this non-zero `grpc-status` (counted per code).
    GrpcStatus(u16),
    /// gRPC health: the call succeeded but the service is not SERVING.
    GrpcNotServing,
    /// The connection was refused: nothing listens on the port, nothing reached the app.
    ConnectRefused,
    /// The connection was not established within `--connect-timeout` (or `--timeout`).
    ConnectTimeout,
    /// Any other failure to connect (no route, no local port left, …): nothing was sent.
    ConnectError,
    /// The TLS handshake failed (certificate not trusted, wrong name, no common
    /// version): nothing was sent.
    TlsError,
    /// The server closed the connection cleanly after the request was sent and before
    /// any byte of a response: the keepalive race, or an app that exited.
    ClosedBeforeResponse,
    /// The connection was reset before any byte of a response arrived.
    ResetBeforeResponse,
    /// The connection was reset after the response had started: the response was cut.
    ResetDuringResponse,
    /// The connection closed cleanly in the middle of the response: fewer body bytes
    /// than announced by Content-Length or chunked framing, or cut headers.
    TruncatedBody,
    /// HTTP/2: the server's GOAWAY refused the stream (its id was above the last
    /// stream id): provably not processed.
    RefusedByGoaway,
    /// HTTP/2: the server reset the stream with REFUSED_STREAM before answering:
    /// provably not processed.
    RefusedStream,
    /// HTTP/2: the server reset the stream with another code (or after the
    /// response had started).
    StreamReset,
    /// WebSocket: the connection ended without a clean close (1006: no Close
    /// frame; a reset; a close code other than 1000/1001) while a message was
    /// unanswered or about to be sent.
    WsAbnormalClose,
    /// No complete response within `--timeout` (the connection is then dropped).
    RequestTimeout,
    /// The server answered something that is not valid HTTP.
    ProtocolError,
    /// Any other I/O error on an established connection.
    OtherError,
}

impl Outcome {
    /// Every outcome except those with a code ([`Outcome::Status`],
    /// [`Outcome::GrpcStatus`]), in table order.
    pub const FIXED: [Outcome; 17] = [
        Outcome::Success,
        Outcome::GrpcNotServing,
        Outcome::ConnectRefused,
        Outcome::ConnectTimeout,
        Outcome::ConnectError,
        Outcome::TlsError,
        Outcome::ClosedBeforeResponse,
        Outcome::ResetBeforeResponse,
        Outcome::ResetDuringResponse,
        Outcome::TruncatedBody,
        Outcome::RefusedByGoaway,
        Outcome::RefusedStream,
        Outcome::StreamReset,
        Outcome::WsAbnormalClose,
        Outcome::RequestTimeout,
        Outcome::ProtocolError,
        Outcome::OtherError,
    ];

    /// The stable snake_case name: `success`, `status_503`, `connect_refused`, …
    pub fn name(self) -> Cow<'static, str> {
        let name = match self {
            Outcome::Success => "success",
            Outcome::Status(code) => return Cow::Owned(format!("status_{code}")),
            Outcome::GrpcStatus(code) => return Cow::Owned(format!("grpc_status_{code}")),
            Outcome::GrpcNotServing => "grpc_not_serving",
            Outcome::ConnectRefused => "connect_refused",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::TlsError => "tls_error",
            Outcome::ClosedBeforeResponse => "closed_before_response",
            Outcome::ResetBeforeResponse => "reset_before_response",
            Outcome::ResetDuringResponse => "reset_during_response",
            Outcome::TruncatedBody => "truncated_body",
            Outcome::RefusedByGoaway => "refused_by_goaway",
            Outcome::RefusedStream => "refused_stream",
            Outcome::StreamReset => "stream_reset",
            Outcome::WsAbnormalClose => "ws_abnormal_close",
            Outcome::RequestTimeout => "request_timeout",
            Outcome::ProtocolError => "protocol_error",
            Outcome::OtherError => "other_error",
        };
        Cow::Borrowed(name)
    }

    /// Every outcome but [`Outcome::Success`] is a lost request.
    pub fn is_failure(self) -> bool {
        self != Outcome::Success
    }

    /// Whether the server provably never processed the request, so that even a
    /// POST may be sent again: the connection was refused, or HTTP/2 refused
    /// the stream (GOAWAY above its id, or REFUSED_STREAM).
    pub fn is_unprocessed(self) -> bool {
        matches!(
            self,
            Outcome::ConnectRefused | Outcome::RefusedByGoaway | Outcome::RefusedStream
        )
    }

    /// Whether a complete response arrived (its latency is then recorded).
    pub fn has_response(self) -> bool {
        matches!(
            self,
            Outcome::Success
                | Outcome::Status(_)
                | Outcome::GrpcStatus(_)
                | Outcome::GrpcNotServing
        )
    }

    fn fixed_index(self) -> Option<usize> {
        Outcome::FIXED.iter().position(|&o| o == self)
    }
}

/// Counts per outcome. Cheap to add to: fixed outcomes live in an array, only
/// outcomes with a code (rare) go to a map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    fixed: [u64; Outcome::FIXED.len()],
    coded: BTreeMap<Outcome, u64>,
}

impl OutcomeCounts {
    /// Counts one request that ended in `outcome`.
    pub fn add(&mut self, outcome: Outcome) {
        self.add_n(outcome, 1);
    }

    /// Counts `n` requests that ended in `outcome`.
    pub fn add_n(&mut self, outcome: Outcome, n: u64) {
        match outcome {
            Outcome::Status(_) | Outcome::GrpcStatus(_) => {
                *self.coded.entry(outcome).or_default() += n
            }
            other => {
                let i = other
                    .fixed_index()
                    .expect("every non-status outcome is in FIXED");
                self.fixed[i] += n;
            }
        }
    }

    /// Adds all of `other`'s counts to these.
    pub fn merge(&mut self, other: &OutcomeCounts) {
        for (outcome, n) in other.iter() {
            self.add_n(outcome, n);
        }
    }

    /// How many requests ended in `outcome`.
    pub fn get(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Status(_) | Outcome::GrpcStatus(_) => {
                self.coded.get(&outcome).copied().unwrap_or(0)
            }
            other => other.fixed_index().map_or(0, |i| self.fixed[i]),
        }
    }

    /// Outcomes with a non-zero count, in table order (status codes after success).
    pub fn iter(&self) -> impl Iterator<Item = (Outcome, u64)> + '_ {
        let success = std::iter::once((Outcome::Success, self.fixed[0]));
        let status = self.coded.iter().map(|(&o, &n)| (o, n));
        let rest = Outcome::FIXED[1..]
            .iter()
            .zip(&self.fixed[1..])
            .map(|(&o, &n)| (o, n));
        success.chain(status).chain(rest).filter(|&(_, n)| n > 0)
    }

    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.fixed.iter().sum::<u64>() + self.coded.values().sum::<u64>()
    }

    /// Requests counted in any outcome but success.
    pub fn failures(&self) -> u64 {
        self.total() - self.fixed[0]
    }

    /// Name → count, for reports.
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        self.iter()
            .map(|(o, n)| (o.name().into_owned(), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<_> = Outcome::FIXED.iter().map(|o| o.name()).collect();
        names.push(Outcome::Status(503).name());
        names.push(Outcome::GrpcStatus(14).name());
        for n in &names {
            assert!(n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate outcome name");
        assert_eq!(Outcome::Status(503).name(), "status_503");
    }

    #[test]
    fn docs_explain_every_outcome() {
        let docs = include_str!("../../../docs/load.md");
        for outcome in Outcome::FIXED {
            let row = format!("| `{}` |", outcome.name());
            assert!(docs.contains(&row), "docs/load.md lacks a row for {row}");
        }
        assert!(docs.contains("| `status_NNN` |"));
        assert!(docs.contains("| `grpc_status_N` |"));
    }

    #[test]
    fn counts_add_merge_and_total() {
        let mut a = OutcomeCounts::default();
        a.add(Outcome::Success);
        a.add(Outcome::Status(503));
        a.add(Outcome::Status(503));
        let mut b = OutcomeCounts::default();
        b.add(Outcome::ResetDuringResponse);
        b.add(Outcome::Success);
        a.merge(&b);
        assert_eq!(a.total(), 5);
        assert_eq!(a.failures(), 3);
        assert_eq!(a.get(Outcome::Status(503)), 2);
        let order: Vec<_> = a.iter().map(|(o, _)| o).collect();
        assert_eq!(
            order,
            [
                Outcome::Success,
                Outcome::Status(503),
                Outcome::ResetDuringResponse
            ]
        );
    }
}
