//! `cluster create|list|show|fork|delete`.

use std::collections::BTreeMap;
use std::io::Write;

use super::CommandError;
use crate::cli::ClusterCommand;
use crate::client::{ClusterClient, ClusterInfo};
use crate::output::Printer;

/// Runs one `cluster` subcommand.
pub async fn run<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    command: ClusterCommand,
) -> Result<(), CommandError> {
    match command {
        ClusterCommand::Create { id, labels } => {
            let labels: BTreeMap<String, String> = labels.into_iter().collect();
            cluster_create(client, p, &id, &labels).await
        }
        ClusterCommand::List { labels } => {
            let selector: BTreeMap<String, String> = labels.into_iter().collect();
            cluster_list(client, p, &selector).await
        }
        ClusterCommand::Show { id } => cluster_show(client, p, &id).await,
        ClusterCommand::Fork { source, target } => cluster_fork(client, p, &source, &target).await,
        ClusterCommand::Delete { id } => cluster_delete(client, p, &id).await,
    }
}

/// `cluster create`.
pub async fn cluster_create<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    id: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), CommandError> {
    let info = client.create_cluster(id, labels).await?;
    Ok(p.emit(&info, || format!("created {}", info.id))?)
}

/// `cluster list`, optionally only clusters carrying all labels of `selector`.
pub async fn cluster_list<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    selector: &BTreeMap<String, String>,
) -> Result<(), CommandError> {
    let mut clusters = client.list_clusters(selector).await?;
    clusters.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(p.emit(&clusters, || format_cluster_table(&clusters))?)
}

/// `cluster show`.
pub async fn cluster_show<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    id: &str,
) -> Result<(), CommandError> {
    let info = client.get_cluster(id).await?;
    Ok(p.emit(&info, || format_cluster(&info))?)
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
    Ok(p.emit(&info, || {
        format!(
            "forked {source} into {} ({} cache tokens)",
            info.id, info.cache_tokens
        )
    })?)
}

/// `cluster delete`.
pub async fn cluster_delete<C: ClusterClient, W: Write>(
    client: &C,
    p: &mut Printer<W>,
    id: &str,
) -> Result<(), CommandError> {
    client.delete_cluster(id).await?;
    Ok(p.emit(&serde_json::json!({ "deleted": id }), || {
        format!("deleted {id}")
    })?)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn info(id: &str) -> ClusterInfo {
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
    fn one_cluster_reads_well() {
        assert_eq!(
            format_cluster(&info("c")),
            "id:           c\nturns:        3\ncache tokens: 1088\ncache bytes:  4096\nresidency:    hot\ncreated:      1764000000000 ms since epoch\nlabels:       k=v"
        );
    }
}
