//! Locating the real Gemma 3 270M GGUF for the integration tests.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

/// Environment variable naming the GGUF file to test against.
pub const GGUF_ENV: &str = "SEMKV_GEMMA3_270M_GGUF";

/// Environment variable that turns a missing model into a failure.
pub const REQUIRE_ENV: &str = "SEMKV_REQUIRE_MODELS";

/// Whether missing models must fail the tests instead of skipping them.
pub fn models_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// The real GGUF: `$SEMKV_GEMMA3_270M_GGUF`, else the default model in the
/// default cache. `None` (after saying so) when it is absent and not
/// required; panics when it is absent and `SEMKV_REQUIRE_MODELS=1`.
pub fn gemma3_270m_gguf() -> Option<PathBuf> {
    let path = match std::env::var_os(GGUF_ENV) {
        Some(path) => PathBuf::from(path),
        None => semkv_models::default_model_path(
            &semkv_models::default_cache_dir().expect("a cache directory"),
        ),
    };
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !models_required(),
        "{REQUIRE_ENV}=1 but the Gemma 3 270M GGUF is not at {} (pull it, or set {GGUF_ENV})",
        path.display()
    );
    eprintln!(
        "skipping: no Gemma 3 270M GGUF at {} (set {GGUF_ENV} or pull the default model)",
        path.display()
    );
    None
}

/// The real SmolLM2 135M Instruct GGUF in the default cache; `None` (after saying
/// so) when it is absent and not required; panics when it is absent and
/// `SEMKV_REQUIRE_MODELS=1`.
pub fn smollm2_gguf() -> Option<PathBuf> {
    let cache = semkv_models::default_cache_dir().expect("a cache directory");
    let path = semkv_models::pull::model_path(&cache, &semkv_models::SMOLLM2_135M_INSTRUCT);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !models_required(),
        "{REQUIRE_ENV}=1 but SmolLM2 135M Instruct is not at {} (make model)",
        path.display()
    );
    eprintln!(
        "skipping: no SmolLM2 GGUF at {} (make model)",
        path.display()
    );
    None
}

/// The repository's `tests/fixtures` directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}
