//! Validated cluster identifiers.
//!
//! An id is 1-64 characters of `[A-Za-z0-9._-]` starting with a letter or digit, so it
//! is safe in storage keys, logs and file names (no `/`, no `..` at the start).

use std::fmt;

/// Longest id accepted.
pub const MAX_ID_LEN: usize = 64;

/// A cluster id that passed [`ClusterId::parse`].
///
/// ```
/// use semkv::cluster_id::ClusterId;
/// assert!(ClusterId::parse("physics-notes_2").is_ok());
/// assert!(ClusterId::parse("../etc").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(String);

impl ClusterId {
    /// Checks `s`; the error says what is wrong (without the field name).
    pub fn parse(s: &str) -> Result<Self, String> {
        validate_name(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The rule shared by cluster ids and label keys.
pub fn validate_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_ID_LEN {
        return Err(format!(
            "must be at most {MAX_ID_LEN} characters (got {})",
            s.len()
        ));
    }
    let mut chars = s.chars();
    let first = chars.next().expect("non-empty");
    if !first.is_ascii_alphanumeric() {
        return Err("must start with a letter or digit".into());
    }
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "may only contain letters, digits, '.', '_' and '-' (found {bad:?})"
        ));
    }
    Ok(())
}

impl std::borrow::Borrow<str> for ClusterId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ClusterId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["a", "A1", "x.y_z-0", &"a".repeat(64)] {
            assert!(ClusterId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "é", &"a".repeat(65)] {
            assert!(ClusterId::parse(bad).is_err(), "{bad}");
        }
    }
}
