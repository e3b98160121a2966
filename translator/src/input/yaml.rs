//! YAML (and JSON) text to JSON values, one per document, each with where its fields are.
//!
//! ```text
//!   text ──saphyr events (with positions)──► per document: serde_json::Value + Positions (field path → line:column)
//! ```
//!
//! This is the only place text is parsed: every reader of documents (Istio and Kubernetes objects, raw Envoy
//! resources) starts from these values, and a diagnostic about a field finds its line here. Scalars are resolved
//! as YAML 1.2's core schema says (`yes` is a string, `0x1f` a number), as `kubectl` and `serde_yaml` read them.
//! Anchors and aliases are expanded; `<<` merge keys are not (Kubernetes does not apply them either).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use serde_json::{Map, Number, Value};

/// One document of a text: its value, where it starts, and where each of its fields is.
#[derive(Clone, Debug, PartialEq)]
pub struct YamlDocument {
    /// Position of the document among the text's documents, from 1.
    pub index: usize,
    pub value: Value,
    pub positions: Arc<Positions>,
}

impl YamlDocument {
    /// Where the document's content starts (its first key), 1-based.
    pub fn start(&self) -> Position {
        self.positions.get("").unwrap_or(Position { line: 1, column: 1 })
    }
}

/// A line and column in a text, both from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Where each node of a document is, by field path as diagnostics write it (`spec.http[0].route[1].weight`;
/// the empty path is the document itself). A mapping entry is found at its key.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Positions {
    /// Sorted by path.
    entries: Vec<(Box<str>, Position)>,
}

impl Positions {
    /// The position of `path`, if the document has that node.
    pub fn get(&self, path: &str) -> Option<Position> {
        self.entries.binary_search_by(|(p, _)| (**p).cmp(path)).ok().map(|i| self.entries[i].1)
    }

    /// The position of `path`, or of the closest enclosing node the document has (a field that is missing is
    /// reported where its parent is).
    pub fn locate(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(position) = self.get(path) {
                return Some(position);
            }
            if path.is_empty() {
                return None;
            }
            path = parent(path);
        }
    }
}

/// `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``.
fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(cut) => &path[..cut],
        None => "",
    }
}

/// A text that does not parse: where, and why. Documents before the error were read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse YAML at line {}, column {}: {message}", .position.line, .position.column)]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

/// Every document of `text`, and the syntax error that ended reading early, if any: the parser cannot find the
/// next document reliably after one, so the documents after it are not read.
pub fn parse(text: &str) -> (Vec<YamlDocument>, Option<SyntaxError>) {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        match event {
            Ok((event, span)) => {
                if let Err(error) = builder.on_event(event, span) {
                    return (builder.documents, Some(error));
                }
            }
            Err(error) => return (builder.documents, Some(syntax_error(&error))),
        }
    }
    (builder.documents, None)
}

fn syntax_error(error: &ScanError) -> SyntaxError {
    SyntaxError { position: position(error.marker()), message: error.info().to_owned() }
}

fn position(marker: &saphyr_parser::Marker) -> Position {
    let line = u32::try_from(marker.line()).unwrap_or(u32::MAX);
    let column = u32::try_from(marker.col() + 1).unwrap_or(u32::MAX);
    Position { line, column }
}

/// Builds values from parser events.
#[derive(Default)]
struct Builder {
    documents: Vec<YamlDocument>,
    /// Open collections, innermost last.
    stack: Vec<Open>,
    /// Values of the anchors seen in the current document, by anchor id.
    anchors: BTreeMap<usize, Value>,
    positions: Vec<(Box<str>, Position)>,
    /// Paths of the open collections' nodes (and of the node being read), to name positions.
    root: Option<Value>,
}

enum Open {
    Sequence { anchor: usize, items: Vec<Value>, path: String },
    Mapping { anchor: usize, entries: Map<String, Value>, path: String, key: Option<(String, Position)> },
}

