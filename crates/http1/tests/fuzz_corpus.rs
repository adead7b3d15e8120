//! The fuzz corpora of the HTTP/1 parsers (`fuzz/corpus/`), replayed through
//! the checks the fuzz targets run: every seed and every past crash stays a
//! regression test on stable.

use lameduck_http1::fuzzing;
use lameduck_testkit::corpus::replay;

#[test]
fn h1_request_corpus() {
    replay("h1_request", fuzzing::h1_request);
}

#[test]
fn h1_chunked_corpus() {
    replay("h1_chunked", fuzzing::h1_chunked);
}

#[test]
fn h1_response_corpus() {
    replay("h1_response", fuzzing::h1_response);
}
