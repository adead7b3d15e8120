//! A packet capture (pcap or pcapng) read to the per-connection report.
//! The check is shared with the stable corpus replay test: `lameduck_pcap::fuzzing::capture`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lameduck_pcap::fuzzing::capture(data));
