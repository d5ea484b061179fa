//! Cache blobs (base snapshots, deltas, next-token logits) in files the store owns.
//!
//! sled keeps the small records; values of megabytes to gigabytes live here, one
//! immutable file per blob: `{data_dir}/blobs/{name}`. A blob is written to a temporary
//! file, fsynced, renamed into place and the directory fsynced, so after a crash a
//! name is either absent or whole. sled references a blob by [`BlobRef`] (name, length,
//! CRC-32) in the same batch that acknowledges the operation; a file no reference
//! names (an operation that failed or crashed before its batch, a blob replaced or
//! deleted while its removal was interrupted) is an orphan that [`BlobDir::collect`]
//! removes. Names are never reused, so a referenced file is never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Suffix of a blob being written.
const TMP_SUFFIX: &str = ".tmp";

/// Where a blob is and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// File name under the blob directory.
    pub name: String,
    pub len: u64,
    pub crc32: u32,
}

/// Why a blob could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {name} is missing")]
    Missing { name: String },
    #[error("blob {name} is damaged: {reason}")]
    Damaged { name: String, reason: String },
    #[error("blob {name}: {source}")]
    Io { name: String, source: io::Error },
}

/// The directory of cache blobs.
#[derive(Debug, Clone)]
pub struct BlobDir {
    dir: PathBuf,
    /// Mode of new files (unix).
    mode: u32,
}

impl BlobDir {
    /// Opens (creating) `dir` and removes temporary files a crash left behind; new
    /// files get `mode` (on unix).
    pub fn open(dir: &Path, mode: u32) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let blobs = Self {
            dir: dir.to_owned(),
            mode,
        };
        for name in blobs.names()? {
            if name.ends_with(TMP_SUFFIX) {
                let _ = fs::remove_file(dir.join(&name));
            }
        }
        Ok(blobs)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` as blob `name` (which must not exist yet), durably: temporary
    /// file, fsync, rename, fsync of the directory. On error nothing is left behind.
    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<BlobRef> {
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        let result = (|| {
            let mut file = create_new(&tmp, self.mode)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            publish(&tmp, &self.dir.join(name))?;
            self.sync()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(BlobRef {
            name: name.to_owned(),
            len: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        })
    }

    /// Gives blob `from` a second name `to` (a hard link; a copy where links are not
    /// supported), durably. Blobs are immutable, so both names can be used and
    /// removed independently.
    pub fn link(&self, from: &BlobRef, to: &str) -> io::Result<BlobRef> {
        let target = self.dir.join(to);
        if fs::hard_link(self.dir.join(&from.name), &target).is_err() {
            let bytes = fs::read(self.dir.join(&from.name))?;
            return self.write(to, &bytes);
        }
        self.sync()?;
        Ok(BlobRef {
            name: to.to_owned(),
            ..from.clone()
        })
    }

    /// Reads blob `r`, checking its length and CRC.
    pub fn read(&self, r: &BlobRef) -> Result<Vec<u8>, BlobError> {
        let io = |source: io::Error| BlobError::Io {
            name: r.name.clone(),
            source,
        };
        let mut file = match File::open(self.dir.join(&r.name)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobError::Missing {
                    name: r.name.clone(),
                })
            }
            Err(e) => return Err(io(e)),
        };
        let mut bytes = Vec::with_capacity(r.len as usize);
        file.read_to_end(&mut bytes).map_err(io)?;
        let damaged = |reason: String| BlobError::Damaged {
            name: r.name.clone(),
            reason,
        };
        if bytes.len() as u64 != r.len {
            return Err(damaged(format!(
                "{} bytes where {} were written",
                bytes.len(),
                r.len
            )));
        }
        if crc32fast::hash(&bytes) != r.crc32 {
            return Err(damaged("checksum mismatch".into()));
        }
        Ok(bytes)
    }

    /// Removes blob `name`; a blob that is already gone is not an error.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every file name in the directory.
    pub fn names(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    /// Bytes of all blobs.
    pub fn total_bytes(&self) -> u64 {
        fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Removes every file that `referenced` does not name and that is older than
    /// `min_age` (so a blob being committed right now is left alone); returns the
    /// files and bytes removed.
    pub fn collect(
        &self,
        referenced: impl Fn(&str) -> bool,
        min_age: Duration,
    ) -> io::Result<(usize, u64)> {
        let now = SystemTime::now();
        let (mut files, mut bytes) = (0, 0);
        for name in self.names()? {
            if referenced(&name) {
                continue;
            }
            let path = self.dir.join(&name);
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if age < min_age {
                continue;
            }
            self.remove(&name)?;
            files += 1;
            bytes += meta.len();
        }
        if files > 0 {
            self.sync()?;
        }
        Ok((files, bytes))
    }

    fn sync(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// Creates `path` (which must not exist) for writing, with `mode` on unix.
pub(super) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

/// Moves the finished file `tmp` to `target`, never replacing an existing file (a hard
/// link then the temporary name removed; a checked rename where links are missing).
fn publish(tmp: &Path, target: &Path) -> io::Result<()> {
    match fs::hard_link(tmp, target) {
        Ok(()) => fs::remove_file(tmp),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if target.exists() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists", target.display()),
        )),
        Err(_) => fs::rename(tmp, target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_link_remove_and_collect() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path(), 0o600).unwrap();
        let a = blobs.write("a", b"hello").unwrap();
        assert_eq!(blobs.read(&a).unwrap(), b"hello");
        assert!(
            blobs.write("a", b"again").is_err(),
            "names are never reused"
        );
        assert_eq!(blobs.read(&a).unwrap(), b"hello");

        let b = blobs.link(&a, "b").unwrap();
        blobs.remove("a").unwrap();
        assert_eq!(blobs.read(&b).unwrap(), b"hello");
        assert!(matches!(blobs.read(&a), Err(BlobError::Missing { .. })));

        // A flipped bit and a truncation are both caught.
        let path = dir.path().join("b");
        let mut bytes = fs::read(&path).unwrap();
        bytes[1] ^= 4;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(blobs.read(&b), Err(BlobError::Damaged { .. })));
        fs::write(&path, b"hel").unwrap();
        let err = blobs.read(&b).unwrap_err().to_string();
        assert!(err.contains("3 bytes where 5"), "{err}");

        // Orphans go; referenced and young files stay; leftovers of a crash too.
        blobs.write("keep", b"k").unwrap();
        blobs.write("young", b"y").unwrap();
        fs::write(dir.path().join("c.tmp"), b"partial").unwrap();
        let blobs = BlobDir::open(dir.path(), 0o600).unwrap();
        assert!(!dir.path().join("c.tmp").exists());
        let (files, _) = blobs.collect(|n| n == "keep", Duration::ZERO).unwrap();
        assert_eq!(files, 2, "b and young");
        let mut left = blobs.names().unwrap();
        left.sort();
        assert_eq!(left, vec!["keep"]);
        blobs.write("young", b"y").unwrap();
        let (files, _) = blobs
            .collect(|n| n == "keep", Duration::from_secs(3600))
            .unwrap();
        assert_eq!(files, 0);
    }
}
