//! The sled key layout (see the store's module documentation), written in one place.

/// A record (or a range of records) of one cluster, as a sled key; [`key`] is the one
/// place the key layout in the module documentation is written.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rec {
    /// `m/{id}`: the metadata.
    Meta,
    /// `d/{id}/`: every segment and turn (prefix).
    Data,
    /// `c/{id}`: the cache index (which blob files hold the cache).
    Cache,
    /// `d/{id}/s/`, `d/{id}/t/`: all segments or turns (prefix).
    All(Seq),
    /// `d/{id}/{s|t}/{seq:016x}`: one segment or turn.
    One(Seq, u64),
}

/// The numbered records of a cluster.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seq {
    Segment,
    Turn,
}

impl Seq {
    fn tag(self) -> char {
        match self {
            Seq::Segment => 's',
            Seq::Turn => 't',
        }
    }
}

/// The sled key (or key prefix) of `rec` for cluster `id`.
pub(super) fn key(id: &str, rec: Rec) -> Vec<u8> {
    match rec {
        Rec::Meta => format!("m/{id}"),
        Rec::Data => format!("d/{id}/"),
        Rec::Cache => format!("c/{id}"),
        Rec::All(seq) => format!("d/{id}/{}/", seq.tag()),
        Rec::One(seq, n) => format!("d/{id}/{}/{n:016x}", seq.tag()),
    }
    .into_bytes()
}

/// The prefix of every metadata record.
pub(super) const META_PREFIX: &[u8] = b"m/";

/// The prefix of every cache index.
pub(super) const CACHE_PREFIX: &[u8] = b"c/";

/// The fingerprint of the model the store was made with.
pub(super) const MODEL_KEY: &[u8] = b"x/model";

/// The number of acknowledged writes (compared with the manifest at open).
pub(super) const COMMITS_KEY: &[u8] = b"x/commits";

/// Cache records of builds before blob files (`d/{id}/b`, `d/{id}/l`,
/// `d/{id}/k/{seq}`): removed at open, the caches are rebuilt from their segments.
pub(super) fn is_legacy_cache_key(key: &[u8]) -> bool {
    let Ok(key) = std::str::from_utf8(key) else {
        return false;
    };
    let mut parts = key.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some("d"), Some(_), Some("b" | "l" | "k"))
    )
}

/// The blob file name of a cache part of cluster `id`; `n` is unique in the store, and
/// `+` cannot occur in an id, so `{id}+` prefixes exactly that cluster's blobs.
pub(super) fn blob_name(id: &str, n: u64, part: char) -> String {
    format!("{id}+{n:016x}.{part}")
}

/// The prefix of every blob file name of cluster `id`.
pub(super) fn blob_prefix(id: &str) -> String {
    format!("{id}+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_cache_keys_and_blob_names() {
        assert!(is_legacy_cache_key(b"d/a/b"));
        assert!(is_legacy_cache_key(b"d/a.b/k/0000000000000001"));
        assert!(is_legacy_cache_key(b"d/x/l"));
        assert!(!is_legacy_cache_key(b"d/a/s/0000000000000001"));
        assert!(!is_legacy_cache_key(b"m/b"));
        assert!(blob_name("a.b", 1, 'k').starts_with(&blob_prefix("a.b")));
        assert!(!blob_name("a.b", 1, 'k').starts_with(&blob_prefix("a")));
    }
}
