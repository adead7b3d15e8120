//! `lameduck doctor` (in progress).
