//! Building a Hugging Face `tokenizers` tokenizer from a GGUF file's
//! metadata.
//!
//! GGUF files carry their tokenizer as `tokenizer.ggml.*` metadata, not as a
//! `tokenizer.json`. This module supports two kinds of vocabulary.
//!
//! **Byte-level BPE** (`tokenizer.ggml.model` = `"gpt2"`, as in SmolLM2 and
//! other Llama-family models): merges from `tokenizer.ggml.merges`, GPT-2's
//! byte-to-character mapping and split pattern (`ByteLevel`), digits split one
//! by one first when `tokenizer.ggml.pre` is `"smollm"` (as llama.cpp does),
//! CONTROL pieces as special added tokens, and a `ByteLevel` decoder. A byte
//! whose symbol the vocabulary lacks (SmolLM2 lacks 21) is dropped, as the
//! `tokenizers` crate does with the model's own `tokenizer.json`.
//!
//! **SentencePiece BPE** (`tokenizer.ggml.model` = `"llama"`, as in Gemma 3):
//! the pipeline of Gemma 3's official `tokenizer.json` is rebuilt:
//!
//! * normalizer: every space becomes `▁` (U+2581), with a `▁` prepended first
//!   when `tokenizer.ggml.add_space_prefix` is set (false for Gemma 3);
//! * pre-tokenizer: a split on `" "` merged with the previous piece — a no-op
//!   after the normalizer, kept so that the pipeline matches the official one;
//! * model: BPE with byte fallback (`<0xNN>` pieces) and `<unk>` fused. Merges
//!   come from `tokenizer.ggml.merges` when present, otherwise they are derived
//!   from the vocabulary and scores as Hugging Face's SentencePiece converter
//!   does (see [`derive_merges`]);
//! * added tokens: every CONTROL piece (special) and USER_DEFINED piece
//!   (not special), matched verbatim in the raw text before normalization;
//! * post-processor: `<bos>` (and `<eos>`) around the text when
//!   `tokenizer.ggml.add_bos_token` (`add_eos_token`) says so;
//! * decoder: `▁` back to space, byte fallback, fuse.
//!
//! For Gemma 3 270M the result has the official vocabulary, merges,
//! normalizer, pre-tokenizer, post-processor and decoder, and encodes and
//! decodes identically (tests/fixtures/tokenizer). Two differences remain,
//! neither visible in ids: the official file's extra added token 262144
//! (`<image_soft_token>`, beyond the 270M embedding) is absent, and the
//! *special* flags follow GGUF's token types — `<mask>` and `<unusedN>`
//! (CONTROL) are special here but not there, `<start_of_image>` and
//! `<end_of_image>` (USER_DEFINED) the other way round — which matters only
//! when decoding with `skip_special_tokens`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use thiserror::Error;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::Split;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::gguf::{GgufError, GgufFile, Metadata};

/// SentencePiece's word-boundary marker, which stands for a space.
const SPACE_MARKER: &str = "\u{2581}";

/// Errors from building a tokenizer out of GGUF metadata.
#[derive(Debug, Error)]
pub enum GgufTokenizerError {
    /// The GGUF file or its metadata could not be read.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The file's tokenizer is of a kind this module does not rebuild.
    #[error(
        "unsupported GGUF tokenizer model {0:?} (SentencePiece BPE \"llama\" and byte-level BPE \"gpt2\" are supported)"
    )]
    UnsupportedModel(String),
    /// The file's byte-level BPE splits text in a way this module does not rebuild.
    #[error(
        "unsupported GGUF pre-tokenizer {0:?} for a gpt2 vocabulary (\"smollm\", \"gpt2\" and \"default\" are supported)"
    )]
    UnsupportedPreTokenizer(String),
    /// The tokenizer metadata is inconsistent.
    #[error("invalid GGUF tokenizer metadata: {0}")]
    Invalid(String),
    /// The `tokenizers` crate rejected a part of the pipeline.
    #[error("cannot build the tokenizer: {0}")]
    Build(#[from] tokenizers::Error),
}

