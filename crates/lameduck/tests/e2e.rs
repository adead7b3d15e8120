//! End-to-end tests that play whole rolling updates (`lameduck rollout`,
//! `lameduck demo`): each keeps both cores busy for tens of seconds, so they
//! live in a test binary of their own and do not run alongside the
//! timing-sensitive tests of `tests.rs` (cargo runs test binaries one after
//! another).

#![allow(unreachable_pub)] // test helpers are `pub` for readability

mod rollout;
#[allow(unused_imports)] // util re-exports what `tests.rs` needs, not only these
mod util;
