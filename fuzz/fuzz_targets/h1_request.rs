//! An HTTP/1 client's bytes: request heads, their framing and bodies, pipelined.
//! The check is shared with the stable corpus replay test: `lameduck_http1::fuzzing::h1_request`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_http1::fuzzing::h1_request(data));