/// The kind of a vocabulary piece (`tokenizer.ggml.token_type`, which uses
/// SentencePiece's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceKind {
    fn from_ggml(code: i32) -> Option<Self> {
        Some(match code {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }
}

/// One vocabulary entry as GGUF describes it.
#[derive(Clone, Debug, PartialEq)]
struct Piece {
    text: String,
    score: f32,
    kind: PieceKind,
}

/// Reads the GGUF file at `path` and builds its tokenizer.
pub fn load_gguf_tokenizer(path: &Path) -> Result<Tokenizer, GgufTokenizerError> {
    tokenizer_from_gguf(&GgufFile::open(path)?)
}

/// Builds the tokenizer described by an open GGUF file's metadata.
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<Tokenizer, GgufTokenizerError> {
    tokenizer_from_metadata(file.raw_metadata())
}

fn tokenizer_from_metadata(raw: &HashMap<String, Value>) -> Result<Tokenizer, GgufTokenizerError> {
    let meta = Metadata(raw);
    match meta.string("tokenizer.ggml.model")? {
        "llama" => sentencepiece_tokenizer(&meta),
        "gpt2" => byte_level_tokenizer(&meta),
        model => Err(GgufTokenizerError::UnsupportedModel(model.to_owned())),
    }
}

/// A GPT-2 style byte-level BPE tokenizer (see the module documentation).
fn byte_level_tokenizer(meta: &Metadata<'_>) -> Result<Tokenizer, GgufTokenizerError> {
    let pre = meta.opt_string("tokenizer.ggml.pre")?.unwrap_or("default");
    let byte_level = ByteLevel::new(false, true, true);
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        "smollm" => {
            PreTokenizerSequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        }
        "gpt2" | "gpt-2" | "default" => byte_level.into(),
        other => {
            return Err(GgufTokenizerError::UnsupportedPreTokenizer(
                other.to_owned(),
            ))
        }
    };
    let pieces = read_pieces(meta, false)?;
    let vocab = vocab_of(&pieces)?;
    let merges = parse_merges(meta.array("tokenizer.ggml.merges")?)?;
    let special = special_ids(meta, &pieces)?;
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build()?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(byte_level));
    finish(&mut tokenizer, meta, &pieces, special)?;
    Ok(tokenizer)
}

/// The unknown, bos, eos and padding ids the metadata names (checked).
struct SpecialIds {
    unk: Option<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
}

fn special_ids(meta: &Metadata<'_>, pieces: &[Piece]) -> Result<SpecialIds, GgufTokenizerError> {
    let id_of = |key: &str| -> Result<Option<u32>, GgufTokenizerError> {
        match meta.opt_u32(key)? {
            Some(id) if id as usize >= pieces.len() => Err(GgufTokenizerError::Invalid(format!(
                "{key} = {id} is outside the vocabulary"
            ))),
            id => Ok(id),
        }
    };
    Ok(SpecialIds {
        unk: id_of("tokenizer.ggml.unknown_token_id")?,
        bos: id_of("tokenizer.ggml.bos_token_id")?,
        eos: id_of("tokenizer.ggml.eos_token_id")?,
        pad: id_of("tokenizer.ggml.padding_token_id")?,
    })
}

