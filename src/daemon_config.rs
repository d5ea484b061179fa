//! `semkvd` settings: command-line flags, `SEMKV_*` environment variables and an
//! optional TOML file, in that order of precedence, over built-in defaults.
//!
//! ```toml
//! # semkvd.toml
//! listen = "127.0.0.1:50051"
//! data_dir = "/var/lib/semkv"
//! model = "/models/gemma-3-270m-it"
//! max_cache_bytes = "2GiB"
//! queue_depth = 64
//! max_batch = 16
//! log_format = "json"
//! max_store_bytes = "50GiB"
//! min_free_bytes = "1GiB"
//! store_permissions = "private"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use semkv_engine::device::DeviceChoice;

use crate::scheduler::StepCharge;
use crate::store::{Permissions, StoreOptions};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Errors in the settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no model: pass --model (a checkpoint directory, a .gguf file or a model name), set SEMKV_MODEL, or `model` in the config file")]
    NoModel,
    #[error("{0}")]
    Cli(#[from] clap::Error),
}

/// Command-line flags (each also read from its environment variable).
#[derive(Debug, Default, Parser)]
#[command(
    name = "semkvd",
    version,
    about = "semkv daemon: isolated, persistent KV caches per semantic cluster, over gRPC"
)]
pub struct Cli {
    /// TOML config file (flags and environment variables override it).
    #[arg(long, env = "SEMKV_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:50051]; port 0 picks a free port.
    #[arg(long, env = "SEMKV_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the persistent store [default: ./semkv-data].
    #[arg(long, env = "SEMKV_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The model: checkpoint directory, .gguf file, Hugging Face repo id, or a name
    /// (`gemma-3-270m`, `smollm2-135m-instruct`: `semkv model list`) [default:
    /// gemma-3-270m].
    #[arg(long, env = "SEMKV_MODEL")]
    pub model: Option<String>,
    /// auto, cpu or gpu [default: auto].
    #[arg(long, env = "SEMKV_DEVICE")]
    pub device: Option<String>,
    /// Memory budget for in-memory caches, e.g. 2GiB (0 = unlimited) [default: 0].
    /// Least recently used clusters past it are evicted to disk.
    #[arg(long, env = "SEMKV_MAX_CACHE_BYTES")]
    pub max_cache_bytes: Option<String>,
    /// Requests (appends, generations) admitted at once; more get UNAVAILABLE
    /// [default: 64].
    #[arg(long, env = "SEMKV_QUEUE_DEPTH")]
    pub queue_depth: Option<usize>,
    /// Tokens per prefill step [default: 128].
    #[arg(long, env = "SEMKV_PREFILL_CHUNK")]
    pub prefill_chunk: Option<usize>,
    /// How many prefill tokens one decode step is worth to the scheduler [default: 32].
    #[arg(long, env = "SEMKV_DECODE_WEIGHT")]
    pub decode_weight: Option<u32>,
    /// What the scheduler charges a prefill step: time (what it took, in decode
    /// steps: long-context chunks cost more) or tokens (its token count)
    /// [default: time].
    #[arg(long, env = "SEMKV_STEP_CHARGE")]
    pub step_charge: Option<StepCharge>,
    /// Most clusters whose decode steps run as one batched forward pass; 1 turns
    /// batching off [default: 16].
    #[arg(long, env = "SEMKV_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// text or json [default: text].
    #[arg(long, env = "SEMKV_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// How long to wait for running requests on shutdown, e.g. 30s [default: 30s].
    #[arg(long, env = "SEMKV_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<String>,
    /// Most client connections open at once; more wait in the listen backlog until
    /// one closes [default: 1024].
    #[arg(long, env = "SEMKV_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most tokens one cluster may hold (0: the model's positions, also the upper
    /// bound); requests past it get OUT_OF_RANGE before any work [default: 0].
    #[arg(long, env = "SEMKV_MAX_CONTEXT_TOKENS")]
    pub max_context_tokens: Option<usize>,
    /// Most bytes of freed buffers MLX keeps for reuse, e.g. 1GiB [default: 1GiB]; it
    /// is also emptied whenever caches are evicted or deleted.
    #[arg(long, env = "SEMKV_MLX_CACHE_BYTES")]
    pub mlx_cache_bytes: Option<String>,
    /// Most bytes the store may hold, e.g. 50GiB (0 = no limit); writes past it get
    /// RESOURCE_EXHAUSTED, reads and deletes keep working [default: 0].
    #[arg(long, env = "SEMKV_MAX_STORE_BYTES")]
    pub max_store_bytes: Option<String>,
    /// Free space to keep on the store's filesystem; writes that would leave less get
    /// RESOURCE_EXHAUSTED instead of filling the disk [default: 64MiB].
    #[arg(long, env = "SEMKV_MIN_FREE_BYTES")]
    pub min_free_bytes: Option<String>,
    /// Who may read the store: private (directories 0700, files 0600) or group
    /// (0750, 0640) [default: private].
    #[arg(long, env = "SEMKV_STORE_PERMISSIONS")]
    pub store_permissions: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `semkvd` does besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Salvage every readable cluster of the store in --data-dir into a fresh store
    /// (the damaged database is kept aside), report what was lost, and exit. Needs no
    /// model; caches whose blobs fail a check are rebuilt from their token logs on
    /// first use.
    Repair,
}

