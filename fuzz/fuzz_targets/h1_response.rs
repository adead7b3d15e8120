//! An HTTP/1.1 upstream's response head.
//! The check is shared with the stable corpus replay test: `lameduck_http1::fuzzing::h1_response`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_http1::fuzzing::h1_response(data));