/// The parts both kinds share: bos/eos added around the text when the metadata
/// asks, and the added (CONTROL, USER_DEFINED) tokens.
fn finish(
    tokenizer: &mut Tokenizer,
    meta: &Metadata<'_>,
    pieces: &[Piece],
    ids: SpecialIds,
) -> Result<(), GgufTokenizerError> {
    let flag = |key: &str| -> Result<bool, GgufError> { Ok(meta.opt_bool(key)?.unwrap_or(false)) };
    let add_bos = flag("tokenizer.ggml.add_bos_token")?;
    let add_eos = flag("tokenizer.ggml.add_eos_token")?;
    let template_token = |id: Option<u32>, wanted: bool| {
        id.filter(|_| wanted)
            .map(|id| (pieces[id as usize].text.clone(), id))
    };
    let (template_bos, template_eos) = (
        template_token(ids.bos, add_bos),
        template_token(ids.eos, add_eos),
    );
    if template_bos.is_some() || template_eos.is_some() {
        tokenizer.with_post_processor(Some(post_processor(template_bos, template_eos)?));
    }
    let (special, plain) = added_tokens(pieces, &[ids.unk, ids.bos, ids.eos, ids.pad]);
    tokenizer.add_special_tokens(&special);
    tokenizer.add_tokens(&plain);
    Ok(())
}

/// A SentencePiece BPE tokenizer like Gemma 3's (see the module documentation).
fn sentencepiece_tokenizer(meta: &Metadata<'_>) -> Result<Tokenizer, GgufTokenizerError> {
    let pieces = read_pieces(meta, true)?;
    let vocab = vocab_of(&pieces)?;
    let merges = match meta.opt_array("tokenizer.ggml.merges")? {
        Some(merges) => parse_merges(merges)?,
        None => derive_merges(&pieces, &vocab),
    };
    let ids = special_ids(meta, &pieces)?;
    let add_space_prefix = meta
        .opt_bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(false);

    let mut bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(pieces.iter().any(|p| p.kind == PieceKind::Byte));
    if let Some(unk) = ids.unk {
        bpe = bpe.unk_token(pieces[unk as usize].text.clone());
    }
    let mut tokenizer = Tokenizer::new(bpe.build()?);
    tokenizer.with_normalizer(Some(normalizer(add_space_prefix)?));
    tokenizer.with_pre_tokenizer(Some(Split::new(
        " ",
        SplitDelimiterBehavior::MergedWithPrevious,
        false,
    )?));
    tokenizer.with_decoder(Some(decoder(add_space_prefix)?));
    finish(&mut tokenizer, meta, &pieces, ids)?;
    Ok(tokenizer)
}

/// Spaces become `▁`, after prepending one if `add_space_prefix`.
fn normalizer(add_space_prefix: bool) -> Result<NormalizerWrapper, GgufTokenizerError> {
    let replace_spaces = Replace::new(" ", SPACE_MARKER)?;
    Ok(if add_space_prefix {
        Sequence::new(vec![
            Prepend::new(SPACE_MARKER.to_owned()).into(),
            replace_spaces.into(),
        ])
        .into()
    } else {
        replace_spaces.into()
    })
}

/// `▁` becomes a space, `<0xNN>` pieces become bytes, and the prepended
/// space (if any) is stripped.
fn decoder(add_space_prefix: bool) -> Result<DecoderSequence, GgufTokenizerError> {
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPACE_MARKER, " ")?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    Ok(DecoderSequence::new(decoders))
}

/// The pieces matched verbatim in raw text, split into special ones
/// (CONTROL pieces and the given ids) and plain ones (USER_DEFINED pieces).
fn added_tokens(
    pieces: &[Piece],
    special_ids: &[Option<u32>],
) -> (Vec<AddedToken>, Vec<AddedToken>) {
    pieces
        .iter()
        .enumerate()
        .filter(|(id, p)| {
            matches!(p.kind, PieceKind::Control | PieceKind::UserDefined)
                || special_ids.contains(&Some(*id as u32))
        })
        .map(|(id, p)| {
            let special = p.kind == PieceKind::Control || special_ids.contains(&Some(id as u32));
            AddedToken::from(p.text.clone(), special)
                .normalized(false)
                .special(special)
        })
        .partition(|token| token.special)
}

