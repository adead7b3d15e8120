//! The checked-in corpus (tests/corpus/): expected findings, `--fix` output
//! re-linted clean, agreement with hadolint's DL3025, and this repository's
//! own manifests.
