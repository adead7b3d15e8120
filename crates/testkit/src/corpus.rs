//! Replays the checked-in fuzz corpora (`fuzz/corpus/TARGET/`) through the
//! checks the fuzz targets run, so that plain `cargo test` on stable holds
//! every seed and every past crash as a regression test.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
};

/// The corpus directory of fuzz target `target`.
pub fn dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Runs `check` on every file of `target`'s corpus and panics naming each
/// file whose check panicked; also when the corpus is missing or empty (a
/// replay of nothing would pass for the wrong reason). Returns how many files
/// were replayed.
pub fn replay(target: &str, check: impl Fn(&[u8])) -> usize {
    let dir = dir(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
    let mut failed = Vec::new();
    for path in &entries {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(!entries.is_empty(), "corpus {} is empty", dir.display());
    assert!(failed.is_empty(), "{target}: checks failed on {failed:?}");
    entries.len()
}
