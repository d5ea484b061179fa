//! Prints what semkv-models reads from a Gemma 3 GGUF file: the derived
//! config.json, every tensor's HF name, ggml type and shape, and statistics of
//! the dequantized layer-0 tensors.
//!
//! ```text
//! cargo run --example inspect_gguf -- [GGUF] [--dump DIR]
//! ```
//!
//! Without GGUF, the default model is pulled into the cache. `--dump DIR`
//! also writes the dequantized embedding, final norm and layer-0 tensors as
//! raw little-endian f32 files `DIR/<hf name>.f32` (for
//! scripts/gguf_reference.py --compare DIR).

use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use semkv_models::{default_cache_dir, pull_default_model, GgufFile};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let mut gguf = None;
    let mut dump = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--dump" {
            dump = Some(PathBuf::from(
                args.next().ok_or("--dump needs a directory")?,
            ));
        } else {
            gguf = Some(PathBuf::from(arg));
        }
    }
    let gguf = match gguf {
        Some(path) => path,
        None => pull_default_model(&default_cache_dir()?, true)?,
    };

    let mut file = GgufFile::open(&gguf)?;
    println!("{}", serde_json::to_string_pretty(file.config())?);
    println!("\n{:<56} {:>6}  shape", "tensor", "type");
    for t in file.tensor_summaries() {
        println!("{:<56} {:>6}  {:?}", t.name, t.ggml_type, t.shape);
    }

    println!(
        "\n{:<56} {:>10} {:>10} {:>10}",
        "layer 0 (dequantized)", "min", "max", "mean"
    );
    let wanted: Vec<_> = file
        .tensor_summaries()
        .iter()
        .filter(|t| {
            t.name.starts_with("model.layers.0.")
                || (dump.is_some() && !t.name.starts_with("model.layers."))
        })
        .cloned()
        .collect();
    if let Some(dir) = &dump {
        std::fs::create_dir_all(dir)?;
    }
    for summary in &wanted {
        let tensor = file.read_tensor(summary)?;
        let (min, max, sum) = tensor.data.iter().fold(
            (f32::INFINITY, f32::NEG_INFINITY, 0.0f64),
            |(lo, hi, sum), &v| (lo.min(v), hi.max(v), sum + f64::from(v)),
        );
        let mean = sum / tensor.data.len() as f64;
        println!("{:<56} {min:>10.5} {max:>10.5} {mean:>10.6}", tensor.name);
        if let Some(dir) = &dump {
            let mut out = std::io::BufWriter::new(std::fs::File::create(
                dir.join(format!("{}.f32", tensor.name)),
            )?);
            for value in &tensor.data {
                out.write_all(&value.to_le_bytes())?;
            }
            out.flush()?;
        }
    }
    Ok(())
}
