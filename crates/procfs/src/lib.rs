//! The kernel tables under `/proc` that more than one lameduck part reads,
//! parsed once: `lameduck run --until-quiet` watches the app's connections in
//! `/proc/net/tcp` where sock_diag is not available, and `lameduck doctor`
//! counts a process's listeners and their connections there.
//!
//! Why by hand: the format is a few hex columns, and the crates that read
//! `/proc` (procfs) bring a whole model of it to read four of them. Nothing
//! here allocates per row: the until-quiet sampler reads every socket of the
//! namespace each time.

#![forbid(unsafe_code)]

pub mod tcp;
