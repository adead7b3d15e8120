//! What can stop the registry server from serving, each with the words a
//! user needs.

/// An error of the registry server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket failed.
    #[error("reading the local address of the listener: {0}")]
    Listener(#[source] std::io::Error),
    /// Installing the stop-signal handlers failed.
    #[error("listening for stop signals: {0}")]
    Signals(#[source] std::io::Error),
}
