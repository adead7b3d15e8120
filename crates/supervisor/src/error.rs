//! The errors a supervisor can meet before or while it runs the app.

use std::{io, path::PathBuf};

/// Why `lameduck run` or `lameduck prestop` could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command was not found on `PATH` (exit status 127, as in a shell).
    #[error("cannot run {command:?}: command not found (PATH={path})")]
    NotFound { command: String, path: String },
    /// The command exists but could not be executed (exit status 126).
    #[error("cannot run {command:?}: {source} (is it an executable file for this machine?)")]
    NotExecutable { command: String, source: io::Error },
    /// The admin address could not be bound.
    #[error("cannot listen on --admin {addr}: {source}")]
    AdminBind {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    /// The control socket could not be created.
    #[error("cannot create the control socket {path}: {source} (set {env} to a writable path)", env = crate::CONTROL_ENV)]
    ControlBind { path: PathBuf, source: io::Error },
    /// `lameduck prestop` found no supervisor and was not told how to drain alone.
    #[error(
        "no `lameduck run` answers on {path} ({source}); start the app under `lameduck run`, \
         set {env} to its socket, or give --drain-delay/--until-quiet to drain without it",
        env = crate::CONTROL_ENV
    )]
    NoSupervisor { path: PathBuf, source: io::Error },
    /// The supervisor closed the control connection before the lame-duck phase ended.
    #[error("the supervisor on {path} hung up before the lame-duck phase ended: {detail}")]
    ControlProtocol { path: PathBuf, detail: String },
    /// Some other system call failed.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
}

impl Error {
    /// The exit status a shell would use for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotFound { .. } => 127,
            Error::NotExecutable { .. } => 126,
            _ => 1,
        }
    }

    pub(crate) fn io(what: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { what, source }
    }
}
