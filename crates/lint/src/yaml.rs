//! A YAML tree that remembers where every node is: built from saphyr-parser's
//! events (a maintained YAML 1.2 parser that reports spans), with anchors,
//! aliases and `<<` merge keys resolved. Rules read values from it and point
//! findings at the exact bytes a fix would change.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan};

use crate::source::{SourceFile, Span};

/// Nesting deeper than this is refused (no stack overflow on hostile input).
const MAX_DEPTH: usize = 200;

/// A YAML document that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct YamlError {
    /// Line of the problem, 1-based.
    pub line: usize,
    /// Column of the problem, 1-based.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

/// One node: its value and where its text is.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// The bytes of its text (for a quoted scalar, with the quotes).
    pub span: Span,
}

/// A node's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar, as text (YAML 1.2 core schema types are read on demand).
    Scalar(String, Style),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys in order (merge keys already applied).
    Map(Vec<(Node, Node)>),
}

/// How a scalar was written, which decides whether a text edit is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted.
    Plain,
    /// Between `'` or `"`.
    Quoted,
    /// A `|` or `>` block.
    Block,
}

static EMPTY: [Node; 0] = [];

impl Node {
    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node of `key` in a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The value at a path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The text of a scalar; `None` for a collection or a null.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s, style) if !(is_null(s) && *style == Style::Plain) => Some(s),
            _ => None,
        }
    }

    /// A scalar read as an integer.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_str()?.trim().parse().ok()
    }

    /// The items of a sequence (empty for anything else).
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &EMPTY,
        }
    }

    /// The entries of a mapping (empty for anything else).
    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// Whether this is a mapping.
    pub fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }

    /// The scalar style, if a scalar.
    pub fn style(&self) -> Option<Style> {
        match &self.value {
            Value::Scalar(_, style) => Some(*style),
            _ => None,
        }
    }

    /// The same value, positions ignored (probes compared as written).
    pub fn same_value(&self, other: &Node) -> bool {
        match (&self.value, &other.value) {
            (Value::Scalar(a, _), Value::Scalar(b, _)) => a == b,
            (Value::Seq(a), Value::Seq(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_value(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter().all(|(k, v)| {
                        k.as_str()
                            .and_then(|k| other.get(k))
                            .is_some_and(|w| v.same_value(w))
                    })
            }
            _ => false,
        }
    }

    fn count(&self) -> usize {
        1 + match &self.value {
            Value::Scalar(..) => 0,
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(k, v)| k.count() + v.count()).sum(),
        }
    }
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// Reads every document of a YAML stream. Empty documents are left out.
pub fn load(file: &SourceFile) -> Result<Vec<Node>, YamlError> {
    let mut loader = Loader {
        file,
        parser: Parser::new_from_str(&file.text),
        anchors: HashMap::new(),
        budget: 64 * file.text.len() + 100_000,
        ascii: file.text.is_ascii(),
    };
    loader.stream()
}

struct Loader<'a> {
    file: &'a SourceFile,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    /// Nodes left to create: an alias expanded many times ("billion laughs")
    /// runs out of it instead of memory.
    budget: usize,
    ascii: bool,
}

