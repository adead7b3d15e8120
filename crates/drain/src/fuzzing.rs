//! The checks the fuzz targets (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`) run on durations and signal names, which come
//! from users' command lines, config files and manifests.
//!
//! Why a public module: a fuzz target is a separate crate, and the replay test
//! must call exactly what the fuzz targets call; so the checks live here,
//! once, hidden from the docs. The crate's API is unchanged.
//!
//! Each check returns normally when the parser behaves and panics when a
//! property beyond "no panic" fails.

use std::time::Duration;

use crate::{format_duration, parse_duration, Sig, MAX_DURATION};

/// A duration as a user writes it: what parses is at most [`MAX_DURATION`],
/// reads back exactly from nanoseconds, and what [`format_duration`] shows a
/// user reads back within its rounding (100 ms under a minute, 1 s above).
pub fn duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(d) = parse_duration(text) else {
        return;
    };
    assert!(d <= MAX_DURATION, "{text:?} gave {d:?}");
    let exact = format!("{}ns", d.as_nanos());
    assert_eq!(parse_duration(&exact).ok(), Some(d), "{exact}");
    let shown = format_duration(d);
    let back = match parse_duration(&shown) {
        Ok(back) => back,
        Err(e) => panic!("{d:?} is shown as {shown:?}, which does not read back: {e}"),
    };
    let rounding = if d < Duration::from_secs(60) {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    assert!(
        back <= d && d - back < rounding,
        "{d:?} shown as {shown:?} reads back as {back:?}"
    );
}

/// A signal name or number: what parses reads back from its name and from
/// how it is displayed.
pub fn signal(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sig) = Sig::parse(text) else {
        return;
    };
    if sig.0 == 0 {
        return;
    }
    assert_eq!(Sig::parse(&sig.name()), Ok(sig), "{text:?}");
    assert_eq!(Sig::parse(&sig.to_string()), Ok(sig), "{text:?}");
}
