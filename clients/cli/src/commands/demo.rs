//! `demo`: runs [`crate::experiment::demo`] and prints what it did — a table of metric
//! means per condition and where the report is.

use std::collections::BTreeMap;
use std::io::Write;

use crate::cli::DemoArgs;
use crate::exit::{Failure, EXIT_INTERRUPTED, EXIT_UNREACHABLE};
use crate::experiment::demo::{self, DemoError, DemoOptions, DemoOutcome};
use crate::experiment::metrics::Metric;
use crate::experiment::report::Summary;
use crate::output::Printer;

/// `demo`.
pub async fn demo<W: Write>(addr: String, d: DemoArgs, p: &mut Printer<W>) -> Result<(), Failure> {
    let opts = DemoOptions {
        addr,
        model: d.model,
        device: d.device,
        data_dir: d.data_dir,
        semkvd: d.semkvd,
        out: d.out,
        dataset: d.dataset,
        format: d.format,
        max_tokens: d.max_tokens,
        temperature: d.temperature,
        seed: d.seed,
        resume: d.resume,
        progress: !d.no_progress && !p.json,
        startup_timeout: std::time::Duration::from_secs(d.startup_timeout),
    };
    let outcome = demo::run(&opts).await.map_err(demo_failure)?;
    p.emit_with(|| outcome_json(&outcome), || outcome_text(&outcome))?;
    Ok(())
}

/// A failed demo as a failure: exit 3 when no daemon could be reached or started, 130
/// when interrupted.
fn demo_failure(e: DemoError) -> Failure {
    match &e {
        DemoError::Daemon(_) => Failure {
            message: e.to_string(),
            code: EXIT_UNREACHABLE,
        },
        DemoError::Interrupted => Failure {
            message: e.to_string(),
            code: EXIT_INTERRUPTED,
        },
        _ => Failure::with_client_error(e.to_string(), e.client_error()),
    }
}

/// What `demo --json` prints.
fn outcome_json(outcome: &DemoOutcome) -> serde_json::Value {
    serde_json::json!({
        "addr": outcome.addr,
        "started_daemon": outcome.started_daemon,
        "model": outcome.model,
        "results": outcome.batch.results,
        "generated": outcome.batch.generated,
        "skipped": outcome.batch.skipped,
        "elapsed_s": outcome.elapsed.as_secs_f64(),
        "report": {
            "summary": outcome.report.summary,
            "csv": outcome.report.csv,
            "chart": outcome.report.chart,
        },
        "conditions": outcome.summary.conditions.iter().map(|c| serde_json::json!({
            "condition": c.condition,
            "outputs": c.outputs,
            "metrics": c.metrics.iter().map(|(m, v)| (m.as_str().to_owned(), v.mean))
                .collect::<BTreeMap<_, _>>(),
            "ttft_ms": c.ttft_ms,
            "tok_s": c.tok_s,
        })).collect::<Vec<_>>(),
    })
}

/// What `demo` prints: a headline, the table, and the files.
fn outcome_text(outcome: &DemoOutcome) -> String {
    format!(
        "\nsemkv demo: {} outputs on {} in {:.1} s{}\n\n{}\n\n\
         means per condition; reference NLL (nats/token of the reference answer, teacher-forced) and\n\
         interference: lower is better, the others: higher is better\n\
         report:  {}\n\
         chart:   {}\n\
         csv:     {}\n\
         results: {}",
        outcome.batch.generated + outcome.batch.skipped,
        outcome.model,
        outcome.elapsed.as_secs_f64(),
        if outcome.started_daemon {
            " (daemon started and stopped by the demo)"
        } else {
            ""
        },
        format_table(&outcome.summary),
        outcome.report.summary.display(),
        outcome.report.chart.display(),
        outcome.report.csv.display(),
        outcome.batch.results.display()
    )
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

/// The short table the demo prints: metric means per condition.
pub fn format_table(s: &Summary) -> String {
    let mut out = format!(
        "{:<11} {:>7} {:>13} {:>13} {:>10} {:>11} {:>12} {:>9} {:>7}",
        "condition",
        "outputs",
        "reference NLL",
        "interference",
        "own terms",
        "key phrases",
        "synthesis C",
        "TTFT ms",
        "tok/s"
    );
    for c in &s.conditions {
        let m = |metric| c.metrics.get(&metric).map(|m| m.mean);
        out.push_str(&format!(
            "\n{:<11} {:>7} {:>13} {:>13} {:>10} {:>11} {:>12} {:>9.0} {:>7.1}",
            c.condition.as_str(),
            c.outputs,
            cell(m(Metric::ReferenceNll)),
            cell(m(Metric::Interference)),
            cell(m(Metric::OwnCoverage)),
            cell(m(Metric::KeyPhraseCoverage)),
            cell(m(Metric::SynthesisCoverage)),
            c.ttft_ms,
            c.tok_s
        ));
    }
    out
}
