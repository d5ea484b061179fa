//! Prefill and decode speed of the semkv engine vs Python mlx-lm on the same checkpoint,
//! measured in the same run on the same machine.
//!
//! ```text
//! cargo bench --bench engine_vs_mlxlm -- --model DIR [--prompt-len 512] [--gen 64]
//!     [--device auto|cpu|gpu] [--weights auto|native|f32|bf16] [--repeats 3]
//!     [--python python3] [--json OUT.json] [--no-mlxlm]
//!     [--llamacpp MODEL.gguf] [--threads N] [--batches 1,2,4,8]
//! ```
//! With `--llamacpp`, llama.cpp (PyPI `llama-cpp-python`, `scripts/llamacpp_bench.py`)
//! runs the same protocol on that GGUF file in the same run (CPU). With `--batches`,
//! B sequences (different prompts of `--prompt-len`) decode together in batched
//! forward passes; the table gives aggregate decode tok/s against B = 1 measured in
//! the same run, and checks each sequence's greedy tokens equal its solo run.
//! Both sides: greedy, a random prompt of `--prompt-len` ids, prefill in chunks of 2048
//! (mlx-lm's default step), then `--gen` decode steps; best of `--repeats` after one
//! warm-up. Prefill tok/s = prompt / time to first token. On CPU the engine keeps f32
//! weights (fast with OpenBLAS); mlx-lm is run the same way (`--dtype float32`,
//! dequantized, OpenBLAS preloaded) unless `--weights native` is given.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use semkv_engine::cache::batch_cache::BatchCache;
use semkv_engine::device::DeviceChoice;
use semkv_engine::generate::{GenerateOptions, Generation, Step};
use semkv_engine::model::loader::load_engine;
use semkv_engine::model::weights::WeightFormat;
use semkv_engine::{Engine, LoadOptions};

/// Prompt tokens per prefill pass in every engine run here (one pass for most prompts).
const PREFILL_CHUNK: usize = 2048;

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
    llamacpp: Option<PathBuf>,
    threads: usize,
    batches: Vec<usize>,
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
        llamacpp: None,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        batches: Vec::new(),
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
            "--llamacpp" => a.llamacpp = Some(value().into()),
            "--threads" => a.threads = value().parse().expect("--threads"),
            "--batches" => {
                a.batches = value()
                    .split(',')
                    .map(|b| b.trim().parse().expect("--batches: comma-separated sizes"))
                    .collect()
            }
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

/// Deterministic pseudo-random prompt ids in [4, vocab), one stream per `salt`.
fn prompt_salted(len: usize, vocab: usize, salt: u64) -> Vec<u32> {
    let mut p = prompt(len + salt as usize, vocab);
    p.drain(..salt as usize);
    p
}

/// Decodes `gen` tokens after each prompt, all sequences together in batched forward
/// passes (each prefilled alone first). Returns the decode seconds (after every
/// sequence's first token) and each sequence's tokens.
fn run_batched_once(engine: &Engine, prompts: &[Vec<u32>], gen: usize) -> (f64, Vec<Vec<u32>>) {
    let options = GenerateOptions {
        max_tokens: gen + 1,
        stop_at_eos: false,
        ..Default::default()
    };
    let mut gens: Vec<Generation> = prompts
        .iter()
        .map(|p| {
            Generation::new(p.clone(), options.clone(), 0)
                .expect("valid generation")
                .with_prefill_chunk(PREFILL_CHUNK)
        })
        .collect();
    let mut caches: Vec<_> = prompts.iter().map(|_| engine.new_cache()).collect();
    let mut tokens = vec![Vec::new(); prompts.len()];
    for ((g, c), out) in gens.iter_mut().zip(caches.iter_mut()).zip(&mut tokens) {
        // Prefill, then the first token (read from the prefill's logits).
        while !g.is_decoding() {
            if let Step::Token(t) = engine.step(g, c).expect("prefill step") {
                out.push(t.id);
            }
        }
    }
    // All sequences decode the same number of tokens: one batch from start to end.
    let mut batch = BatchCache::join(&caches.iter().collect::<Vec<_>>()).expect("join");
    let mut start = None;
    while gens.iter().all(Generation::is_decoding) {
        let mut members: Vec<&mut Generation> = gens.iter_mut().collect();
        let steps = engine
            .decode_batch_cache(&mut members, &mut batch)
            .expect("batched decode");
        for (i, step) in steps.into_iter().enumerate() {
            if let Step::Token(t) = step {
                tokens[i].push(t.id);
            }
        }
        start.get_or_insert_with(Instant::now);
    }
    mlx_rs::transforms::eval(batch.arrays()).expect("eval");
    let start = start.expect("at least one step");
    (start.elapsed().as_secs_f64(), tokens)
}

