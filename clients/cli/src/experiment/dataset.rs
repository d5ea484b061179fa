//! Experiment datasets: the two JSON formats of the semantic-isolation prototype, and
//! the one in-memory [`Example`] both are normalised into.
//!
//! * The **3-cluster format** (`validation_*.json`): one example per file, with
//!   `semantic_clusters.cluster_1..3` (task type, turn ids, terminology, expected
//!   output), 15 `turns`, and `ground_truth.output_cluster_1..3`.
//! * The **conflicts batch format** (`conflicts_batch_*.json`): a JSON array of
//!   2-cluster examples, each with three turns — two conflicting instructions and a
//!   final query asking for both versions — and two `ground_truth_clusters` labels.
//!
//! Both become an [`Example`] with exactly three clusters: the two topic clusters
//! (outputs A and B) and the synthesis cluster (output C). A conflicts example's
//! synthesis cluster is its final query turn; its topic clusters have no terminology
//! list in the source, so the words of each `ground_truth_clusters` label stand in
//! (e.g. `professional_legal_authoritative` → professional, legal, authoritative).
//!
//! Loading always runs the [`schema`] checks first, so a file that loads is one that
//! validates, and a file that does not load comes with every problem it has. This
//! module reads the files; [`schema`] only ever sees their text.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::experiment::schema::{self, ParsedFiles, Problem, Report};

/// One of the three outputs every example asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Output {
    /// Output of cluster 1.
    A,
    /// Output of cluster 2.
    B,
    /// The synthesis of cluster 3, which integrates A and B.
    C,
}

impl Output {
    /// All outputs, in generation order.
    pub const ALL: [Output; 3] = [Output::A, Output::B, Output::C];

    /// The index of the cluster this output belongs to (0, 1, 2).
    pub fn cluster_index(self) -> usize {
        match self {
            Output::A => 0,
            Output::B => 1,
            Output::C => 2,
        }
    }

    /// The letter, as used in prompts and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Output::A => "A",
            Output::B => "B",
            Output::C => "C",
        }
    }

    /// The topic outputs (A, B): the ones interference is measured on.
    pub fn is_topic(self) -> bool {
        self != Output::C
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Output {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "A" | "a" => Ok(Output::A),
            "B" | "b" => Ok(Output::B),
            "C" | "c" => Ok(Output::C),
            _ => Err(format!("unknown output {s:?} (A, B, C)")),
        }
    }
}

/// Which file format an example came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// The 3-cluster `validation_*` format.
    ThreeCluster,
    /// The 2-cluster conflicts batch format.
    Conflicts,
}

/// One turn of a conversation, with its position in the whole conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// The global turn id (1-based, as in the file).
    pub index: u32,
    /// The turn's text: its instruction, content and query, in that order, joined
    /// with a blank line (the 3-cluster format has exactly one of them per turn).
    pub text: String,
}

/// A semantic cluster of an example.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// 1, 2 or 3.
    pub id: u32,
    /// A short name: the task type (3-cluster) or the ground-truth label (conflicts).
    pub name: String,
    /// The focus area, when the file gives one.
    pub focus: Option<String>,
    /// The cluster's turns, in conversation order.
    pub turns: Vec<Turn>,
    /// Terms characteristic of this cluster; empty for the synthesis cluster.
    pub terminology: Vec<String>,
    /// The expected output described in words, when the file gives one.
    pub expected_output: Option<String>,
    /// The ground truth for this cluster's output, as given (free-form JSON).
    pub ground_truth: Option<Value>,
}

/// One example, normalised from either format.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The example's id (unique within a dataset).
    pub id: String,
    /// Its domain, e.g. `software_engineering`.
    pub domain: String,
    /// A one-line description, when the file gives one.
    pub description: Option<String>,
    /// The format it was read from.
    pub format: SourceFormat,
    /// The file it was read from.
    pub source: PathBuf,
    /// Exactly three clusters: topic 1 (output A), topic 2 (output B), synthesis (C).
    pub clusters: Vec<Cluster>,
}

impl Example {
    /// The cluster whose output is `output`.
    pub fn cluster(&self, output: Output) -> &Cluster {
        &self.clusters[output.cluster_index()]
    }

    /// Every turn of every cluster, in conversation order.
    pub fn turns_in_order(&self) -> Vec<&Turn> {
        let mut turns: Vec<&Turn> = self.clusters.iter().flat_map(|c| &c.turns).collect();
        turns.sort_by_key(|t| t.index);
        turns
    }

    /// The total number of turns.
    pub fn turn_count(&self) -> usize {
        self.clusters.iter().map(|c| c.turns.len()).sum()
    }
}

