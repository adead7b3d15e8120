//! A duration as users write it (`30s`, `0.5`).
//! The check is shared with the stable corpus replay test: `lameduck_drain::fuzzing::duration`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_drain::fuzzing::duration(data));
