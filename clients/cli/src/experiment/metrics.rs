//! Metrics of the experiment: how much of the *other* clusters' vocabulary leaks into
//! an output (interference), how much of its own it covers, how many of the expected
//! output's key points it touches, and — for output C — how well it synthesizes both
//! topics. The statistics over many outputs are in [`crate::experiment::stats`].
//!
//! Matching is on words: text and terms are split into lowercase runs of letters and
//! digits with plural endings folded ([`fold_plural`]), and a term is present when its
//! words occur consecutively in the text. So "Connection pool" matches
//! "connection-pools" and "CONNECTION POOL", "query" matches "queries", but "cache"
//! does not match "cached" and "ARR" does not match "array". There is no other
//! stemming.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::experiment::dataset::{Example, Output};

/// The metrics of one generated output. A metric that does not apply to the output
/// (e.g. interference of the synthesis) or that its example cannot support (no
/// terminology, no expected output) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputMetrics {
    /// Mean negative log-likelihood per token (nats) of the output's reference text
    /// ([`reference_text`]) under exactly the context and prompt the output was
    /// generated from, teacher-forced (the `Score` RPC): lower is better. Deterministic
    /// and independent of sampling. `None` when the example has no reference.
    #[serde(default)]
    pub reference_nll: Option<f64>,
    /// Share of the other topic clusters' terms found in the output (A and B only).
    pub interference: Option<f64>,
    /// The other clusters' terms that were found.
    #[serde(default)]
    pub leaked_terms: Vec<String>,
    /// Share of the output's own cluster's terms found in it.
    pub own_coverage: Option<f64>,
    /// Share of the expected output's key phrases the output covers.
    pub key_phrase_coverage: Option<f64>,
    /// Output C only: mean over clusters 1 and 2 of the share of their terms found.
    pub synthesis_coverage: Option<f64>,
}

/// A metric, for tables and charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// See [`OutputMetrics::reference_nll`]; lower is better; not a share.
    ReferenceNll,
    /// See [`OutputMetrics::interference`]; lower is better.
    Interference,
    /// See [`OutputMetrics::own_coverage`].
    OwnCoverage,
    /// See [`OutputMetrics::key_phrase_coverage`].
    KeyPhraseCoverage,
    /// See [`OutputMetrics::synthesis_coverage`].
    SynthesisCoverage,
}

impl Metric {
    /// All metrics, in report order.
    pub const ALL: [Metric; 5] = [
        Metric::ReferenceNll,
        Metric::Interference,
        Metric::OwnCoverage,
        Metric::KeyPhraseCoverage,
        Metric::SynthesisCoverage,
    ];

    /// The snake_case name used in CSV headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::ReferenceNll => "reference_nll",
            Metric::Interference => "interference",
            Metric::OwnCoverage => "own_coverage",
            Metric::KeyPhraseCoverage => "key_phrase_coverage",
            Metric::SynthesisCoverage => "synthesis_coverage",
        }
    }

    /// A short human label.
    pub fn label(self) -> &'static str {
        match self {
            Metric::ReferenceNll => "Reference NLL, nats/token (lower is better)",
            Metric::Interference => "Interference (lower is better)",
            Metric::OwnCoverage => "Own-term coverage",
            Metric::KeyPhraseCoverage => "Key-phrase coverage",
            Metric::SynthesisCoverage => "Synthesis coverage (C)",
        }
    }

    /// The metric's value in `m`.
    pub fn get(self, m: &OutputMetrics) -> Option<f64> {
        match self {
            Metric::ReferenceNll => m.reference_nll,
            Metric::Interference => m.interference,
            Metric::OwnCoverage => m.own_coverage,
            Metric::KeyPhraseCoverage => m.key_phrase_coverage,
            Metric::SynthesisCoverage => m.synthesis_coverage,
        }
    }
}

impl Metric {
    /// Whether values are shares in [0, 1] (all but [`Metric::ReferenceNll`]).
    pub fn is_share(self) -> bool {
        self != Metric::ReferenceNll
    }
}

/// Most characters of a reference text that are scored (about 150 tokens of the real
/// models' vocabularies; short enough to fit after the longest example context on a
/// model with 4,096 positions).
pub const MAX_REFERENCE_CHARS: usize = 600;

/// The text an output is scored against: its cluster's ground truth (every string in
/// it, one per line; object fields in key order), else the cluster's expected output described
/// in words; at most [`MAX_REFERENCE_CHARS`] characters. `None` when the example gives
/// neither.
pub fn reference_text(example: &Example, output: Output) -> Option<String> {
    fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let cluster = example.cluster(output);
    let mut lines = Vec::new();
    if let Some(truth) = &cluster.ground_truth {
        strings(truth, &mut lines);
    }
    let text = if lines.is_empty() {
        cluster.expected_output.clone()?
    } else {
        lines.join("\n")
    };
    let text: String = text.chars().take(MAX_REFERENCE_CHARS).collect();
    (!text.trim().is_empty()).then_some(text)
}

