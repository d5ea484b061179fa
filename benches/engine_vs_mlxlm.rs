//! Prefill and decode speed of the semkv engine vs Python mlx-lm on the same checkpoint,
//! measured in the same run on the same machine.
//!
//! ```text
//! cargo bench --bench engine_vs_mlxlm -- --model DIR [--prompt-len 512] [--gen 64]
//!     [--device auto|cpu|gpu] [--weights auto|native|f32|bf16] [--repeats 3]
//!     [--python python3] [--json OUT.json] [--no-mlxlm]
//! ```
//! Both sides: greedy, a random prompt of `--prompt-len` ids, prefill in chunks of 2048
//! (mlx-lm's default step), then `--gen` decode steps; best of `--repeats` after one
//! warm-up. Prefill tok/s = prompt / time to first token. On CPU the engine keeps f32
//! weights (fast with OpenBLAS); mlx-lm is run the same way (`--dtype float32`,
//! dequantized, OpenBLAS preloaded) unless `--weights native` is given.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use semkv::engine::device::DeviceChoice;
use semkv::engine::generate::{GenerateOptions, Generation, Step};
use semkv::engine::weights::WeightFormat;
use semkv::engine::{Engine, LoadOptions};

struct Args {
    model: PathBuf,
    prompt_len: usize,
    gen: usize,
    device: DeviceChoice,
    weights: WeightFormat,
    repeats: usize,
    python: String,
    json: Option<PathBuf>,
    mlxlm: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        model: PathBuf::new(),
        prompt_len: 512,
        gen: 64,
        device: DeviceChoice::Auto,
        weights: WeightFormat::Auto,
        repeats: 3,
        python: std::env::var("SEMKV_PYTHON").unwrap_or_else(|_| "python3".into()),
        json: None,
        mlxlm: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = value().into(),
            "--prompt-len" => a.prompt_len = value().parse().expect("--prompt-len"),
            "--gen" => a.gen = value().parse().expect("--gen"),
            "--device" => a.device = value().parse().expect("--device"),
            "--weights" => a.weights = value().parse().expect("--weights"),
            "--repeats" => a.repeats = value().parse().expect("--repeats"),
            "--python" => a.python = value(),
            "--json" => a.json = Some(value().into()),
            "--no-mlxlm" => a.mlxlm = false,
            "--bench" => {}
            other => {
                panic!("unknown flag {other} (see the doc comment of benches/engine_vs_mlxlm.rs)")
            }
        }
    }
    assert!(!a.model.as_os_str().is_empty(), "--model DIR is required");
    a
}

/// Deterministic pseudo-random prompt ids in [4, vocab).
fn prompt(len: usize, vocab: usize) -> Vec<u32> {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            4 + (x % (vocab as u64 - 4)) as u32
        })
        .collect()
}

/// (time to first token, decode seconds for `gen` further tokens)
fn run_engine_once(engine: &Engine, prompt: &[u32], gen: usize) -> (f64, f64) {
    let options = GenerateOptions {
        max_tokens: gen + 1,
        stop_at_eos: false,
        prefill_chunk: 2048,
        ..Default::default()
    };
    let mut cache = engine.new_cache();
    let mut generation = Generation::new(prompt.to_vec(), options, 0).expect("valid generation");
    let start = Instant::now();
    let mut first = None;
    loop {
        match engine
            .step(&mut generation, &mut cache)
            .expect("engine step")
        {
            Step::Prefilled(_) => {}
            Step::Token(_) => {
                first.get_or_insert_with(Instant::now);
            }
            Step::Finished(_) => break,
        }
    }
    let end = Instant::now();
    let first = first.expect("at least one token");
    ((first - start).as_secs_f64(), (end - first).as_secs_f64())
}

fn main() {
    let args = parse_args();
    let load = LoadOptions {
        device: args.device,
        weights: args.weights,
    };
    let t = Instant::now();
    let engine = Engine::load_dir(&args.model, &load).expect("load model");
    let load_s = t.elapsed().as_secs_f64();
    let device = engine.device().clone();
    let weights = args.weights.resolve(device.is_gpu);
    let ids = prompt(args.prompt_len, engine.model().vocab_size());
    run_engine_once(&engine, &ids, args.gen);
    let runs: Vec<(f64, f64)> = (0..args.repeats.max(1))
        .map(|_| run_engine_once(&engine, &ids, args.gen))
        .collect();
    let prefill_s = runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let decode_s = runs.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    let ours = (
        args.prompt_len as f64 / prefill_s,
        args.gen as f64 / decode_s,
    );

    let theirs = args
        .mlxlm
        .then(|| run_mlxlm(&args, device.is_gpu, weights))
        .flatten();
    println!();
    println!(
        "model: {}  device: {} ({})  weights: {:?}  blas threads: {}",
        args.model.display(),
        device.device,
        device.backend,
        weights,
        device.blas_threads
    );
    println!(
        "prompt {} tokens, decode {} tokens, best of {} (load {:.2}s)",
        args.prompt_len, args.gen, args.repeats, load_s
    );
    println!();
    println!("| metric | semkv | mlx-lm | semkv / mlx-lm |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, ours: f64, theirs: Option<f64>| match theirs {
        Some(t) => println!("| {name} | {ours:.1} | {t:.1} | {:.2}x |", ours / t),
        None => println!("| {name} | {ours:.1} | - | - |"),
    };
    row("prefill tok/s", ours.0, theirs.as_ref().map(|t| t.0));
    row("decode tok/s", ours.1, theirs.as_ref().map(|t| t.1));
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "model": args.model, "device": device, "weights": weights,
            "prompt_len": args.prompt_len, "gen": args.gen, "repeats": args.repeats,
            "semkv": {"prefill_tok_s": ours.0, "decode_tok_s": ours.1},
            "mlx_lm": theirs.map(|t| serde_json::json!({"prefill_tok_s": t.0, "decode_tok_s": t.1})),
        });
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).expect("write --json");
    }
}

/// Runs scripts/mlxlm_bench.py; returns (prefill tok/s, decode tok/s).
fn run_mlxlm(args: &Args, gpu: bool, weights: WeightFormat) -> Option<(f64, f64)> {
    // The repo's script, or ./scripts/ when the binary runs elsewhere (GPU machine).
    let script = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        PathBuf::from("."),
    ]
    .into_iter()
    .map(|root| root.join("scripts/mlxlm_bench.py"))
    .find(|p| p.exists())?;
    let mut cmd = Command::new(&args.python);
    cmd.arg(script)
        .args(["--model", &args.model.display().to_string()])
        .args([
            "--prompt-len",
            &args.prompt_len.to_string(),
            "--gen",
            &args.gen.to_string(),
        ])
        .args(["--repeats", &args.repeats.to_string(), "--json"])
        .args(["--device", if gpu { "gpu" } else { "cpu" }]);
    match weights {
        WeightFormat::F32 => {
            cmd.args(["--dtype", "float32", "--dequantize"]);
        }
        WeightFormat::Bf16 => {
            cmd.args(["--dtype", "bfloat16"]);
        }
        _ => {}
    }
    if !gpu {
        // Give mlx-lm the same BLAS as the engine (see docs/benchmarks.md).
        if let Some(lib) = [
            "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
            "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        {
            cmd.env("LD_PRELOAD", lib);
        }
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "mlx-lm baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.lines().last()?).ok()?;
    Some((v["prefill_tok_s"].as_f64()?, v["decode_tok_s"].as_f64()?))
}
