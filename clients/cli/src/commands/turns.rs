//! `append`, `generate` and `chat`: the commands that add turns to a cluster and
//! generate on it.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::CommandError;
use crate::cli::{AppendArgs, ChatArgs, GenerateArgs};
use crate::client::{
    AppendStats, ClientError, ClusterClient, GenerateRequest, GenerateStats, Sampling, TextFormat,
    TurnInput,
};
use crate::output::Printer;

/// Reads one turn from a file, or stdin for "-".
pub(crate) fn read_turn(path: &Path) -> Result<String, CommandError> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CommandError::Usage(format!("stdin: {e}")))?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| CommandError::Usage(format!("{}: {e}", path.display())))?;
    }
    Ok(text)
}

/// `append` as given on the command line: the turn texts, else `--file`, else stdin.
pub async fn append_cmd<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    a: AppendArgs,
) -> Result<(), CommandError> {
    let texts = match (&a.file, a.texts.is_empty()) {
        (Some(path), _) => vec![read_turn(path)?],
        (None, true) => vec![read_turn(Path::new("-"))?],
        (None, false) => a.texts,
    };
    let turns: Vec<TurnInput> = texts
        .into_iter()
        .map(|text| TurnInput { role: a.role, text })
        .collect();
    append(client, p, &a.cluster, &turns, a.format).await
}

/// `generate` as given on the command line: the prompt, else stdin; or no prompt with
/// `--continue`. Statistics go to stderr.
pub async fn generate_cmd<C: ClusterClient, W: Write + Send>(
    client: &C,
    p: &mut Printer<W>,
    g: GenerateArgs,
) -> Result<(), CommandError> {
    let (prompt, format) = match (g.continue_, g.prompt) {
        (true, _) => (Vec::new(), TextFormat::Raw),
        (false, Some(p)) => (vec![TurnInput::user(p)], g.format),
        (false, None) => (vec![TurnInput::user(read_turn(Path::new("-"))?)], g.format),
    };
    let request = GenerateRequest {
        cluster: g.cluster,
        prompt,
        format,
        sampling: g.sampling.sampling(),
        commit: g.commit,
    };
    generate(client, p, &mut std::io::stderr(), &request).await
}

/// `chat` as given on the command line: creates the cluster if it does not exist.
pub async fn chat_cmd<C: ClusterClient, W: Write + Send>(
    client: &C,
    p: &mut Printer<W>,
    c: ChatArgs,
) -> Result<(), CommandError> {
    match client.get_cluster(&c.cluster).await {
        Ok(_) => {}
        Err(ClientError::NotFound(_)) => {
            client.create_cluster(&c.cluster, &BTreeMap::new()).await?;
        }
        Err(e) => return Err(e.into()),
    }
    chat(
        client,
        &mut p.out,
        &c.cluster,
        &c.sampling.sampling(),
        c.format,
        c.stats,
    )
    .await
}

/// `append`: appends `turns` to cluster `id`.
pub async fn append<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    id: &str,
    turns: &[TurnInput],
    format: TextFormat,
) -> Result<(), CommandError> {
    if turns.is_empty() || turns.iter().all(|t| t.text.trim().is_empty()) {
        return Err(CommandError::Usage(
            "nothing to append: the text is empty".into(),
        ));
    }
    let stats = client.append_turns(id, turns, format).await?;
    Ok(p.emit(&stats, || format_append(id, &stats))?)
}

/// What `generate --json` prints.
#[derive(Debug, Serialize)]
struct Generated<'a> {
    cluster: &'a str,
    text: &'a str,
    stats: &'a GenerateStats,
}

/// `generate`: streams the text to the printer as it arrives (in JSON mode, prints one
/// document at the end); statistics go to `stats_out` in text mode.
pub async fn generate<C: ClusterClient, W: Write + Send, E: Write>(
    client: &C,
    p: &mut Printer<W>,
    stats_out: &mut E,
    request: &GenerateRequest,
) -> Result<(), CommandError> {
    let mut text = String::new();
    let json = p.json;
    let out = &mut p.out;
    let mut write_error: Option<std::io::Error> = None;
    let mut on_delta = |delta: &str| {
        text.push_str(delta);
        if !json && write_error.is_none() {
            if let Err(e) = out.write_all(delta.as_bytes()).and_then(|_| out.flush()) {
                write_error = Some(e);
            }
        }
    };
    let stats = client.generate(request, &mut on_delta).await?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if json {
        let generated = Generated {
            cluster: &request.cluster,
            text: &text,
            stats: &stats,
        };
        p.emit(&generated, String::new)?;
    } else {
        // The text streamed out already: end its line.
        writeln!(p.out)?;
        writeln!(stats_out, "{}", format_generate_stats(&stats))?;
    }
    Ok(())
}

/// `chat`: reads user turns line by line from stdin; each is sent as a prompt that
/// extends the cluster (commit), and the answer streams back. An empty line is
/// skipped; `/quit` or end of input ends the chat. The `> ` prompt is shown only when
/// stdin is a terminal, so piped input gives clean output (one answer per line).
pub async fn chat<C: ClusterClient, W: Write + Send>(
    client: &C,
    out: &mut W,
    cluster: &str,
    sampling: &Sampling,
    format: TextFormat,
    show_stats: bool,
) -> Result<(), CommandError> {
    let interactive = std::io::stdin().is_terminal();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stderr = std::io::stderr();
    if interactive {
        eprintln!("chatting with cluster {cluster}; /quit or Ctrl-D to end");
    }
    loop {
        if interactive {
            eprint!("> ");
            stderr.flush()?;
        }
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let line = line.trim();
        if line == "/quit" {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let request = GenerateRequest {
            cluster: cluster.to_owned(),
            prompt: vec![TurnInput::user(line)],
            format,
            sampling: sampling.clone(),
            commit: true,
        };
        let mut p = Printer {
            json: false,
            out: &mut *out,
        };
        if show_stats {
            generate(client, &mut p, &mut stderr, &request).await?;
        } else {
            generate(client, &mut p, &mut std::io::sink(), &request).await?;
        }
    }
    Ok(())
}

/// A one-line account of an append.
pub fn format_append(id: &str, s: &AppendStats) -> String {
    format!(
        "{id}: +{} tokens, {} in cache (prefill {:.1} ms, queued {:.1} ms)",
        s.tokens_added, s.total_tokens, s.prefill_ms, s.queue_ms
    )
}

/// A one-line account of a generation.
pub fn format_generate_stats(s: &GenerateStats) -> String {
    format!(
        "[{} prompt tokens, {} reused from cache, {} generated; TTFT {:.1} ms, {:.1} tok/s; {}]",
        s.prompt_tokens,
        s.tokens_reused,
        s.generated_tokens,
        s.ttft_ms,
        s.tokens_per_s,
        s.finish_reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_and_append_stats_read_well() {
        let s = GenerateStats {
            prompt_tokens: 1100,
            tokens_reused: 1088,
            total_tokens: 1400,
            generated_tokens: 300,
            ttft_ms: 12.34,
            tokens_per_s: 55.5,
            finish_reason: "length".into(),
        };
        assert_eq!(
            format_generate_stats(&s),
            "[1100 prompt tokens, 1088 reused from cache, 300 generated; TTFT 12.3 ms, 55.5 tok/s; length]"
        );
        let a = AppendStats {
            tokens_added: 12,
            total_tokens: 40,
            prefill_ms: 3.0,
            queue_ms: 0.5,
        };
        assert_eq!(
            format_append("c", &a),
            "c: +12 tokens, 40 in cache (prefill 3.0 ms, queued 0.5 ms)"
        );
    }
}
