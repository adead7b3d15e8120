//! The fuzz corpora of the duration and signal parsers (`fuzz/corpus/`),
//! replayed through the checks the fuzz targets run, on stable.

use lameduck_drain::fuzzing;
use lameduck_testkit::corpus::replay;

#[test]
fn duration_corpus() {
    replay("duration", fuzzing::duration);
}

#[test]
fn signal_corpus() {
    replay("signal", fuzzing::signal);
}
