//! Metrics of the experiment: how much of the *other* clusters' vocabulary leaks into
//! an output (interference), how much of its own it covers, how many of the expected
//! output's key points it touches, and — for output C — how well it synthesizes both
//! topics. Plus the statistics the report needs: means with 95% t intervals, and
//! paired comparisons between conditions (paired t-test, Wilcoxon signed-rank test).
//!
//! Matching is on words: text and terms are split into lowercase runs of letters and
//! digits with plural endings folded ([`fold_plural`]), and a term is present when its
//! words occur consecutively in the text. So "Connection pool" matches
//! "connection-pools" and "CONNECTION POOL", "query" matches "queries", but "cache"
//! does not match "cached" and "ARR" does not match "array". There is no other
//! stemming.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use crate::dataset::{Example, Output};

/// The metrics of one generated output. A metric that does not apply to the output
/// (e.g. interference of the synthesis) or that its example cannot support (no
/// terminology, no expected output) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputMetrics {
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
    pub const ALL: [Metric; 4] = [
        Metric::Interference,
        Metric::OwnCoverage,
        Metric::KeyPhraseCoverage,
        Metric::SynthesisCoverage,
    ];

    /// The snake_case name used in CSV headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Interference => "interference",
            Metric::OwnCoverage => "own_coverage",
            Metric::KeyPhraseCoverage => "key_phrase_coverage",
            Metric::SynthesisCoverage => "synthesis_coverage",
        }
    }

    /// A short human label.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Interference => "Interference (lower is better)",
            Metric::OwnCoverage => "Own-term coverage",
            Metric::KeyPhraseCoverage => "Key-phrase coverage",
            Metric::SynthesisCoverage => "Synthesis coverage (C)",
        }
    }

    /// The metric's value in `m`.
    pub fn get(self, m: &OutputMetrics) -> Option<f64> {
        match self {
            Metric::Interference => m.interference,
            Metric::OwnCoverage => m.own_coverage,
            Metric::KeyPhraseCoverage => m.key_phrase_coverage,
            Metric::SynthesisCoverage => m.synthesis_coverage,
        }
    }
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

// ---------------------------------------------------------------------------------
// Statistics.
// ---------------------------------------------------------------------------------

/// Confidence level of every interval in reports.
pub const CONFIDENCE: f64 = 0.95;

/// A sample mean with its 95% t interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanCi {
    /// Sample size.
    pub n: usize,
    /// Sample mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1), when n ≥ 2.
    pub sd: Option<f64>,
    /// Lower and upper bounds of the 95% interval, when n ≥ 2.
    pub ci: Option<(f64, f64)>,
}

/// The two-sided critical value of Student's t with `df` degrees of freedom.
pub fn t_critical(level: f64, df: f64) -> f64 {
    let t = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    t.inverse_cdf(1.0 - (1.0 - level) / 2.0)
}

/// Mean and 95% t interval of `values`; `None` when empty.
pub fn mean_ci(values: &[f64]) -> Option<MeanCi> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Some(MeanCi {
            n,
            mean,
            sd: None,
            ci: None,
        });
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let sd = var.sqrt();
    let half = t_critical(CONFIDENCE, (n - 1) as f64) * sd / (n as f64).sqrt();
    Some(MeanCi {
        n,
        mean,
        sd: Some(sd),
        ci: Some((mean - half, mean + half)),
    })
}

/// A one-sample (paired) t-test of the mean difference against zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TTest {
    /// The t statistic.
    pub t: f64,
    /// Degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Paired t-test on differences; `None` with fewer than two differences or when they
/// are all equal (the statistic is undefined).
pub fn paired_t_test(diffs: &[f64]) -> Option<TTest> {
    let m = mean_ci(diffs)?;
    let sd = m.sd?;
    // Equal differences leave only rounding noise in sd: the statistic is undefined.
    if sd <= 1e-12 * m.mean.abs().max(1.0) {
        return None;
    }
    let df = (m.n - 1) as f64;
    let t = m.mean / (sd / (m.n as f64).sqrt());
    let dist = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    let p = (2.0 * dist.cdf(-t.abs())).min(1.0);
    Some(TTest { t, df, p })
}

/// A Wilcoxon signed-rank test of the differences against zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Wilcoxon {
    /// Non-zero differences used (zeros are dropped, as in Wilcoxon's original test).
    pub n: usize,
    /// Sum of the ranks of positive differences.
    pub w_plus: f64,
    /// Sum of the ranks of negative differences.
    pub w_minus: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// True when `p` is exact (no ties, n ≤ 50); otherwise it is the normal
    /// approximation with tie correction (no continuity correction).
    pub exact: bool,
}

impl Wilcoxon {
    /// The usual statistic, min(W+, W−).
    pub fn statistic(&self) -> f64 {
        self.w_plus.min(self.w_minus)
    }
}

