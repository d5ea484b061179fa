//! The daemon commands — `cluster create|list|show|fork|delete`, `append`, `generate`,
//! `chat` — written against [`ClusterClient`], and their output: human-readable by
//! default, JSON with `--json` (one document per command, for scripting).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::{
    AppendStats, ClientError, ClusterClient, ClusterInfo, GenerateRequest, GenerateStats, Sampling,
    ServerInfo, TextFormat, TurnInput,
};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The daemon call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Reading input or writing output failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Output could not be encoded as JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The command was given nothing to do.
    #[error("{0}")]
    Usage(String),
}

/// Where command output goes, and in which form.
pub struct Printer<W> {
    /// Emit JSON instead of text.
    pub json: bool,
    /// The output stream (stdout in the binary).
    pub out: W,
}

impl<W: Write> Printer<W> {
    /// Prints `value` as pretty JSON, or `text` when not in JSON mode.
    fn emit<T: Serialize>(
        &mut self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> Result<(), CommandError> {
        if self.json {
            serde_json::to_writer_pretty(&mut self.out, value)?;
            writeln!(self.out)?;
        } else {
            let text = text();
            if !text.is_empty() {
                writeln!(self.out, "{text}")?;
            }
        }
        Ok(())
    }
}

/// One cluster as an aligned block of `key: value` lines.
pub fn format_cluster(c: &ClusterInfo) -> String {
    let labels = if c.labels.is_empty() {
        "-".to_owned()
    } else {
        c.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "id:           {}\nturns:        {}\ncache tokens: {}\ncache bytes:  {}\nresidency:    {}\ncreated:      {} ms since epoch\nlabels:       {labels}",
        c.id, c.turns, c.cache_tokens, c.cache_bytes, c.residency, c.created_unix_ms
    )
}

/// Clusters as a table with a header row.
pub fn format_cluster_table(clusters: &[ClusterInfo]) -> String {
    if clusters.is_empty() {
        return "no clusters".to_owned();
    }
    let width = clusters
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let mut out = format!(
        "{:<width$}  {:>6}  {:>12}  {:<9}  LABELS",
        "ID", "TURNS", "CACHE TOKENS", "RESIDENCY"
    );
    for c in clusters {
        let labels = c
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&format!(
            "\n{:<width$}  {:>6}  {:>12}  {:<9}  {labels}",
            c.id, c.turns, c.cache_tokens, c.residency
        ));
    }
    out
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

/// The daemon's self-description.
pub fn format_server_info(s: &ServerInfo) -> String {
    let budget = if s.max_cache_bytes == 0 {
        "unlimited".to_owned()
    } else {
        s.max_cache_bytes.to_string()
    };
    format!(
        "semkvd {}\nmodel:       {} ({})\ndevice:      {} ({})\nclusters:    {}\ncache bytes: {} of {budget}\nqueue:       {} of {}",
        s.version,
        s.model,
        s.fingerprint,
        s.device,
        s.backend,
        s.known_clusters,
        s.cache_bytes,
        s.queue_depth,
        s.queue_capacity
    )
}

/// `cluster create`.
pub async fn cluster_create<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    id: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), CommandError> {
    let info = client.create_cluster(id, labels).await?;
    p.emit(&info, || format!("created {}", info.id))
}

/// `cluster list`, optionally only clusters carrying all labels of `selector`.
pub async fn cluster_list<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    selector: &BTreeMap<String, String>,
) -> Result<(), CommandError> {
    let mut clusters = client.list_clusters(selector).await?;
    clusters.sort_by(|a, b| a.id.cmp(&b.id));
    p.emit(&clusters, || format_cluster_table(&clusters))
}

/// `cluster show`.
pub async fn cluster_show<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    id: &str,
) -> Result<(), CommandError> {
    let info = client.get_cluster(id).await?;
    p.emit(&info, || format_cluster(&info))
}

/// `cluster fork`.
pub async fn cluster_fork<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    source: &str,
    target: &str,
) -> Result<(), CommandError> {
    let info = client
        .fork_cluster(source, target, &BTreeMap::new())
        .await?;
    p.emit(&info, || {
        format!(
            "forked {source} into {} ({} cache tokens)",
            info.id, info.cache_tokens
        )
    })
}

/// `cluster delete`.
pub async fn cluster_delete<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    id: &str,
) -> Result<(), CommandError> {
    client.delete_cluster(id).await?;
    p.emit(&serde_json::json!({ "deleted": id }), || {
        format!("deleted {id}")
    })
}

/// `server info` (also used by `semkv status`).
pub async fn server_info<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
) -> Result<(), CommandError> {
    let info = client.server_info().await?;
    p.emit(&info, || format_server_info(&info))
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
    p.emit(&stats, || format_append(id, &stats))
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
        serde_json::to_writer_pretty(
            &mut p.out,
            &Generated {
                cluster: &request.cluster,
                text: &text,
                stats: &stats,
            },
        )?;
        writeln!(p.out)?;
    } else {
        writeln!(p.out)?;
        writeln!(stats_out, "{}", format_generate_stats(&stats))?;
    }
    Ok(())
}

/// `chat`: reads user turns line by line from stdin; each is sent as a prompt that
/// extends the cluster (commit), and the answer streams back. An empty line is
/// skipped; `/quit` or end of input ends the chat. The `> ` prompt is shown only when
/// stdin is a terminal, so piped input gives clean output (one answer per line).
pub async fn chat<C: ClusterClient>(
    client: &C,
    cluster: &str,
    sampling: &Sampling,
    format: TextFormat,
    show_stats: bool,
) -> Result<(), CommandError> {
    let interactive = std::io::stdin().is_terminal();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = std::io::stdout();
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
            out: &mut stdout,
        };
        if show_stats {
            generate(client, &mut p, &mut stderr, &request).await?;
        } else {
            generate(client, &mut p, &mut std::io::sink(), &request).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> ClusterInfo {
        ClusterInfo {
            id: id.into(),
            labels: BTreeMap::from([("k".into(), "v".into())]),
            created_unix_ms: 1_764_000_000_000,
            turns: 3,
            cache_tokens: 1088,
            cache_bytes: 4096,
            residency: "hot".into(),
        }
    }

    #[test]
    fn cluster_table_aligns_columns() {
        let t = format_cluster_table(&[info("a"), info("longer-id")]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            format!("ID{}TURNS  CACHE TOKENS  RESIDENCY  LABELS", " ".repeat(10))
        );
        assert_eq!(
            lines[1],
            format!(
                "a{}3{}1088  hot{}k=v",
                " ".repeat(15),
                " ".repeat(10),
                " ".repeat(8)
            )
        );
        assert_eq!(format_cluster_table(&[]), "no clusters");
    }

    #[test]
    fn one_cluster_and_stats_read_well() {
        assert_eq!(
            format_cluster(&info("c")),
            "id:           c\nturns:        3\ncache tokens: 1088\ncache bytes:  4096\nresidency:    hot\ncreated:      1764000000000 ms since epoch\nlabels:       k=v"
        );
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

    #[test]
    fn printer_emits_json_or_text() {
        let mut p = Printer {
            json: true,
            out: Vec::new(),
        };
        p.emit(&info("x"), || unreachable!()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&p.out).unwrap();
        assert_eq!(v["cache_tokens"], 1088);
        let mut p = Printer {
            json: false,
            out: Vec::new(),
        };
        p.emit(&info("x"), || "hello".into()).unwrap();
        assert_eq!(p.out, b"hello\n");
    }
}