/// (time to first token, decode seconds for `gen` further tokens)
fn run_engine_once(engine: &Engine, prompt: &[u32], gen: usize) -> (f64, f64) {
    let options = GenerateOptions {
        max_tokens: gen + 1,
        stop_at_eos: false,
        ..Default::default()
    };
    let mut cache = engine.new_cache();
    let mut generation = Generation::new(prompt.to_vec(), options, 0)
        .expect("valid generation")
        .with_prefill_chunk(PREFILL_CHUNK);
    let start = Instant::now();
    let mut first = None;
    loop {
        match engine
            .step(&mut generation, &mut cache)
            .expect("engine step")
        {
            Step::Prefilled(_) | Step::FedFirst => {}
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
    let engine = load_engine(&args.model.display().to_string(), &load).expect("load model");
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

    let is_gguf = args.model.extension().is_some_and(|e| e == "gguf");
    if args.mlxlm && is_gguf {
        eprintln!("mlx-lm reads checkpoint directories, not GGUF: no mlx-lm baseline (see docs/benchmarks.md for the f32 export)");
    }
    let theirs = (args.mlxlm && !is_gguf)
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
    let llama = args
        .llamacpp
        .as_ref()
        .and_then(|gguf| run_llamacpp(&args, gguf));
    if let Some(gguf) = &args.llamacpp {
        println!("llama.cpp: {} ({} threads)", gguf.display(), args.threads);
    }
    println!();
    println!("| metric | semkv | mlx-lm | semkv / mlx-lm | llama.cpp | semkv / llama.cpp |");
    println!("|---|---:|---:|---:|---:|---:|");
    let cell = |ours: f64, theirs: Option<f64>| match theirs {
        Some(t) => format!("{t:.1} | {:.2}x", ours / t),
        None => "- | -".to_owned(),
    };
    let row = |name: &str, ours: f64, pick: fn(&(f64, f64)) -> f64| {
        println!(
            "| {name} | {ours:.1} | {} | {} |",
            cell(ours, theirs.as_ref().map(pick)),
            cell(ours, llama.as_ref().map(pick))
        )
    };
    row("prefill tok/s", ours.0, |t| t.0);
    row("decode tok/s", ours.1, |t| t.1);
    let batches = batch_table(&engine, &args);
    if let Some(path) = &args.json {
        let pair = |t: Option<(f64, f64)>| {
            t.map(|t| serde_json::json!({"prefill_tok_s": t.0, "decode_tok_s": t.1}))
        };
        let report = serde_json::json!({
            "model": args.model, "device": device, "weights": weights,
            "prompt_len": args.prompt_len, "gen": args.gen, "repeats": args.repeats,
            "semkv": {"prefill_tok_s": ours.0, "decode_tok_s": ours.1},
            "mlx_lm": pair(theirs),
            "llama_cpp": pair(llama).map(|mut v| {
                v["threads"] = args.threads.into();
                v
            }),
            "batched_decode": batches,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).expect("write --json");
    }
}

/// Aggregate decode throughput for each `--batches` size, against one sequence, with
/// a check that every sequence's greedy tokens equal its solo run. Prints a table and
/// returns its rows as JSON.
fn batch_table(engine: &Engine, args: &Args) -> Vec<serde_json::Value> {
    let Some(&most) = args.batches.iter().max() else {
        return Vec::new();
    };
    let vocab = engine.model().vocab_size();
    let prompts: Vec<Vec<u32>> = (0..most as u64)
        .map(|i| prompt_salted(args.prompt_len, vocab, 1 + 7 * i))
        .collect();
    let options = GenerateOptions {
        max_tokens: args.gen + 1,
        stop_at_eos: false,
        ..Default::default()
    };
    let solo_run = || -> Vec<Vec<u32>> {
        prompts
            .iter()
            .map(|p| {
                let generation = Generation::new(p.clone(), options.clone(), 0)
                    .expect("valid generation")
                    .with_prefill_chunk(PREFILL_CHUNK);
                engine
                    .run(&mut engine.new_cache(), generation, |_| true)
                    .expect("solo generation")
                    .tokens
            })
            .collect()
    };
    let solo = solo_run();
    // Greedy decode can flip at near-ties when kernels round differently; whether two
    // solo runs agree tells whether the device itself is deterministic here.
    let solo_repeatable = solo_run() == solo;
    println!(
        "\nsolo greedy runs repeat exactly: {}",
        if solo_repeatable { "yes" } else { "NO" }
    );
    let mut rows = Vec::new();
    for &b in &args.batches {
        let prompts = &prompts[..b];
        run_batched_once(engine, prompts, args.gen);
        let runs: Vec<(f64, Vec<Vec<u32>>)> = (0..args.repeats.max(1))
            .map(|_| run_batched_once(engine, prompts, args.gen))
            .collect();
        let identical = runs.iter().all(|r| r.1[..] == solo[..b]);
        // Mean length of the prefix each sequence shares with its solo run.
        let shared: f64 = runs[0]
            .1
            .iter()
            .zip(&solo)
            .map(|(a, s)| a.iter().zip(s).take_while(|(x, y)| x == y).count() as f64)
            .sum::<f64>()
            / b as f64;
        let best = runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        rows.push((b, (b * args.gen) as f64 / best, identical, shared));
    }
    let base = rows
        .iter()
        .find(|r| r.0 == 1)
        .map_or(rows[0].1 / rows[0].0 as f64, |r| r.1);
    println!();
    println!(
        "batched decode: {} tokens each after a {}-token prompt (different prompts), best of {}",
        args.gen, args.prompt_len, args.repeats
    );
    println!();
    println!("| sequences | aggregate tok/s | per sequence tok/s | aggregate / 1 sequence | greedy tokens = solo | tokens shared with solo (mean) |");
    println!("|---:|---:|---:|---:|---|---:|");
    rows.iter()
        .map(|&(b, agg, identical, shared)| {
            println!(
                "| {b} | {agg:.1} | {:.1} | {:.2}x | {} | {shared:.1} of {} |",
                agg / b as f64,
                agg / base,
                if identical { "yes" } else { "NO" },
                args.gen + 1
            );
            serde_json::json!({
                "sequences": b, "aggregate_tok_s": agg, "per_sequence_tok_s": agg / b as f64,
                "vs_one_sequence": agg / base, "identical_to_solo": identical,
                "shared_prefix_mean": shared, "solo_repeatable": solo_repeatable,
            })
        })
        .collect()
}

/// Runs scripts/llamacpp_bench.py on `gguf`; returns (prefill tok/s, decode tok/s).
fn run_llamacpp(args: &Args, gguf: &std::path::Path) -> Option<(f64, f64)> {
    let mut cmd = Command::new(&args.python);
    cmd.arg(script("llamacpp_bench.py")?)
        .args(["--model", &gguf.display().to_string()])
        .args(["--prompt-len", &args.prompt_len.to_string()])
        .args(["--gen", &args.gen.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args(["--repeats", &args.repeats.to_string(), "--json"]);
    json_pair(cmd, "llama.cpp")
}

/// The repo's script, or ./scripts/ when the binary runs elsewhere (GPU machine).
fn script(name: &str) -> Option<PathBuf> {
    [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        PathBuf::from("."),
    ]
    .into_iter()
    .map(|root| root.join("scripts").join(name))
    .find(|p| p.exists())
}

/// Runs a baseline script and reads `prefill_tok_s` / `decode_tok_s` from the JSON
/// line it prints last.
fn json_pair(mut cmd: Command, what: &str) -> Option<(f64, f64)> {
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("{what} baseline did not start: {e}");
            return None;
        }
    };
    if !out.status.success() {
        eprintln!(
            "{what} baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.lines().last()?).ok()?;
    Some((v["prefill_tok_s"].as_f64()?, v["decode_tok_s"].as_f64()?))
}

/// Runs scripts/mlxlm_bench.py; returns (prefill tok/s, decode tok/s).
fn run_mlxlm(args: &Args, gpu: bool, weights: WeightFormat) -> Option<(f64, f64)> {
    let mut cmd = Command::new(&args.python);
    cmd.arg(script("mlxlm_bench.py")?)
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
    json_pair(cmd, "mlx-lm")
}
