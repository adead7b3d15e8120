//! lameduck's one HTTP/1.x implementation, shared by every part that speaks
//! it: the proxy (both sides), `lameduck load`, the Eureka client and the
//! rollout engine's probes.
//!
//! Why one crate: a rule about where a message ends (one `Content-Length`,
//! `chunked` only, no bare LF) has to hold the same way in every reader, or
//! two parts of one system read one byte stream two ways (request
//! smuggling). Each rule is written once here:
//!
//! - [`parse`]: a request head into an `http::Request` and its body framing;
//!   [`parse::content_length`] is the one reader of `Content-Length`.
//! - [`client::response`]: a response head and its framing (RFC 9112 §6.3).
//! - [`chunked`]: the chunked transfer coding, decoded incrementally.
//! - [`encode`]: response heads toward a client, request heads toward a
//!   server, chunk framing, the `Date` value.
//! - [`hop`]: the hop-by-hop fields, one list.
//! - [`body`]: the boxed body type, and [`body::watch`], which holds a body
//!   to a size limit and an idle timeout.
//! - [`client`]: a client connection driven by the caller's own task,
//!   pooled by the caller ([`client::Pool`]).
//! - [`raw`]: response fields kept as the bytes that came, for copying.
//! - [`server`]: the first read into a stack buffer, reading a head whole,
//!   writing a response body, the lingering close.
//! - [`spare`], [`channel`], [`prefixed`]: the read buffers, request body
//!   channel and read-ahead stream a server connection loop needs to hold
//!   nothing while a connection is idle.
//! - [`fuzzing`]: the checks the fuzz targets and the corpus replay run.
//!
//! It knows nothing of routing, drains or metrics: a caller maps its errors
//! ([`parse::Reject`], [`client::Failure`]) to its own.

#![forbid(unsafe_code)]

pub mod body;
pub mod channel;
pub mod chunked;
pub mod client;
pub mod encode;
#[doc(hidden)]
pub mod fuzzing;
pub mod hop;
pub mod parse;
pub mod prefixed;
pub mod raw;
pub mod server;
pub mod spare;

pub use parse::content_length;
pub use prefixed::Prefixed;
