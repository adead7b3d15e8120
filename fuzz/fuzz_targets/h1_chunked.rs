//! A chunked body, decoded whole and in pieces.
//! The check is shared with the stable corpus replay test: `lameduck_http1::fuzzing::h1_chunked`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_http1::fuzzing::h1_chunked(data));
