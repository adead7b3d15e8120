//! The two wire formats, JSON and XML, mapped onto one JSON-shaped tree.
//!
//! Eureka's XML and JSON carry the same data; the JSON is the XML written with
//! two conventions: attributes become `"@name"` keys and an element's text next
//! to attributes becomes `"$"` (`<port enabled="true">8080</port>` is
//! `{"$": 8080, "@enabled": "true"}`). A repeated element becomes an array.
//! So the registry builds every document once, as a [`serde_json::Value`], and
//! this module writes it as XML when the client wants XML, and turns an XML
//! request body into the same tree before [`crate::model`] reads it. One field
//! is spelled differently: JSON's `overriddenStatus` is `overriddenstatus` in XML.

use std::borrow::Cow;

use quick_xml::{
    escape::{escape, resolve_predefined_entity},
    events::{BytesStart, Event},
    Reader, XmlVersion,
};
use serde_json::{Map, Value};

use crate::model::BadInput;

/// The format of a response or a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `application/xml`.
    Xml,
}

impl Format {
    /// The response format for an `Accept` header: JSON when it mentions json,
    /// XML otherwise (also without the header), as the Eureka server does.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.to_ascii_lowercase().contains("json") => Format::Json,
            _ => Format::Xml,
        }
    }

    /// The format of a request body: from `Content-Type`, else from its first byte.
    pub fn of_body(content_type: Option<&str>, body: &[u8]) -> Format {
        let ct = content_type.unwrap_or("").to_ascii_lowercase();
        if ct.contains("json") {
            return Format::Json;
        }
        if ct.contains("xml") {
            return Format::Xml;
        }
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Format::Xml,
            _ => Format::Json,
        }
    }

    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml",
        }
    }
}

/// Writes a document (`{"root": {...}}`) in `format`.
pub fn encode(doc: &Value, format: Format) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(doc).expect("a Value always serializes"),
        Format::Xml => to_xml(doc).into_bytes(),
    }
}

/// Reads a request body in `format` into the JSON-shaped tree.
pub fn decode(body: &[u8], format: Format) -> Result<Value, BadInput> {
    match format {
        Format::Json => {
            serde_json::from_slice(body).map_err(|e| BadInput(format!("malformed JSON body: {e}")))
        }
        Format::Xml => from_xml(body).map_err(|e| BadInput(format!("malformed XML body: {e}"))),
    }
}

/// XML names that differ from the JSON keys.
fn xml_name(key: &str) -> &str {
    match key {
        "overriddenStatus" => "overriddenstatus",
        other => other,
    }
}

/// Writes `{"root": value}` as an XML document.
pub fn to_xml(doc: &Value) -> String {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#);
    if let Value::Object(root) = doc {
        for (name, value) in root {
            write_element(&mut out, xml_name(name), value);
        }
    }
    out
}

fn write_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| write_element(out, name, v)),
        Value::Object(fields) => write_object(out, name, fields),
        Value::Null => {
            out.push('<');
            out.push_str(name);
            out.push_str("/>");
        }
        scalar => {
            let text = scalar_text(scalar);
            out.push_str(&format!("<{name}>{}</{name}>", escape_text(&text, false)));
        }
    }
}

