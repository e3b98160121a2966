//! A JSON value into a typed object, noting every field the type does not have.
//!
//! serde skips fields a struct does not declare, so a misspelled `timout: 1s` would vanish without a word. This
//! deserializer reads a [`serde_json::Value`] as serde_json's own does, and where a struct is read it compares the
//! value's keys with the fields the struct declares (serde hands them to `deserialize_struct`), noting each one it
//! does not know with its path and the fields it could have meant. A value of the wrong type fails with the path of
//! the node that failed, like `serde_path_to_error`.

use std::cell::RefCell;
use std::fmt;

use serde::Deserializer;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::Value;

/// A field the type read does not declare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownField {
    /// The field's path, `http[0].timout` (from the value read).
    pub path: String,
    /// The Rust type that was read there (`HttpRoute`).
    pub container: &'static str,
    pub field: String,
    /// The fields that type declares.
    pub known: &'static [&'static str],
}

impl UnknownField {
    /// The declared field closest to the one written, if one is close enough to be a likely typo.
    pub fn suggestion(&self) -> Option<&'static str> {
        closest(&self.field, self.known.iter().copied())
    }
}

/// The candidate closest to `written`, if it is close enough to be what was meant: the same but for case, or an
/// edit distance within a third of its length (at least 1, at most 3).
pub fn closest<'de>(written: &str, candidates: impl IntoIterator<Item = &'de str>) -> Option<&'de str> {
    let lower = written.to_ascii_lowercase();
    let limit = (written.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|candidate| {
            let distance =
                if candidate.to_ascii_lowercase() == lower { 0 } else { strsim::levenshtein(written, candidate) };
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| candidate)
}

/// Why a value could not be read: the message, and the path of the node that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// Path of the node that failed (`spec.http[0].timeout`); empty for the value itself.
    pub path: String,
    pub message: String,
    located: bool,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ReadError {}

impl de::Error for ReadError {
    fn custom<T: fmt::Display>(message: T) -> ReadError {
        ReadError { path: String::new(), message: message.to_string(), located: false }
    }
}

impl ReadError {
    /// The innermost node that fails names the path; outer ones leave it.
    fn at(mut self, path: &str) -> ReadError {
        if !self.located {
            self.path = path.to_owned();
            self.located = true;
        }
        self
    }
}

/// Reads `value` as a `T`; `path` names `value` itself in paths (`spec`, or empty). Returns the fields `T` (and the
/// types inside it) do not declare.
pub fn read<'de, T: de::Deserialize<'de>>(value: &'de Value, path: &str) -> Result<(T, Vec<UnknownField>), ReadError> {
    let unknown = RefCell::new(Vec::new());
    let node = Node { value, path: path.to_owned(), unknown: &unknown };
    let typed = T::deserialize(node)?;
    Ok((typed, unknown.into_inner()))
}

/// One node of the value being read, with its path.
struct Node<'de, 'r> {
    value: &'de Value,
    path: String,
    unknown: &'r RefCell<Vec<UnknownField>>,
}

impl<'de, 'r> Node<'de, 'r> {
    fn child(&self, value: &'de Value, segment: fmt::Arguments<'_>) -> Node<'de, 'r> {
        Node { value, path: format!("{}{segment}", self.path), unknown: self.unknown }
    }

    fn field(&self, value: &'de Value, key: &str) -> Node<'de, 'r> {
        if self.path.is_empty() {
            self.child(value, format_args!("{key}"))
        } else {
            self.child(value, format_args!(".{key}"))
        }
    }
}

