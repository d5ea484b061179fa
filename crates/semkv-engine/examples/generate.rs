//! Generates a continuation with the engine alone (no daemon).
//!
//! ```text
//! cargo run --release -p semkv-engine --example generate -- [--model gemma-3-270m] [--prompt "Once upon a time"]
//!     [--max-tokens 32] [--chat] [--device auto|cpu|gpu] [--weights auto|native|f32|bf16]
//! ```
use std::io::Write;
use std::time::Instant;

use semkv_engine::generate::chat::{Role, Turn};
use semkv_engine::generate::GenerateOptions;
use semkv_engine::model::loader::{load_engine, DEFAULT_MODEL};
use semkv_engine::LoadOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut model = DEFAULT_MODEL.to_owned();
    let mut prompt = "Once upon a time".to_owned();
    let mut max_tokens = 32;
    let mut chat = false;
    let mut options = LoadOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = value()?,
            "--prompt" => prompt = value()?,
            "--max-tokens" => max_tokens = value()?.parse()?,
            "--chat" => chat = true,
            "--device" => options.device = value()?.parse()?,
            "--weights" => options.weights = value()?.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let t = Instant::now();
    let engine = load_engine(&model, &options)?;
    eprintln!(
        "loaded {model} on {} in {:.1}s (fingerprint {})",
        engine.device().device,
        t.elapsed().as_secs_f64(),
        engine.fingerprint()
    );
    let text = if chat {
        let template = engine
            .chat()
            .ok_or("this model has no chat template; leave out --chat")?;
        template.render(
            &[Turn {
                role: Role::User,
                text: prompt.clone(),
            }],
            true,
        )?
    } else {
        format!("<bos>{prompt}")
    };
    let ids = engine.encode(&text)?;
    let generate = GenerateOptions {
        max_tokens,
        ..Default::default()
    };
    print!("{prompt}");
    let out = engine.generate(&mut engine.new_cache(), &ids, &generate, |t| {
        print!("{}", t.text);
        std::io::stdout().flush().is_ok()
    })?;
    println!();
    eprintln!(
        "{} prompt tokens, {} generated ({:?}); time to first token {:.0} ms, decode {:.1} tok/s",
        out.prompt_tokens,
        out.tokens.len(),
        out.finish_reason,
        out.time_to_first_token.as_secs_f64() * 1e3,
        out.decode_tokens_per_second()
    );
    Ok(())
}
