//! `semkv demo`: the main job in one command. Uses the daemon at `--addr` if one
//! answers, else starts `semkvd` on the default model (and stops it afterwards); runs
//! the bundled example through the four conditions; writes results and report.
//!
//! Starting the daemon is [`semkv_client::LocalDaemon`]'s job; what is CLI policy
//! stays here: where `semkv` looks for the binary ([`find_semkvd`]: `$SEMKVD` first),
//! where the demo's store goes ([`cache_dir`]), and the messages.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use semkv_client::{DaemonLog, LocalDaemon};

use crate::client::{self, ClientError, ClusterClient, GrpcClient, Sampling, TextFormat};
use crate::experiment::conditions::Condition;
use crate::experiment::dataset::{self, DatasetError};
use crate::experiment::report::{self, ReportError, ReportFiles, Summary};
use crate::experiment::results::{OutputRecord, ResultsIndex};
use crate::experiment::runner::{self, BatchSummary, RunConfig, RunError};

/// The bundled example (the prototype's software-engineering example).
pub const BUNDLED_EXAMPLE: &str =
    include_str!("../../../../data/semantic-isolation/validation_001_software_eng.json");
/// Its file name.
pub const BUNDLED_EXAMPLE_FILE: &str = "validation_001_software_eng.json";

/// The environment variable that names the `semkvd` binary the demo starts.
pub const SEMKVD_ENV: &str = "SEMKVD";

/// Why a local daemon could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// No `semkvd` binary was found.
    #[error(
        "cannot find the semkvd binary: looked for ${SEMKVD_ENV}, next to {exe}, and on PATH. \
         Build it with `cargo build --release` (it lands next to `semkv`), or start it \
         yourself and pass --addr"
    )]
    NotFound { exe: String },
    /// It was found but did not come up.
    #[error(transparent)]
    Start(#[from] semkv_client::DaemonError),
}

/// Looks for `semkvd`: `$SEMKVD`, then next to the running executable (where cargo
/// puts both binaries), then on `PATH`.
pub fn find_semkvd() -> Result<PathBuf, DaemonError> {
    if let Some(p) = std::env::var_os(SEMKVD_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    semkv_client::local::search_semkvd().ok_or_else(|| DaemonError::NotFound {
        exe: std::env::current_exe()
            .map_or_else(|_| "semkv".to_owned(), |p| p.display().to_string()),
    })
}

/// The default cache directory of semkv: `$SEMKV_CACHE_DIR`, else the platform's cache
/// directory plus `semkv` (where `semkvd` also keeps downloaded models).
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("SEMKV_CACHE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("semkv"),
    }
}

/// What `semkv demo` does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The daemon to use if one answers there.
    pub addr: String,
    /// Model of a daemon the demo starts.
    pub model: String,
    /// `--device` of a daemon the demo starts.
    pub device: Option<String>,
    /// Data directory of a daemon the demo starts (default: the cache dir's
    /// `demo-data`).
    pub data_dir: Option<PathBuf>,
    /// The `semkvd` binary to start (default: found next to `semkv` or on PATH).
    pub semkvd: Option<PathBuf>,
    /// Where results and report go.
    pub out: PathBuf,
    /// The dataset (default: the bundled example).
    pub dataset: Option<PathBuf>,
    /// Text format.
    pub format: TextFormat,
    /// Tokens per output.
    pub max_tokens: u32,
    /// Temperature.
    pub temperature: f32,
    /// Batch seed.
    pub seed: u64,
    /// Continue the results in `out` instead of starting over.
    pub resume: bool,
    /// Draw progress.
    pub progress: bool,
    /// How long a started daemon may take to listen.
    pub startup_timeout: Duration,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A daemon could not be started.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The daemon failed a call outside the batch.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The batch failed.
    #[error("{0}\nResults so far are kept; run `semkv demo --resume` (same --out) to continue.")]
    Run(#[from] RunError),
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The dataset could not be loaded.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Ctrl-C.
    #[error("interrupted; run `semkv demo --resume` to continue")]
    Interrupted,
}

impl DemoError {
    /// The daemon error behind this failure, if any.
    pub fn client_error(&self) -> Option<&ClientError> {
        match self {
            DemoError::Client(e) => Some(e),
            DemoError::Run(r) => r.client_error(),
            _ => None,
        }
    }
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The daemon's address.
    pub addr: String,
    /// Whether the demo started (and stopped) the daemon.
    pub started_daemon: bool,
    /// The daemon's model.
    pub model: String,
    /// The batch.
    pub batch: BatchSummary,
    /// The report's files.
    pub report: ReportFiles,
    /// The report's numbers.
    pub summary: Summary,
    /// Wall time of the whole demo, including starting the daemon.
    pub elapsed: Duration,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A spinner on stderr (hidden when stderr is not a terminal or `visible` is false).
fn spinner(visible: bool, message: String) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let s = ProgressBar::new_spinner();
    s.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").expect("template"),
    );
    s.set_message(message);
    s
}

