//! The report's numbers: [`summarize`], a pure function of the result records, so
//! that what the tables say and what the chart draws cannot disagree.

use std::collections::BTreeMap;

use crate::experiment::conditions::Condition;
use crate::experiment::dataset::Output;
use crate::experiment::metrics::Metric;
use crate::experiment::results::OutputRecord;
use crate::experiment::stats::{self, MeanCi, PairedComparison};

/// Means of one condition.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionSummary {
    /// The condition.
    pub condition: Condition,
    /// Outputs recorded under it.
    pub outputs: usize,
    /// Each metric's mean and interval over the outputs where it is defined.
    pub metrics: BTreeMap<Metric, MeanCi>,
    /// Mean prompt tokens.
    pub prompt_tokens: f64,
    /// Mean tokens in the context's cache.
    pub cache_tokens: f64,
    /// Mean tokens reused from the cache.
    pub tokens_reused: f64,
    /// Mean time to first token, ms.
    pub ttft_ms: f64,
    /// Mean decode speed, tokens/s.
    pub tok_s: f64,
}

/// A paired comparison of two conditions on one metric (`b − a`), over the
/// (example, output) pairs where both have a value.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSummary {
    /// The metric.
    pub metric: Metric,
    /// The baseline condition.
    pub a: Condition,
    /// The compared condition.
    pub b: Condition,
    /// The comparison.
    pub comparison: PairedComparison,
}

/// One example under one condition.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleRow {
    /// The example.
    pub example_id: String,
    /// The condition.
    pub condition: Condition,
    /// Interference of outputs A and B.
    pub interference: [Option<f64>; 2],
    /// Key-phrase coverage of outputs A, B, C.
    pub key_phrases: [Option<f64>; 3],
    /// Synthesis coverage of output C.
    pub synthesis: Option<f64>,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Number of records.
    pub records: usize,
    /// Number of distinct examples.
    pub examples: usize,
    /// Models that produced the records.
    pub models: Vec<String>,
    /// One entry per condition present, in the prototype's order.
    pub conditions: Vec<ConditionSummary>,
    /// Every pair of conditions present, for every metric with pairs.
    pub pairs: Vec<PairSummary>,
    /// One row per example and condition.
    pub rows: Vec<ExampleRow>,
}

/// One metric's values under one condition, keyed by (example id, output): the unit
/// that paired comparisons match on.
type ValuesByPair<'a> = BTreeMap<(&'a str, Output), f64>;

/// The mean of `values`; NaN when there are none.
fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// Computes the report's numbers.
pub fn summarize(records: &[OutputRecord]) -> Summary {
    let present: Vec<Condition> = Condition::ALL
        .into_iter()
        .filter(|c| records.iter().any(|r| r.condition == *c))
        .collect();
    let mut models: Vec<String> = records.iter().map(|r| r.model.clone()).collect();
    models.sort();
    models.dedup();
    let mut example_ids: Vec<&str> = records.iter().map(|r| r.example_id.as_str()).collect();
    example_ids.sort();
    example_ids.dedup();
    Summary {
        records: records.len(),
        examples: example_ids.len(),
        models,
        conditions: present
            .iter()
            .map(|&c| condition_summary(records, c))
            .collect(),
        pairs: paired_comparisons(records, &present),
        rows: example_rows(records, &present, &example_ids),
    }
}

/// Means of the records of `condition`.
fn condition_summary(records: &[OutputRecord], condition: Condition) -> ConditionSummary {
    let rs: Vec<&OutputRecord> = records
        .iter()
        .filter(|r| r.condition == condition)
        .collect();
    let metrics = Metric::ALL
        .into_iter()
        .filter_map(|m| {
            let values: Vec<f64> = rs.iter().filter_map(|r| m.get(&r.metrics)).collect();
            stats::mean_ci(&values).map(|ci| (m, ci))
        })
        .collect();
    ConditionSummary {
        condition,
        outputs: rs.len(),
        metrics,
        prompt_tokens: mean(rs.iter().map(|r| r.prompt_tokens as f64)),
        cache_tokens: mean(rs.iter().map(|r| r.cache_tokens as f64)),
        tokens_reused: mean(rs.iter().map(|r| r.tokens_reused as f64)),
        ttft_ms: mean(rs.iter().map(|r| r.ttft_ms)),
        tok_s: mean(rs.iter().map(|r| r.tok_s)),
    }
}

/// Every pair of `present` conditions compared on every metric, over the
/// (example, output) pairs where both have a value.
fn paired_comparisons(records: &[OutputRecord], present: &[Condition]) -> Vec<PairSummary> {
    // Values by (metric, condition) keyed by (example, output), for pairing.
    let mut by_key: BTreeMap<(Metric, Condition), ValuesByPair> = BTreeMap::new();
    for r in records {
        for m in Metric::ALL {
            if let Some(v) = m.get(&r.metrics) {
                by_key
                    .entry((m, r.condition))
                    .or_default()
                    .insert((r.example_id.as_str(), r.output), v);
            }
        }
    }
    let mut pairs = Vec::new();
    for m in Metric::ALL {
        for (i, &a) in present.iter().enumerate() {
            for &b in &present[i + 1..] {
                let (Some(va), Some(vb)) = (by_key.get(&(m, a)), by_key.get(&(m, b))) else {
                    continue;
                };
                let (xs, ys): (Vec<f64>, Vec<f64>) = va
                    .iter()
                    .filter_map(|(k, x)| vb.get(k).map(|y| (*x, *y)))
                    .unzip();
                if let Some(comparison) = stats::compare_paired(&xs, &ys) {
                    pairs.push(PairSummary {
                        metric: m,
                        a,
                        b,
                        comparison,
                    });
                }
            }
        }
    }
    pairs
}