/// A size: bytes, or text with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// The TOML file's keys (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    model: Option<String>,
    device: Option<String>,
    max_cache_bytes: Option<SizeValue>,
    queue_depth: Option<usize>,
    prefill_chunk: Option<usize>,
    decode_weight: Option<u32>,
    step_charge: Option<StepCharge>,
    max_batch: Option<usize>,
    log_format: Option<LogFormat>,
    drain_timeout: Option<String>,
    max_context_tokens: Option<usize>,
    max_connections: Option<usize>,
    mlx_cache_bytes: Option<SizeValue>,
    max_store_bytes: Option<SizeValue>,
    min_free_bytes: Option<SizeValue>,
    store_permissions: Option<String>,
}

/// The daemon's resolved settings.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub model: String,
    pub device: DeviceChoice,
    /// 0 = unlimited.
    pub max_cache_bytes: u64,
    pub queue_depth: usize,
    pub prefill_chunk: usize,
    pub decode_weight: u32,
    /// What the scheduler charges a prefill step.
    pub step_charge: StepCharge,
    /// Most decode steps batched into one forward pass.
    pub max_batch: usize,
    pub log_format: LogFormat,
    pub drain_timeout: Duration,
    /// Most tokens per cluster (0: the model's positions).
    pub max_context_tokens: usize,
    /// Most client connections at once.
    pub max_connections: usize,
    /// Most bytes of MLX's buffer cache.
    pub mlx_cache_bytes: u64,
    /// Budget, reserve and permissions of the store.
    pub store: StoreOptions,
}

/// Parses `512MiB`, `2GiB`, `1.5GB`, `1000` (bytes). Decimal units (kB, MB, GB, TB)
/// are powers of 1000, binary ones (KiB, MiB, GiB, TiB, and K, M, G, T) of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512MiB, 2GiB, 1000000)"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0f64.powi(4),
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    Ok((number * factor).round() as u64)
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

