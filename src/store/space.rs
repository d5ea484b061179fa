//! How much the store may hold and who may read it: [`StoreOptions`], the space check
//! made before every write, and file permissions.

use std::io;
use std::path::Path;

/// Who may read the store's files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Permissions {
    /// Only the daemon's user: directories 0700, files 0600 (the default).
    #[default]
    Private,
    /// The daemon's group may read too: directories 0750, files 0640.
    Group,
}

impl std::str::FromStr for Permissions {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "private" => Ok(Self::Private),
            "group" => Ok(Self::Group),
            _ => Err(format!("unknown store permissions {s:?} (private, group)")),
        }
    }
}

impl Permissions {
    /// The process umask that gives new files these permissions.
    pub fn umask(self) -> u32 {
        match self {
            Self::Private => 0o077,
            Self::Group => 0o027,
        }
    }

    /// The mode of the store's files.
    pub fn file_mode(self) -> u32 {
        self.modes().1
    }

    fn modes(self) -> (u32, u32) {
        match self {
            Self::Private => (0o700, 0o600),
            Self::Group => (0o750, 0o640),
        }
    }
}

/// Limits and permissions of a store.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Writes that would take the store (database + blobs) past this many bytes are
    /// refused (0: no limit).
    pub max_bytes: u64,
    /// Writes that would leave less than this many bytes free on the store's
    /// filesystem are refused.
    pub min_free_bytes: u64,
    pub permissions: Permissions,
}

/// Whether `e` means the disk (or the user's quota) is full.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Why a write of `incoming` bytes to a store of `current` bytes in `dir` is refused,
/// if it is.
pub(super) fn check(
    options: &StoreOptions,
    dir: &Path,
    current: u64,
    incoming: u64,
) -> Result<(), String> {
    if options.max_bytes > 0 && current + incoming > options.max_bytes {
        return Err(format!(
            "the store holds {current} bytes and this write needs about {incoming} more: over --max-store-bytes {} (delete or evict clusters, or raise the limit)",
            options.max_bytes
        ));
    }
    if let Ok(free) = fs4::available_space(dir) {
        if free < options.min_free_bytes.saturating_add(incoming) {
            return Err(format!(
                "only {free} bytes are free on the filesystem of {} and this write needs about {incoming} while keeping --min-free-bytes {} free (free space or delete clusters)",
                dir.display(),
                options.min_free_bytes
            ));
        }
    }
    Ok(())
}

/// Gives `dir` and everything under it the modes of `permissions`.
pub(super) fn restrict(dir: &Path, permissions: Permissions) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let (dir_mode, file_mode) = permissions.modes();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(dir_mode))?;
            for entry in std::fs::read_dir(&d)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    std::fs::set_permissions(
                        entry.path(),
                        std::fs::Permissions::from_mode(file_mode),
                    )?;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, permissions);
    Ok(())
}
