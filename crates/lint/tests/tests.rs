//! The lint's tests, one module per area, on its library API.

mod util;

mod corpus;
mod fuzz_corpus;
mod output;
mod robust;
mod rules;
