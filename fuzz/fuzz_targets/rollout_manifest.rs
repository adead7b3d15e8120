//! A Deployment manifest, and its strategy played.
//! The check is shared with the stable corpus replay test: `lameduck_rollout::fuzzing::manifest`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_rollout::fuzzing::manifest(data));
