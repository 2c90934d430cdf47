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

/// PyPI's "latest version" of a project: the highest release by PEP 440 ordering that is
/// final (post-releases and local versions are; `rc`, `a`, `b` and `.dev` are not) and not
/// yanked; else the highest pre-release that is not yanked; else, every release being
/// yanked, the highest. `version_of` gives an item's version and whether it is yanked.
/// Versions that do not parse rank below every one that does.
pub fn latest<T>(items: &[T], version_of: impl Fn(&T) -> (&str, bool)) -> Option<&T> {
    items
        .iter()
        .map(|item| {
            let (raw, yanked) = version_of(item);
            let parsed = parse(raw).ok();
            let is_final = parsed.as_ref().is_some_and(|v| !v.any_prerelease());
            ((!yanked, is_final, parsed), item)
        })
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, item)| item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latest_of<'a>(releases: &'a [(&'a str, bool)]) -> Option<&'a str> {
        latest(releases, |(v, yanked)| (*v, *yanked)).map(|(v, _)| *v)
    }

    #[test]
    fn latest_is_the_highest_final_release_not_yanked() {
        for (releases, expected) in [
            // Upload order does not matter; PEP 440 order does.
            (&[("0.2.0", false), ("0.0.9", false)][..], "0.2.0"),
            (&[("1.0", false), ("1.0.post1", false)], "1.0.post1"),
            (&[("1.0", false), ("2.0rc1", false)], "1.0"),
            (&[("1.0", false), ("1.1.dev0", false)], "1.0"),
            (&[("2.0", false), ("1!0.1", false)], "1!0.1"),
            (&[("1.0", false), ("1.0+local", false)], "1.0+local"),
            (&[("0.2.0", false), ("0.3.0", true)], "0.2.0"),
            (
                &[("1.0a1", false), ("1.0b2", false), ("0.9", true)],
                "1.0b2",
            ),
            (&[("1.0", true), ("2.0", true)], "2.0"),
            (&[("1.10", false), ("1.9", false)], "1.10"),
            (&[("not a version", false), ("0.1", false)], "0.1"),
        ] {
            assert_eq!(latest_of(releases), Some(expected), "{releases:?}");
        }
        assert_eq!(latest_of(&[]), None);
    }

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
