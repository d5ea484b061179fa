//! Downloads (or verifies) the default model, Gemma 3 270M, into the semkv cache dir.
//!
//! `cargo run -p semkv-models --example pull` — honours `SEMKV_CACHE_DIR`; prints the path.
fn main() {
    let result = semkv_models::pull::default_cache_dir()
        .and_then(|cache| semkv_models::pull::pull_default_model(&cache, true));
    match result {
        Ok(path) => println!("{}", path.display()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
