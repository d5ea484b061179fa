//! `ListClusters` paging: clusters in id order, one page after a token.
//!
//! A page token is the last id of the previous page. Ids sort as bytes (the store's key
//! order), so a page is simply "the first matching clusters whose id is past the
//! token": the server keeps no state per listing, and a cluster created or deleted
//! between two pages cannot make another one be listed twice or skipped.

use prost::Message;

use crate::proto;

/// Largest encoded reply a page may grow to (it is cut before): under gRPC's common
/// 4 MiB default receive limit (Python's grpcio, grpcurl), with room to spare.
pub const MAX_PAGE_BYTES: usize = 3 << 20;

/// The page of `clusters` (any order; those that match the request) that starts after
/// the id `after`: at most `size` clusters and [`MAX_PAGE_BYTES`] of reply, by id;
/// `next_page_token` is set when more follow.
pub fn page(
    clusters: Vec<proto::Cluster>,
    after: Option<&str>,
    size: usize,
) -> proto::ListClustersResponse {
    page_within(clusters, after, size, MAX_PAGE_BYTES)
}

fn page_within(
    mut clusters: Vec<proto::Cluster>,
    after: Option<&str>,
    size: usize,
    max_bytes: usize,
) -> proto::ListClustersResponse {
    if let Some(after) = after {
        clusters.retain(|c| c.id.as_str() > after);
    }
    clusters.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let mut bytes = 0;
    let mut taken = 0;
    for c in clusters.iter().take(size) {
        // The field's tag and length prefix, then the message.
        let len = c.encoded_len();
        let len = 1 + prost::length_delimiter_len(len) + len;
        if taken > 0 && bytes + len > max_bytes {
            break;
        }
        bytes += len;
        taken += 1;
    }
    let more = clusters.len() > taken;
    clusters.truncate(taken);
    let next_page_token = match clusters.last() {
        Some(last) if more => last.id.clone(),
        _ => String::new(),
    };
    proto::ListClustersResponse {
        clusters,
        next_page_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(id: &str) -> proto::Cluster {
        proto::Cluster {
            id: id.into(),
            ..Default::default()
        }
    }

    fn ids(r: &proto::ListClustersResponse) -> Vec<&str> {
        r.clusters.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn pages_follow_the_id_order_and_end_with_an_empty_token() {
        let all = || ["c", "a", "e", "b", "d"].map(cluster).to_vec();
        let p = page(all(), None, 2);
        assert_eq!((ids(&p), p.next_page_token.as_str()), (vec!["a", "b"], "b"));
        let p = page(all(), Some("b"), 2);
        assert_eq!((ids(&p), p.next_page_token.as_str()), (vec!["c", "d"], "d"));
        let p = page(all(), Some("d"), 2);
        assert_eq!((ids(&p), p.next_page_token.as_str()), (vec!["e"], ""));
        // Exactly full: no token, no empty extra page.
        let p = page(all(), Some("c"), 2);
        assert_eq!((ids(&p), p.next_page_token.as_str()), (vec!["d", "e"], ""));
        // A token whose cluster is gone still continues after it.
        let p = page(all(), Some("bb"), 10);
        assert_eq!(ids(&p), vec!["c", "d", "e"]);
        assert!(page(Vec::new(), None, 10).next_page_token.is_empty());
    }

    #[test]
    fn a_page_is_cut_before_it_outgrows_the_byte_limit() {
        let big = |id: &str| proto::Cluster {
            damage: "x".repeat(1000),
            ..cluster(id)
        };
        let all = ["a", "b", "c"].map(big).to_vec();
        let p = page_within(all.clone(), None, 100, 2500);
        assert_eq!((ids(&p), p.next_page_token.as_str()), (vec!["a", "b"], "b"));
        // One cluster always goes, whatever its size.
        let p = page_within(all, Some("b"), 100, 10);
        assert_eq!((ids(&p), p.next_page_token.as_str()), (vec!["c"], ""));
    }
}