/// Why a dataset could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The dataset has schema problems (every one of them is listed).
    #[error("{} problem(s) in the dataset:\n{}", .0.len(), schema::format_problems(.0))]
    Invalid(Vec<Problem>),
    /// A directory holds no `*.json` file.
    #[error("{0}: no .json files found")]
    Empty(PathBuf),
}

// ---------------------------------------------------------------------------------
// Serde types for the two formats, field for field as in the prototype's files.
// ---------------------------------------------------------------------------------

/// A whole 3-cluster example file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreeClusterFile {
    pub id: String,
    pub domain: String,
    pub total_turns: u32,
    pub description: String,
    /// `cluster_1`, `cluster_2`, `cluster_3`.
    pub semantic_clusters: BTreeMap<String, ThreeClusterCluster>,
    pub turns: Vec<ThreeClusterTurn>,
    /// `output_cluster_1`, `output_cluster_2`, `output_cluster_3`: free-form reports.
    pub ground_truth: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methodology_notes: Option<Value>,
}

/// A cluster entry of `semantic_clusters`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreeClusterCluster {
    pub task_type: String,
    /// Global turn ids belonging to this cluster.
    pub turns: Vec<u32>,
    /// Absent for the synthesis cluster.
    #[serde(default)]
    pub terminology: Vec<String>,
    pub expected_output: String,
    pub focus_area: String,
}

/// A turn of the 3-cluster format: exactly one of instruction, content and query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreeClusterTurn {
    pub turn_id: u32,
    pub cluster: u32,
    pub role: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub instruction: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
}

/// One example of a conflicts batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConflictExample {
    pub id: String,
    pub conflict_type: String,
    pub domain: String,
    /// Two instruction turns and a final query turn.
    pub turns: Vec<ConflictTurn>,
    /// The two clusters' labels, e.g. `professional_legal_authoritative`.
    pub ground_truth_clusters: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// A turn of a conflicts example.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConflictTurn {
    pub turn_id: u32,
    pub role: String,
    #[serde(default)]
    pub instruction: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub expected_behavior: Option<String>,
    #[serde(default)]
    pub rdic_value: Option<String>,
}

// ---------------------------------------------------------------------------------
// Loading.
// ---------------------------------------------------------------------------------

/// Loads a dataset: one JSON file, or every `*.json` file directly inside a
/// directory (sorted by name; subdirectories are not entered). Every file is validated
/// first; all problems of all files are returned together.
pub fn load(path: &Path) -> Result<Vec<Example>, DatasetError> {
    let (parsed, problems) = check_files(&dataset_files(path)?)?;
    if !problems.is_empty() {
        return Err(DatasetError::Invalid(problems));
    }
    let mut examples = Vec::new();
    for (file, value) in parsed {
        examples.extend(from_value(&file, value)?);
    }
    Ok(examples)
}

/// The JSON files a dataset path stands for.
pub fn dataset_files(path: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let p = entry.path();
        if p.is_file() && p.extension().is_some_and(|e| e == "json") {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(DatasetError::Empty(path.to_path_buf()));
    }
    files.sort();
    Ok(files)
}

/// Validates a dataset file or directory (see [`dataset_files`]): `semkv experiment
/// validate`. I/O errors are errors; schema problems are collected in the report.
pub fn validate_path(path: &Path) -> Result<Report, DatasetError> {
    let files = dataset_files(path)?;
    let (parsed, problems) = check_files(&files)?;
    Ok(Report {
        examples: parsed.iter().map(|(_, v)| schema::example_count(v)).sum(),
        problems,
        files,
    })
}

/// Reads and validates `files`: the parsed values of the valid ones, and every problem
/// found (including example ids repeated across files). I/O errors are errors.
fn check_files(files: &[PathBuf]) -> Result<(ParsedFiles, Vec<Problem>), DatasetError> {
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| DatasetError::Io {
            path: file.clone(),
            source,
        })?;
        match schema::validate_text(file, &text) {
            Ok(value) => parsed.push((file.clone(), value)),
            Err(mut p) => problems.append(&mut p),
        }
    }
    problems.extend(schema::duplicate_ids(&parsed));
    Ok((parsed, problems))
}

