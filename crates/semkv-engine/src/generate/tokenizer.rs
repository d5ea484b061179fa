//! Text <-> token ids with the `tokenizers` crate, plus Gemma 3's special tokens and
//! incremental detokenization for streaming.

use std::path::Path;

use crate::EngineError;

/// A tokenizer with the ids generation needs.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// `<bos>`, prepended once at the start of a cache.
    pub bos_id: u32,
    /// Ids that end generation (`<eos>`, `<end_of_turn>`).
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
        let id = |t: &str| inner.token_to_id(t);
        let bos_id =
            id("<bos>").ok_or_else(|| EngineError::Load("tokenizer has no <bos> token".into()))?;
        let stop_ids: Vec<u32> = ["<eos>", "<end_of_turn>"]
            .iter()
            .filter_map(|t| id(t))
            .collect();
        if stop_ids.is_empty() {
            return Err(EngineError::Load(
                "tokenizer has neither <eos> nor <end_of_turn>".into(),
            ));
        }
        Ok(Self {
            inner,
            bos_id,
            stop_ids,
        })
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
