//! The proxy's TOML config file.
//! The check is shared with the stable corpus replay test: `lameduck_proxy::fuzzing::proxy_config`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_proxy::fuzzing::proxy_config(data));
