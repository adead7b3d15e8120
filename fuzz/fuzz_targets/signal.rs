//! A signal name or number (`TERM`, `RTMIN+1`, `15`).
//! The check is shared with the stable corpus replay test: `lameduck_drain::fuzzing::signal`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_drain::fuzzing::signal(data));
