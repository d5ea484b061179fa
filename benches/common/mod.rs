//! What the daemon benchmarks share.

/// Plain English filler of roughly `tokens` tokens (these words are one token each in
/// the Gemma 3 vocabulary), different per `salt`.
pub fn filler(tokens: usize, salt: usize) -> String {
    const WORDS: &[&str] = &[
        "the",
        "cache",
        "river",
        "engine",
        "quietly",
        "measured",
        "every",
        "token",
        "across",
        "distant",
        "valleys",
        "while",
        "careful",
        "researchers",
        "compared",
        "isolated",
        "topics",
        "and",
        "shared",
        "contexts",
    ];
    (0..tokens)
        .map(|i| WORDS[(i * 7 + salt * 13 + i / 5) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}