impl<'de> Deserializer<'de> for Node<'de, '_> {
    type Error = ReadError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        let path = self.path.clone();
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or_default())
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Items { node: &self, items: items.iter().enumerate() }),
            Value::Object(entries) => visitor.visit_map(Entries { node: &self, entries: entries.iter(), value: None }),
        };
        result.map_err(|e| e.at(&path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        if let Value::Object(entries) = self.value {
            let mut unknown = self.unknown.borrow_mut();
            for key in entries.keys().filter(|key| !fields.contains(&key.as_str())) {
                let path = self.field(&Value::Null, key).path;
                unknown.push(UnknownField { path, container: name, field: key.clone(), known: fields });
            }
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        match self.value {
            Value::String(s) => {
                visitor.visit_enum(BorrowedStrDeserializer::<ReadError>::new(s)).map_err(|e| e.at(&self.path))
            }
            _ => Err(<ReadError as de::Error>::invalid_type(unexpected(self.value), &"a string").at(&self.path)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct seq
        tuple tuple_struct map identifier
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct Items<'n, 'de, 'r, I> {
    node: &'n Node<'de, 'r>,
    items: I,
}

impl<'de, I: Iterator<Item = (usize, &'de Value)>> de::SeqAccess<'de> for Items<'_, 'de, '_, I> {
    type Error = ReadError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ReadError> {
        match self.items.next() {
            Some((index, value)) => seed.deserialize(self.node.child(value, format_args!("[{index}]"))).map(Some),
            None => Ok(None),
        }
    }
}

struct Entries<'n, 'de, 'r> {
    node: &'n Node<'de, 'r>,
    entries: serde_json::map::Iter<'de>,
    value: Option<(&'de str, &'de Value)>,
}

impl<'de> de::MapAccess<'de> for Entries<'_, 'de, '_> {
    type Error = ReadError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ReadError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some((key, value));
                seed.deserialize(key.as_str().into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ReadError> {
        let (key, value) = self.value.take().ok_or_else(|| de::Error::custom("a value without its key"))?;
        seed.deserialize(self.node.field(value, key))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", default)]
    struct Route {
        timeout: Option<String>,
        hosts: Vec<String>,
        #[serde(rename = "match")]
        matches: Vec<Match>,
        weight: Option<i64>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", default)]
    struct Match {
        uri: Option<String>,
        ignore_uri_case: bool,
        headers: std::collections::BTreeMap<String, String>,
    }

    #[test]
    fn notes_fields_a_type_does_not_declare_with_their_paths_and_a_suggestion() {
        let value =
            json!({"timout": "1s", "host": ["a"], "match": [{"uri": "/", "ignoreUriCase": true, "headrs": {}}]});
        let (route, unknown): (Route, _) = read(&value, "spec").expect("reads");
        assert_eq!(route.matches[0].uri.as_deref(), Some("/"));
        let found: Vec<(&str, Option<&str>)> = unknown.iter().map(|u| (u.path.as_str(), u.suggestion())).collect();
        assert_eq!(
            found,
            [("spec.host", Some("hosts")), ("spec.timout", Some("timeout")), ("spec.match[0].headrs", Some("headers"))]
        );
        assert_eq!(unknown[0].container, "Route");
    }

    #[test]
    fn map_keys_are_not_fields() {
        let value = json!({"match": [{"headers": {"end-user": "jason"}}]});
        let (_, unknown): (Route, _) = read(&value, "").expect("reads");
        assert!(unknown.is_empty(), "{unknown:?}");
    }

    #[test]
    fn a_value_of_the_wrong_type_fails_at_its_path() {
        let value = json!({"match": [{"uri": "/"}, {"ignoreUriCase": "yes"}]});
        let error = read::<Route>(&value, "spec").expect_err("a string is not a bool");
        assert_eq!(error.path, "spec.match[1].ignoreUriCase");
        assert!(error.message.contains("expected a boolean"), "{error}");
        let error = read::<Route>(&json!({"weight": 1.5}), "spec").expect_err("not an integer");
        assert_eq!(error.path, "spec.weight");
    }

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(closest("destinaton", ["destination", "weight"]), Some("destination"));
        assert_eq!(closest("Hosts", ["hosts"]), Some("hosts"));
        assert_eq!(closest("colour", ["hosts", "gateways"]), None);
    }
}