/// Lowercase runs of letters and digits, as written.
fn raw_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Folds a lowercase word's plural ending: "queries" → "query", "pools" → "pool".
/// Words of three letters or fewer and words ending in "ss" are kept ("bus",
/// "access"). Both texts and terms are folded, so only equality up to these endings
/// matters.
pub fn fold_plural(word: &str) -> String {
    let n = word.chars().count();
    if n > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if n > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    }
}

/// The words of a text as matching sees them: lowercase runs of letters and digits,
/// plural endings folded.
pub fn words(text: &str) -> Vec<String> {
    raw_words(text).map(|w| fold_plural(&w)).collect()
}

/// A text prepared for term look-ups.
#[derive(Debug, Clone)]
pub struct TextIndex {
    words: Vec<String>,
    set: HashSet<String>,
}

impl TextIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> Self {
        let words = words(text);
        let set = words.iter().cloned().collect();
        TextIndex { words, set }
    }

    /// Whether `term` occurs as whole words, case-insensitively. A term with no words
    /// (only punctuation) never occurs.
    pub fn contains_term(&self, term: &str) -> bool {
        let needle = words(term);
        match needle.len() {
            0 => false,
            1 => self.set.contains(&needle[0]),
            n => self.words.windows(n).any(|w| w == needle.as_slice()),
        }
    }

    /// Whether a single word occurs (compared as [`words`] sees it).
    pub fn contains_word(&self, word: &str) -> bool {
        self.set.contains(&fold_plural(&word.to_lowercase()))
    }
}

/// The terms of `terms` found in `text`.
pub fn found_terms<'a>(index: &TextIndex, terms: &'a [String]) -> Vec<&'a str> {
    terms
        .iter()
        .filter(|t| index.contains_term(t))
        .map(String::as_str)
        .collect()
}

/// Share of `terms` found in the text; `None` for an empty list.
pub fn term_coverage(index: &TextIndex, terms: &[String]) -> Option<f64> {
    (!terms.is_empty()).then(|| found_terms(index, terms).len() as f64 / terms.len() as f64)
}

/// Words too common to say whether a key phrase was covered.
const STOPWORDS: &[&str] = &[
    "a", "about", "across", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be",
    "both", "but", "by", "can", "each", "for", "from", "has", "have", "how", "in", "into", "is",
    "it", "its", "more", "most", "new", "not", "of", "on", "one", "or", "our", "over", "per",
    "should", "such", "than", "that", "the", "their", "them", "these", "this", "those", "through",
    "to", "two", "under", "up", "use", "using", "via", "vs", "was", "we", "were", "what", "when",
    "which", "while", "will", "with", "within", "without", "your",
];

