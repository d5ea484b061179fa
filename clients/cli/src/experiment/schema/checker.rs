//! The walker every format's check is written with: [`Checker`] reads fields of a
//! JSON object as the schema expects them and records a problem, with its JSON path,
//! for each that is missing or malformed.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The name of a JSON value's type, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Turn roles accepted in the 3-cluster format and in conflicts.
pub const ROLES: [&str; 3] = ["user", "assistant", "system"];

/// Collects problems while walking a document. Every accessor records a problem
/// when the value is missing or of the wrong type, and returns `None` then, so a
/// format's check reads as a list of expectations.
#[derive(Default)]
pub struct Checker {
    problems: Vec<(String, String)>,
}

impl Checker {
    /// The problems found, in the order they were found.
    pub fn into_problems(self) -> Vec<(String, String)> {
        self.problems
    }

    /// Records a problem at `path`.
    pub fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push((path.to_owned(), message.into()));
    }

    /// Records "expected `what`, found <type of `found`>".
    pub fn expected(&mut self, path: &str, what: &str, found: &Value) {
        self.problem(path, format!("expected {what}, found {}", kind(found)));
    }

    /// The object at `path`, or a problem.
    pub fn object<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.expected(path, "object", v);
        }
        o
    }

    /// A required field of an object, or a "missing field" problem.
    pub fn field<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<(&'a Value, String)> {
        match obj.get(key) {
            Some(v) => Some((v, format!("{path}.{key}"))),
            None => {
                self.problem(path, format!("missing field `{key}`"));
                None
            }
        }
    }

    /// A required non-empty string field.
    pub fn string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'a str> {
        let (v, p) = self.field(obj, path, key)?;
        self.string_value(v, &p)
    }

    /// A non-empty string value.
    pub fn string_value<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a str> {
        match v {
            Value::String(s) if s.trim().is_empty() => {
                self.problem(path, "expected a non-empty string");
                None
            }
            Value::String(s) => Some(s),
            other => {
                self.expected(path, "string", other);
                None
            }
        }
    }

    /// An optional field that is a string or null when present.
    pub fn optional_string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'a str> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.expected(&format!("{path}.{key}"), "string or null", other);
                None
            }
        }
    }

    /// A required positive integer field.
    pub fn positive_int(&mut self, obj: &Map<String, Value>, path: &str, key: &str) -> Option<u64> {
        let (v, p) = self.field(obj, path, key)?;
        match v.as_u64() {
            Some(n) if n > 0 => Some(n),
            Some(_) => {
                self.problem(&p, "expected a positive integer, found 0");
                None
            }
            None => {
                self.expected(&p, "positive integer", v);
                None
            }
        }
    }

    /// A required array field.
    pub fn array<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<(&'a Vec<Value>, String)> {
        let (v, p) = self.field(obj, path, key)?;
        match v.as_array() {
            Some(a) => Some((a, p)),
            None => {
                self.expected(&p, "array", v);
                None
            }
        }
    }

    /// A string that must be one of `allowed`.
    pub fn one_of(&mut self, obj: &Map<String, Value>, path: &str, key: &str, allowed: &[&str]) {
        if let Some(s) = self.string(obj, path, key) {
            if !allowed.contains(&s) {
                self.problem(
                    &format!("{path}.{key}"),
                    format!(
                        "unknown value {s:?} (expected one of {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// An example id: used in cluster names, so kept to a safe alphabet.
    pub fn example_id(&mut self, obj: &Map<String, Value>, path: &str) {
        if let Some(id) = self.string(obj, path, "id") {
            if !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                self.problem(
                    &format!("{path}.id"),
                    format!("id {id:?} may only use ASCII letters, digits, '_', '-' and '.'"),
                );
            }
        }
    }

    /// A list of terms: strings, unique ignoring case. Returns the lowercased terms
    /// with their paths.
    pub fn terminology(&mut self, v: &Value, path: &str, required: bool) -> Vec<(String, String)> {
        let Some(items) = v.as_array() else {
            self.expected(path, "array of strings", v);
            return Vec::new();
        };
        if required && items.is_empty() {
            self.problem(path, "terminology must list at least one term");
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut terms = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(term) = self.string_value(item, &p) else {
                continue;
            };
            let key = term.trim().to_lowercase();
            if let Some(first) = seen.get(&key) {
                self.problem(&p, format!("duplicate term {term:?} (also {first})"));
            } else {
                seen.insert(key.clone(), p.clone());
                terms.push((key, p));
            }
        }
        terms
    }
}
