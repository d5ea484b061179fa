//! `semkv experiment report`: turns a results file into `summary.md` (tables per
//! condition, paired comparisons, per example), `results.csv` (one row per output) and
//! `metrics.svg` (metric means by condition with 95% intervals).
//!
//! All numbers come from [`summarize`], a pure function of the records, so what the
//! tables say and what the chart draws cannot disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::conditions::Condition;
use crate::dataset::Output;
use crate::metrics::{self, MeanCi, Metric, PairedComparison};
use crate::results::{OutputRecord, ResultsError, ResultsIndex};

/// Report failures.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The results could not be read.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The results file holds no records.
    #[error("{0}: no result records")]
    Empty(PathBuf),
    /// An output file could not be written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The CSV file could not be written.
    #[error("{path}: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    /// The chart could not be drawn.
    #[error("chart {path}: {message}")]
    Chart { path: PathBuf, message: String },
}

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

    let conditions = present
        .iter()
        .map(|&condition| {
            let rs: Vec<&OutputRecord> = records
                .iter()
                .filter(|r| r.condition == condition)
                .collect();
            let metrics = Metric::ALL
                .into_iter()
                .filter_map(|m| {
                    let values: Vec<f64> = rs.iter().filter_map(|r| m.get(&r.metrics)).collect();
                    metrics::mean_ci(&values).map(|ci| (m, ci))
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
        })
        .collect();

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
                if let Some(comparison) = metrics::compare_paired(&xs, &ys) {
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

    let mut rows = Vec::new();
    for id in &example_ids {
        for &condition in &present {
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

    Summary {
        records: records.len(),
        examples: example_ids.len(),
        models,
        conditions,
        pairs,
        rows,
    }
}

/// A number with three decimals, or "–" when absent.
fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "–".to_owned(),
    }
}

/// A p-value, with "<0.001" for tiny ones.
fn pval(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.001 => "<0.001".to_owned(),
        Some(p) => format!("{p:.3}"),
        None => "–".to_owned(),
    }
}

/// "mean [lo, hi]" (or just the mean with one value).
fn mean_ci_cell(m: Option<&MeanCi>) -> String {
    match m {
        None => "–".to_owned(),
        Some(m) => match m.ci {
            Some((lo, hi)) => format!("{:.3} [{lo:.3}, {hi:.3}] (n={})", m.mean, m.n),
            None => format!("{:.3} (n={})", m.mean, m.n),
        },
    }
}

/// Renders `summary.md`.
pub fn render_markdown(s: &Summary, source: &Path) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Semantic-isolation experiment: summary\n");
    let _ = writeln!(
        md,
        "{} outputs of {} examples from `{}`; model: {}.\n",
        s.records,
        s.examples,
        source.display(),
        if s.models.is_empty() {
            "–".to_owned()
        } else {
            s.models.join(", ")
        }
    );
    let _ = writeln!(
        md,
        "Metrics are shares in [0, 1]: **interference** is the share of the other \
         clusters' terminology found in outputs A and B (lower is better); **own-term \
         coverage** the share of an output's own cluster terminology it uses; \
         **key-phrase coverage** the share of the expected output's key points it \
         covers; **synthesis coverage** (output C) the mean share of clusters 1 and 2's \
         terminology found in C. Intervals are 95% t intervals of the mean.\n"
    );

    let _ = writeln!(md, "## By condition\n");
    let _ = write!(md, "| condition | outputs |");
    for m in Metric::ALL {
        let _ = write!(md, " {} |", m.label());
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "|---|---:|{}", "---|".repeat(Metric::ALL.len()));
    for c in &s.conditions {
        let _ = write!(md, "| {} | {} |", c.condition, c.outputs);
        for m in Metric::ALL {
            let _ = write!(md, " {} |", mean_ci_cell(c.metrics.get(&m)));
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "\n## Cache and speed by condition\n");
    let _ = writeln!(
        md,
        "| condition | prompt tokens | cache tokens | tokens reused | TTFT (ms) | tok/s |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for c in &s.conditions {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} |",
            c.condition, c.prompt_tokens, c.cache_tokens, c.tokens_reused, c.ttft_ms, c.tok_s
        );
    }

    let _ = writeln!(md, "\n## Paired differences between conditions\n");
    let _ = writeln!(
        md,
        "Differences are `B − A` over the (example, output) pairs both conditions have; \
         p-values are two-sided (paired t-test; Wilcoxon signed-rank, exact without ties \
         for n ≤ 50, else normal approximation).\n"
    );
    let _ = writeln!(
        md,
        "| metric | A | B | pairs | mean diff [95% CI] | t-test p | Wilcoxon p |"
    );
    let _ = writeln!(md, "|---|---|---|---:|---|---:|---:|");
    for p in &s.pairs {
        let c = &p.comparison;
        let diff = match c.diff.ci {
            Some((lo, hi)) => format!("{:+.3} [{lo:+.3}, {hi:+.3}]", c.diff.mean),
            None => format!("{:+.3}", c.diff.mean),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            p.metric.as_str(),
            p.a,
            p.b,
            c.diff.n,
            diff,
            pval(c.t_test.map(|t| t.p)),
            pval(c.wilcoxon.map(|w| w.p)),
        );
    }

    let _ = writeln!(md, "\n## By example\n");
    let _ = writeln!(
        md,
        "| example | condition | interference A | interference B | key phrases A | key phrases B | key phrases C | synthesis C |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|");
    for r in &s.rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.example_id,
            r.condition,
            num(r.interference[0]),
            num(r.interference[1]),
            num(r.key_phrases[0]),
            num(r.key_phrases[1]),
            num(r.key_phrases[2]),
            num(r.synthesis),
        );
    }
    md
}

