//! The fuzz corpora of the proxy's parsers (`fuzz/corpus/`), replayed through
//! the checks the fuzz targets run: every seed and every past crash stays a
//! regression test on stable.

use lameduck_proxy::fuzzing;
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

#[test]
fn ws_frames_corpus() {
    replay("ws_frames", fuzzing::ws_frames);
}

#[test]
fn proxy_config_corpus() {
    replay("proxy_config", fuzzing::proxy_config);
}
