//! A real `semkvd` process on 127.0.0.1 with the tiny test model, helpers to drive it
//! over gRPC, and the tiny checkpoints loaded in-process for engine tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use semkv::proto::sem_kv_client::SemKvClient;
use semkv::proto::{self, generate_response::Event};
use tonic::transport::Channel;

pub type Client = SemKvClient<Channel>;

/// A tiny random Gemma 3 checkpoint from `tests/fixtures` (e.g. `tiny-gemma3-bf16`),
/// on the CPU, weights as stored.
pub fn tiny_engine(fixture: &str) -> semkv_engine::Engine {
    use semkv_engine::{device::DeviceChoice, model::weights::WeightFormat, Engine, LoadOptions};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let options = LoadOptions {
        device: DeviceChoice::Cpu,
        weights: WeightFormat::Native,
    };
    Engine::load_dir(&dir, &options).expect("load tiny model")
}

/// An array's values as f32, flattened.
pub fn to_vec(a: &mlx_rs::Array) -> Vec<f32> {
    a.as_dtype(mlx_rs::Dtype::Float32)
        .unwrap()
        .flatten(None, None)
        .unwrap()
        .as_slice::<f32>()
        .to_vec()
}

/// Largest absolute difference between two equally long vectors.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `n` token ids in the tiny models' vocabulary, different per `salt`.
pub fn prompt(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| 6 + (i * 7919 + salt * 104729) % 500)
        .collect()
}

pub fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gemma3-bf16")
}

/// A running daemon ([`semkv_client::LocalDaemon`] on the tiny model, on the CPU);
/// killed when dropped.
pub struct Daemon {
    inner: semkv_client::LocalDaemon,
    /// `127.0.0.1:<port>`.
    pub addr: String,
}

impl Daemon {
    /// Starts `semkvd` on a free port with its store in `data_dir`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_model(data_dir, &model_dir(), extra)
    }

    /// Like [`Daemon::start`] on another model (a checkpoint directory).
    pub fn start_with_model(data_dir: &Path, model: &Path, extra: &[&str]) -> Self {
        let inner = semkv_client::LocalDaemon::builder(data_dir)
            .bin(env!("CARGO_BIN_EXE_semkvd"))
            .model(model)
            .device("cpu")
            .args(extra)
            .env("RUST_LOG", "warn")
            .startup_timeout(Duration::from_secs(30))
            .start()
            .expect("start semkvd");
        let addr = inner.addr().to_owned();
        Self { inner, addr }
    }

    pub async fn client(&self) -> Client {
        SemKvClient::connect(self.inner.url())
            .await
            .expect("connect")
    }

    /// `kill -9`: no drain, no flush.
    pub fn kill9(self) {
        self.inner.kill9();
    }

    /// SIGTERM, then waits; returns whether it exited successfully.
    pub fn terminate(self) -> bool {
        self.inner.terminate()
    }
}

pub fn user(text: &str) -> proto::Turn {
    proto::Turn {
        role: proto::Role::User as i32,
        text: text.into(),
    }
}

/// Tokens in a cluster's cache, as the daemon reports them.
pub async fn cache_tokens(c: &mut Client, id: &str) -> u64 {
    c.get_cluster(proto::GetClusterRequest {
        cluster_id: id.into(),
    })
    .await
    .expect("get cluster")
    .into_inner()
    .cache_tokens
}

pub async fn create(c: &mut Client, id: &str) -> proto::Cluster {
    c.create_cluster(proto::CreateClusterRequest {
        cluster_id: id.into(),
        labels: Default::default(),
    })
    .await
    .expect("create")
    .into_inner()
}

pub async fn append(c: &mut Client, id: &str, text: &str) -> proto::AppendTurnsResponse {
    c.append_turns(proto::AppendTurnsRequest {
        cluster_id: id.into(),
        turns: vec![user(text)],
        format: proto::TurnFormat::Chat as i32,
    })
    .await
    .expect("append")
    .into_inner()
}

/// A greedy generation request of `n` tokens that ignores end-of-sequence.
pub fn greedy(id: &str, n: u32, commit: bool) -> proto::GenerateRequest {
    proto::GenerateRequest {
        cluster_id: id.into(),
        max_tokens: Some(n),
        commit,
        ignore_eos: true,
        ..Default::default()
    }
}

/// A greedy generation of `n` tokens without new text (raw format, no turns): the
/// model continues the cluster from its last token.
pub fn continue_greedy(id: &str, n: u32) -> proto::GenerateRequest {
    proto::GenerateRequest {
        format: proto::TurnFormat::Raw as i32,
        ..greedy(id, n, false)
    }
}

/// Runs a generation to the end: (streamed token ids, summary).
pub async fn generate(
    c: &mut Client,
    request: proto::GenerateRequest,
) -> Result<(Vec<u32>, proto::GenerateSummary), tonic::Status> {
    let mut stream = c.generate(request).await?.into_inner();
    let mut ids = Vec::new();
    while let Some(msg) = stream.message().await? {
        match msg.event {
            Some(Event::Token(t)) => ids.push(t.id),
            Some(Event::Done(s)) => return Ok((ids, s)),
            None => {}
        }
    }
    Err(tonic::Status::internal("stream ended without a summary"))
}

/// Forks `source` into `new_id` (keeping the source's labels).
pub async fn fork(c: &mut Client, source: &str, new_id: &str) -> proto::Cluster {
    c.fork_cluster(proto::ForkClusterRequest {
        source_cluster_id: source.into(),
        new_cluster_id: new_id.into(),
        labels: Default::default(),
    })
    .await
    .expect("fork")
    .into_inner()
}

/// Runs a generation to the end and returns its summary.
pub async fn summary(c: &mut Client, request: proto::GenerateRequest) -> proto::GenerateSummary {
    generate(c, request).await.expect("generate").1
}

/// The clusters of each forward pass that decoded, from the scheduler's trace.
pub async fn decode_passes(c: &mut Client) -> std::collections::HashMap<u64, Vec<String>> {
    let trace = c
        .get_scheduler_trace(proto::GetSchedulerTraceRequest { limit: 0 })
        .await
        .expect("trace")
        .into_inner();
    let mut passes: std::collections::HashMap<u64, Vec<String>> = Default::default();
    for s in trace.steps {
        if s.kind == proto::StepKind::Decode as i32 {
            passes.entry(s.pass).or_default().push(s.cluster_id);
        }
    }
    passes
}

/// Some text of roughly `words` words, different per `salt`.
pub fn text(words: usize, salt: u64) -> String {
    const WORDS: [&str; 16] = [
        "kernel", "orbit", "maple", "quartz", "river", "signal", "lantern", "harbor", "cobalt",
        "meadow", "vector", "tunnel", "ember", "prism", "falcon", "glacier",
    ];
    let mut x = salt
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..words)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            WORDS[(x >> 60) as usize]
        })
        .collect::<Vec<_>>()
        .join(" ")
}
