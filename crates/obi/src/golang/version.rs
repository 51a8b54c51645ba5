//! Go release versions as the toolchain writes them into a binary
//! (`go1.19.8`, `go1.23.5`, `go1.21rc2`, `go1.22.0 X:nocoverageredesign`).

use std::fmt;

/// A Go release: `major.minor.patch` (a release candidate or beta counts
/// as its `.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct GoVersion {
    pub(crate) major: u16,
    pub(crate) minor: u16,
    pub(crate) patch: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum VersionError {
    #[error("not a Go release version: {0:?}")]
    NotARelease(String),
}

impl GoVersion {
    pub(crate) const fn new(major: u16, minor: u16, patch: u16) -> GoVersion {
        GoVersion { major, minor, patch }
    }

    /// Parses what `runtime.Version()` returns for a release build; a
    /// development build (`devel go1.24-abcdef ...`) has no release to
    /// look offsets up by, so it is an error.
    pub(crate) fn parse(s: &str) -> Result<GoVersion, VersionError> {
        let bad = || VersionError::NotARelease(s.chars().take(64).collect());
        // Experiments follow a space: `go1.22.0 X:nocoverageredesign`.
        let word = s.split_whitespace().next().ok_or_else(bad)?;
        let rest = word.strip_prefix("go").ok_or_else(bad)?;
        let mut parts = rest.splitn(3, '.');
        let major = leading_number(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
        let minor = parts.next().and_then(leading_number).ok_or_else(bad)?;
        // `go1.21rc2` and `go1.20` have no patch.
        let patch = parts.next().map_or(Some(0), leading_number).ok_or_else(bad)?;
        Ok(GoVersion::new(major, minor, patch))
    }

    /// Parses `1.19` or `1.19.8` (the offset table's notation).
    pub(crate) fn parse_plain(s: &str) -> Result<GoVersion, VersionError> {
        GoVersion::parse(&format!("go{s}"))
    }
}

/// The digits a version component starts with (`21rc2` -> 21).
fn leading_number(s: &str) -> Option<u16> {
    let end = s.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_versions() {
        assert_eq!(GoVersion::parse("go1.19.8"), Ok(GoVersion::new(1, 19, 8)));
        assert_eq!(GoVersion::parse("go1.23.5"), Ok(GoVersion::new(1, 23, 5)));
        assert_eq!(GoVersion::parse("go1.20"), Ok(GoVersion::new(1, 20, 0)));
        assert_eq!(GoVersion::parse("go1.21rc2"), Ok(GoVersion::new(1, 21, 0)));
        assert_eq!(GoVersion::parse("go1.22.0 X:nocoverageredesign"), Ok(GoVersion::new(1, 22, 0)));
        assert_eq!(GoVersion::parse_plain("1.17"), Ok(GoVersion::new(1, 17, 0)));
    }

    #[test]
    fn rejects_what_is_no_release() {
        for s in ["", "devel go1.24-abcdef", "go", "go1", "1.19", "gox.y", "go1.x"] {
            assert!(GoVersion::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn orders_by_number_not_text() {
        assert!(GoVersion::new(1, 9, 0) < GoVersion::new(1, 19, 0));
        assert!(GoVersion::new(1, 19, 8) < GoVersion::new(1, 20, 0));
        assert_eq!(GoVersion::new(1, 23, 5).to_string(), "1.23.5");
    }
}