/// Writes one CSV row per record (the generated text last).
pub fn write_csv(records: &[OutputRecord], path: &Path) -> Result<(), ReportError> {
    let err = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    w.write_record([
        "example_id",
        "domain",
        "condition",
        "output",
        "format",
        "batch_seed",
        "seed",
        "model",
        "prompt_tokens",
        "cache_tokens",
        "tokens_reused",
        "generated_tokens",
        "ttft_ms",
        "tok_s",
        "finish_reason",
        "interference",
        "own_coverage",
        "key_phrase_coverage",
        "synthesis_coverage",
        "leaked_terms",
        "text",
    ])
    .map_err(err)?;
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in records {
        w.write_record([
            r.example_id.clone(),
            r.domain.clone(),
            r.condition.to_string(),
            r.output.to_string(),
            r.format.as_str().to_owned(),
            r.batch_seed.to_string(),
            r.seed.to_string(),
            r.model.clone(),
            r.prompt_tokens.to_string(),
            r.cache_tokens.to_string(),
            r.tokens_reused.to_string(),
            r.generated_tokens.to_string(),
            r.ttft_ms.to_string(),
            r.tok_s.to_string(),
            r.finish_reason.clone(),
            opt(r.metrics.interference),
            opt(r.metrics.own_coverage),
            opt(r.metrics.key_phrase_coverage),
            opt(r.metrics.synthesis_coverage),
            r.metrics.leaked_terms.join("; "),
            r.text.clone(),
        ])
        .map_err(err)?;
    }
    w.flush().map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Colors of the conditions in the chart, in [`Condition::ALL`] order.
const CONDITION_COLORS: [RGBColor; 4] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0xc4, 0x4e, 0x52),
];

fn color(c: Condition) -> RGBColor {
    let i = Condition::ALL.iter().position(|x| *x == c).unwrap_or(0);
    CONDITION_COLORS[i]
}

/// Draws metric means by condition, with 95% error bars, as an SVG file.
pub fn render_svg(s: &Summary, path: &Path) -> Result<(), ReportError> {
    let chart_err = |e: &dyn std::fmt::Display| ReportError::Chart {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let metrics: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| s.conditions.iter().any(|c| c.metrics.contains_key(m)))
        .collect();
    let groups = metrics.len().max(1);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Metrics by condition (mean, 95% CI)",
            ("sans-serif", 22).into_font(),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..groups as f64, 0.0..1.0f64)
        .map_err(|e| chart_err(&e))?;
    let label_of = |v: &f64| {
        let centre = v - 0.5;
        let i = centre.round();
        if (centre - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < metrics.len() {
            metrics[i as usize].label().to_owned()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2 + 1)
        .x_label_formatter(&label_of)
        .y_desc("mean share")
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()
        .map_err(|e| chart_err(&e))?;

    let n = s.conditions.len().max(1) as f64;
    let width = 0.8 / n;
    for (k, c) in s.conditions.iter().enumerate() {
        let col = color(c.condition);
        let mut bars = Vec::new();
        let mut errors = Vec::new();
        for (g, m) in metrics.iter().enumerate() {
            let Some(v) = c.metrics.get(m) else { continue };
            let x0 = g as f64 + 0.1 + k as f64 * width;
            bars.push(Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.9, v.mean.clamp(0.0, 1.0))],
                col.filled(),
            ));
            if let Some((lo, hi)) = v.ci {
                errors.push(ErrorBar::new_vertical(
                    x0 + width * 0.45,
                    lo.clamp(0.0, 1.0),
                    v.mean.clamp(0.0, 1.0),
                    hi.clamp(0.0, 1.0),
                    BLACK.stroke_width(1),
                    8,
                ));
            }
        }
        chart
            .draw_series(bars)
            .map_err(|e| chart_err(&e))?
            .label(c.condition.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled()));
        chart.draw_series(errors).map_err(|e| chart_err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| chart_err(&e))?;
    root.present().map_err(|e| chart_err(&e))?;
    Ok(())
}

