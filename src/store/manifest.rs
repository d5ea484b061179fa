//! `manifest.json`: the number of acknowledged writes and a digest of the cluster ids,
//! kept outside sled so that a database that lost writes or clusters (truncated,
//! rolled back, replaced by an older copy, a damaged page) is noticed at open instead
//! of silently serving less. Written atomically (temporary file, fsync, rename, fsync
//! of the directory) after every acknowledged write.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

const FILE: &str = "manifest.json";
const FORMAT: u32 = 1;

/// What the manifest records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub format: u32,
    /// Writes acknowledged so far (the database's `x/commits` is at least this).
    pub commits: u64,
    /// Clusters after the last acknowledged write.
    pub clusters: u64,
    /// XOR of the CRC-32 of every cluster id (see [`id_digest`]).
    pub digest: u32,
}

/// A cluster id's share of [`Manifest::digest`]: adding or removing a cluster XORs it
/// in, so the digest follows the set of ids without listing them.
pub(super) fn id_digest(id: &str) -> u32 {
    crc32fast::hash(id.as_bytes())
}

/// The manifest of the store in `dir`; `None` for a store that has none yet. A
/// manifest that cannot be parsed is reported and treated as absent.
pub(super) fn read(dir: &Path) -> io::Result<Option<Manifest>> {
    let bytes = match fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice(&bytes) {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            tracing::error!(
                path = %dir.join(FILE).display(),
                error = %e,
                "the store manifest is damaged: lost writes cannot be detected at this start; it is rewritten"
            );
            Ok(None)
        }
    }
}

/// Records `manifest`, durably; the file gets `mode` (on unix).
pub(super) fn write(dir: &Path, manifest: &Manifest, mode: u32) -> io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    let json = serde_json::to_vec(&Manifest {
        format: FORMAT,
        ..*manifest
    })
    .expect("manifest serializes");
    let mut file = super::blobs::create_new(&tmp, mode)?;
    file.write_all(&json)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(FILE))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod props {
    //! Property tests: any bytes in `manifest.json` read as a manifest or as none,
    //! never a panic; written manifests read back.
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64).boxed(),
                r#"\{("(format|commits|clusters|digest)":-?[0-9]{1,21},?){0,5}\}"#
                    .prop_map(String::into_bytes)
                    .boxed(),
            ]
        ) {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(FILE), &bytes).unwrap();
            let read = read(dir.path()).unwrap();
            if let Some(m) = read {
                prop_assert_eq!(Some(m), serde_json::from_slice::<Manifest>(&bytes).ok());
            }
        }

        #[test]
        fn written_manifests_read_back(commits in any::<u64>(), clusters in any::<u64>(), digest in any::<u32>()) {
            let dir = tempfile::tempdir().unwrap();
            let m = Manifest { format: FORMAT, commits, clusters, digest };
            write(dir.path(), &m, 0o600).unwrap();
            prop_assert_eq!(read(dir.path()).unwrap(), Some(m));
        }
    }
}