/// Largest n for which the exact distribution is used.
const WILCOXON_EXACT_MAX_N: usize = 50;

/// Two values closer than this (relative) are tied; differences of metric shares are
/// ratios, and float noise must not break their ties.
fn nearly_equal(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Wilcoxon signed-rank test; `None` when every difference is zero (or none given).
pub fn wilcoxon_signed_rank(diffs: &[f64]) -> Option<Wilcoxon> {
    let mut d: Vec<f64> = diffs
        .iter()
        .copied()
        .filter(|v| !nearly_equal(*v, 0.0))
        .collect();
    let n = d.len();
    if n == 0 {
        return None;
    }
    d.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Average ranks over groups of tied absolute values.
    let mut ranks = vec![0.0; n];
    let mut tie_groups = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && nearly_equal(d[j].abs(), d[i].abs()) {
            j += 1;
        }
        let avg = (i + 1 + j) as f64 / 2.0;
        ranks[i..j].iter_mut().for_each(|r| *r = avg);
        if j - i > 1 {
            tie_groups.push(j - i);
        }
        i = j;
    }
    let w_plus: f64 = d
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| r)
        .sum();
    let total = (n * (n + 1)) as f64 / 2.0;
    let w_minus = total - w_plus;
    let exact = tie_groups.is_empty() && n <= WILCOXON_EXACT_MAX_N;
    let p = if exact {
        exact_signed_rank_p(n, w_plus.round() as usize)
    } else {
        let mean = total / 2.0;
        let ties: f64 = tie_groups
            .iter()
            .map(|&t| (t * t * t - t) as f64)
            .sum::<f64>();
        let var = (n * (n + 1) * (2 * n + 1)) as f64 / 24.0 - ties / 48.0;
        if var <= 0.0 {
            1.0
        } else {
            let z = (w_plus.min(w_minus) - mean) / var.sqrt();
            (2.0 * Normal::standard().cdf(-z.abs())).min(1.0)
        }
    };
    Some(Wilcoxon {
        n,
        w_plus,
        w_minus,
        p,
        exact,
    })
}

/// Exact two-sided p-value of W+ = `w` with ranks 1..=n: the number of sign patterns
/// giving each rank sum, counted by dynamic programming.
fn exact_signed_rank_p(n: usize, w: usize) -> f64 {
    let max = n * (n + 1) / 2;
    let mut counts = vec![0.0f64; max + 1];
    counts[0] = 1.0;
    for r in 1..=n {
        for s in (r..=max).rev() {
            counts[s] += counts[s - r];
        }
    }
    let total = 2f64.powi(n as i32);
    let lower: f64 = counts[..=w].iter().sum::<f64>() / total;
    let upper: f64 = counts[w..].iter().sum::<f64>() / total;
    (2.0 * lower.min(upper)).min(1.0)
}

/// A paired comparison of two conditions on one metric: differences `b − a`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Mean difference and its 95% interval.
    pub diff: MeanCi,
    /// Paired t-test, when defined.
    pub t_test: Option<TTest>,
    /// Wilcoxon signed-rank test, when defined.
    pub wilcoxon: Option<Wilcoxon>,
}

