//! PEP 440 versions, behind a small facade over `pep440_rs`.

use std::str::FromStr;

pub use pep440_rs::{Version, VersionSpecifiers};

/// Parses a PEP 440 version.
pub fn parse(raw: &str) -> Result<Version, String> {
    Version::from_str(raw.trim()).map_err(|e| e.to_string())
}

/// `packaging.utils.canonicalize_version`: the normal form with trailing `.0`s of the release
/// dropped, so that `1.0` and `1.0.0` name the same release.
pub fn canonicalize(version: &Version) -> String {
    let release = version.release();
    let keep = release.iter().rposition(|&n| n != 0).map_or(1, |i| i + 1);
    version
        .clone()
        .with_release(release[..keep].to_vec())
        .to_string()
}

/// Parses a `Requires-Python` specifier set.
pub fn parse_specifiers(raw: &str) -> Result<VersionSpecifiers, String> {
    VersionSpecifiers::from_str(raw).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalizes_like_packaging() {
        for (raw, canonical) in [
            ("1.0.0", "1"),
            ("1.0", "1"),
            ("1.2.0", "1.2"),
            ("0", "0"),
            ("1.0.0rc1", "1rc1"),
            ("1!2.0.post1.dev2", "1!2.post1.dev2"),
            ("1.10", "1.10"),
            ("01.2", "1.2"),
        ] {
            assert_eq!(canonicalize(&parse(raw).expect(raw)), canonical, "{raw}");
        }
    }

    #[test]
    fn refuses_invalid_versions() {
        assert!(parse("not a version").is_err());
        assert!(parse("1.0+local").expect("parses").is_local());
        assert!(parse_specifiers(">=3.8,<4").is_ok());
        assert!(parse_specifiers(">=3.8,<<4").is_err());
    }
}