/// Normalises an already validated JSON value from `file` into examples.
fn from_value(file: &Path, value: Value) -> Result<Vec<Example>, DatasetError> {
    let bad = |e: serde_json::Error| {
        // Validation passed, so this means the schema checks and the serde types disagree.
        DatasetError::Invalid(vec![Problem::new(file, "$", format!("cannot decode: {e}"))])
    };
    if value.is_array() {
        let batch: Vec<ConflictExample> = serde_json::from_value(value).map_err(bad)?;
        Ok(batch.into_iter().map(|c| from_conflict(file, c)).collect())
    } else if value.get("semantic_clusters").is_some() {
        let f: ThreeClusterFile = serde_json::from_value(value).map_err(bad)?;
        Ok(vec![from_three_cluster(file, f)])
    } else {
        let c: ConflictExample = serde_json::from_value(value).map_err(bad)?;
        Ok(vec![from_conflict(file, c)])
    }
}

/// Joins the non-empty text fields of a turn with a blank line.
fn turn_text(parts: &[&Option<String>]) -> String {
    parts
        .iter()
        .filter_map(|p| p.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn from_three_cluster(file: &Path, f: ThreeClusterFile) -> Example {
    let mut clusters = Vec::with_capacity(3);
    for id in 1..=3u32 {
        let c = &f.semantic_clusters[&format!("cluster_{id}")];
        let mut turns: Vec<Turn> = f
            .turns
            .iter()
            .filter(|t| t.cluster == id)
            .map(|t| Turn {
                index: t.turn_id,
                text: turn_text(&[&t.instruction, &t.content, &t.query]),
            })
            .collect();
        turns.sort_by_key(|t| t.index);
        clusters.push(Cluster {
            id,
            name: c.task_type.clone(),
            focus: Some(c.focus_area.clone()),
            turns,
            terminology: c.terminology.clone(),
            expected_output: Some(c.expected_output.clone()),
            ground_truth: f.ground_truth.get(&format!("output_cluster_{id}")).cloned(),
        });
    }
    Example {
        id: f.id,
        domain: f.domain,
        description: Some(f.description),
        format: SourceFormat::ThreeCluster,
        source: file.to_path_buf(),
        clusters,
    }
}

/// The words of a ground-truth cluster label, e.g. `serious_grave_tone` → serious,
/// grave, tone.
pub fn label_terms(label: &str) -> Vec<String> {
    label
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn from_conflict(file: &Path, c: ConflictExample) -> Example {
    let mut clusters = Vec::with_capacity(3);
    for (i, turn) in c.turns.iter().enumerate() {
        let topic = i < 2;
        let label = if topic {
            c.ground_truth_clusters[i].clone()
        } else {
            "synthesis".to_owned()
        };
        let ground_truth = if topic {
            None
        } else {
            turn.expected_behavior
                .as_ref()
                .map(|e| serde_json::json!({ "expected_behavior": e }))
        };
        clusters.push(Cluster {
            id: i as u32 + 1,
            terminology: if topic {
                label_terms(&label)
            } else {
                Vec::new()
            },
            name: label,
            focus: None,
            turns: vec![Turn {
                index: turn.turn_id,
                text: turn_text(&[&turn.instruction, &turn.content, &turn.query]),
            }],
            expected_output: None,
            ground_truth,
        });
    }
    Example {
        id: c.id,
        domain: c.domain,
        description: Some(c.conflict_type),
        format: SourceFormat::Conflicts,
        source: file.to_path_buf(),
        clusters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::experiment::schema::test_support::shipped;

    #[test]
    fn loads_the_prototype_three_cluster_file() {
        let path = shipped().join("validation_001_software_eng.json");
        let examples = load(&path).unwrap();
        assert_eq!(examples.len(), 1);
        let ex = &examples[0];
        assert_eq!(ex.id, "validation_001_software_eng");
        assert_eq!(ex.domain, "software_engineering");
        assert_eq!(ex.format, SourceFormat::ThreeCluster);
        assert_eq!(ex.turn_count(), 15);
        let ids: Vec<Vec<u32>> = ex
            .clusters
            .iter()
            .map(|c| c.turns.iter().map(|t| t.index).collect())
            .collect();
        assert_eq!(
            ids,
            vec![
                vec![1, 2, 3, 4, 5],
                vec![6, 7, 8, 9, 10],
                vec![11, 12, 13, 14, 15]
            ]
        );
        assert_eq!(ex.clusters[0].name, "performance_optimization");
        assert_eq!(ex.clusters[0].terminology.len(), 20);
        assert_eq!(ex.clusters[0].terminology[5], "Redis");
        assert_eq!(ex.clusters[1].terminology[2], "ARR");
        assert!(ex.clusters[2].terminology.is_empty());
        assert!(ex.clusters[0].turns[0]
            .text
            .starts_with("Analyze our system architecture"));
        // Turn 15 carries its text in `query` (the prototype dropped it; we keep it).
        assert!(ex.clusters[2].turns[4]
            .text
            .starts_with("Generate three distinct outputs"));
        assert!(ex
            .cluster(Output::C)
            .expected_output
            .as_deref()
            .unwrap()
            .starts_with("Executive roadmap"));
        let gt = ex.cluster(Output::A).ground_truth.as_ref().unwrap();
        assert_eq!(gt["title"], "TECHNICAL PERFORMANCE REPORT");
        let order: Vec<u32> = ex.turns_in_order().iter().map(|t| t.index).collect();
        assert_eq!(order, (1..=15).collect::<Vec<_>>());
    }

    #[test]
    fn loads_the_prototype_conflicts_batch() {
        let path = shipped().join("conflicts/conflicts_batch_001.json");
        let examples = load(&path).unwrap();
        assert_eq!(examples.len(), 30);
        let ex = &examples[0];
        assert_eq!(ex.id, "conflict_001");
        assert_eq!(ex.domain, "legal_writing");
        assert_eq!(ex.format, SourceFormat::Conflicts);
        assert_eq!(ex.clusters.len(), 3);
        assert_eq!(ex.clusters[0].name, "professional_legal_authoritative");
        assert_eq!(
            ex.clusters[0].terminology,
            vec!["professional", "legal", "authoritative"]
        );
        assert_eq!(
            ex.clusters[1].terminology,
            vec!["friendly", "approachable", "conversational"]
        );
        // Instruction and content of a conflict turn are both kept, instruction first.
        assert!(ex.clusters[0].turns[0]
            .text
            .starts_with("Use strictly professional legal language"));
        assert!(ex.clusters[0].turns[0]
            .text
            .ends_with("using our trademarked brand name"));
        assert_eq!(ex.clusters[2].turns[0].index, 3);
        assert!(ex.clusters[2].turns[0]
            .text
            .starts_with("Now provide two versions"));
        assert!(
            ex.clusters[2].ground_truth.as_ref().unwrap()["expected_behavior"]
                .as_str()
                .unwrap()
                .starts_with("System should maintain")
        );
    }

    #[test]
    fn loads_a_directory_without_entering_subdirectories() {
        let examples = load(&shipped()).unwrap();
        assert_eq!(examples.len(), 20);
        assert!(examples
            .iter()
            .all(|e| e.format == SourceFormat::ThreeCluster));
        assert!(examples.iter().all(|e| e.turn_count() == 15));
        let mut domains: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &examples {
            *domains.entry(e.domain.as_str()).or_default() += 1;
        }
        assert_eq!(domains.len(), 5, "{domains:?}");
        assert!(domains.values().all(|&n| n == 4), "{domains:?}");
    }

    #[test]
    fn load_reports_problems_of_every_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), "{\"id\": 3}").unwrap();
        std::fs::write(dir.path().join("b.json"), "[1]").unwrap();
        let Err(DatasetError::Invalid(problems)) = load(dir.path()) else {
            panic!("expected problems");
        };
        assert!(problems.iter().any(|p| p.file.ends_with("a.json")));
        assert!(problems.iter().any(|p| p.file.ends_with("b.json")));
    }

    #[test]
    fn empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()), Err(DatasetError::Empty(_))));
    }

    #[test]
    fn label_terms_split_on_non_alphanumerics() {
        assert_eq!(
            label_terms("humorous_lighthearted_tone"),
            vec!["humorous", "lighthearted", "tone"]
        );
        assert_eq!(label_terms("a-b c"), vec!["a", "b", "c"]);
    }

    #[test]
    fn shipped_dataset_is_valid() {
        for dir in [shipped(), shipped().join("conflicts")] {
            let report = validate_path(&dir).unwrap();
            assert!(
                report.is_ok(),
                "{}",
                schema::format_problems(&report.problems)
            );
        }
        let report = validate_path(&shipped()).unwrap();
        assert_eq!(report.files.len(), 20);
        assert_eq!(report.examples, 20);
        let report = validate_path(&shipped().join("conflicts")).unwrap();
        assert_eq!(report.examples, 30);
    }

    #[test]
    fn files_directories_and_json_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        std::fs::write(&a, "{\"id\": \"x\",\n \"semantic_clusters\": ").unwrap();
        let mut copy = crate::experiment::schema::test_support::good();
        copy["turns"][0]["role"] = serde_json::json!(1);
        std::fs::write(dir.path().join("b.json"), copy.to_string()).unwrap();
        std::fs::write(
            dir.path().join("c.json"),
            crate::experiment::schema::test_support::good().to_string(),
        )
        .unwrap();
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
