//! `score`: how likely the model finds a text after a cluster.

use std::io::Write;
use std::path::Path;

use super::turns::read_turn;
use super::CommandError;
use crate::cli::ScoreArgs;
use crate::client::{ClusterClient, ScoreStats, TurnInput};
use crate::output::Printer;

/// The text of a score: the summary line, then (with `tokens`) one line per token.
fn render(stats: &ScoreStats, tokens: bool) -> String {
    let mut out = format!(
        "mean NLL {:.3} nats/token, perplexity {:.2}, greedy agreement {:.0}% over {} tokens \
         ({} prompt tokens, {} reused from the cache, {:.0} ms)",
        stats.mean_nll,
        stats.perplexity,
        100.0 * stats.greedy_agreement,
        stats.tokens.len(),
        stats.prompt_tokens,
        stats.reused_tokens,
        stats.model_ms
    );
    if tokens {
        out.push_str("\n    id    logprob  greedy");
        for t in &stats.tokens {
            out.push_str(&format!(
                "\n{:>6} {:>10.4}  {}",
                t.id,
                t.logprob,
                if t.greedy { "yes" } else { "" }
            ));
        }
    }
    out
}

/// `score` as given on the command line: the text, else stdin.
pub async fn score_cmd<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    s: ScoreArgs,
) -> Result<(), CommandError> {
    let text = match s.text {
        Some(text) => text,
        None => read_turn(Path::new("-"))?,
    };
    let turns: Vec<TurnInput> = s.prompt.into_iter().map(TurnInput::user).collect();
    let stats = client.score(&s.cluster, &turns, s.format, &text).await?;
    p.emit_line_with(|| &stats, || render(&stats, s.tokens))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ScoredToken;

    #[test]
    fn renders_the_summary_and_tokens() {
        let stats = ScoreStats {
            tokens: vec![
                ScoredToken {
                    id: 504,
                    logprob: -0.25,
                    greedy: true,
                },
                ScoredToken {
                    id: 9,
                    logprob: -3.5,
                    greedy: false,
                },
            ],
            mean_nll: 1.875,
            perplexity: 6.52,
            greedy_agreement: 0.5,
            prompt_tokens: 14,
            reused_tokens: 33,
            model_ms: 12.0,
        };
        let text = render(&stats, true);
        assert!(text.starts_with("mean NLL 1.875 nats/token, perplexity 6.52, greedy agreement 50% over 2 tokens (14 prompt tokens, 33 reused"), "{text}");
        assert!(text.contains("   504    -0.2500  yes"), "{text}");
        assert_eq!(render(&stats, false).lines().count(), 1);
    }
}
