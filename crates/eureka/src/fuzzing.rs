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

use serde_json::{json, Value};

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

/// The instance as the registry writes it, read back, in both formats. XML
/// readers trim element text (as Eureka's do: servers pretty-print), and XML
/// has no numbers or booleans (a free-form field such as `dataCenterInfo`
/// comes back with text for them), so the XML reading is compared as trimmed
/// text.
fn round_trip(instance: &Instance) {
    let value = instance.to_value();
    let doc = json!({ "instance": value });
    for format in [Format::Json, Format::Xml] {
        let body = wire::encode(&doc, format);
        let shown = String::from_utf8_lossy(&body).into_owned();
        let back = wire::decode(&body, format).unwrap_or_else(|e| {
            panic!("{format:?} written by the registry does not read: {e:?}: {shown}")
        });
        let again = Instance::from_body(&back)
            .unwrap_or_else(|e| panic!("{format:?} instance does not read back: {e:?}: {shown}"));
        match format {
            Format::Json => assert_eq!(&again, instance, "{shown}"),
            Format::Xml => assert_eq!(
                trim_text(again.to_value()),
                trim_text(value.clone()),
                "{shown}"
            ),
        }
    }
}

/// Scalars as text, element text trimmed, attributes (`@` keys) as the
/// text XML gives them (untrimmed; an object or array as its JSON text, as
/// `wire` writes it: an attribute holds only text), and `overriddenStatus` in XML's spelling (`wire` renames it at any
/// depth).
fn trim_text(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.trim().to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(trim_text).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| match k == "overriddenStatus" {
                    true => ("overriddenstatus".to_string(), v),
                    false => (k, v),
                })
                .map(|(k, v)| match k.starts_with('@') {
                    true => (k, Value::String(attribute_text(v))),
                    false => (k, trim_text(v)),
                })
                .collect(),
        ),
        other => other,
    }
}

/// An attribute's value as `wire` writes it: a string as it is, null as
/// nothing, anything else as its JSON text.
fn attribute_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