impl<'a> Loader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, YSpan), YamlError> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(YamlError {
                line: e.marker().line(),
                col: e.marker().col() + 1,
                message: e.info().to_string(),
            }),
            None => Err(self.error_at(self.file.text.len(), "unexpected end of input")),
        }
    }

    fn error_at(&self, offset: usize, message: &str) -> YamlError {
        let lc = self.file.line_col(offset);
        YamlError {
            line: lc.line,
            col: lc.col,
            message: message.to_string(),
        }
    }

    /// A collection's span from its start to its end event, without the
    /// blank space a block collection's end event carries.
    fn collection_span(&self, start: YSpan, end: YSpan) -> Span {
        let start = self.offset(start.start);
        let mut end = self.offset(end.end).max(start);
        let text = self.file.text.as_bytes();
        while end > start && text[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        Span::new(start, end)
    }

    fn span(&self, span: YSpan) -> Span {
        Span::new(self.offset(span.start), self.offset(span.end))
    }

    /// The byte offset of a marker. The parser counts characters; in an
    /// ASCII text (most manifests) that is the byte offset already.
    fn offset(&self, m: saphyr_parser::Marker) -> usize {
        if self.ascii {
            m.index().min(self.file.text.len())
        } else {
            self.file.offset_of(m.line(), m.col())
        }
    }

    fn stream(&mut self) -> Result<Vec<Node>, YamlError> {
        let mut docs = Vec::new();
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamEnd => return Ok(docs),
                Event::DocumentStart(_) => {
                    self.anchors.clear();
                    let (event, span) = self.next()?;
                    let node = self.node(event, span, 0)?;
                    let (end, _) = self.next()?;
                    if !matches!(end, Event::DocumentEnd) {
                        return Err(
                            self.error_at(self.offset(span.end), "expected end of document")
                        );
                    }
                    if node.as_str().is_some() || !matches!(node.value, Value::Scalar(..)) {
                        docs.push(node);
                    }
                }
                Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
                _ => return Err(self.error_at(self.offset(span.start), "unexpected YAML event")),
            }
        }
    }

    fn node(&mut self, event: Event<'a>, span: YSpan, depth: usize) -> Result<Node, YamlError> {
        if depth > MAX_DEPTH {
            return Err(self.error_at(self.offset(span.start), "nesting too deep"));
        }
        self.spend(1, span)?;
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    ScalarStyle::Literal | ScalarStyle::Folded => Style::Block,
                };
                let node = Node {
                    value: Value::Scalar(text.into_owned(), style),
                    span: self.span(span),
                };
                Ok(self.remember(anchor, node))
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| self.error_at(self.offset(span.start), "unknown alias"))?;
                self.spend(node.count(), span)?;
                Ok(node)
            }
            Event::SequenceStart(anchor, _) => {
                let node = self.sequence(span, depth)?;
                Ok(self.remember(anchor, node))
            }
            Event::MappingStart(anchor, _) => {
                let node = self.mapping(span, depth)?;
                Ok(self.remember(anchor, node))
            }
            _ => Err(self.error_at(self.offset(span.start), "unexpected YAML event")),
        }
    }

    fn spend(&mut self, n: usize, span: YSpan) -> Result<(), YamlError> {
        self.budget = self.budget.checked_sub(n).ok_or_else(|| {
            self.error_at(self.offset(span.start), "aliases expand to too many nodes")
        })?;
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: Node) -> Node {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        node
    }

    fn sequence(&mut self, start: YSpan, depth: usize) -> Result<Node, YamlError> {
        let mut items = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::SequenceEnd) {
                let span = self.collection_span(start, span);
                return Ok(Node {
                    value: Value::Seq(items),
                    span,
                });
            }
            items.push(self.node(event, span, depth + 1)?);
        }
    }

    fn mapping(&mut self, start: YSpan, depth: usize) -> Result<Node, YamlError> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        let mut merged: Vec<(Node, Node)> = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::MappingEnd) {
                for (k, v) in merged {
                    if !entries.iter().any(|(e, _)| e.same_value(&k)) {
                        entries.push((k, v));
                    }
                }
                let span = self.collection_span(start, span);
                return Ok(Node {
                    value: Value::Map(entries),
                    span,
                });
            }
            let key = self.node(event, span, depth + 1)?;
            let (event, span) = self.next()?;
            let value = self.node(event, span, depth + 1)?;
            if key.as_str() == Some("<<") && key.style() == Some(Style::Plain) {
                merge_into(&mut merged, &value);
            } else {
                entries.push((key, value));
            }
        }
    }
}

/// `<<: *base` or `<<: [*a, *b]`: the earlier source wins, as YAML's merge
/// key says; explicit keys win over all of them (applied by the caller).
fn merge_into(merged: &mut Vec<(Node, Node)>, value: &Node) {
    let sources: Vec<&Node> = match &value.value {
        Value::Map(_) => vec![value],
        Value::Seq(items) => items.iter().collect(),
        Value::Scalar(..) => vec![],
    };
    for source in sources {
        for (k, v) in source.entries() {
            if !merged.iter().any(|(m, _)| m.same_value(k)) {
                merged.push((k.clone(), v.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileKind;

    fn docs(text: &str) -> (SourceFile, Vec<Node>) {
        let f = SourceFile::new("t.yaml", FileKind::Yaml, text);
        let d = load(&f).expect("valid yaml");
        (f, d)
    }

    #[test]
    fn spans_point_at_the_scalar_text() {
        let (f, d) = docs("a:\n  b: \"x\"\n  c: 12\n---\n---\nz: 1\n");
        assert_eq!(d.len(), 2, "the empty document is left out");
        let b = d[0].at(&["a", "b"]).unwrap();
        assert_eq!(f.slice(b.span), "\"x\"");
        assert_eq!(f.line_col(b.span.start).line, 2);
        let c = d[0].at(&["a", "c"]).unwrap();
        assert_eq!(c.as_i64(), Some(12));
        assert_eq!(f.line_col(c.span.start).col, 6);
    }

    #[test]
    fn spans_are_bytes_in_a_text_that_is_not_ascii() {
        let (f, d) = docs("# café\nname: \"ünï\"\nport: 8080\n");
        let name = d[0].get("name").unwrap();
        assert_eq!(f.slice(name.span), "\"ünï\"");
        assert_eq!(f.slice(d[0].get("port").unwrap().span), "8080");
    }

    #[test]
    fn aliases_and_merge_keys_resolve() {
        let (_, d) = docs("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nsame: *b\n");
        assert_eq!(d[0].at(&["use", "x"]).and_then(Node::as_i64), Some(1));
        assert_eq!(d[0].at(&["use", "y"]).and_then(Node::as_i64), Some(3));
        assert_eq!(d[0].at(&["same", "y"]).and_then(Node::as_i64), Some(2));
    }

    #[test]
    fn billion_laughs_is_refused_not_expanded() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            text.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let f = SourceFile::new("t.yaml", FileKind::Yaml, text);
        let err = load(&f).unwrap_err();
        assert!(err.message.contains("too many nodes"), "{err}");
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let f = SourceFile::new("t.yaml", FileKind::Yaml, "a: 1\nb: [1, 2\n");
        let err = load(&f).unwrap_err();
        assert!(err.line >= 2, "{err}");
    }
}
