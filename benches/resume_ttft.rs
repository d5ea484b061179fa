//! What a cached cluster buys: time to first token cold (prefill) vs warm (cache in
//! memory) vs restored (cache read back from sled after a `kill -9` restart) — each
//! for a 1-token prompt (one forward pass before the first token) and for a plain
//! continuation (no new text: the first token comes from the logits kept with the
//! cache, as in llama.cpp's saved sequence state) — cache
//! persist / restore throughput against the disk's sequential read bandwidth measured
//! in the same run, and 1 / 4 / 8 clusters generating at once (per-cluster tok/s,
//! Jain's fairness index, aggregate tok/s). Everything goes through a real `semkvd`
//! over gRPC.
//!
//! ```text
//! cargo bench --bench resume_ttft -- [--model gemma-3-270m] [--sizes 1024,2048,4096]
//!     [--device auto|cpu|gpu] [--gen 32] [--json OUT.json]
//! ```
//! Before the restart, the store's files are dropped from the page cache
//! (`posix_fadvise(DONTNEED)`), so "restored" reads from the disk. Times to first token
//! are taken by the client: from sending the request to receiving the first token
//! (gRPC, queueing, a lazy load from sled and the model's work included).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use semkv::proto::sem_kv_client::SemKvClient;
use semkv::proto::{self, generate_response::Event};
use tonic::transport::Channel;

use common::filler;

mod common;

type Client = SemKvClient<Channel>;

struct Args {
    model: String,
    sizes: Vec<usize>,
    device: String,
    gen: u32,
    json: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        model: "gemma-3-270m".into(),
        sizes: vec![1024, 2048, 4096],
        device: "auto".into(),
        gen: 32,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = value(),
            "--sizes" => {
                a.sizes = value()
                    .split(',')
                    .map(|s| s.parse().expect("--sizes"))
                    .collect()
            }
            "--device" => a.device = value(),
            "--gen" => a.gen = value().parse().expect("--gen"),
            "--json" => a.json = Some(value()),
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// A `semkvd` ([`semkv_client::LocalDaemon`]); killed when dropped.
struct Daemon(semkv_client::LocalDaemon);

impl Daemon {
    fn start(args: &Args, data_dir: &Path) -> Daemon {
        // SEMKVD_BIN: the daemon binary when this bench runs away from its build tree.
        let bin = std::env::var_os(semkv_client::local::SEMKVD_BIN_ENV)
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_semkvd").into());
        let daemon = semkv_client::LocalDaemon::builder(data_dir)
            .bin(bin)
            .model(&args.model)
            .device(&args.device)
            .env("RUST_LOG", "warn")
            // The first start may download the model.
            .startup_timeout(std::time::Duration::from_secs(900))
            .start()
            .expect("start semkvd");
        Daemon(daemon)
    }

    async fn client(&self) -> Client {
        SemKvClient::connect(self.0.url()).await.expect("connect")
    }