/// Runs the demo. Progress and notes go to stderr.
pub async fn run(opts: &DemoOptions) -> Result<DemoOutcome, DemoError> {
    let started = Instant::now();
    std::fs::create_dir_all(&opts.out).map_err(io_err(&opts.out))?;
    let dataset_path = match &opts.dataset {
        Some(p) => p.clone(),
        None => {
            let dir = opts.out.join("dataset");
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            let file = dir.join(BUNDLED_EXAMPLE_FILE);
            std::fs::write(&file, BUNDLED_EXAMPLE).map_err(io_err(&file))?;
            file
        }
    };
    let examples = dataset::load(&dataset_path)?;

    // An already-running daemon is used as it is.
    let (client, local) = match client::connect(&opts.addr).await {
        Ok(c) => {
            let info = c.server_info().await?;
            eprintln!(
                "using the semkvd already running at {} (model {})",
                c.addr(),
                info.model
            );
            (c, None)
        }
        Err(ClientError::Unavailable { .. }) => {
            let (c, local) = start_daemon(opts).await?;
            (c, Some(local))
        }
        Err(e) => return Err(e.into()),
    };

    let result = batch(opts, &client, &examples).await;
    let addr = client.addr().to_owned();
    // Close the connection first: the daemon's graceful shutdown waits for open ones.
    drop(client);
    let started_daemon = local.is_some();
    if let Some(local) = local {
        let spin = spinner(
            opts.progress,
            "stopping the semkvd started for the demo".into(),
        );
        spin.enable_steady_tick(Duration::from_millis(200));
        local.terminate_async(Duration::from_secs(30)).await;
        spin.finish_and_clear();
    }
    let (batch, model) = result?;
    let report = report::write_report(&batch.results, &opts.out)?;
    let records: Vec<OutputRecord> = ResultsIndex::read(&batch.results)
        .map_err(ReportError::from)?
        .records()
        .cloned()
        .collect();
    Ok(DemoOutcome {
        addr,
        started_daemon,
        model,
        batch,
        report,
        summary: report::summarize(&records),
        elapsed: started.elapsed(),
    })
}

/// Starts `semkvd` for the demo (its log in the output directory) and connects to it.
async fn start_daemon(opts: &DemoOptions) -> Result<(GrpcClient, LocalDaemon), DemoError> {
    let semkvd = match &opts.semkvd {
        Some(p) => p.clone(),
        None => find_semkvd()?,
    };
    let data_dir = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| cache_dir().join("demo-data"));
    let log = opts.out.join("semkvd.log");
    let spin = spinner(
        opts.progress,
        format!(
            "starting semkvd --model {} (the first start downloads the model); log: {}",
            opts.model,
            log.display()
        ),
    );
    eprintln!(
        "no semkvd at {}; starting {} --model {} --data-dir {}",
        semkv_client::normalize_addr(&opts.addr),
        semkvd.display(),
        opts.model,
        data_dir.display()
    );
    let mut daemon = LocalDaemon::builder(data_dir)
        .bin(semkvd)
        .model(&opts.model)
        .args(["--log-format", "text"])
        .env("NO_COLOR", "1")
        .log(DaemonLog::File(log))
        .startup_timeout(opts.startup_timeout);
    if let Some(device) = &opts.device {
        daemon = daemon.device(device);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        daemon = daemon.env("RUST_LOG", "info");
    }
    let local = daemon.start_with_tick(|| spin.tick());
    spin.finish_and_clear();
    let local = local.map_err(DaemonError::from)?;
    eprintln!("semkvd is listening on {}", local.url());
    match client::connect(&local.url()).await {
        Ok(c) => Ok((c, local)),
        Err(e) => {
            local.terminate_async(Duration::from_secs(10)).await;
            Err(e.into())
        }
    }
}

/// The batch itself (interruptible with Ctrl-C).
async fn batch<C: ClusterClient>(
    opts: &DemoOptions,
    client: &C,
    examples: &[dataset::Example],
) -> Result<(BatchSummary, String), DemoError> {
    let model = client.server_info().await?.model;
    let results = opts.out.join("results.jsonl");
    if !opts.resume && results.exists() {
        eprintln!(
            "replacing the previous demo results in {}",
            results.display()
        );
        std::fs::remove_file(&results).map_err(io_err(&results))?;
    }
    let cfg = RunConfig {
        conditions: Condition::ALL.to_vec(),
        format: opts.format,
        seed: opts.seed,
        sampling: Sampling {
            temperature: opts.temperature,
            max_tokens: opts.max_tokens,
            ..Sampling::default()
        },
        cluster_prefix: "demo".to_owned(),
        keep_clusters: false,
        resume: opts.resume,
        progress: opts.progress,
        ..RunConfig::default()
    };
    eprintln!(
        "running {} example(s) x 4 conditions x 3 outputs on {model} ({} tokens per output, seed {})",
        examples.len(),
        opts.max_tokens,
        opts.seed
    );
    tokio::select! {
        r = runner::run_batch(client, examples, &cfg, &results) => Ok((r?, model)),
        _ = tokio::signal::ctrl_c() => Err(DemoError::Interrupted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_example_is_valid() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join(BUNDLED_EXAMPLE_FILE);
        std::fs::write(&f, BUNDLED_EXAMPLE).unwrap();
        let ex = dataset::load(&f).unwrap();
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].id, "validation_001_software_eng");
    }
}
