//! The response body type and the plain-text response every route shares,
//! apart from the routes so that `http`, `grpc` and `ws` all depend on it
//! and not on each other.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{
    header::{HeaderValue, CONTENT_TYPE},
    Response, StatusCode,
};

/// Every response's body.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