/// The words of a phrase that carry its meaning: not stopwords, and at least three
/// characters unless they are numbers.
pub fn content_words(phrase: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    raw_words(phrase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .filter(|w| w.chars().count() >= 3 || w.chars().all(|c| c.is_ascii_digit()))
        .map(|w| fold_plural(&w))
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

/// The key phrases of an expected-output description: its numbered items
/// ("… addressing: (1) database optimization …, (2) Redis cache …") or, with no
/// numbering, its sentences/clauses separated by `;` or `.`.
pub fn key_phrases(expected: &str) -> Vec<String> {
    let markers = numbered_markers(expected);
    let pieces: Vec<&str> = if markers.len() >= 2 {
        markers
            .iter()
            .enumerate()
            .map(|(i, &(_, end))| {
                let stop = markers.get(i + 1).map_or(expected.len(), |&(s, _)| s);
                &expected[end..stop]
            })
            .collect()
    } else {
        expected.split([';', '.']).collect()
    };
    pieces
        .into_iter()
        .map(|p| {
            // "…pooling, and " → "…pooling"
            let mut p = p.trim();
            loop {
                let trimmed = p.trim_end_matches([',', ';', '.', ' ']);
                let trimmed = trimmed.strip_suffix(" and").unwrap_or(trimmed);
                if trimmed == p {
                    break p.to_owned();
                }
                p = trimmed;
            }
        })
        .filter(|p| !content_words(p).is_empty())
        .collect()
}

/// Byte ranges of "(N)" markers in `text`.
fn numbered_markers(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'(' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > i + 1 && j < bytes.len() && bytes[j] == b')' {
                out.push((i, j + 1));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The share of a key phrase's content words that must appear for it to count as
/// covered.
pub const KEY_PHRASE_THRESHOLD: f64 = 0.5;

/// Whether the text covers `phrase`: at least [`KEY_PHRASE_THRESHOLD`] of its content
/// words occur in it.
pub fn phrase_covered(index: &TextIndex, phrase: &str) -> bool {
    let words = content_words(phrase);
    if words.is_empty() {
        return false;
    }
    let hits = words.iter().filter(|w| index.contains_word(w)).count();
    hits as f64 / words.len() as f64 >= KEY_PHRASE_THRESHOLD
}

/// Share of `phrases` covered; `None` for an empty list.
pub fn key_phrase_coverage(index: &TextIndex, phrases: &[String]) -> Option<f64> {
    (!phrases.is_empty()).then(|| {
        phrases.iter().filter(|p| phrase_covered(index, p)).count() as f64 / phrases.len() as f64
    })
}

/// The terms of every cluster but `own` that are not also terms of `own` (a term both
/// clusters use says nothing about leakage), deduplicated ignoring case.
pub fn foreign_terms(example: &Example, own: usize) -> Vec<String> {
    let own_terms: HashSet<Vec<String>> = example.clusters[own]
        .terminology
        .iter()
        .map(|t| words(t))
        .collect();
    let mut seen = HashSet::new();
    example
        .clusters
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != own)
        .flat_map(|(_, c)| &c.terminology)
        .filter(|t| !own_terms.contains(&words(t)) && seen.insert(words(t)))
        .cloned()
        .collect()
}

/// Computes the metrics of `text`, generated as `output` of `example`.
pub fn output_metrics(example: &Example, output: Output, text: &str) -> OutputMetrics {
    let index = TextIndex::new(text);
    let own = output.cluster_index();
    let cluster = example.cluster(output);
    let mut m = OutputMetrics {
        own_coverage: term_coverage(&index, &cluster.terminology),
        key_phrase_coverage: cluster
            .expected_output
            .as_deref()
            .and_then(|e| key_phrase_coverage(&index, &key_phrases(e))),
        ..OutputMetrics::default()
    };
    if output.is_topic() {
        let foreign = foreign_terms(example, own);
        if !foreign.is_empty() {
            let leaked = found_terms(&index, &foreign);
            m.interference = Some(leaked.len() as f64 / foreign.len() as f64);
            m.leaked_terms = leaked.into_iter().map(str::to_owned).collect();
        }
    } else {
        let per_topic: Vec<f64> = [Output::A, Output::B]
            .into_iter()
            .filter_map(|o| term_coverage(&index, &example.cluster(o).terminology))
            .collect();
        if !per_topic.is_empty() {
            m.synthesis_coverage = Some(per_topic.iter().sum::<f64>() / per_topic.len() as f64);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::dataset::{Cluster, SourceFormat, Turn};

    fn cluster(id: u32, terms: &[&str], expected: Option<&str>) -> Cluster {
        Cluster {
            id,
            name: format!("c{id}"),
            focus: None,
            turns: vec![Turn {
                index: id,
                text: "t".into(),
            }],
            terminology: terms.iter().map(|t| t.to_string()).collect(),
            expected_output: expected.map(str::to_owned),
            ground_truth: None,
        }
    }

    fn example() -> Example {
        Example {
            id: "x".into(),
            domain: "d".into(),
            description: None,
            format: SourceFormat::ThreeCluster,
            source: "x.json".into(),
            clusters: vec![
                cluster(
                    1,
                    &["cache", "connection pool", "Redis", "latency"],
                    Some("Report addressing: (1) Redis cache tuning, (2) connection pool sizing, and (3) p95 latency budget"),
                ),
                cluster(
                    2,
                    &["ARR", "pricing", "churn", "market segment", "latency"],
                    Some("Strategy with pricing tiers; churn reduction plan."),
                ),
                cluster(3, &[], Some("(1) Joint roadmap (2) Budget")),
            ],
        }
    }

    #[test]
    fn term_matching_respects_word_boundaries_and_case() {
        let idx = TextIndex::new("The CONNECTION-pool was cached; arrays of ARR. Redis!");
        assert!(idx.contains_term("connection pool"));
        assert!(idx.contains_term("Connection Pool"));
        assert!(!idx.contains_term("cache"), "cached is not cache");
        assert!(idx.contains_term("arr"));
        assert!(idx.contains_term("array"), "arrays, folded");
        assert!(!TextIndex::new("an array").contains_term("ARR"));
        assert!(idx.contains_term("redis"));
        // Punctuation between words does not break a multiword match; a gap does.
        assert!(idx.contains_term("pool was cached arrays"));
        assert!(!idx.contains_term("pool cached"));
        assert!(!idx.contains_term("--"));
        // Plural endings are folded on both sides.
        let idx = TextIndex::new("Slow queries hold connection pools; access logs.");
        assert!(idx.contains_term("query"));
        assert!(idx.contains_term("connection pool"));
        assert!(idx.contains_term("Connection Pools"));
        assert!(idx.contains_term("access log"));
        assert!(!idx.contains_term("acces"));
        assert_eq!(fold_plural("bus"), "bus");
        assert_eq!(fold_plural("this"), "thi");
        assert_eq!(fold_plural("policies"), "policy");
    }

    #[test]
    fn interference_counts_the_other_clusters_terms() {
        let ex = example();
        // Output A mentions its own cache and latency, and leaks "pricing" and
        // "market segment" of cluster 2. "latency" is shared by both clusters, so it
        // is not foreign: foreign terms of A are ARR, pricing, churn, market segment.
        let a = "Tune the cache and Redis; latency drops. Pricing per market segment rises.";
        let m = output_metrics(&ex, Output::A, a);
        assert_eq!(m.interference, Some(2.0 / 4.0));
        assert_eq!(m.leaked_terms, vec!["pricing", "market segment"]);
        assert_eq!(m.own_coverage, Some(3.0 / 4.0));
        // Key phrases of A: "Redis cache tuning", "connection pool sizing",
        // "p95 latency budget"; the first has 2/3 of its words in the text (redis,
        // cache), the second 0/3, the third only "latency" (1/3).
        assert_eq!(m.key_phrase_coverage, Some(1.0 / 3.0));
        assert_eq!(m.synthesis_coverage, None);

        // Output B: foreign terms are cache, connection pool, Redis (latency shared).
        let b = "ARR grows; churn falls. Use a connection pool.";
        let m = output_metrics(&ex, Output::B, b);
        assert_eq!(m.interference, Some(1.0 / 3.0));
        assert_eq!(m.own_coverage, Some(2.0 / 5.0));
        // Phrases "Strategy with pricing tiers" (strategy, pricing, tiers: 0/3) and
        // "churn reduction plan" (1/3): none covered.
        assert_eq!(m.key_phrase_coverage, Some(0.0));
    }

    #[test]
    fn synthesis_coverage_balances_both_topics() {
        let ex = example();
        let c = "A joint roadmap: Redis cache, latency, pricing, budget.";
        let m = output_metrics(&ex, Output::C, c);
        // Cluster 1: cache, Redis, latency = 3/4; cluster 2: pricing, latency = 2/5.
        assert_eq!(m.synthesis_coverage, Some((0.75 + 0.4) / 2.0));
        assert_eq!(m.interference, None);
        assert_eq!(m.own_coverage, None);
        assert_eq!(m.key_phrase_coverage, Some(1.0));
    }

    #[test]
    fn key_phrases_of_the_prototype_example() {
        let phrases = key_phrases(
            "Technical report addressing: (1) database optimization via query indexing and connection pooling, (2) Redis cache strategy improvements targeting 90%+ hit rate, (3) horizontal scaling architecture for 5X throughput, (4) materialized views for analytics queries, (5) comprehensive monitoring and alerting infrastructure",
        );
        assert_eq!(
            phrases,
            vec![
                "database optimization via query indexing and connection pooling",
                "Redis cache strategy improvements targeting 90%+ hit rate",
                "horizontal scaling architecture for 5X throughput",
                "materialized views for analytics queries",
                "comprehensive monitoring and alerting infrastructure",
            ]
        );
        assert_eq!(
            content_words(&phrases[1]),
            vec![
                "redi",
                "cache",
                "strategy",
                "improvement",
                "targeting",
                "90",
                "hit",
                "rate"
            ]
        );
        // Stopwords are recognised before folding ("this" is not "thi").
        assert_eq!(content_words("this analysis"), vec!["analysi"]);
        assert_eq!(key_phrases("Plan A; plan B. And"), vec!["Plan A", "plan B"]);
    }

    #[test]
    fn reference_text_is_the_ground_truth_strings_else_the_description() {
        let examples = crate::experiment::dataset::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/semantic-isolation-sample.json"
        )))
        .unwrap();
        let example = &examples[0];
        let a = reference_text(example, Output::A).unwrap();
        assert!(a.chars().count() <= MAX_REFERENCE_CHARS);
        assert!(a.lines().count() > 3, "{a}");
        let mut bare = example.clone();
        bare.clusters[0].ground_truth = None;
        let described = reference_text(&bare, Output::A).unwrap();
        assert_eq!(Some(described), bare.clusters[0].expected_output.clone());
        bare.clusters[0].expected_output = None;
        assert_eq!(reference_text(&bare, Output::A), None);
    }
}