/// The files a report consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `summary.md`.
    pub summary: PathBuf,
    /// `results.csv`.
    pub csv: PathBuf,
    /// `metrics.svg`.
    pub chart: PathBuf,
}

/// Reads `results` and writes the report into `out_dir` (created if needed).
pub fn write_report(results: &Path, out_dir: &Path) -> Result<ReportFiles, ReportError> {
    let index = ResultsIndex::read(results)?;
    let records: Vec<OutputRecord> = index.records().cloned().collect();
    if records.is_empty() {
        return Err(ReportError::Empty(results.to_path_buf()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let summary = summarize(&records);
    let files = ReportFiles {
        summary: out_dir.join("summary.md"),
        csv: out_dir.join("results.csv"),
        chart: out_dir.join("metrics.svg"),
    };
    std::fs::write(&files.summary, render_markdown(&summary, results))
        .map_err(io(&files.summary))?;
    write_csv(&records, &files.csv)?;
    render_svg(&summary, &files.chart)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::OutputMetrics;
    use crate::results::tests::record;

    /// A record with the given metrics.
    fn rec(
        ex: &str,
        c: Condition,
        o: Output,
        interference: Option<f64>,
        key: Option<f64>,
        synth: Option<f64>,
    ) -> OutputRecord {
        let mut r = record(ex, c, o);
        r.metrics = OutputMetrics {
            interference,
            leaked_terms: vec![],
            own_coverage: interference.map(|i| 1.0 - i),
            key_phrase_coverage: key,
            synthesis_coverage: synth,
        };
        r
    }

    /// Two examples x two conditions x three outputs, with hand-picked values.
    fn records() -> Vec<OutputRecord> {
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

    #[test]
    fn writes_summary_csv_and_chart_from_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results.jsonl");
        let lines: Vec<String> = records()
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        std::fs::write(&results, lines.join("\n") + "\n").unwrap();
        let out = dir.path().join("report");
        let files = write_report(&results, &out).unwrap();

        let md = std::fs::read_to_string(&files.summary).unwrap();
        assert!(md.contains("12 outputs of 2 examples"), "{md}");
        assert!(md.contains("| sequential | 6 | 0.350 ["), "{md}");
        assert!(
            md.contains("| interference | sequential | semantic | 4 | -0.250 ["),
            "{md}"
        );
        assert!(md.contains("| e2 | semantic | 0.200 | 0.100 | 0.400 | 0.200 | 0.400 | 0.600 |"));

        let mut csv = csv::Reader::from_path(&files.csv).unwrap();
        let headers = csv.headers().unwrap().clone();
        assert_eq!(headers.get(0), Some("example_id"));
        assert_eq!(headers.iter().next_back(), Some("text"));
        let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 12);
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let c_row = rows
            .iter()
            .find(|r| {
                &r[col("example_id")] == "e2"
                    && &r[col("output")] == "C"
                    && &r[col("condition")] == "semantic"
            })
            .unwrap();
        assert_eq!(&c_row[col("synthesis_coverage")], "0.6");
        assert_eq!(&c_row[col("interference")], "");

        let svg = std::fs::read_to_string(&files.chart).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for label in [
            "Metrics by condition",
            "sequential",
            "semantic",
            "Interference (lower is better)",
            "Synthesis coverage (C)",
        ] {
            assert!(svg.contains(label), "chart lacks {label:?}");
        }
        // 2 conditions x 4 metrics bars, each with an error bar.
        assert!(svg.matches("<rect").count() >= 8);
    }

    #[test]
    fn empty_results_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.jsonl");
        std::fs::write(&results, "").unwrap();
        assert!(matches!(
            write_report(&results, dir.path()),
            Err(ReportError::Empty(_))
        ));
    }
}
