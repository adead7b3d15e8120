//! A YAML stream linted as a Kubernetes manifest file, and its `--fix` output.
//! The check is shared with the stable corpus replay test: `lameduck_lint::fuzzing::yaml`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_lint::fuzzing::yaml(data));
