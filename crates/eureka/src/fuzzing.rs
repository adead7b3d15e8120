//! The checks the fuzz targets (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`) run on Eureka bodies: registrations in JSON or
//! XML from any client, and registry documents from any server.
//!
//! Why a public module: a fuzz target is a separate crate, and the replay test
//! must call exactly what the fuzz targets call; so the checks live here,
//! once, hidden from the docs. The crate's API is unchanged.
//!
//! Each check returns normally when the decoders behave and panics when a
//! property beyond "no panic" fails: an instance that was read is written and
//! read back to the same instance, in JSON and in XML (clients of either
//! format read what clients of the other registered).

use serde_json::json;

use crate::{
    client::Applications,
    model::Instance,
    wire::{self, Format},
};

/// A JSON body: a registration, or a registry document.
pub fn json(data: &[u8]) {
    let Ok(doc) = wire::decode(data, Format::Json) else {
        return;
    };
    let _ = Applications::from_value(&doc);
    if let Ok(instance) = Instance::from_body(&doc) {
        round_trip(&instance);
    }
}

/// An XML body: a registration, or a registry document.
pub fn xml(data: &[u8]) {
    let Ok(doc) = wire::decode(data, Format::Xml) else {
        return;
    };
    let _ = Applications::from_value(&doc);
    if let Ok(instance) = Instance::from_body(&doc) {
        round_trip(&instance);
    }
}

/// The instance as the registry writes it, read back, in both formats.
fn round_trip(instance: &Instance) {
    let doc = json!({ "instance": instance.to_value() });
    for format in [Format::Json, Format::Xml] {
        let body = wire::encode(&doc, format);
        let shown = String::from_utf8_lossy(&body).into_owned();
        let back = wire::decode(&body, format).unwrap_or_else(|e| {
            panic!("{format:?} written by the registry does not read: {e}: {shown}")
        });
        let again = Instance::from_body(&back)
            .unwrap_or_else(|e| panic!("{format:?} instance does not read back: {e:?}: {shown}"));
        assert_eq!(&again, instance, "{format:?}: {shown}");
    }
}
