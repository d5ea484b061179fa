//! How long a short request waits while another cluster prefills a huge prompt: the
//! p50 / p99 latency of a 16-token generation on an idle daemon, then while a
//! 20K-token append runs on another cluster, for each scheduler charge mode
//! (`--step-charge time`, the default, and `tokens`, the old behaviour) in the same
//! run. Also prints how long the huge prefill took in each mode (what the short
//! requests cost it). Everything goes through a real `semkvd` over gRPC.
//!
//! ```text
//! cargo bench --bench prefill_interference -- [--model gemma-3-270m]
//!     [--prefill-tokens 20000] [--gen 16] [--idle-samples 20] [--charge time,tokens]
//!     [--device auto|cpu|gpu] [--json OUT.json]
//! ```
//! A latency is taken by the client from sending the request to receiving the
//! summary (gRPC, queueing and the model's work included).

use std::time::{Duration, Instant};

use semkv_client::proto::{self, Turn, TurnFormat};
use semkv_client::{Client, ConnectOptions};

use common::filler;

mod common;

struct Args {
    model: String,
    prefill_tokens: usize,
    gen: u32,
    idle_samples: usize,
    charges: Vec<String>,
    device: String,
    json: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        model: "gemma-3-270m".into(),
        prefill_tokens: 20_000,
        gen: 16,
        idle_samples: 20,
        charges: vec!["time".into(), "tokens".into()],
        device: "auto".into(),
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = value(),
            "--prefill-tokens" => a.prefill_tokens = value().parse().expect("--prefill-tokens"),
            "--gen" => a.gen = value().parse().expect("--gen"),
            "--idle-samples" => a.idle_samples = value().parse().expect("--idle-samples"),
            "--charge" => a.charges = value().split(',').map(str::to_owned).collect(),
            "--device" => a.device = value(),
            "--json" => a.json = Some(value()),
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// One short generation (raw continuation of `cluster`, `gen` tokens); its latency.
async fn short_generate(client: &Client, cluster: &str, gen: u32) -> Duration {
    let request = proto::GenerateRequest {
        cluster_id: cluster.into(),
        format: TurnFormat::Raw as i32,
        max_tokens: Some(gen),
        ignore_eos: true,
        ..Default::default()
    };
    let sent = Instant::now();
    let summary = client
        .generate(request)
        .await
        .expect("generate")
        .finish(|_| {})
        .await
        .expect("generation");
    assert_eq!(
        summary.tokens.len(),
        gen as usize,
        "ignore_eos: every token"
    );
    sent.elapsed()
}

/// The `q` quantile (0..=1) of `samples`, in ms (nearest rank).
fn quantile_ms(samples: &[Duration], q: f64) -> f64 {
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

struct ModeResult {
    charge: String,
    idle: Vec<Duration>,
    busy: Vec<Duration>,
    prefill: Duration,
}

async fn run_mode(args: &Args, charge: &str) -> ModeResult {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = std::env::var_os(semkv_client::local::SEMKVD_BIN_ENV)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_semkvd").into());
    let daemon = semkv_client::LocalDaemon::builder(dir.path())
        .bin(bin)
        .model(&args.model)
        .device(&args.device)
        .args(["--step-charge", charge])
        .env("RUST_LOG", "warn")
        .startup_timeout(Duration::from_secs(900))
        .start()
        .expect("start semkvd");
    let client = Client::connect_with(&daemon.url(), ConnectOptions::default())
        .await
        .expect("connect");
    for id in ["short", "huge"] {
        client
            .create_cluster(id, Default::default())
            .await
            .expect("create");
    }
    client
        .append_turns("short", vec![Turn::user(filler(64, 1))], TurnFormat::Raw)
        .await
        .expect("append");
    // Warm-up (first-use allocations), then the idle baseline.
    short_generate(&client, "short", args.gen).await;
    let mut idle = Vec::new();
    for _ in 0..args.idle_samples {
        idle.push(short_generate(&client, "short", args.gen).await);
    }

    let huge_client = client.clone();
    let text = filler(args.prefill_tokens, 2);
    let started = Instant::now();
    let huge = tokio::spawn(async move {
        huge_client
            .append_turns("huge", vec![Turn::user(text)], TurnFormat::Raw)
            .await
            .expect("huge append");
        started.elapsed()
    });
    // Let the huge prefill start, then keep one short request going at a time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut busy = Vec::new();
    while !huge.is_finished() {
        busy.push(short_generate(&client, "short", args.gen).await);
        eprint!(
            "\r[{charge}] {} short requests during the prefill",
            busy.len()
        );
    }
    eprintln!();
    let prefill = huge.await.expect("huge append task");
    // The last sample may have ended after the prefill did: it still waited for it.
    drop(daemon);
    ModeResult {
        charge: charge.to_owned(),
        idle,
        busy,
        prefill,
    }
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut results = Vec::new();
    for charge in &args.charges {
        eprintln!("[{charge}] {} ...", args.model);
        results.push(runtime.block_on(run_mode(&args, charge)));
    }

    println!(
        "\n{}-token generate on one cluster while another appends {} tokens ({}):",
        args.gen, args.prefill_tokens, args.model
    );
    println!(
        "{:<8} {:>9} {:>9} {:>6} {:>10} {:>10} {:>8} {:>8} {:>11}",
        "charge",
        "idle p50",
        "idle p99",
        "busy n",
        "busy p50",
        "busy p99",
        "p50 x",
        "p99 x",
        "prefill s"
    );
    let mut json = Vec::new();
    for r in &results {
        let (ip50, ip99) = (quantile_ms(&r.idle, 0.5), quantile_ms(&r.idle, 0.99));
        let (bp50, bp99) = if r.busy.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (quantile_ms(&r.busy, 0.5), quantile_ms(&r.busy, 0.99))
        };
        println!(
            "{:<8} {:>7.0}ms {:>7.0}ms {:>6} {:>8.0}ms {:>8.0}ms {:>7.1}x {:>7.1}x {:>11.1}",
            r.charge,
            ip50,
            ip99,
            r.busy.len(),
            bp50,
            bp99,
            bp50 / ip50,
            bp99 / ip99,
            r.prefill.as_secs_f64()
        );
        json.push(serde_json::json!({
            "charge": r.charge,
            "idle_p50_ms": ip50, "idle_p99_ms": ip99,
            "busy_samples": r.busy.len(), "busy_p50_ms": bp50, "busy_p99_ms": bp99,
            "prefill_s": r.prefill.as_secs_f64(),
        }));
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "model": args.model, "prefill_tokens": args.prefill_tokens, "gen": args.gen,
            "modes": json,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).expect("write json");
    }
}
