//! The fuzz corpora of the proxy's own parsers (`fuzz/corpus/`; the HTTP/1
//! ones are replayed by `lameduck-http1`), replayed through
//! the checks the fuzz targets run: every seed and every past crash stays a
//! regression test on stable.

use lameduck_proxy::fuzzing;
use lameduck_testkit::corpus::replay;

#[test]
fn ws_frames_corpus() {
    replay("ws_frames", fuzzing::ws_frames);
}

#[test]
fn proxy_config_corpus() {
    replay("proxy_config", fuzzing::proxy_config);
}