fn write_object(out: &mut String, name: &str, fields: &Map<String, Value>) {
    out.push('<');
    out.push_str(name);
    for (key, value) in fields {
        if let Some(attr) = key.strip_prefix('@') {
            let text = scalar_text(value);
            out.push_str(&format!(r#" {attr}="{}""#, escape_text(&text, true)));
        }
    }
    let inner: Vec<_> = fields.iter().filter(|(k, _)| !k.starts_with('@')).collect();
    if inner.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for (key, value) in inner {
        if key == "$" {
            out.push_str(&escape_text(&scalar_text(value), false));
        } else {
            write_element(out, xml_name(key), value);
        }
    }
    out.push_str(&format!("</{name}>"));
}

/// `text` escaped for XML, with the whitespace a reader would normalize
/// written as character references, so that it reads back as it was: a CR
/// anywhere (end-of-line handling turns it into LF), and in an attribute
/// also LF and TAB (attribute-value normalization turns them into spaces).
fn escape_text(text: &str, attribute: bool) -> String {
    let escaped = escape(text);
    if !escaped.contains(['\r', '\n', '\t']) {
        return escaped.into_owned();
    }
    let mut out = String::with_capacity(escaped.len() + 8);
    for c in escaped.chars() {
        match c {
            '\r' => out.push_str("&#13;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An element being read: its attributes and children so far, and its text.
struct Open {
    name: String,
    fields: Map<String, Value>,
    text: String,
    has_children: bool,
}

impl Open {
    fn new(start: &BytesStart<'_>) -> Result<Open, String> {
        let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
        let mut fields = Map::new();
        for attr in start.attributes() {
            let attr = attr.map_err(|e| e.to_string())?;
            let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?;
            fields.insert(format!("@{key}"), Value::String(value.into_owned()));
        }
        Ok(Open {
            name,
            fields,
            text: String::new(),
            has_children: false,
        })
    }

    /// The element as a value: text alone → string; text with attributes →
    /// `{"@a": …, "$": text}`; children → object (text between them ignored).
    fn finish(self) -> Value {
        let Open {
            mut fields,
            text,
            has_children,
            ..
        } = self;
        if has_children {
            return Value::Object(fields);
        }
        if fields.is_empty() {
            return Value::String(text.trim().to_string());
        }
        if !text.trim().is_empty() {
            fields.insert("$".into(), Value::String(text.trim().to_string()));
        }
        Value::Object(fields)
    }

    /// Adds a child; a repeated name turns into an array.
    fn add_child(&mut self, name: String, value: Value) {
        self.has_children = true;
        match self.fields.get_mut(&name) {
            None => {
                self.fields.insert(name, value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
}

/// Reads an XML document into `{"root": value}`.
pub(crate) fn from_xml(body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Open> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(start) => stack.push(Open::new(&start)?),
            Event::Empty(start) => {
                let open = Open::new(&start)?;
                if let Some(done) = close(&mut stack, open) {
                    return Ok(done);
                }
            }
            Event::End(_) => {
                let open = stack.pop().ok_or("unexpected closing tag")?;
                if let Some(done) = close(&mut stack, open) {
                    return Ok(done);
                }
            }
            Event::Text(t) => push_text(&mut stack, t.xml10_content().map_err(|e| e.to_string())?),
            Event::CData(t) => push_text(&mut stack, t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| e.to_string())?;
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => resolve_predefined_entity(&name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?
                        .to_string(),
                };
                push_text(&mut stack, Cow::Owned(resolved));
            }
            Event::Eof => return Err("the document ends before its root element closes".into()),
            _ => {}
        }
    }
}

fn push_text(stack: &mut [Open], text: Cow<'_, str>) {
    if let Some(top) = stack.last_mut() {
        top.text.push_str(&text);
    }
}

/// Closes `open` into its parent; returns the document when it was the root.
fn close(stack: &mut [Open], open: Open) -> Option<Value> {
    let name = open.name.clone();
    let value = open.finish();
    match stack.last_mut() {
        Some(parent) => {
            parent.add_child(name, value);
            None
        }
        None => {
            let mut root = Map::new();
            root.insert(name, value);
            Some(Value::Object(root))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn accept_picks_json_only_when_it_asks() {
        assert_eq!(Format::from_accept(None), Format::Xml);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Xml);
        assert_eq!(Format::from_accept(Some("application/xml")), Format::Xml);
        assert_eq!(
            Format::from_accept(Some("application/json, text/plain")),
            Format::Json
        );
    }

    #[test]
    fn writes_attributes_text_arrays_and_the_xml_spelling() {
        let doc = json!({"instance": {
            "overriddenStatus": "UNKNOWN",
            "port": {"$": 8080, "@enabled": "true"},
            "dataCenterInfo": {"@class": "a$b", "name": "MyOwn"},
            "metadata": {"@class": "java.util.Collections$EmptyMap"},
            "tag": ["a", "b<"],
        }});
        let xml = to_xml(&doc);
        assert!(
            xml.contains("<overriddenstatus>UNKNOWN</overriddenstatus>"),
            "{xml}"
        );
        assert!(xml.contains(r#"<port enabled="true">8080</port>"#), "{xml}");
        assert!(xml.contains(r#"<dataCenterInfo class="a$b"><name>MyOwn</name></dataCenterInfo>"#));
        assert!(xml.contains(r#"<metadata class="java.util.Collections$EmptyMap"/>"#));
        assert!(xml.contains("<tag>a</tag><tag>b&lt;</tag>"), "{xml}");
    }

    #[test]
    fn whitespace_in_attributes_and_carriage_returns_read_back_as_written() {
        // An instance registered in JSON with a CR, LF or TAB in an attribute
        // (dataCenterInfo's class) was read back by XML clients with spaces
        // there, and a CR in text came back as LF.
        let doc = json!({"instance": {
            "dataCenterInfo": {"@class": "a\rb\nc\td", "name": "x\r\ny"},
        }});
        let back = from_xml(to_xml(&doc).as_bytes()).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn reads_xml_into_the_json_shape() {
        let xml = br#"<?xml version="1.0"?>
            <instance>
              <hostName>h1</hostName>
              <port enabled="true">8080</port>
              <metadata><a>x &amp; y</a><b/></metadata>
              <item>1</item><item>2</item>
            </instance>"#;
        let v = from_xml(xml).unwrap();
        assert_eq!(
            v,
            json!({"instance": {
                "hostName": "h1",
                "port": {"@enabled": "true", "$": "8080"},
                "metadata": {"a": "x & y", "b": ""},
                "item": ["1", "2"],
            }})
        );
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_panic() {
        for bad in [
            &b"<instance><a></b></instance>"[..],
            b"<instance>",
            b"",
            b"\xff",
        ] {
            assert!(from_xml(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn xml_written_reads_back() {
        let doc = json!({"application": {"name": "WEB", "instance": [
            {"instanceId": "a", "port": {"$": "1", "@enabled": "true"}},
            {"instanceId": "b", "port": {"$": "2", "@enabled": "false"}},
        ]}});
        assert_eq!(from_xml(to_xml(&doc).as_bytes()).unwrap(), doc);
    }
}