impl DaemonConfig {
    /// Settings from the process's arguments, environment and config file.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::resolve(Cli::try_parse()?)
    }

    /// Settings from `args` (the first is the program name), the environment and the
    /// config file.
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::resolve(Cli::try_parse_from(args)?)
    }

    /// The data directory and store options alone (for `semkvd repair`, which needs no
    /// model).
    pub fn store_only(cli: &Cli) -> Result<(PathBuf, StoreOptions), ConfigError> {
        let file = load_file(cli)?;
        let store = store_options(cli, &file)?;
        Ok((data_dir(cli.data_dir.clone(), &file), store))
    }

    /// Merges flags over the config file over defaults, and checks the result.
    pub fn resolve(cli: Cli) -> Result<Self, ConfigError> {
        let file = load_file(&cli)?;
        let store = store_options(&cli, &file)?;
        let data_dir = data_dir(cli.data_dir.clone(), &file);
        let model = cli.model.or(file.model).ok_or(ConfigError::NoModel)?;
        let device = match cli.device.or(file.device) {
            None => DeviceChoice::Auto,
            Some(d) => d.parse().map_err(|e: String| invalid("device", e))?,
        };
        let max_cache_bytes = size(
            "max_cache_bytes",
            &cli.max_cache_bytes,
            &file.max_cache_bytes,
            0,
        )?;
        let queue_depth = cli.queue_depth.or(file.queue_depth).unwrap_or(64);
        if queue_depth == 0 {
            return Err(invalid("queue_depth", "must be at least 1"));
        }
        let prefill_chunk = cli.prefill_chunk.or(file.prefill_chunk).unwrap_or(128);
        if prefill_chunk == 0 {
            return Err(invalid("prefill_chunk", "must be at least 1"));
        }
        let decode_weight = cli.decode_weight.or(file.decode_weight).unwrap_or(32);
        if decode_weight == 0 {
            return Err(invalid("decode_weight", "must be at least 1"));
        }
        if cli.max_connections.or(file.max_connections) == Some(0) {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        let max_batch = cli.max_batch.or(file.max_batch).unwrap_or(16);
        if max_batch == 0 {
            return Err(invalid("max_batch", "must be at least 1"));
        }
        let drain_timeout = match cli.drain_timeout.or(file.drain_timeout) {
            None => Duration::from_secs(30),
            Some(s) => humantime::parse_duration(&s)
                .map_err(|e| invalid("drain_timeout", e.to_string()))?,
        };
        Ok(Self {
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051))),
            data_dir,
            model,
            device,
            max_cache_bytes,
            queue_depth,
            prefill_chunk,
            decode_weight,
            step_charge: cli.step_charge.or(file.step_charge).unwrap_or_default(),
            max_batch,
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
            drain_timeout,
            max_context_tokens: cli
                .max_context_tokens
                .or(file.max_context_tokens)
                .unwrap_or(0),
            max_connections: cli.max_connections.or(file.max_connections).unwrap_or(1024),
            mlx_cache_bytes: size(
                "mlx_cache_bytes",
                &cli.mlx_cache_bytes,
                &file.mlx_cache_bytes,
                1 << 30,
            )?,
            store,
        })
    }
}

fn load_file(cli: &Cli) -> Result<FileConfig, ConfigError> {
    let Some(path) = &cli.config else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })
}

fn data_dir(flag: Option<PathBuf>, file: &FileConfig) -> PathBuf {
    flag.or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("semkv-data"))
}

/// A size from its flag, else the file, else `default`.
fn size(
    field: &'static str,
    flag: &Option<String>,
    file: &Option<SizeValue>,
    default: u64,
) -> Result<u64, ConfigError> {
    match (flag, file) {
        (Some(s), _) | (None, Some(SizeValue::Text(s))) => {
            parse_size(s).map_err(|e| invalid(field, e))
        }
        (None, Some(SizeValue::Bytes(b))) => Ok(*b),
        (None, None) => Ok(default),
    }
}

fn store_options(cli: &Cli, file: &FileConfig) -> Result<StoreOptions, ConfigError> {
    let permissions = match cli
        .store_permissions
        .as_ref()
        .or(file.store_permissions.as_ref())
    {
        None => Permissions::default(),
        Some(p) => p
            .parse()
            .map_err(|e: String| invalid("store_permissions", e))?,
    };
    Ok(StoreOptions {
        max_bytes: size(
            "max_store_bytes",
            &cli.max_store_bytes,
            &file.max_store_bytes,
            0,
        )?,
        min_free_bytes: size(
            "min_free_bytes",
            &cli.min_free_bytes,
            &file.min_free_bytes,
            64 << 20,
        )?,
        permissions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5 MB").unwrap(), 1_500_000);
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn flags_override_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("semkvd.toml");
        std::fs::write(
            &path,
            "model = \"m\"\nqueue_depth = 3\nmax_cache_bytes = \"1KiB\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let c = DaemonConfig::from_args([
            "semkvd",
            "--config",
            path.to_str().unwrap(),
            "--queue-depth",
            "5",
        ])
        .unwrap();
        assert_eq!(c.model, "m");
        assert_eq!(c.queue_depth, 5);
        assert_eq!(c.max_cache_bytes, 1024);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 50051)));
        assert_eq!(c.max_batch, 16);
        std::fs::write(&path, "model = \"m\"\nmax_batch = 4\n").unwrap();
        let c = DaemonConfig::from_args(["semkvd", "--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(c.max_batch, 4);
        let e = DaemonConfig::from_args([
            "semkvd",
            "--config",
            path.to_str().unwrap(),
            "--max-batch",
            "0",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("max_batch"), "{e}");
        std::fs::write(&path, "modle = \"typo\"\n").unwrap();
        let e = DaemonConfig::from_args(["semkvd", "--config", path.to_str().unwrap()]);
        assert!(matches!(e, Err(ConfigError::Parse { .. })));
    }
}