impl Builder {
    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        let at = position(&span.start);
        match event {
            Event::DocumentStart(_) => {
                self.anchors.clear();
                self.positions.clear();
                self.root = None;
            }
            Event::DocumentEnd => {
                let value = self.root.take().unwrap_or(Value::Null);
                let mut entries = std::mem::take(&mut self.positions);
                entries.sort();
                entries.dedup_by(|a, b| a.0 == b.0);
                self.documents.push(YamlDocument {
                    index: self.documents.len() + 1,
                    value,
                    positions: Arc::new(Positions { entries }),
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                // A scalar in key position names the entry; anywhere else it is a value.
                if let Some(Open::Mapping { key: key @ None, entries, .. }) = self.stack.last_mut() {
                    let name = text.into_owned();
                    if entries.contains_key(&name) {
                        return Err(SyntaxError { position: at, message: format!("duplicate key {name:?}") });
                    }
                    *key = Some((name, at));
                    return Ok(());
                }
                let value = scalar(&text, style, tag.as_deref());
                self.node_at(at);
                self.complete(anchor, value)?;
            }
            Event::SequenceStart(anchor, _) => {
                let path = self.node_at(at);
                self.stack.push(Open::Sequence { anchor, items: Vec::new(), path });
            }
            Event::MappingStart(anchor, _) => {
                if let Some(Open::Mapping { key: None, .. }) = self.stack.last() {
                    return Err(SyntaxError {
                        position: at,
                        message: "a mapping cannot be a key: keys must be strings".to_owned(),
                    });
                }
                let path = self.node_at(at);
                self.stack.push(Open::Mapping { anchor, entries: Map::new(), path, key: None });
            }
            Event::SequenceEnd => {
                if let Some(Open::Sequence { anchor, items, .. }) = self.stack.pop() {
                    self.complete(anchor, Value::Array(items))?;
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Mapping { anchor, entries, .. }) = self.stack.pop() {
                    self.complete(anchor, Value::Object(entries))?;
                }
            }
            Event::Alias(anchor) => {
                if let Some(Open::Mapping { key: None, .. }) = self.stack.last() {
                    return Err(SyntaxError { position: at, message: "an alias cannot be a key".to_owned() });
                }
                let value = self
                    .anchors
                    .get(&anchor)
                    .cloned()
                    .ok_or_else(|| SyntaxError { position: at, message: "alias of an unknown anchor".to_owned() })?;
                self.node_at(at);
                self.complete(0, value)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// Records that the node starting at `at` is the next node of the innermost collection; returns its path.
    fn node_at(&mut self, at: Position) -> String {
        let path = match self.stack.last() {
            None => String::new(),
            Some(Open::Sequence { items, path, .. }) => format!("{path}[{}]", items.len()),
            Some(Open::Mapping { path, key, .. }) => {
                let (name, key_at) = key.as_ref().map_or(("", at), |(name, at)| (name.as_str(), *at));
                let path = if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
                // A mapping entry is found at its key.
                self.positions.push((path.clone().into_boxed_str(), key_at));
                return path;
            }
        };
        self.positions.push((path.clone().into_boxed_str(), at));
        path
    }

    /// Adds a finished node to the innermost collection (or makes it the document).
    fn complete(&mut self, anchor: usize, value: Value) -> Result<(), SyntaxError> {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Open::Sequence { items, .. }) => items.push(value),
            Some(Open::Mapping { entries, key, .. }) => {
                if let Some((name, _)) = key.take() {
                    entries.insert(name, value);
                }
            }
        }
        Ok(())
    }
}

/// A scalar's value: quoted and block scalars are strings; plain ones are resolved by YAML 1.2's core schema, unless
/// a core tag (`!!str`, `!!int`, …) says otherwise.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag.filter(|t| t.is_yaml_core_schema()) {
        let resolved = resolve_plain(text);
        return match tag.suffix.as_str() {
            "str" => Value::String(text.to_owned()),
            "null" => Value::Null,
            "bool" | "int" | "float" if !resolved.is_string() => resolved,
            _ => Value::String(text.to_owned()),
        };
    }
    match style {
        ScalarStyle::Plain => resolve_plain(text),
        _ => Value::String(text.to_owned()),
    }
}

fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN"
        | ".NAN" => {
            // JSON has no infinities or NaN: they stay text, and a field expecting a number says so.
            return Value::String(text.to_owned());
        }
        _ => {}
    }
    if let Some(number) = integer(text) {
        return number;
    }
    if is_float(text)
        && let Some(number) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(number);
    }
    Value::String(text.to_owned())
}

/// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`.
fn integer(text: &str) -> Option<Value> {
    let (radix, digits): (u32, Cow<'_, str>) = if let Some(hex) = text.strip_prefix("0x") {
        (16, hex.into())
    } else if let Some(octal) = text.strip_prefix("0o") {
        (8, octal.into())
    } else {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        (10, text.strip_prefix('+').unwrap_or(text).into())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) && radix != 10 {
        return None;
    }
    if let Ok(n) = i64::from_str_radix(&digits, radix) {
        return Some(Value::Number(n.into()));
    }
    if let Ok(n) = u64::from_str_radix(&digits, radix) {
        return Some(Value::Number(n.into()));
    }
    text.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty());
    let mantissa_ok = mantissa_ok && (mantissa.contains('.') || !whole.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_documents_with_the_positions_of_their_fields() {
        let text = "\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
    name: http
---
# a comment
a: 1
";
        let (documents, error) = parse(text);
        assert_eq!(error, None);
        assert_eq!(documents.len(), 2);
        assert_eq!(
            documents[0].value,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80, "name": "http"}]}})
        );
        let positions = &documents[0].positions;
        assert_eq!(documents[0].start(), Position { line: 1, column: 1 });
        assert_eq!(positions.get("metadata.name"), Some(Position { line: 4, column: 3 }));
        assert_eq!(positions.get("spec.ports[0]"), Some(Position { line: 7, column: 5 }));
        assert_eq!(positions.get("spec.ports[0].name"), Some(Position { line: 8, column: 5 }));
        assert_eq!(positions.locate("spec.ports[0].targetPort"), Some(Position { line: 7, column: 5 }));
        assert_eq!(documents[1].index, 2);
        assert_eq!(documents[1].start(), Position { line: 11, column: 1 });
    }

    #[test]
    fn resolves_scalars_as_yaml_1_2_core_schema() {
        let (documents, _) = parse(
            "[yes, no, on, 'true', true, ~, null, 080, 0x1f, 0o17, -3, 1.5, 1e3, .5, 1.2.3, '5', !!str 7, v1, .inf]",
        );
        assert_eq!(
            documents[0].value,
            json!([
                "yes", "no", "on", "true", true, null, null, 80, 31, 15, -3, 1.5, 1000.0, 0.5, "1.2.3", "5", "7", "v1",
                ".inf"
            ])
        );
    }

    #[test]
    fn reads_json_and_expands_aliases() {
        let (documents, error) = parse(r#"{"a": [1, {"b": "c"}]}"#);
        assert_eq!(error, None);
        assert_eq!(documents[0].value, json!({"a": [1, {"b": "c"}]}));
        let (documents, _) = parse("base: &labels {app: web}\ncopy: *labels\n");
        assert_eq!(documents[0].value, json!({"base": {"app": "web"}, "copy": {"app": "web"}}));
    }

    #[test]
    fn a_syntax_error_says_where_and_keeps_the_documents_before_it() {
        let (documents, error) = parse("a: 1\n---\nb: [unclosed\n");
        assert_eq!(documents.len(), 1);
        let error = error.expect("a syntax error");
        assert_eq!(error.position.line, 4, "{error}");
        assert!(error.to_string().starts_with("failed to parse YAML at line 4"), "{error}");
        let (_, duplicate) = parse("a: 1\nb: 2\na: 3\n");
        let duplicate = duplicate.expect("a duplicate key is an error");
        assert_eq!(duplicate.position, Position { line: 3, column: 1 });
        assert!(duplicate.message.contains("duplicate key \"a\""), "{duplicate}");
    }

    #[test]
    fn an_empty_text_or_document_is_null() {
        assert_eq!(parse("").0.len(), 0);
        let (documents, _) = parse("---\n---\na: 1\n");
        assert_eq!(documents.iter().map(|d| d.value.clone()).collect::<Vec<_>>(), [Value::Null, json!({"a": 1})]);
    }
}
