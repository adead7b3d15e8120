//! Marks from outside: each line written to a Unix socket becomes a named mark
//! on the timeline, so a rollout script can say "step 2 begins" without
//! signals (SIGUSR1 marks carry no name).
//!
//! ```sh
//! lameduck load --mark-socket /tmp/load.sock … &
//! echo "canary at 10%" | nc -U /tmp/load.sock    # or: socat - UNIX-CONNECT:/tmp/load.sock
//! ```

use std::path::{Path, PathBuf};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::{UnixListener, UnixStream},
};

use crate::{Controller, Error};

/// Listens on `path` (replacing a stale socket there) and turns every line
/// received into a mark, until the task is dropped.
pub fn listen_for_marks(
    path: &Path,
    controller: Controller,
) -> Result<impl std::future::Future<Output = ()>, Error> {
    let bind_err = |source| Error::MarkSocket {
        path: path.to_path_buf(),
        source,
    };
    remove_stale_socket(path).map_err(bind_err)?;
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    let path = path.to_path_buf();
    Ok(accept_loop(listener, controller, path))
}

async fn accept_loop(listener: UnixListener, controller: Controller, path: PathBuf) {
    let _cleanup = RemoveOnDrop(path);
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(read_marks(stream, controller.clone()));
    }
}

async fn read_marks(stream: UnixStream, controller: Controller) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let label = line.trim();
        if !label.is_empty() {
            controller.mark(label);
        }
    }
}

/// A socket file left by an earlier run is removed; any other file is not.
fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a file that is not a socket is in the way",
        )),
        Err(_) => Ok(()),
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