    fn kill9(self) {
        self.0.kill9();
    }
}

fn raw(text: &str) -> proto::Turn {
    proto::Turn {
        role: proto::Role::User as i32,
        text: text.to_owned(),
    }
}

async fn create(c: &mut Client, id: &str) {
    c.create_cluster(proto::CreateClusterRequest {
        cluster_id: id.into(),
        ..Default::default()
    })
    .await
    .expect("create");
}

async fn append(c: &mut Client, id: &str, text: &str) -> proto::AppendTurnsResponse {
    let req = proto::AppendTurnsRequest {
        cluster_id: id.into(),
        turns: vec![raw(text)],
        format: proto::TurnFormat::Raw as i32,
    };
    c.append_turns(req).await.expect("append").into_inner()
}

async fn generate(
    c: &mut Client,
    id: &str,
    prompt: &str,
    max_tokens: u32,
) -> proto::GenerateSummary {
    timed_generate(c, id, prompt, max_tokens).await.0
}

/// Runs a raw-format generation (an empty `prompt` continues the cluster); returns the
/// summary and the time from sending the request to receiving the first token (ms).
async fn timed_generate(
    c: &mut Client,
    id: &str,
    prompt: &str,
    max_tokens: u32,
) -> (proto::GenerateSummary, f64) {
    let req = proto::GenerateRequest {
        cluster_id: id.into(),
        turns: if prompt.is_empty() {
            Vec::new()
        } else {
            vec![raw(prompt)]
        },
        format: proto::TurnFormat::Raw as i32,
        max_tokens: Some(max_tokens),
        ignore_eos: true,
        ..Default::default()
    };
    let sent = Instant::now();
    let mut first = None;
    let mut stream = c.generate(req).await.expect("generate").into_inner();
    while let Some(msg) = stream.message().await.expect("stream") {
        match msg.event {
            Some(Event::Token(_)) => {
                first.get_or_insert_with(|| sent.elapsed().as_secs_f64() * 1e3);
            }
            Some(Event::Done(done)) => {
                let ttft = first.expect("a token before the summary");
                return (done, ttft);
            }
            None => {}
        }
    }
    panic!("stream ended without a summary")
}

/// The first request on a cold cluster: drops the store's pages first (so the restore
/// reads from the disk, not from pages an earlier one brought in), checks the cache was
/// loaded as stored, and returns (time to first token, load ms, reused tokens).
async fn restore(c: &mut Client, store: &Path, id: &str, prompt: &str) -> (f64, f64, u64) {
    drop_page_cache(store);
    let (restored, ms) = timed_generate(c, id, prompt, 1).await;
    let load = restored.cache_load.expect("load report");
    assert!(
        load.loaded_from_disk && load.rebuilt_tokens == 0,
        "{load:?}"
    );
    (ms, load.load_ms, restored.reused_tokens)
}

async fn fork(c: &mut Client, from: &str, to: &str) {
    c.fork_cluster(proto::ForkClusterRequest {
        source_cluster_id: from.into(),
        new_cluster_id: to.into(),
        labels: Default::default(),
    })
    .await
    .expect("fork");
}

/// Drops a directory's files from the page cache, so the next read comes from disk.
fn drop_page_cache(dir: &Path) {
    for entry in walk(dir) {
        if let Ok(f) = std::fs::File::open(&entry) {
            use std::os::fd::AsRawFd;
            let _ = f.sync_all();
            // SAFETY: advisory call on an open descriptor.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Sequential read bandwidth of the disk under `dir` in MB/s (512 MiB, uncached).
fn disk_read_mb_s(dir: &Path) -> f64 {
    let path = dir.join("disk-probe.bin");
    let block = vec![0x5au8; 8 << 20];
    let mut f = std::fs::File::create(&path).expect("probe file");
    for _ in 0..64 {
        f.write_all(&block).expect("write probe");
    }
    drop(f);
    drop_page_cache(dir);
    let mut f = std::fs::File::open(&path).expect("open probe");
    let mut buf = vec![0u8; 8 << 20];
    let start = Instant::now();
    let mut total = 0usize;
    loop {
        let n = f.read(&mut buf).expect("read probe");
        if n == 0 {
            break;
        }
        total += n;
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).ok();
    total as f64 / 1e6 / secs
}

fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let sq: f64 = xs.iter().map(|x| x * x).sum();
    sum * sum / (xs.len() as f64 * sq)
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = disk_read_mb_s(dir.path());
    let daemon = Daemon::start(&args, dir.path());
    let mut c = daemon.client().await;
    let info = c
        .get_server_info(proto::GetServerInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    println!("model {}  device {}", info.model, info.device);
    // Warm up the model (first calls allocate).
    create(&mut c, "warmup").await;
    generate(&mut c, "warmup", &filler(64, 0), 2).await;

    struct Row {
        tokens: u64,
        cold_ms: f64,
        /// 1-token prompt on the cache in memory / restored from sled.
        warm_ms: f64,
        restored_ms: f64,
        /// No new text: the first token from the kept logits.
        warm_continue_ms: f64,
        restored_continue_ms: f64,
        persist_ms: f64,
        cache_bytes: u64,
        load_ms: f64,
        continue_load_ms: f64,
        reused: u64,
    }
    let mut rows = Vec::new();
    for (i, &n) in args.sizes.iter().enumerate() {
        let text = filler(n, i + 1);
        let cold_id = format!("cold-{n}");
        create(&mut c, &cold_id).await;
        let (_, cold_ms) = timed_generate(&mut c, &cold_id, &text, 1).await;
        let id = format!("ctx-{n}");
        create(&mut c, &id).await;
        let appended = append(&mut c, &id, &text).await;
        // A twin for the continuation after the restart (same stored cache).
        fork(&mut c, &id, &format!("cont-{n}")).await;
        let (_, warm_ms) = timed_generate(&mut c, &id, " and", 1).await;
        let (warm_continue, warm_continue_ms) = timed_generate(&mut c, &id, "", 1).await;
        assert_eq!(warm_continue.prompt_tokens, 0);
        let cluster = c
            .get_cluster(proto::GetClusterRequest {
                cluster_id: id.clone(),
            })
            .await
            .expect("get")
            .into_inner();
        rows.push(Row {
            tokens: appended.total_tokens,
            cold_ms,
            warm_ms,
            restored_ms: 0.0,
            warm_continue_ms,
            restored_continue_ms: 0.0,
            persist_ms: appended.persist_ms,
            cache_bytes: cluster.cache_bytes,
            load_ms: 0.0,
            continue_load_ms: 0.0,
            reused: 0,
        });
    }
    drop(c);
    daemon.kill9();
    drop_page_cache(dir.path());
    let daemon = Daemon::start(&args, dir.path());
    let mut c = daemon.client().await;
    // The new process's first forward passes allocate; that is paid once per process,
    // not per cluster, so it stays out of the restored times.
    generate(&mut c, "warmup", " and", 2).await;
    for (row, &n) in rows.iter_mut().zip(&args.sizes) {
        let (ms, load_ms, reused) = restore(&mut c, dir.path(), &format!("ctx-{n}"), " and").await;
        (row.restored_ms, row.load_ms, row.reused) = (ms, load_ms, reused);
        let (ms, load_ms, _) = restore(&mut c, dir.path(), &format!("cont-{n}"), "").await;
        (row.restored_continue_ms, row.continue_load_ms) = (ms, load_ms);
    }

    println!("\n## Time to first token (ms, at the client): cold prefill vs cached\n");
    println!("1-token prompt: one forward pass before the first token. Continue: no new text, the first token comes from the logits kept with the cache.\n");
    println!("| cluster tokens | cold | warm 1-token | restored 1-token | warm continue | restored continue | cold/warm | cold/restored | cold/warm continue | cold/restored continue | reused |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}x | {:.1}x | {:.0}x | {:.0}x | {} |",
            r.tokens,
            r.cold_ms,
            r.warm_ms,
            r.restored_ms,
            r.warm_continue_ms,
            r.restored_continue_ms,
            r.cold_ms / r.warm_ms,
            r.cold_ms / r.restored_ms,
            r.cold_ms / r.warm_continue_ms,
            r.cold_ms / r.restored_continue_ms,
            r.reused
        );
    }
    println!("\n## Cache persistence (disk sequential read {disk:.0} MB/s, same run)\n");
    println!("| cluster tokens | cache MB | persist MB/s | restore MB/s | restore / disk read |");
    println!("|---:|---:|---:|---:|---:|");
    for r in &rows {
        let mb = r.cache_bytes as f64 / 1e6;
        let restore = mb / (r.load_ms / 1e3);
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {:.2} |",
            r.tokens,
            mb,
            mb / (r.persist_ms / 1e3),
            restore,
            restore / disk
        );
    }

    println!(
        "\n## Clusters generating at once ({} tokens each)\n",
        args.gen
    );
    println!("(per-cluster tok/s: tokens / request wall time, first token included; decode tok/s: the daemon's own figure after the first token)\n");
    println!("| clusters | per-cluster tok/s (min..max) | Jain fairness | aggregate tok/s | aggregate / 1 cluster | decode tok/s per stream (mean) |");
    println!("|---:|---|---:|---:|---:|---:|");
    let mut concurrency = Vec::new();
    let mut single = None;
    for k in [1usize, 4, 8, 16] {
        for j in 0..k {
            let id = format!("par-{k}-{j}");
            create(&mut c, &id).await;
            append(&mut c, &id, &filler(128, 100 + j)).await;
        }
        // Untimed, all k at once: first-use work (e.g. GPU kernel compilation for this
        // batch size) stays out of the table.
        let warmups: Vec<_> = (0..k)
            .map(|j| {
                let mut c = c.clone();
                tokio::spawn(
                    async move { generate(&mut c, &format!("par-{k}-{j}"), " and", 4).await },
                )
            })
            .collect();
        for w in warmups {
            w.await.expect("warm-up");
        }
        let start = Instant::now();
        let tasks: Vec<_> = (0..k)
            .map(|j| {
                let mut c = c.clone();
                let gen = args.gen;
                tokio::spawn(async move {
                    let t = Instant::now();
                    let s = generate(&mut c, &format!("par-{k}-{j}"), " and", gen).await;
                    (
                        s.tokens.len() as f64 / t.elapsed().as_secs_f64(),
                        s.tokens_per_second,
                    )
                })
            })
            .collect();
        let mut rates = Vec::new();
        let mut decode_rates = Vec::new();
        for t in tasks {
            let (rate, decode) = t.await.expect("task");
            rates.push(rate);
            decode_rates.push(decode);
        }
        let decode_mean = decode_rates.iter().sum::<f64>() / k as f64;
        let wall = start.elapsed().as_secs_f64();
        let aggregate = (k as f64 * args.gen as f64) / wall;
        let (lo, hi) = rates
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        let base = *single.get_or_insert(aggregate);
        println!(
            "| {k} | {lo:.1}..{hi:.1} | {:.3} | {aggregate:.1} | {:.2}x | {decode_mean:.1} |",
            jain(&rates),
            aggregate / base
        );
        concurrency.push(serde_json::json!({"clusters": k, "rates": rates, "jain": jain(&rates),
            "aggregate_tok_s": aggregate, "vs_one_cluster": aggregate / base, "decode_tok_s": decode_rates}));
    }
    if let Some(path) = &args.json {
        let ttft: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"tokens": r.tokens, "cold_ms": r.cold_ms, "warm_ms": r.warm_ms,
                "restored_ms": r.restored_ms, "warm_continue_ms": r.warm_continue_ms,
                "restored_continue_ms": r.restored_continue_ms, "load_ms": r.load_ms,
                "continue_load_ms": r.continue_load_ms, "persist_ms": r.persist_ms,
                "cache_bytes": r.cache_bytes, "reused": r.reused, "ttft_measured_at": "client"})
            })
            .collect();
        let report = serde_json::json!({"model": info.model, "device": info.device, "disk_read_mb_s": disk,
            "ttft": ttft, "concurrency": concurrency});
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).expect("write json");
    }
    daemon.kill9();
}
