//! `summary.md`: the report's tables — by condition, cache and speed, paired
//! differences, by example.

use std::fmt::Write as _;
use std::path::Path;

use super::summary::Summary;
use crate::experiment::metrics::Metric;
use crate::experiment::stats::MeanCi;

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

/// Renders `summary.md`; `source` is the results file it was made from.
pub fn render_markdown(s: &Summary, source: &Path) -> String {
    let mut md = String::new();
    introduction(&mut md, s, source);
    by_condition(&mut md, s);
    cache_and_speed(&mut md, s);
    paired_differences(&mut md, s);
    by_example(&mut md, s);
    md
}

/// The title, what the records are, and what the metrics mean.
fn introduction(md: &mut String, s: &Summary, source: &Path) {
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
        "**Reference NLL** is the primary metric: the mean negative log-likelihood per \
         token (nats) of each output's reference answer (the example's ground truth) \
         under exactly the context and prompt that output is generated from, \
         teacher-forced, so it does not depend on sampling; lower is better. The others \
         are shares in [0, 1] of the generated texts: **interference** is the share of the other \
         clusters' terminology found in outputs A and B (lower is better); **own-term \
         coverage** the share of an output's own cluster terminology it uses; \
         **key-phrase coverage** the share of the expected output's key points it \
         covers; **synthesis coverage** (output C) the mean share of clusters 1 and 2's \
         terminology found in C. Intervals are 95% t intervals of the mean.\n"
    );
}

/// Metric means and intervals per condition.
fn by_condition(md: &mut String, s: &Summary) {
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
}

/// Token counts and speed per condition.
fn cache_and_speed(md: &mut String, s: &Summary) {
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
}

/// Paired differences between conditions, with their tests.
fn paired_differences(md: &mut String, s: &Summary) {
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
}

/// One row per example and condition.
fn by_example(md: &mut String, s: &Summary) {
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
}
