//! A Dockerfile, and the same bytes as its entrypoint script, linted.
//! The check is shared with the stable corpus replay test: `lameduck_lint::fuzzing::dockerfile`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_lint::fuzzing::dockerfile(data));
