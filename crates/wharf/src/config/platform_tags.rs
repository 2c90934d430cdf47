//! `allowed_platform_tags`: platform tags (or patterns with `*`) that uploads may carry
//! beyond PyPI's rule, such as `linux_x86_64` for wheels built for an organization's own
//! machines.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedPlatformTags(Vec<String>);

impl AllowedPlatformTags {
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<AllowedPlatformTags, String> {
        let mut tags = Vec::new();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            if !entry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'*'))
            {
                return Err(format!(
                    "allowed_platform_tags: {entry:?} is not a platform tag or pattern (letters, digits, '_', '.' and '*', such as \"linux_x86_64\" or \"linux_*\")"
                ));
            }
            tags.push(entry.to_owned());
        }
        Ok(AllowedPlatformTags(tags))
    }

    /// Whether `tag` is one of the listed tags or matches one of the patterns (`*`: any
    /// run of characters).
    pub fn allows(&self, tag: &str) -> bool {
        self.0
            .iter()
            .any(|pattern| glob_match(pattern.as_bytes(), tag.as_bytes()))
    }
}

/// `*`-only glob matching, iterative (no backtracking blow-up on many stars).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

impl Serialize for AllowedPlatformTags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for AllowedPlatformTags {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = super::ListOrText::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "allowed_platform_tags must be a list of platform tags, or one comma-separated string",
            )
        })?;
        AllowedPlatformTags::parse(given.entries()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_patterns_match_and_bad_entries_are_refused() {
        let tags =
            AllowedPlatformTags::parse(["linux_x86_64", "linux_*64", "*_riscv*"]).expect("valid");
        assert!(tags.allows("linux_x86_64"));
        assert!(tags.allows("linux_aarch64"));
        assert!(tags.allows("freebsd_riscv64"));
        assert!(!tags.allows("linux_armv7l"));
        assert!(!tags.allows("linux_x86_64x"));
        assert!(!AllowedPlatformTags::default().allows("linux_x86_64"));
        assert!(
            AllowedPlatformTags::parse(["*"])
                .expect("valid")
                .allows("anything")
        );
        for bad in ["linux-x86_64", "linux x86", "linux_[x]86", "ä"] {
            assert!(AllowedPlatformTags::parse([bad]).is_err(), "{bad}");
        }
    }
}
