//! Schema validation of experiment datasets (`semkv experiment validate`): pure checks
//! of parsed JSON, one file per data format.
//!
//! Validation walks the raw [`serde_json::Value`] rather than decoding into the serde
//! types, so that it can report *every* problem, each with its file and a JSON path
//! such as `data/x.json: $.semantic_clusters.cluster_2.turns[4]: unknown turn 16`.
//! [`crate::experiment::dataset`] reads the files and runs these checks before
//! decoding, so decoding cannot fail on a file that validates.
//!
//! * [`checker`] — the shared walker: typed field access that records problems;
//! * [`three_cluster`] — the 3-cluster `validation_*.json` format;
//! * [`conflicts`] — the conflicts batch format.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod checker;
pub mod conflicts;
pub mod three_cluster;

use checker::{kind, Checker};

/// One schema problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in.
    pub file: PathBuf,
    /// A JSON path into that file, `$` being the whole document.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl Problem {
    /// A problem at `path` of `file`.
    pub fn new(file: &Path, path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_path_buf(),
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.file.display(),
            self.path,
            self.message
        )
    }
}

/// Renders problems one per line.
pub fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The outcome of validating a dataset path.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The files that were checked.
    pub files: Vec<PathBuf>,
    /// How many examples the valid files hold.
    pub examples: usize,
    /// Every problem found, in file order.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Valid files with their parsed JSON.
pub type ParsedFiles = Vec<(PathBuf, Value)>;

/// How many examples a valid document holds (a conflicts batch: one per element).
pub fn example_count(value: &Value) -> usize {
    value.as_array().map_or(1, Vec::len)
}

/// Parses and validates one file's text; the parsed value when it is valid.
pub fn validate_text(file: &Path, text: &str) -> Result<Value, Vec<Problem>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        vec![Problem::new(
            file,
            "$",
            format!(
                "invalid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )]
    })?;
    let problems = validate_value(&value);
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(problems
            .into_iter()
            .map(|(path, message)| Problem::new(file, path, message))
            .collect())
    }
}

/// Validates a parsed document of either format; `(json path, message)` pairs.
pub fn validate_value(value: &Value) -> Vec<(String, String)> {
    let mut c = Checker::default();
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                c.problem("$", "a conflicts batch needs at least one example");
            }
            for (i, item) in items.iter().enumerate() {
                conflicts::check_example(&mut c, item, &format!("$[{i}]"));
            }
        }
        Value::Object(obj) if obj.contains_key("semantic_clusters") => {
            three_cluster::check(&mut c, obj);
        }
        Value::Object(obj) if obj.contains_key("conflict_type") => {
            conflicts::check_example(&mut c, value, "$");
        }
        other => c.problem(
            "$",
            format!(
                "unknown format: expected a 3-cluster example (an object with \
                 `semantic_clusters`) or a conflicts batch (an array), found {}",
                kind(other)
            ),
        ),
    }
    c.into_problems()
}

/// Examples whose id is used twice across the given parsed files.
pub fn duplicate_ids(parsed: &[(PathBuf, Value)]) -> Vec<Problem> {
    let mut seen: HashMap<&str, (&Path, String)> = HashMap::new();
    let mut problems = Vec::new();
    for (file, value) in parsed {
        let entries: Vec<(String, &Value)> = match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("$[{i}].id"), v))
                .collect(),
            v => vec![("$.id".to_owned(), v)],
        };
        for (path, v) in entries {
            let Some(id) = v.get("id").and_then(Value::as_str) else {
                continue;
            };
            if let Some((first_file, first_path)) = seen.get(id) {
                problems.push(Problem::new(
                    file,
                    path,
                    format!(
                        "duplicate example id {id:?} (first at {}: {first_path})",
                        first_file.display()
                    ),
                ));
            } else {
                seen.insert(id, (file, path));
            }
        }
    }
    problems
}

/// What the schema tests of every format share.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    /// The dataset shipped with the repository.
    pub(crate) fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/semantic-isolation")
    }

    /// The prototype's 3-cluster example, parsed.
    pub(crate) fn good() -> Value {
        let text =
            std::fs::read_to_string(shipped().join("validation_001_software_eng.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The prototype's first conflicts batch, parsed.
    pub(crate) fn conflicts() -> Value {
        let text =
            std::fs::read_to_string(shipped().join("conflicts/conflicts_batch_001.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The problems of `v`, as "path: message" strings.
    pub(crate) fn problems(v: &Value) -> Vec<String> {
        super::validate_value(v)
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect()
    }

    pub(crate) fn assert_has(problems: &[String], expected: &str) {
        assert!(
            problems.iter().any(|p| p == expected),
            "expected {expected:?} among {problems:#?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{assert_has, good, problems};
    use serde_json::json;

    #[test]
    fn bad_ids_and_unknown_formats() {
        let mut v = good();
        v["id"] = json!("../etc/passwd");
        assert_has(
            &problems(&v),
            "$.id: id \"../etc/passwd\" may only use ASCII letters, digits, '_', '-' and '.'",
        );
        assert_eq!(
            problems(&json!(3)),
            vec!["$: unknown format: expected a 3-cluster example (an object with `semantic_clusters`) or a conflicts batch (an array), found number"]
        );
        assert_eq!(
            problems(&json!([])),
            vec!["$: a conflicts batch needs at least one example"]
        );
    }
}
