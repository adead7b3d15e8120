//! The errors that stop `lameduck load` from running at all. Failed *requests*
//! are never errors: they are outcomes (see [`crate::Outcome`]) and end up in the
//! report. An [`Error`] means the run itself could not happen or be reported.

use std::{io, path::PathBuf};

/// Why a load run could not start, finish, or be reported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL could not be used; `reason` says what to fix.
    #[error("bad URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// A URL's host name did not resolve to any address.
    #[error("cannot resolve the host of {url:?}: {source}")]
    Resolve { url: String, source: io::Error },
    /// A `--header` is not `Name: value`.
    #[error("bad header {header:?}: expected \"Name: value\"")]
    BadHeader { header: String },
    /// `--expect-status` is not a list of codes, classes or ranges.
    #[error("bad status list {input:?}: {reason} (examples: 200, 2xx, 200-299, 2xx,304)")]
    BadStatusList { input: String, reason: String },
    /// TLS could not be set up (`--cacert` unreadable, no trusted CA, …).
    #[error("TLS: {0}")]
    Tls(String),
    /// A setting that makes no sense (zero connections, zero rate, …).
    #[error("{0}")]
    BadSetting(String),
    /// The `--during` command could not be started.
    #[error("cannot start the --during command {command:?}: {source}")]
    During { command: String, source: io::Error },
    /// The `--mark-socket` could not be created.
    #[error("cannot listen on --mark-socket {path}: {source}")]
    MarkSocket { path: PathBuf, source: io::Error },
    /// The load's threads or their runtimes could not be started.
    #[error("cannot start the load threads: {0}")]
    Threads(io::Error),
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    WriteReport { path: PathBuf, source: io::Error },
    /// The outcomes do not add up to the requests started. This is a bug in
    /// lameduck: the report would be a lie, so it is not given.
    #[error(
        "accounting bug: {started} requests started but {ended} outcomes counted; please report"
    )]
    Accounting { started: u64, ended: u64 },
}
