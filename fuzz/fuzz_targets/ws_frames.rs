//! Bytes through a WebSocket tunnel: the frame boundary tracker.
//! The check is shared with the stable corpus replay test: `lameduck_proxy::fuzzing::ws_frames`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_proxy::fuzzing::ws_frames(data));
