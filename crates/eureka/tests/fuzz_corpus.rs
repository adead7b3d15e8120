//! The fuzz corpora of the JSON and XML decoders (`fuzz/corpus/`), replayed
//! through the checks the fuzz targets run, on stable.

use lameduck_eureka::fuzzing;
use lameduck_testkit::corpus::replay;

#[test]
fn eureka_json_corpus() {
    replay("eureka_json", fuzzing::json);
}

#[test]
fn eureka_xml_corpus() {
    replay("eureka_xml", fuzzing::xml);
}
