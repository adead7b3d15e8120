//! The config file, read by two paths: SIGHUP (always re-read, so a rotated
//! certificate whose file name did not change is picked up) and the watcher
//! (re-read only when the text changed). Both paths share the text last read,
//! so a change that SIGHUP already applied is not applied a second time by the
//! watcher a moment later: one edit, one reload, one log line.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

/// The config file and the text last read from it.
#[derive(Debug)]
pub(crate) struct ConfigFile {
    path: PathBuf,
    last_read: Mutex<Option<String>>,
}

impl ConfigFile {
    /// `text` is what was read at start-up, if anything.
    pub(crate) fn new(path: PathBuf, text: Option<String>) -> ConfigFile {
        ConfigFile {
            path,
            last_read: Mutex::new(text),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file (SIGHUP); the text is remembered even when it turns
    /// out to be invalid, so the watcher does not reject it again every second.
    pub(crate) fn read(&self) -> std::io::Result<String> {
        let text = std::fs::read_to_string(&self.path)?;
        *self.last() = Some(text.clone());
        Ok(text)
    }

    /// The file's text if it differs from the text last read (the watcher).
    /// An unreadable file (mid-swap, removed) is not a change.
    pub(crate) fn read_if_changed(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let mut last = self.last();
        if last.as_deref() == Some(text.as_str()) {
            return None;
        }
        *last = Some(text.clone());
        Some(text)
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_read.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_read_by_sighup_is_not_a_change_for_the_watcher() {
        let dir = std::env::temp_dir().join(format!("ld-config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.toml");
        std::fs::write(&path, "v1").unwrap();
        let file = ConfigFile::new(path.clone(), Some("v1".into()));
        assert_eq!(file.read_if_changed(), None, "nothing changed yet");

        std::fs::write(&path, "v2").unwrap();
        assert_eq!(file.read().unwrap(), "v2", "SIGHUP reads the new text");
        assert_eq!(
            file.read_if_changed(),
            None,
            "the watcher must not apply v2 again"
        );
        assert_eq!(file.read().unwrap(), "v2", "SIGHUP always reads");

        std::fs::write(&path, "v3").unwrap();
        assert_eq!(file.read_if_changed().as_deref(), Some("v3"));
        assert_eq!(file.read_if_changed(), None, "v3 is applied once");

        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            file.read_if_changed(),
            None,
            "a missing file is not a change"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