/// One row per example and condition that has records.
fn example_rows(
    records: &[OutputRecord],
    present: &[Condition],
    example_ids: &[&str],
) -> Vec<ExampleRow> {
    let mut rows = Vec::new();
    for id in example_ids {
        for &condition in present {
            let get = |o: Output| {
                records
                    .iter()
                    .find(|r| r.example_id == *id && r.condition == condition && r.output == o)
            };
            if Output::ALL.iter().all(|&o| get(o).is_none()) {
                continue;
            }
            let metric = |o: Output, m: Metric| get(o).and_then(|r| m.get(&r.metrics));
            rows.push(ExampleRow {
                example_id: id.to_string(),
                condition,
                interference: [
                    metric(Output::A, Metric::Interference),
                    metric(Output::B, Metric::Interference),
                ],
                key_phrases: Output::ALL.map(|o| metric(o, Metric::KeyPhraseCoverage)),
                synthesis: metric(Output::C, Metric::SynthesisCoverage),
            });
        }
    }
    rows
}

/// Records with hand-picked metrics, shared by the report's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::experiment::conditions::Condition;
    use crate::experiment::dataset::Output;
    use crate::experiment::metrics::OutputMetrics;
    use crate::experiment::results::tests::record;
    use crate::experiment::results::OutputRecord;

    /// A record with the given metrics.
    pub(crate) fn rec(
        ex: &str,
        c: Condition,
        o: Output,
        interference: Option<f64>,
        key: Option<f64>,
        synth: Option<f64>,
    ) -> OutputRecord {
        let mut r = record(ex, c, o);
        r.metrics = OutputMetrics {
            reference_nll: None,
            interference,
            leaked_terms: vec![],
            own_coverage: interference.map(|i| 1.0 - i),
            key_phrase_coverage: key,
            synthesis_coverage: synth,
        };
        r
    }

    /// Two examples x two conditions x three outputs, with hand-picked values.
    pub(crate) fn records() -> Vec<OutputRecord> {
        use Condition::{Semantic as Sem, Sequential as Seq};
        use Output::{A, B, C};
        vec![
            rec("e1", Seq, A, Some(0.4), Some(0.2), None),
            rec("e1", Seq, B, Some(0.3), Some(0.4), None),
            rec("e1", Seq, C, None, Some(0.6), Some(0.5)),
            rec("e2", Seq, A, Some(0.5), Some(0.2), None),
            rec("e2", Seq, B, Some(0.2), Some(0.0), None),
            rec("e2", Seq, C, None, Some(0.2), Some(0.3)),
            rec("e1", Sem, A, Some(0.1), Some(0.6), None),
            rec("e1", Sem, B, Some(0.0), Some(0.4), None),
            rec("e1", Sem, C, None, Some(0.8), Some(0.7)),
            rec("e2", Sem, A, Some(0.2), Some(0.4), None),
            rec("e2", Sem, B, Some(0.1), Some(0.2), None),
            rec("e2", Sem, C, None, Some(0.4), Some(0.6)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::records;
    use super::*;

    #[test]
    fn summary_numbers_are_hand_checked() {
        let s = summarize(&records());
        assert_eq!((s.records, s.examples), (12, 2));
        assert_eq!(s.models, vec!["m"]);
        let conds: Vec<Condition> = s.conditions.iter().map(|c| c.condition).collect();
        assert_eq!(conds, vec![Condition::Sequential, Condition::Semantic]);
        let seq = &s.conditions[0];
        assert_eq!(seq.outputs, 6);
        let i = seq.metrics[&Metric::Interference];
        assert_eq!(i.n, 4);
        assert!((i.mean - 0.35).abs() < 1e-12);
        let syn = seq.metrics[&Metric::SynthesisCoverage];
        assert_eq!(syn.n, 2);
        assert!((syn.mean - 0.4).abs() < 1e-12);
        assert_eq!(seq.prompt_tokens, 100.0);

        // Interference, semantic − sequential, per (example, output):
        // e1A −0.3, e1B −0.3, e2A −0.3, e2B −0.1: mean −0.25.
        let p = s
            .pairs
            .iter()
            .find(|p| p.metric == Metric::Interference)
            .unwrap();
        assert_eq!((p.a, p.b), (Condition::Sequential, Condition::Semantic));
        assert_eq!(p.comparison.diff.n, 4);
        assert!((p.comparison.diff.mean + 0.25).abs() < 1e-12);
        // sd = 0.1, t = −0.25 / (0.1 / 2) = −5, df 3.
        let t = p.comparison.t_test.unwrap();
        assert!((t.t + 5.0).abs() < 1e-9, "{}", t.t);
        // Three tied |−0.3| and one −0.1: all negative, W+ = 0.
        let w = p.comparison.wilcoxon.unwrap();
        assert_eq!(w.w_plus, 0.0);
        assert!(!w.exact);
        // 4 metrics have values in both conditions.
        assert_eq!(s.pairs.len(), 4);

        assert_eq!(s.rows.len(), 4);
        assert_eq!(s.rows[0].example_id, "e1");
        assert_eq!(s.rows[0].condition, Condition::Sequential);
        assert_eq!(s.rows[0].interference, [Some(0.4), Some(0.3)]);
        assert_eq!(s.rows[0].key_phrases, [Some(0.2), Some(0.4), Some(0.6)]);
        assert_eq!(s.rows[0].synthesis, Some(0.5));
    }
}
