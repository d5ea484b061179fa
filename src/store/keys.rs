//! The sled key layout (see the store's module documentation), written in one place.

/// A record (or a range of records) of one cluster, as a sled key; [`key`] is the one
/// place the key layout in the module documentation is written.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rec {
    /// `m/{id}`: the metadata.
    Meta,
    /// `d/{id}/`: every data record (prefix).
    Data,
    /// `d/{id}/b`: the cache base snapshot.
    Base,
    /// `d/{id}/l`: the next-token logits.
    Logits,
    /// `d/{id}/s/`, `d/{id}/t/`, `d/{id}/k/`: all segments, turns or deltas (prefix).
    All(Seq),
    /// `d/{id}/{s|t|k}/{seq:016x}`: one segment, turn or delta.
    One(Seq, u64),
}

/// The numbered records of a cluster.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seq {
    Segment,
    Turn,
    Delta,
}

impl Seq {
    fn tag(self) -> char {
        match self {
            Seq::Segment => 's',
            Seq::Turn => 't',
            Seq::Delta => 'k',
        }
    }
}

/// The sled key (or key prefix) of `rec` for cluster `id`.
pub(super) fn key(id: &str, rec: Rec) -> Vec<u8> {
    match rec {
        Rec::Meta => format!("m/{id}"),
        Rec::Data => format!("d/{id}/"),
        Rec::Base => format!("d/{id}/b"),
        Rec::Logits => format!("d/{id}/l"),
        Rec::All(seq) => format!("d/{id}/{}/", seq.tag()),
        Rec::One(seq, n) => format!("d/{id}/{}/{n:016x}", seq.tag()),
    }
    .into_bytes()
}

/// The prefix of every metadata record.
pub(super) const META_PREFIX: &[u8] = b"m/";