/// A template processor that wraps sequences in the given tokens, like the
/// official Gemma `tokenizer.json` (`<bos> $A` and `<bos> $A <bos>:1 $B:1`).
fn post_processor(
    bos: Option<(String, u32)>,
    eos: Option<(String, u32)>,
) -> Result<TemplateProcessing, GgufTokenizerError> {
    let wrap = |sequence: &str, type_id: u32| {
        let token = |(text, _): &(String, u32)| format!("{text}:{type_id}");
        [
            bos.as_ref().map(token),
            Some(format!("${sequence}:{type_id}")),
            eos.as_ref().map(token),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
    };
    let single = wrap("A", 0);
    let pair = format!("{single} {}", wrap("B", 1));
    let special_tokens: Vec<(String, u32)> = bos.iter().chain(eos.iter()).cloned().collect();
    TemplateProcessing::builder()
        .try_single(single.as_str())
        .and_then(|b| b.try_pair(pair.as_str()))
        .map_err(|e| GgufTokenizerError::Invalid(format!("post-processor template: {e}")))?
        .special_tokens(special_tokens)
        .build()
        .map_err(|e| GgufTokenizerError::Invalid(format!("post-processor: {e}")))
}

/// The vocabulary; `sentencepiece`: user-defined pieces get `▁` for their spaces.
fn read_pieces(meta: &Metadata<'_>, sentencepiece: bool) -> Result<Vec<Piece>, GgufTokenizerError> {
    let invalid = |what: &str| GgufTokenizerError::Invalid(what.to_owned());
    let tokens = meta.array("tokenizer.ggml.tokens")?;
    let scores = meta.opt_array("tokenizer.ggml.scores")?;
    let kinds = meta.opt_array("tokenizer.ggml.token_type")?;
    if scores.is_some_and(|s| s.len() != tokens.len())
        || kinds.is_some_and(|k| k.len() != tokens.len())
    {
        return Err(invalid("tokens, scores and token types differ in length"));
    }
    tokens
        .iter()
        .enumerate()
        .map(|(id, token)| {
            let Value::String(text) = token else {
                return Err(invalid("tokenizer.ggml.tokens holds a non-string"));
            };
            let score = match scores.map(|s| &s[id]) {
                None => -(id as f32),
                Some(Value::F32(score)) => *score,
                Some(_) => return Err(invalid("tokenizer.ggml.scores holds a non-f32")),
            };
            let kind = match kinds.map(|k| &k[id]) {
                None => PieceKind::Normal,
                Some(Value::I32(code)) => PieceKind::from_ggml(*code)
                    .ok_or_else(|| invalid("tokenizer.ggml.token_type holds an unknown type"))?,
                Some(_) => return Err(invalid("tokenizer.ggml.token_type holds a non-i32")),
            };
            let text = if sentencepiece && kind == PieceKind::UserDefined {
                // llama.cpp's converter writes user-defined pieces with plain
                // spaces where the SentencePiece model has `▁` (e.g. Gemma's
                // whitespace-run pieces 138..=167); restore the model's form.
                text.replace(' ', SPACE_MARKER)
            } else {
                text.clone()
            };
            Ok(Piece { text, score, kind })
        })
        .collect()
}

fn vocab_of(pieces: &[Piece]) -> Result<Vocab, GgufTokenizerError> {
    let mut vocab = Vocab::with_capacity(pieces.len());
    for (id, piece) in pieces.iter().enumerate() {
        let id = u32::try_from(id)
            .map_err(|_| GgufTokenizerError::Invalid("vocabulary too large".to_owned()))?;
        if vocab.insert(piece.text.clone(), id).is_some() {
            return Err(GgufTokenizerError::Invalid(format!(
                "piece {:?} occurs twice in the vocabulary",
                piece.text
            )));
        }
    }
    Ok(vocab)
}

fn parse_merges(merges: &[Value]) -> Result<Merges, GgufTokenizerError> {
    merges
        .iter()
        .map(|merge| match merge {
            Value::String(merge) => merge
                .split_once(' ')
                .map(|(left, right)| (left.to_owned(), right.to_owned()))
                .ok_or_else(|| {
                    GgufTokenizerError::Invalid(format!("merge {merge:?} is not \"left right\""))
                }),
            _ => Err(GgufTokenizerError::Invalid(
                "tokenizer.ggml.merges holds a non-string".to_owned(),
            )),
        })
        .collect()
}

/// Derives BPE merges from a SentencePiece vocabulary, as Hugging Face's
/// SentencePiece-to-`tokenizer.json` converter does.
///
/// Every split of a piece into two pieces of the vocabulary is a merge. Merges
/// are ranked by the merged piece's score, highest first, then by the length
/// of the left part and of the right part in characters, longest first, then
/// by the merged piece's id. Only NORMAL pieces carry a meaningful score; the
/// others (control, user-defined, byte) count as 0, SentencePiece's value for
/// them (llama.cpp's converter writes -1000 for control and user-defined
/// pieces). For Gemma 3 this reproduces the official `tokenizer.json`'s
/// 514,906 merges in the same order.
fn derive_merges(pieces: &[Piece], vocab: &Vocab) -> Merges {
    struct Candidate<'a> {
        score: f32,
        left_chars: usize,
        right_chars: usize,
        id: usize,
        left: &'a str,
        right: &'a str,
    }
    let mut candidates = Vec::new();
    for (id, piece) in pieces.iter().enumerate() {
        let score = if piece.kind == PieceKind::Normal {
            piece.score
        } else {
            0.0
        };
        let text = piece.text.as_str();
        let total_chars = text.chars().count();
        for (left_chars, (split, _)) in text.char_indices().enumerate().skip(1) {
            let (left, right) = text.split_at(split);
            if vocab.contains_key(left) && vocab.contains_key(right) {
                candidates.push(Candidate {
                    score,
                    left_chars,
                    right_chars: total_chars - left_chars,
                    id,
                    left,
                    right,
                });
            }
        }
    }
    candidates.sort_by(|a, b| {
        // `partial_cmp` so that -0.0 (the best normal piece) ties with 0.0.
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.left_chars.cmp(&a.left_chars))
            .then(b.right_chars.cmp(&a.right_chars))
            .then(a.id.cmp(&b.id))
    });
    candidates
        .into_iter()
        .map(|c| (c.left.to_owned(), c.right.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_array(items: &[&str]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|s| Value::String((*s).to_owned()))
                .collect(),
        )
    }

    /// A tiny Gemma-like vocabulary: specials, a user-defined whitespace run
    /// written with a plain space (as llama.cpp does), byte pieces and a few
    /// normal pieces whose scores are minus their rank.
    fn tiny_metadata() -> HashMap<String, Value> {
        let mut tokens = vec![
            "<pad>",
            "<eos>",
            "<bos>",
            "<unk>",
            "<start_of_turn>",
            "\n",
            "  ",
        ];
        let mut kinds = vec![3, 3, 3, 3, 3, 4, 4];
        let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
        tokens.extend(bytes.iter().map(String::as_str));
        kinds.extend(std::iter::repeat_n(6, 256));
        let normal = [
            "▁", "h", "e", "l", "o", "he", "ll", "▁he", "llo", "▁hello", "o▁",
        ];
        tokens.extend(normal);
        kinds.extend(std::iter::repeat_n(1, normal.len()));
        let mut scores = vec![-1000.0f32; 7];
        scores.extend(std::iter::repeat_n(0.0, 256));
        scores.extend((0..normal.len()).map(|rank| -(rank as f32)));

        let mut meta = HashMap::new();
        let mut put = |k: &str, v: Value| meta.insert(k.to_owned(), v);
        put("tokenizer.ggml.model", Value::String("llama".to_owned()));
        put("tokenizer.ggml.tokens", string_array(&tokens));
        put(
            "tokenizer.ggml.scores",
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        );
        put(
            "tokenizer.ggml.token_type",
            Value::Array(kinds.into_iter().map(Value::I32).collect()),
        );
        put("tokenizer.ggml.bos_token_id", Value::U32(2));
        put("tokenizer.ggml.eos_token_id", Value::U32(1));
        put("tokenizer.ggml.unknown_token_id", Value::U32(3));
        put("tokenizer.ggml.padding_token_id", Value::U32(0));
        put("tokenizer.ggml.add_bos_token", Value::Bool(true));
        meta
    }

    fn ids(tokenizer: &Tokenizer, text: &str, add_special: bool) -> Vec<u32> {
        tokenizer
            .encode(text, add_special)
            .unwrap()
            .get_ids()
            .to_vec()
    }

    #[test]
    fn derives_merges_in_converter_order() {
        let meta = tiny_metadata();
        let pieces = read_pieces(&Metadata(&meta), true).unwrap();
        let vocab = vocab_of(&pieces).unwrap();
        let merges = derive_merges(&pieces, &vocab);
        let pairs: Vec<(&str, &str)> = merges
            .iter()
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        // "▁▁" (user-defined, counted as score 0) first, then by score: "he"
        // (-5), "ll" (-6), "▁he" (-7), "llo" (-8; "l"+"lo" is no merge as
        // "lo" is no piece), "▁hello" (-9), "o▁" (-10).
        assert_eq!(
            pairs,
            vec![
                ("▁", "▁"),
                ("h", "e"),
                ("l", "l"),
                ("▁", "he"),
                ("ll", "o"),
                ("▁he", "llo"),
                ("o", "▁"),
            ]
        );
    }

    #[test]
    fn encodes_like_sentencepiece_bpe() {
        let tokenizer = tokenizer_from_metadata(&tiny_metadata()).unwrap();
        let id = |piece: &str| tokenizer.token_to_id(piece).unwrap();
        assert_eq!(ids(&tokenizer, " hello", false), vec![id("▁hello")]);
        assert_eq!(ids(&tokenizer, " hello", true), vec![2, id("▁hello")]);
        // Added tokens are matched in the raw text; "▁▁" stands for two spaces.
        assert_eq!(
            ids(&tokenizer, "<start_of_turn>he\n", false),
            vec![4, id("he"), 5]
        );
        assert_eq!(id("▁▁"), 6);
        // Unknown characters fall back to their UTF-8 bytes.
        assert_eq!(
            ids(&tokenizer, "é", false),
            vec![id("<0xC3>"), id("<0xA9>")]
        );
    }

    #[test]
    fn decodes_back_to_the_text() {
        let tokenizer = tokenizer_from_metadata(&tiny_metadata()).unwrap();
        for text in [" hello", "he  llo é\n", "<start_of_turn>hello"] {
            let ids = ids(&tokenizer, text, false);
            assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
        }
    }

    #[test]
    fn marks_control_pieces_special() {
        let tokenizer = tokenizer_from_metadata(&tiny_metadata()).unwrap();
        let ids = ids(&tokenizer, "<start_of_turn>hello", true);
        assert_eq!(tokenizer.decode(&ids, true).unwrap(), "hello");
    }

    #[test]
    fn rejects_other_tokenizer_models() {
        let mut meta = tiny_metadata();
        meta.insert(
            "tokenizer.ggml.model".to_owned(),
            Value::String("bert".to_owned()),
        );
        assert!(matches!(
            tokenizer_from_metadata(&meta),
            Err(GgufTokenizerError::UnsupportedModel(m)) if m == "bert"
        ));
        // A byte-level vocabulary with a split pattern not rebuilt here.
        meta.insert(
            "tokenizer.ggml.model".to_owned(),
            Value::String("gpt2".to_owned()),
        );
        meta.insert(
            "tokenizer.ggml.pre".to_owned(),
            Value::String("qwen2".to_owned()),
        );
        assert!(matches!(
            tokenizer_from_metadata(&meta),
            Err(GgufTokenizerError::UnsupportedPreTokenizer(p)) if p == "qwen2"
        ));
    }
}
