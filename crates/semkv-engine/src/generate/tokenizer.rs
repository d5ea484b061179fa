//! Text <-> token ids with the `tokenizers` crate, plus the model's special tokens and
//! incremental detokenization for streaming.

use std::path::Path;

use crate::EngineError;

/// Tokens that end an answer in the supported families, when a vocabulary has them.
const END_TOKENS: [&str; 5] = [
    "<eos>",
    "<end_of_turn>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
];

/// A tokenizer with the ids generation needs.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// `<bos>`, prepended once at the start of a cache.
    pub bos_id: u32,
    /// Ids that end generation (the model's end ids, e.g. `<eos>`, `<end_of_turn>`).
    pub stop_ids: Vec<u32>,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, EngineError> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| EngineError::Load(format!("tokenizer {}: {e}", path.display())))?;
        Self::new(inner)
    }

    /// Wraps a tokenizer that knows Gemma's `<bos>`, `<eos>` and `<end_of_turn>`.
    pub fn new(inner: tokenizers::Tokenizer) -> Result<Self, EngineError> {
        Self::with_specials(inner, None, &[])
    }

    /// Wraps a tokenizer with the model's own beginning-of-sequence id and end ids
    /// (from its metadata); the well-known end-of-turn tokens of the families
    /// (`<eos>`, `<end_of_turn>`, `<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`) end
    /// generation too when the vocabulary has them. Without `bos`, `<bos>` is used.
    pub fn with_specials(
        inner: tokenizers::Tokenizer,
        bos: Option<u32>,
        eos: &[u32],
    ) -> Result<Self, EngineError> {
        let id = |t: &str| inner.token_to_id(t);
        let bos_id = bos
            .or_else(|| id("<bos>"))
            .ok_or_else(|| EngineError::Load("tokenizer has no <bos> token".into()))?;
        let mut stop_ids: Vec<u32> = eos.to_vec();
        for token in END_TOKENS {
            if let Some(t) = id(token).filter(|t| !stop_ids.contains(t)) {
                stop_ids.push(t);
            }
        }
        if stop_ids.is_empty() {
            return Err(EngineError::Load(
                "tokenizer has no end-of-sequence token (<eos>, <end_of_turn>, <|im_end|>, ...)"
                    .into(),
            ));
        }
        Ok(Self {
            inner,
            bos_id,
            stop_ids,
        })
    }

    /// Loads a checkpoint directory's `tokenizer.json` with the `bos_token_id` and
    /// `eos_token_id` (a number or a list) of its `generation_config.json`, else its
    /// `config.json` (see [`Self::with_specials`]).
    pub fn from_dir(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| EngineError::Load(format!("tokenizer {}: {e}", path.display())))?;
        let mut bos = None;
        let mut eos = Vec::new();
        for file in ["config.json", "generation_config.json"] {
            let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if let Some(b) = json.get("bos_token_id").and_then(|v| v.as_u64()) {
                bos = Some(b as u32);
            }
            let ids: Vec<u32> = match json.get("eos_token_id") {
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as u32)
                    .collect(),
                Some(v) => v.as_u64().map(|v| v as u32).into_iter().collect(),
                None => Vec::new(),
            };
            if !ids.is_empty() {
                eos = ids;
            }
        }
        Self::with_specials(inner, bos, &eos)
    }

    /// Token ids of `text`; special-token markup such as `<start_of_turn>` is recognised,
    /// and no `<bos>` is added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, dropping special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// Number of ids in the vocabulary (including added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The wrapped `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// Turns a growing sequence of token ids into text deltas. Text is only emitted once it
/// is stable: complete UTF-8 (byte-fallback tokens may split a character) that the full
/// decode still starts with. The deltas therefore always concatenate to a prefix of
/// the full decode, and to all of it when it ends on a complete character.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    emitted: String,
    text: String,
}

impl StreamDecoder {
    /// Decodes `ids` (the whole sequence so far, one token longer than last time) and
    /// returns the new stable text (possibly empty).
    pub fn update(
        &mut self,
        tokenizer: &TextTokenizer,
        ids: &[u32],
    ) -> Result<String, EngineError> {
        self.text = tokenizer.decode(ids)?;
        if self.text.ends_with('\u{FFFD}') || !self.text.starts_with(self.emitted.as_str()) {
            return Ok(String::new());
        }
        let delta = self.text[self.emitted.len()..].to_owned();
        self.emitted.clone_from(&self.text);
        Ok(delta)
    }

    /// The full decode of the last sequence given to [`update`](Self::update).
    pub fn text(&self) -> &str {
        &self.text
    }
}
