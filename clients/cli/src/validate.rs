//! Schema validation of experiment datasets (`semkv experiment validate`).
//!
//! Validation walks the raw [`serde_json::Value`] rather than decoding into the serde
//! types, so that it can report *every* problem, each with its file and a JSON path
//! such as `data/x.json: $.semantic_clusters.cluster_2.turns[4]: unknown turn 16`.
//! [`crate::dataset::load`] runs it before decoding, so decoding cannot fail on a file
//! that validates.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::dataset::{self, DatasetError};

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

/// Validates a dataset file or directory (see [`dataset::dataset_files`]). I/O errors
/// are errors; schema problems are collected in the report.
pub fn validate_path(path: &Path) -> Result<Report, DatasetError> {
    let files = dataset::dataset_files(path)?;
    let (parsed, problems) = check_files(&files)?;
    Ok(Report {
        examples: parsed
            .iter()
            .map(|(_, v)| v.as_array().map_or(1, Vec::len))
            .sum(),
        problems,
        files,
    })
}

/// Valid files with their parsed JSON.
pub(crate) type ParsedFiles = Vec<(PathBuf, Value)>;

/// Reads and validates `files`: the parsed values of the valid ones, and every problem
/// found (including example ids repeated across files). I/O errors are errors.
pub(crate) fn check_files(files: &[PathBuf]) -> Result<(ParsedFiles, Vec<Problem>), DatasetError> {
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| DatasetError::Io {
            path: file.clone(),
            source,
        })?;
        match validate_text(file, &text) {
            Ok(value) => parsed.push((file.clone(), value)),
            Err(mut p) => problems.append(&mut p),
        }
    }
    problems.extend(duplicate_ids(&parsed));
    Ok((parsed, problems))
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
                c.conflict_example(item, &format!("$[{i}]"));
            }
        }
        Value::Object(obj) if obj.contains_key("semantic_clusters") => {
            c.three_cluster(obj);
        }
        Value::Object(obj) if obj.contains_key("conflict_type") => {
            c.conflict_example(value, "$");
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
    c.problems
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

/// The name of a JSON value's type, for messages.
fn kind(v: &Value) -> &'static str {
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
const ROLES: [&str; 3] = ["user", "assistant", "system"];
/// Turn types accepted in the 3-cluster format.
const TURN_TYPES: [&str; 3] = ["instruction", "context", "query"];
/// The text-bearing fields of a turn.
const TEXT_FIELDS: [&str; 3] = ["instruction", "content", "query"];

/// Collects problems while walking a document.
#[derive(Default)]
struct Checker {
    problems: Vec<(String, String)>,
}

impl Checker {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push((path.to_owned(), message.into()));
    }

    fn expected(&mut self, path: &str, what: &str, found: &Value) {
        self.problem(path, format!("expected {what}, found {}", kind(found)));
    }

    /// The object at `path`, or a problem.
    fn object<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.expected(path, "object", v);
        }
        o
    }

    /// A required field of an object, or a "missing field" problem.
    fn field<'a>(
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
    fn string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'a str> {
        let (v, p) = self.field(obj, path, key)?;
        self.string_value(v, &p)
    }

    fn string_value<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a str> {
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
    fn optional_string<'a>(
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
    fn positive_int(&mut self, obj: &Map<String, Value>, path: &str, key: &str) -> Option<u64> {
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
    fn array<'a>(
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
    fn one_of(&mut self, obj: &Map<String, Value>, path: &str, key: &str, allowed: &[&str]) {
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
    fn example_id(&mut self, obj: &Map<String, Value>, path: &str) {
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
    fn terminology(&mut self, v: &Value, path: &str, required: bool) -> Vec<(String, String)> {
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

    // -----------------------------------------------------------------------------
    // The 3-cluster format.
    // -----------------------------------------------------------------------------

    fn three_cluster(&mut self, obj: &Map<String, Value>) {
        let root = "$";
        self.example_id(obj, root);
        self.string(obj, root, "domain");
        self.string(obj, root, "description");
        let total_turns = self.positive_int(obj, root, "total_turns");
        if let Some(v) = obj.get("methodology_notes") {
            if !v.is_object() && !v.is_null() {
                self.expected("$.methodology_notes", "object", v);
            }
        }

        // Turns: id -> (index in the array, declared cluster).
        let mut turns: BTreeMap<u64, (usize, Option<u64>)> = BTreeMap::new();
        if let Some((items, path)) = self.array(obj, root, "turns") {
            if items.is_empty() {
                self.problem(&path, "an example needs at least one turn");
            }
            if let Some(total) = total_turns {
                if !items.is_empty() && total != items.len() as u64 {
                    self.problem(
                        "$.total_turns",
                        format!("says {total} but there are {} turns", items.len()),
                    );
                }
            }
            let mut previous: Option<u64> = None;
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let Some(t) = self.object(item, &p) else {
                    continue;
                };
                let id = self.positive_int(t, &p, "turn_id");
                let cluster = self.positive_int(t, &p, "cluster");
                if let Some(c) = cluster {
                    if !(1..=3).contains(&c) {
                        self.problem(
                            &format!("{p}.cluster"),
                            format!("cluster {c} does not exist (expected 1, 2 or 3)"),
                        );
                    }
                }
                self.one_of(t, &p, "role", &ROLES);
                self.one_of(t, &p, "type", &TURN_TYPES);
                self.turn_text(t, &p);
                if let Some(id) = id {
                    if let Some(prev) = previous {
                        if id <= prev {
                            self.problem(
                                &format!("{p}.turn_id"),
                                format!(
                                    "turns must be in conversation order: turn_id {id} follows {prev}"
                                ),
                            );
                        }
                    }
                    previous = Some(id);
                    if let Some((first, _)) = turns.get(&id) {
                        self.problem(
                            &format!("{p}.turn_id"),
                            format!("duplicate turn_id {id} (also $.turns[{first}])"),
                        );
                    } else {
                        turns.insert(id, (i, cluster));
                    }
                }
            }
        }

        // Clusters, and the turns each one claims.
        let mut claimed: BTreeMap<u64, String> = BTreeMap::new();
        let mut topic_terms: Vec<Vec<(String, String)>> = Vec::new();
        if let Some((v, path)) = self.field(obj, root, "semantic_clusters") {
            if let Some(clusters) = self.object(v, &path) {
                let expected = ["cluster_1", "cluster_2", "cluster_3"];
                if clusters.len() != 3 {
                    self.problem(
                        &path,
                        format!(
                            "expected exactly 3 clusters (cluster_1, cluster_2, cluster_3), found {}",
                            clusters.len()
                        ),
                    );
                }
                for key in clusters.keys() {
                    if !expected.contains(&key.as_str()) {
                        self.problem(
                            &format!("{path}.{key}"),
                            "unexpected cluster (the 3-cluster format has cluster_1, cluster_2, cluster_3)",
                        );
                    }
                }
                for (n, key) in expected.iter().enumerate() {
                    let Some((cv, cp)) = self.field(clusters, &path, key) else {
                        continue;
                    };
                    let Some(cluster) = self.object(cv, &cp) else {
                        continue;
                    };
                    let number = n as u64 + 1;
                    self.string(cluster, &cp, "task_type");
                    self.string(cluster, &cp, "expected_output");
                    self.string(cluster, &cp, "focus_area");
                    let topic = number < 3;
                    match cluster.get("terminology") {
                        Some(t) => {
                            let terms = self.terminology(t, &format!("{cp}.terminology"), topic);
                            if topic {
                                topic_terms.push(terms);
                            }
                        }
                        None if topic => {
                            self.problem(
                                &cp,
                                "missing field `terminology` (topic clusters need it to measure interference)",
                            );
                        }
                        None => {}
                    }
                    self.cluster_turns(cluster, &cp, number, &turns, &mut claimed);
                }
            }
        }
        if let [first, second] = topic_terms.as_slice() {
            let first: BTreeMap<&str, &str> = first
                .iter()
                .map(|(t, p)| (t.as_str(), p.as_str()))
                .collect();
            for (term, p) in second {
                if let Some(other) = first.get(term.as_str()) {
                    self.problem(
                        p,
                        format!(
                            "term {term:?} is also in cluster_1's terminology ({other}): \
                             interference cannot tell the clusters apart"
                        ),
                    );
                }
            }
        }
        // Every turn belongs to some cluster (only checked when clusters were readable).
        if !claimed.is_empty() {
            for (id, (i, _)) in &turns {
                if !claimed.contains_key(id) {
                    self.problem(
                        &format!("$.turns[{i}]"),
                        format!("turn {id} belongs to no cluster"),
                    );
                }
            }
        }

        if let Some((v, path)) = self.field(obj, root, "ground_truth") {
            if let Some(gt) = self.object(v, &path) {
                for key in ["output_cluster_1", "output_cluster_2", "output_cluster_3"] {
                    if let Some((g, gp)) = self.field(gt, &path, key) {
                        if !g.is_object() {
                            self.expected(&gp, "object", g);
                        }
                    }
                }
            }
        }
    }

    /// The text fields of a 3-cluster turn: string or null, at least one non-empty.
    fn turn_text(&mut self, t: &Map<String, Value>, p: &str) {
        let mut has_text = false;
        for f in TEXT_FIELDS {
            if let Some(s) = self.optional_string(t, p, f) {
                has_text |= !s.trim().is_empty();
            }
        }
        if !has_text {
            self.problem(
                p,
                "turn has no text (one of instruction, content, query must be a non-empty string)",
            );
        }
    }

    /// A cluster's `turns`: non-empty, each a known turn whose `cluster` agrees, none
    /// claimed by two clusters.
    fn cluster_turns(
        &mut self,
        cluster: &Map<String, Value>,
        cp: &str,
        number: u64,
        turns: &BTreeMap<u64, (usize, Option<u64>)>,
        claimed: &mut BTreeMap<u64, String>,
    ) {
        let Some((ids, tp)) = self.array(cluster, cp, "turns") else {
            return;
        };
        if ids.is_empty() {
            self.problem(&tp, "a cluster needs at least one turn");
        }
        for (j, idv) in ids.iter().enumerate() {
            let p = format!("{tp}[{j}]");
            let Some(id) = idv.as_u64() else {
                self.expected(&p, "turn id (positive integer)", idv);
                continue;
            };
            match turns.get(&id) {
                None => self.problem(&p, format!("unknown turn {id} (no turn has this turn_id)")),
                Some((i, declared)) => {
                    if let Some(d) = declared {
                        if *d != number {
                            self.problem(
                                &format!("$.turns[{i}].cluster"),
                                format!(
                                    "turn {id} says cluster {d} but is listed in cluster_{number}"
                                ),
                            );
                        }
                    }
                }
            }
            if let Some(first) = claimed.get(&id) {
                self.problem(&p, format!("turn {id} is already listed at {first}"));
            } else {
                claimed.insert(id, p);
            }
        }
    }

    // -----------------------------------------------------------------------------
    // The conflicts format.
    // -----------------------------------------------------------------------------

    fn conflict_example(&mut self, v: &Value, path: &str) {
        let Some(obj) = self.object(v, path) else {
            return;
        };
        self.example_id(obj, path);
        self.string(obj, path, "conflict_type");
        self.string(obj, path, "domain");
        self.optional_string(obj, path, "purpose");
        if let Some(m) = obj.get("metadata") {
            if !m.is_object() && !m.is_null() {
                self.expected(&format!("{path}.metadata"), "object", m);
            }
        }
        if let Some((labels, lp)) = self.array(obj, path, "ground_truth_clusters") {
            if labels.len() != 2 {
                self.problem(
                    &lp,
                    format!("expected 2 cluster labels, found {}", labels.len()),
                );
            }
            for (i, l) in labels.iter().enumerate() {
                self.string_value(l, &format!("{lp}[{i}]"));
            }
        }
        let Some((turns, tp)) = self.array(obj, path, "turns") else {
            return;
        };
        if turns.len() != 3 {
            self.problem(
                &tp,
                format!(
                    "expected 3 turns (two conflicting instructions, then a query), found {}",
                    turns.len()
                ),
            );
        }
        for (i, t) in turns.iter().enumerate() {
            let p = format!("{tp}[{i}]");
            let Some(turn) = self.object(t, &p) else {
                continue;
            };
            if let Some(id) = self.positive_int(turn, &p, "turn_id") {
                if id != i as u64 + 1 {
                    self.problem(
                        &format!("{p}.turn_id"),
                        format!("expected turn_id {}, found {id}", i + 1),
                    );
                }
            }
            self.one_of(turn, &p, "role", &ROLES);
            if i < 2 {
                self.string(turn, &p, "instruction");
                self.optional_string(turn, &p, "content");
            } else {
                self.string(turn, &p, "query");
                self.optional_string(turn, &p, "expected_behavior");
                self.optional_string(turn, &p, "rdic_value");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/semantic-isolation")
    }

    /// The prototype's 3-cluster example, parsed.
    fn good() -> Value {
        let text =
            std::fs::read_to_string(shipped().join("validation_001_software_eng.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn conflicts() -> Value {
        let text =
            std::fs::read_to_string(shipped().join("conflicts/conflicts_batch_001.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The problems of `v`, as "path: message" strings.
    fn problems(v: &Value) -> Vec<String> {
        validate_value(v)
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect()
    }

    fn assert_has(problems: &[String], expected: &str) {
        assert!(
            problems.iter().any(|p| p == expected),
            "expected {expected:?} among {problems:#?}"
        );
    }

    #[test]
    fn shipped_dataset_is_valid() {
        for dir in [shipped(), shipped().join("conflicts")] {
            let report = validate_path(&dir).unwrap();
            assert!(report.is_ok(), "{}", format_problems(&report.problems));
        }
        let report = validate_path(&shipped()).unwrap();
        assert_eq!(report.files.len(), 20);
        assert_eq!(report.examples, 20);
        let report = validate_path(&shipped().join("conflicts")).unwrap();
        assert_eq!(report.examples, 30);
    }

    #[test]
    fn missing_field() {
        let mut v = good();
        v.as_object_mut().unwrap().remove("domain");
        v["semantic_clusters"]["cluster_2"]
            .as_object_mut()
            .unwrap()
            .remove("expected_output");
        let p = problems(&v);
        assert_has(&p, "$: missing field `domain`");
        assert_has(
            &p,
            "$.semantic_clusters.cluster_2: missing field `expected_output`",
        );
        assert_eq!(p.len(), 2, "{p:#?}");
    }

    #[test]
    fn wrong_types() {
        let mut v = good();
        v["total_turns"] = json!("15");
        v["turns"][3]["content"] = json!(42);
        v["semantic_clusters"]["cluster_1"]["terminology"][2] = json!(["cache"]);
        v["semantic_clusters"]["cluster_3"]["turns"][1] = json!("twelve");
        v["ground_truth"]["output_cluster_2"] = json!("a report");
        let p = problems(&v);
        assert_has(&p, "$.total_turns: expected positive integer, found string");
        assert_has(
            &p,
            "$.turns[3].content: expected string or null, found number",
        );
        // With content unreadable, turn 4 has no text either.
        assert_has(
            &p,
            "$.turns[3]: turn has no text (one of instruction, content, query must be a non-empty string)",
        );
        assert_has(
            &p,
            "$.semantic_clusters.cluster_1.terminology[2]: expected string, found array",
        );
        assert_has(
            &p,
            "$.semantic_clusters.cluster_3.turns[1]: expected turn id (positive integer), found string",
        );
        assert_has(
            &p,
            "$.ground_truth.output_cluster_2: expected object, found string",
        );
        // Turn 12 is now claimed by no cluster.
        assert_has(&p, "$.turns[11]: turn 12 belongs to no cluster");
    }

    #[test]
    fn wrong_cluster_count() {
        let mut v = good();
        let c3 = v["semantic_clusters"]["cluster_3"].clone();
        v["semantic_clusters"]["cluster_4"] = c3;
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters: expected exactly 3 clusters (cluster_1, cluster_2, cluster_3), found 4",
        );
        assert_has(
            &p,
            "$.semantic_clusters.cluster_4: unexpected cluster (the 3-cluster format has cluster_1, cluster_2, cluster_3)",
        );

        let mut v = good();
        v["semantic_clusters"]
            .as_object_mut()
            .unwrap()
            .remove("cluster_2");
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters: expected exactly 3 clusters (cluster_1, cluster_2, cluster_3), found 2",
        );
        assert_has(&p, "$.semantic_clusters: missing field `cluster_2`");
        assert_has(&p, "$.turns[5]: turn 6 belongs to no cluster");
    }

    #[test]
    fn empty_turns() {
        let mut v = good();
        v["turns"] = json!([]);
        let p = problems(&v);
        assert_has(&p, "$.turns: an example needs at least one turn");
        assert_has(
            &p,
            "$.semantic_clusters.cluster_1.turns[0]: unknown turn 1 (no turn has this turn_id)",
        );

        let mut v = good();
        v["semantic_clusters"]["cluster_1"]["turns"] = json!([]);
        v["turns"][4]["instruction"] = json!("   ");
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters.cluster_1.turns: a cluster needs at least one turn",
        );
        assert_has(
            &p,
            "$.turns[4]: turn has no text (one of instruction, content, query must be a non-empty string)",
        );
        assert_has(&p, "$.turns[0]: turn 1 belongs to no cluster");
    }

    #[test]
    fn unknown_and_inconsistent_turn_references() {
        let mut v = good();
        v["semantic_clusters"]["cluster_2"]["turns"][4] = json!(16);
        v["semantic_clusters"]["cluster_3"]["turns"][0] = json!(5);
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters.cluster_2.turns[4]: unknown turn 16 (no turn has this turn_id)",
        );
        assert_has(
            &p,
            "$.semantic_clusters.cluster_3.turns[0]: turn 5 is already listed at $.semantic_clusters.cluster_1.turns[4]",
        );
        assert_has(
            &p,
            "$.turns[4].cluster: turn 5 says cluster 1 but is listed in cluster_3",
        );
        assert_has(&p, "$.turns[9]: turn 10 belongs to no cluster");
        assert_has(&p, "$.turns[10]: turn 11 belongs to no cluster");
    }

    #[test]
    fn turn_order_ids_and_counts() {
        let mut v = good();
        v["turns"][6]["turn_id"] = json!(6);
        v["turns"][2]["cluster"] = json!(4);
        v["turns"][1]["role"] = json!("narrator");
        v["total_turns"] = json!(14);
        let p = problems(&v);
        assert_has(
            &p,
            "$.turns[6].turn_id: turns must be in conversation order: turn_id 6 follows 6",
        );
        assert_has(
            &p,
            "$.turns[6].turn_id: duplicate turn_id 6 (also $.turns[5])",
        );
        assert_has(
            &p,
            "$.turns[2].cluster: cluster 4 does not exist (expected 1, 2 or 3)",
        );
        assert_has(
            &p,
            "$.turns[1].role: unknown value \"narrator\" (expected one of user, assistant, system)",
        );
        assert_has(&p, "$.total_turns: says 14 but there are 15 turns");
        assert_has(
            &p,
            "$.semantic_clusters.cluster_2.turns[1]: unknown turn 7 (no turn has this turn_id)",
        );
    }

    #[test]
    fn terminology_rules() {
        let mut v = good();
        v["semantic_clusters"]["cluster_2"]["terminology"][0] = json!("LATENCY");
        v["semantic_clusters"]["cluster_1"]["terminology"][1] = json!("Microservices");
        v["semantic_clusters"]["cluster_2"]
            .as_object_mut()
            .unwrap()
            .remove("terminology");
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters.cluster_1.terminology[1]: duplicate term \"Microservices\" (also $.semantic_clusters.cluster_1.terminology[0])",
        );
        assert_has(
            &p,
            "$.semantic_clusters.cluster_2: missing field `terminology` (topic clusters need it to measure interference)",
        );

        let mut v = good();
        v["semantic_clusters"]["cluster_2"]["terminology"][3] = json!("Redis");
        let p = problems(&v);
        assert_has(
            &p,
            "$.semantic_clusters.cluster_2.terminology[3]: term \"redis\" is also in cluster_1's terminology ($.semantic_clusters.cluster_1.terminology[5]): interference cannot tell the clusters apart",
        );
        assert_eq!(p.len(), 1, "{p:#?}");

        let mut v = good();
        v["semantic_clusters"]["cluster_1"]["terminology"] = json!([]);
        assert_has(
            &problems(&v),
            "$.semantic_clusters.cluster_1.terminology: terminology must list at least one term",
        );
    }

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

    #[test]
    fn conflicts_problems() {
        let mut v = conflicts();
        v[0]["turns"].as_array_mut().unwrap().pop();
        v[1]["ground_truth_clusters"] = json!(["only_one"]);
        v[2]["turns"][2].as_object_mut().unwrap().remove("query");
        v[3]["turns"][0]["instruction"] = json!(null);
        v[4]["turns"][1]["turn_id"] = json!(7);
        v[5] = json!("not an example");
        v[6]["id"] = json!("conflict_001");
        let p = problems(&v);
        assert_has(
            &p,
            "$[0].turns: expected 3 turns (two conflicting instructions, then a query), found 2",
        );
        assert_has(
            &p,
            "$[1].ground_truth_clusters: expected 2 cluster labels, found 1",
        );
        assert_has(&p, "$[2].turns[2]: missing field `query`");
        assert_has(&p, "$[3].turns[0].instruction: expected string, found null");
        assert_has(&p, "$[4].turns[1].turn_id: expected turn_id 2, found 7");
        assert_has(&p, "$[5]: expected object, found string");
        assert_eq!(p.len(), 6, "{p:#?}");
        // Duplicate ids are a dataset-level check.
        let dups = duplicate_ids(&[(PathBuf::from("c.json"), v)]);
        assert_eq!(
            dups.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            vec![
                "c.json: $[6].id: duplicate example id \"conflict_001\" (first at c.json: $[0].id)"
            ]
        );
    }

    #[test]
    fn files_directories_and_json_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        std::fs::write(&a, "{\"id\": \"x\",\n \"semantic_clusters\": ").unwrap();
        let mut copy = good();
        copy["turns"][0]["role"] = json!(1);
        std::fs::write(dir.path().join("b.json"), copy.to_string()).unwrap();
        std::fs::write(dir.path().join("c.json"), good().to_string()).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not json").unwrap();
        let report = validate_path(dir.path()).unwrap();
        assert_eq!(report.files.len(), 3);
        let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert!(lines[0].starts_with(&format!(
            "{}: $: invalid JSON at line 2 column",
            a.display()
        )));
        assert_eq!(
            lines[1],
            format!(
                "{}: $.turns[0].role: expected string, found number",
                dir.path().join("b.json").display()
            )
        );
        // b.json and c.json share an id, but only valid files take part in that check.
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(matches!(
            validate_path(&dir.path().join("missing.json")),
            Err(DatasetError::Io { .. })
        ));
    }
}
