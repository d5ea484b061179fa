//! `model pull`: download (or verify) the default model.

use std::io::Write;

use crate::exit::Failure;
use crate::output::Printer;

/// `model pull`: fetches Gemma 3 270M into the semkv cache directory and prints its
/// path (in JSON, on one line).
pub fn pull<W: Write>(p: &mut Printer<W>) -> Result<(), Failure> {
    use semkv_models::pull;
    let path = pull::default_cache_dir()
        .and_then(|cache| pull::pull_default_model(&cache, !p.json))
        .map_err(|e| Failure::new(e.to_string()))?;
    p.emit_line_with(
        || serde_json::json!({ "model": "gemma-3-270m", "path": path }),
        || path.display().to_string(),
    )?;
    Ok(())
}
