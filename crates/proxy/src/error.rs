//! Why a proxied request failed, where it failed, and whether a retry is safe.
//!
//! Every failure the proxy answers itself carries a `lameduck-error` header with
//! the cause, so a user reading a 502 in a load test knows at once whether the
//! upstream refused the connection, reset it, or timed out.

use hyper::StatusCode;
use lameduck_http1::{client::Failure, parse::Reject};

/// The cause of a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No route matches the request's host and path.
    NoRoute,
    /// The upstream pool has no endpoints.
    NoEndpoints,
    /// Every endpoint is ejected or failed to connect.
    NoHealthyEndpoint,
    /// The upstream refused the connection.
    UpstreamConnectRefused,
    /// Connecting to the upstream took longer than `connect_timeout`.
    UpstreamConnectTimeout,
    /// Connecting failed for another reason (unreachable, reset).
    UpstreamConnectFailed,
    /// The upstream closed or reset the connection before a response.
    UpstreamReset,
    /// The response head did not come within `response_timeout`.
    UpstreamTimeout,
    /// The upstream answered something that is not HTTP.
    UpstreamProtocol,
    /// The request body is larger than `max_body_bytes`.
    BodyTooLarge,
    /// The request body stalled for longer than `body_idle_timeout`.
    BodyTimeout,
    /// The proxy is shutting down and no longer takes this request.
    ShuttingDown,
    /// The request head is malformed or ambiguous (see `docs/proxy.md`).
    BadRequest,
    /// The request head is larger than 64 KiB or has more than 100 fields.
    HeadTooLarge,
    /// No complete request head came within `header_read_timeout`.
    HeadTimeout,
    /// The request uses a transfer coding other than `chunked`.
    UnsupportedCoding,
    /// The method is not served by a reverse proxy (`CONNECT`).
    MethodNotAllowed,
}

impl Cause {
    /// The value of the `lameduck-error` header.
    pub fn name(self) -> &'static str {
        match self {
            Cause::NoRoute => "no-route",
            Cause::NoEndpoints => "no-endpoints",
            Cause::NoHealthyEndpoint => "no-healthy-endpoint",
            Cause::UpstreamConnectRefused => "upstream-connect-refused",
            Cause::UpstreamConnectTimeout => "upstream-connect-timeout",
            Cause::UpstreamConnectFailed => "upstream-connect-failed",
            Cause::UpstreamReset => "upstream-reset",
            Cause::UpstreamTimeout => "upstream-timeout",
            Cause::UpstreamProtocol => "upstream-protocol-error",
            Cause::BodyTooLarge => "body-too-large",
            Cause::BodyTimeout => "request-body-timeout",
            Cause::ShuttingDown => "shutting-down",
            Cause::BadRequest => "bad-request",
            Cause::HeadTooLarge => "request-head-too-large",
            Cause::HeadTimeout => "request-head-timeout",
            Cause::UnsupportedCoding => "unsupported-transfer-coding",
            Cause::MethodNotAllowed => "method-not-allowed",
        }
    }

    /// The status the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            Cause::NoRoute => StatusCode::NOT_FOUND,
            Cause::NoEndpoints | Cause::NoHealthyEndpoint | Cause::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Cause::UpstreamConnectTimeout | Cause::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Cause::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Cause::BadRequest => StatusCode::BAD_REQUEST,
            Cause::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Cause::HeadTimeout | Cause::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Cause::UnsupportedCoding => StatusCode::NOT_IMPLEMENTED,
            Cause::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Cause::UpstreamConnectRefused
            | Cause::UpstreamConnectFailed
            | Cause::UpstreamReset
            | Cause::UpstreamProtocol => StatusCode::BAD_GATEWAY,
        }
    }

    /// True when nothing reached the app, so another endpoint may be tried for
    /// any method, POST included.
    pub fn nothing_sent(self) -> bool {
        matches!(
            self,
            Cause::UpstreamConnectRefused
                | Cause::UpstreamConnectTimeout
                | Cause::UpstreamConnectFailed
        )
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
/// A request head the HTTP/1 parser refused, by what the client is told.
impl From<Reject> for Cause {
    fn from(reject: Reject) -> Cause {
        match reject {
            Reject::Malformed(_) => Cause::BadRequest,
            Reject::TooLarge => Cause::HeadTooLarge,
            Reject::UnsupportedCoding => Cause::UnsupportedCoding,
            Reject::MethodNotAllowed => Cause::MethodNotAllowed,
        }
    }
}

/// A failed exchange with an HTTP/1.1 upstream. Whether it may be retried is
/// decided before this (by `forward`, on the failure itself).
impl From<Failure> for Cause {
    fn from(failure: Failure) -> Cause {
        match failure {
            Failure::NotSent | Failure::NoResponse | Failure::Reset => Cause::UpstreamReset,
            Failure::Timeout => Cause::UpstreamTimeout,
            Failure::Protocol => Cause::UpstreamProtocol,
        }
    }
}
