//! The fuzz corpus of the manifest reader and the strategy arithmetic
//! (`fuzz/corpus/rollout_manifest/`), replayed through the check the fuzz
//! target runs, on stable.

use lameduck_rollout::fuzzing;
use lameduck_testkit::corpus::replay;

#[test]
fn rollout_manifest_corpus() {
    replay("rollout_manifest", fuzzing::manifest);
}
