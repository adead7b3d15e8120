//! What can go wrong in a call to a Eureka server, each with the words a
//! user needs.

/// An error of the Eureka client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Eureka server could not be reached or did not answer.
    #[error("{url}: {reason}")]
    Request {
        /// What was asked.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// A Eureka server answered with an unexpected status.
    #[error("{url}: the server answered {status}: {body}")]
    Status {
        /// What was asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body, for the log.
        body: String,
    },
    /// A Eureka server's answer could not be read.
    #[error("{url}: unreadable answer: {reason}")]
    Body {
        /// What was asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// A retried call ran out of time.
    #[error("no answer before the deadline")]
    Deadline,
    /// A base URL that is not `http://host:port/path`.
    #[error("bad Eureka URL {0:?}: use http://HOST:PORT/eureka/ (https is not supported)")]
    BadUrl(String),
}

impl Error {
    /// True for failures a retry may fix: no connection, no answer, or a 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Request { .. } | Error::Deadline => true,
            Error::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
