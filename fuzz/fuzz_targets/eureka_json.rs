//! A Eureka JSON body: a registration or a registry document.
//! The check is shared with the stable corpus replay test: `lameduck_eureka::fuzzing::json`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_eureka::fuzzing::json(data));
