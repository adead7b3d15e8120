//! A Eureka XML body: a registration or a registry document.
//! The check is shared with the stable corpus replay test: `lameduck_eureka::fuzzing::xml`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_eureka::fuzzing::xml(data));
