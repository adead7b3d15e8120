//! A private directory for one run: the fixture's output files, the FIFOs it
//! reports through, and each supervisor's log. Removed when the run ends.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use nix::{sys::stat::Mode, unistd::mkfifo};

#[derive(Debug)]
pub(crate) struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub(crate) fn create() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("ld-sigbench.{}", std::process::id()));
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch { dir })
    }

    /// `DIR/NAME` (nothing is created).
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the FIFO `DIR/NAME` (owner read/write only).
    pub(crate) fn fifo(&self, name: &str) -> Result<PathBuf> {
        let path = self.path(name);
        mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR)
            .with_context(|| format!("creating the FIFO {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The last lines of a log, to show why a supervisor failed.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
