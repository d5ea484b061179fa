//! `experiment validate|run|report`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::block_on;
use crate::cli::{ExperimentCommand, RunArgs};
use crate::client::{self, ClusterClient, Sampling};
use crate::exit::Failure;
use crate::experiment::dataset::{self, Example};
use crate::experiment::results::ResultsIndex;
use crate::experiment::runner::{self, RunConfig, RunError};
use crate::experiment::{report, schema};
use crate::output::Printer;

/// Runs one `experiment` subcommand; `run` talks to the daemon at `addr`.
pub fn run<W: Write>(
    addr: &str,
    command: ExperimentCommand,
    p: &mut Printer<W>,
) -> Result<(), Failure> {
    match command {
        ExperimentCommand::Validate { paths } => validate(&paths, p),
        ExperimentCommand::Report { results, out } => report(&results, &out, p),
        ExperimentCommand::Run(r) => {
            // The dataset is checked before the daemon is contacted.
            let examples = select_examples(&r)?;
            block_on(async {
                let client = client::connect(addr).await?;
                run_batch(&client, r, examples, p).await
            })
        }
    }
}

/// `experiment validate`: every problem, then a count per path; exit 1 with problems.
pub fn validate<W: Write>(paths: &[PathBuf], p: &mut Printer<W>) -> Result<(), Failure> {
    let mut reports = Vec::new();
    for path in paths {
        reports.push((path, dataset::validate_path(path)?));
    }
    let problems: Vec<&schema::Problem> = reports.iter().flat_map(|(_, r)| &r.problems).collect();
    let doc = || {
        serde_json::json!({
            "files": reports.iter().map(|(_, r)| r.files.len()).sum::<usize>(),
            "examples": reports.iter().map(|(_, r)| r.examples).sum::<usize>(),
            "problems": problems.iter().map(|p| serde_json::json!({
                "file": p.file, "path": p.path, "message": p.message,
            })).collect::<Vec<_>>(),
        })
    };
    p.emit_with(doc, || {
        let problem_lines = problems.iter().map(|p| p.to_string());
        let count_lines = reports.iter().map(|(path, r)| {
            format!(
                "{}: {} file(s), {} example(s), {} problem(s)",
                path.display(),
                r.files.len(),
                r.examples,
                r.problems.len()
            )
        });
        problem_lines
            .chain(count_lines)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(""))
    }
}

/// `experiment report`: writes the report files and names them.
pub fn report<W: Write>(results: &Path, out: &Path, p: &mut Printer<W>) -> Result<(), Failure> {
    let files = report::write_report(results, out).map_err(|e| Failure::new(e.to_string()))?;
    let doc = || {
        serde_json::json!({
            "summary": files.summary, "csv": files.csv, "chart": files.chart,
        })
    };
    p.emit_with(doc, || {
        format!(
            "summary: {}\ncsv:     {}\nchart:   {}",
            files.summary.display(),
            files.csv.display(),
            files.chart.display()
        )
    })?;
    Ok(())
}

/// Loads the dataset of `experiment run` and applies `--example` and `--limit`.
fn select_examples(r: &RunArgs) -> Result<Vec<Example>, Failure> {
    let mut examples = dataset::load(&r.dataset)?;
    if !r.examples.is_empty() {
        for id in &r.examples {
            if !examples.iter().any(|e| &e.id == id) {
                return Err(Failure::new(format!(
                    "no example {id:?} in {}",
                    r.dataset.display()
                )));
            }
        }
        examples.retain(|e| r.examples.contains(&e.id));
    }
    if let Some(n) = r.limit {
        examples.truncate(n);
    }
    Ok(examples)
}

/// The runner's settings for `experiment run`.
fn run_config(r: &RunArgs, json: bool) -> RunConfig {
    RunConfig {
        conditions: r.conditions.clone(),
        format: r.format,
        seed: r.seed,
        sampling: Sampling {
            temperature: r.temperature,
            max_tokens: r.max_tokens,
            ..Sampling::default()
        },
        cluster_prefix: r.cluster_prefix.clone(),
        keep_clusters: r.keep_clusters,
        resume: r.resume,
        progress: !r.no_progress && !json,
        concurrency: r.concurrency as usize,
    }
}

/// A failed batch as a failure: exit 3 when the daemon was lost, and a hint to resume
/// when results were being written.
fn run_failure(e: RunError, out: &Path) -> Failure {
    let hint = match &e {
        RunError::Client { .. } => format!(
            "\nResults so far are in {}; run the same command with --resume to continue.",
            out.display()
        ),
        _ => String::new(),
    };
    Failure::with_client_error(format!("{e}{hint}"), e.client_error())
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM; returns which.
async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted (Ctrl-C)",
                _ = term.recv() => "stopped (SIGTERM)",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "interrupted (Ctrl-C)"
}

/// After a signal: the batch is already stopped (its requests cancelled); deletes the
/// batch's throwaway forks (and its contexts unless `--keep-clusters`), and says how
/// to continue.
async fn stop_after_signal<C: ClusterClient>(
    client: &C,
    cfg: &RunConfig,
    out: &Path,
    what: &str,
) -> Failure {
    let mut deleted = 0;
    let mut left = Vec::new();
    let ours = runner::batch_clusters(client, &cfg.cluster_prefix, cfg.keep_clusters).await;
    for id in ours.unwrap_or_default() {
        match client.delete_cluster(&id).await {
            Ok(()) => deleted += 1,
            Err(_) => left.push(id),
        }
    }
    let recorded = ResultsIndex::read(out).map(|i| i.len()).unwrap_or(0);
    let mut args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    let left = if left.is_empty() {
        String::new()
    } else {
        format!(
            " ({} could not be deleted: {})",
            left.len(),
            left.join(", ")
        )
    };
    Failure {
        message: format!(
            "{what}: {recorded} output(s) are recorded in {}; {deleted} temporary cluster(s) deleted{left}. \
             Continue with:\n  {}",
            out.display(),
            args.join(" ")
        ),
        code: crate::exit::EXIT_INTERRUPTED,
    }
}

/// `experiment run`: the batch, then (with `--report`) the report.
async fn run_batch<C: ClusterClient, W: Write>(
    client: &C,
    r: RunArgs,
    examples: Vec<Example>,
    p: &mut Printer<W>,
) -> Result<(), Failure> {
    let cfg = run_config(&r, p.json);
    let summary = tokio::select! {
        done = runner::run_batch(client, &examples, &cfg, &r.out) => {
            done.map_err(|e| run_failure(e, &r.out))?
        }
        signal = interrupted() => return Err(stop_after_signal(client, &cfg, &r.out, signal).await),
    };
    let report = match &r.report {
        Some(dir) => Some(
            report::write_report(&summary.results, dir).map_err(|e| Failure::new(e.to_string()))?,
        ),
        None => None,
    };
    let doc = || {
        serde_json::json!({
            "results": summary.results,
            "generated": summary.generated,
            "skipped": summary.skipped,
            "elapsed_s": summary.elapsed.as_secs_f64(),
            "report": report.as_ref().map(|f| &f.summary),
        })
    };
    p.emit_with(doc, || {
        let report_line = match &report {
            Some(f) => format!("report: {}", f.summary.display()),
            None => format!(
                "report: semkv experiment report {} --out report",
                summary.results.display()
            ),
        };
        format!(
            "{} outputs generated, {} already done, in {:.1} s; results: {}\n{report_line}",
            summary.generated,
            summary.skipped,
            summary.elapsed.as_secs_f64(),
            summary.results.display()
        )
    })?;
    Ok(())
}