/// Compares paired samples; `None` when there are no pairs. Panics if the lengths
/// differ (pairs are built by the caller).
pub fn compare_paired(a: &[f64], b: &[f64]) -> Option<PairedComparison> {
    assert_eq!(a.len(), b.len(), "paired samples must have equal length");
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    Some(PairedComparison {
        diff: mean_ci(&diffs)?,
        t_test: paired_t_test(&diffs),
        wilcoxon: wilcoxon_signed_rank(&diffs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Cluster, SourceFormat, Turn};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

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
    fn mean_ci_matches_scipy() {
        // scipy.stats.t.interval(0.95, 4, loc=3, scale=sem([1,2,3,4,5]))
        let m = mean_ci(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(m.mean, 3.0);
        let (lo, hi) = m.ci.unwrap();
        assert!(close(lo, 1.0367568385224428, 1e-9), "{lo}");
        assert!(close(hi, 4.963243161477557, 1e-9), "{hi}");
        assert!(close(t_critical(0.95, 1.0), 12.706204736174694, 1e-8));
        assert!(close(t_critical(0.95, 29.0), 2.045229642132703, 1e-9));
        let one = mean_ci(&[0.4]).unwrap();
        assert_eq!((one.n, one.mean, one.ci), (1, 0.4, None));
        assert!(mean_ci(&[]).is_none());
    }

    #[test]
    fn paired_t_test_matches_scipy() {
        // scipy.stats.ttest_1samp(x, 0) -> t=3.2857142857142856, p=0.01338128291872421
        let x = [0.1, 0.25, -0.07, 0.3, 0.15, 0.2, 0.05, 0.4];
        let t = paired_t_test(&x).unwrap();
        assert!(close(t.t, 3.2857142857142856, 1e-9), "{}", t.t);
        assert!(close(t.p, 0.01338128291872421, 1e-9), "{}", t.p);
        assert_eq!(t.df, 7.0);
        let (lo, hi) = mean_ci(&x).unwrap().ci.unwrap();
        assert!(close(lo, 0.04835722679137883, 1e-9));
        assert!(close(hi, 0.29664277320862115, 1e-9));
        // Constant differences: undefined.
        assert!(paired_t_test(&[0.2, 0.2, 0.2]).is_none());
        assert!(paired_t_test(&[0.2]).is_none());
    }

    #[test]
    fn wilcoxon_exact_matches_scipy() {
        // scipy.stats.wilcoxon(x, method='exact') -> statistic=2.0, p=0.0234375
        let x = [0.1, 0.25, -0.07, 0.3, 0.15, 0.2, 0.05, 0.4];
        let w = wilcoxon_signed_rank(&x).unwrap();
        assert!(w.exact);
        assert_eq!(w.statistic(), 2.0);
        assert_eq!((w.w_plus, w.w_minus), (34.0, 2.0));
        assert!(close(w.p, 0.0234375, 1e-12), "{}", w.p);
        // -> statistic=10.0, p=0.02099609375
        let x2 = [
            -0.5, 0.2, -0.3, 0.1, -0.4, -0.6, 0.7, -0.8, -0.9, -1.0, -1.1, -1.2,
        ];
        let w = wilcoxon_signed_rank(&x2).unwrap();
        assert_eq!(w.statistic(), 10.0);
        assert!(close(w.p, 0.02099609375, 1e-12), "{}", w.p);
        // Zeros are dropped: scipy.stats.wilcoxon([0, .1, .2, -.3, .4, .5, .6]) ->
        // statistic=3.0, p=0.15625
        let w = wilcoxon_signed_rank(&[0.0, 0.1, 0.2, -0.3, 0.4, 0.5, 0.6]).unwrap();
        assert_eq!((w.n, w.statistic()), (6, 3.0));
        assert!(close(w.p, 0.15625, 1e-12));
        assert!(wilcoxon_signed_rank(&[0.0, 0.0]).is_none());
    }

    #[test]
    fn wilcoxon_approximation_matches_scipy() {
        // Ties: scipy.stats.wilcoxon(z, method='approx') -> statistic=7.0,
        // p=0.03520187354135451
        let z = [0.1, 0.1, -0.2, 0.3, 0.3, 0.3, -0.1, 0.5, 0.2, 0.2];
        let w = wilcoxon_signed_rank(&z).unwrap();
        assert!(!w.exact);
        assert_eq!(w.statistic(), 7.0);
        // statrs' normal CDF agrees with scipy's to about 1e-11.
        assert!(close(w.p, 0.03520187354135451, 1e-10), "{}", w.p);
        // n = 60 without ties: statistic=822.0, p=0.49357801242517574
        let big = [
            0.445584, 0.921618, 0.430437, -1.203157, 1.005356, 0.546375, -0.436953, 0.681118,
            0.464572, 0.394132, 0.128422, 0.646713, -0.636454, -0.06291, -0.382119, 0.698846,
            0.139722, -0.192457, -0.681908, -0.157192, 0.108142, -0.175603, 1.394064, 1.106724,
            -2.611162, -1.789013, -0.074772, -0.32219, 0.313643, 0.317322, 2.217839, -1.012021,
            -0.277605, 2.142772, 0.746703, 0.763063, -0.414006, -1.548075, 0.267465, 0.209014,
            -1.127352, -0.583227, 0.027956, -0.844752, 0.00173, 0.195483, 0.135586, -0.406292,
            0.693748, 0.991167, 0.420848, -0.71823, 0.831652, -0.40144, 0.979161, -0.971787,
            1.014467, 0.079937, -1.148749, -0.213899,
        ];
        let w = wilcoxon_signed_rank(&big).unwrap();
        assert!(!w.exact);
        assert_eq!(w.statistic(), 822.0);
        assert!(close(w.p, 0.49357801242517574, 1e-10), "{}", w.p);
    }

    #[test]
    fn float_noise_does_not_break_ties() {
        // 0.3 - 0.2 and 0.2 - 0.1 differ in the last bits but are the same share.
        let d = [0.3 - 0.2, 0.2 - 0.1, 0.5];
        let w = wilcoxon_signed_rank(&d).unwrap();
        assert!(!w.exact, "the first two are tied");
        let c = compare_paired(&[0.1, 0.2], &[0.3, 0.3]).unwrap();
        assert!(close(c.diff.mean, 0.15, 1e-12));
    }
}
