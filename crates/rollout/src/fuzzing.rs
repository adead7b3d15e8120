//! The check the fuzz target (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`) run on Deployment manifests, which users bring.
//!
//! Why a public module: a fuzz target is a separate crate, and the replay test
//! must call exactly what the fuzz target calls; so the check lives here,
//! once, hidden from the docs. The crate's API is unchanged.

use crate::{
    manifest,
    strategy::{rolling_step, Counts, Strategy},
};

/// A manifest: one that is accepted has a replica count the engine plays,
/// and its strategy, played by the controller's arithmetic with every pod
/// ready at once, completes in a bounded number of passes without ever going
/// above `replicas + maxSurge` pods.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(d) = manifest::parse("fuzz.yaml", text) else {
        return;
    };
    if let Some(r) = d.spec.replicas {
        assert!((0..=64).contains(&r), "{r} replicas accepted");
    }
    if let Ok(Strategy::Rolling { surge, unavailable }) = Strategy::of("fuzz.yaml", &d) {
        play(d.replicas(), surge, unavailable);
    }
}

/// A rolling update of `desired` pods in which every pod is ready at once.
fn play(desired: u32, surge: u32, unavailable: u32) {
    let mut c = Counts {
        old_wanted: desired,
        old_available: desired,
        ..Counts::default()
    };
    let passes = 4 * desired + 4;
    for _ in 0..passes {
        if c.new_wanted == desired && c.old_wanted == 0 {
            return;
        }
        let (new, old) = rolling_step(desired, surge, unavailable, c);
        assert!(
            u64::from(new) + u64::from(old) <= u64::from(desired) + u64::from(surge),
            "{new} + {old} pods with {desired} wanted and surge {surge}"
        );
        c = Counts {
            new_wanted: new,
            new_available: new,
            old_wanted: old,
            old_available: old,
        };
    }
    panic!("{desired} pods, surge {surge}, unavailable {unavailable}: not done in {passes} passes: {c:?}");
}
