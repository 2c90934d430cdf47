//! The settings of the upstream proxy (`upstream_url` and friends): durations written as
//! `--expires-in` takes them (`30s`, `10m`, `3d`), name prefixes that never leave the index,
//! and the hosts an upstream's files and redirects may be on.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ListOrText;

/// A duration setting (`30s`, `10m`, `3d`); `0s` where "none" makes sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{}s", self.0.as_secs()))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const HINT: &str = "a duration such as \"30s\", \"10m\" or \"3d\"";
        let given = String::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom(format!("expected {HINT}")))?;
        humantime::parse_duration(given.trim())
            .map(Span)
            .map_err(|_| serde::de::Error::custom(format!("expected {HINT}, not {given:?}")))
    }
}

/// `private_prefixes`: PEP 503-normalised name prefixes that are never looked up upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrivatePrefixes(Vec<String>);

impl PrivatePrefixes {
    /// Whether the normalised `name` starts with one of the prefixes.
    pub fn covers(&self, normalized: &str) -> bool {
        self.0.iter().any(|p| normalized.starts_with(p.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for PrivatePrefixes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.0)
    }
}

impl<'de> Deserialize<'de> for PrivatePrefixes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = ListOrText::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "private_prefixes must be a list of name prefixes, or one comma-separated string",
            )
        })?;
        let mut prefixes = Vec::new();
        for entry in given.entries().into_iter().map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let valid = entry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid {
                return Err(serde::de::Error::custom(format!(
                    "private_prefixes: {entry:?} is not the start of a project name (letters, digits, '-', '_' and '.')"
                )));
            }
            // Normalised as names are, but a trailing separator is kept: `acme-` must not
            // cover `acmeish`.
            let normalized = wharf_packaging::name::normalize(entry);
            let separator = entry.ends_with(['-', '_', '.']) && !normalized.ends_with('-');
            prefixes.push(if separator {
                format!("{normalized}-")
            } else {
                normalized
            });
        }
        Ok(PrivatePrefixes(prefixes))
    }
}

/// `upstream_hosts`: hosts besides the upstream's own that its file URLs and redirects may
/// point at (PyPI's files are on `files.pythonhosted.org`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamHosts(pub Vec<String>);

impl Serialize for UpstreamHosts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.0)
    }
}

impl<'de> Deserialize<'de> for UpstreamHosts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = ListOrText::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "upstream_hosts must be a list of host names, or one comma-separated string",
            )
        })?;
        let mut hosts = Vec::new();
        for entry in given.entries().into_iter().map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            match host_and_port(entry) {
                Some(host) => hosts.push(host),
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "upstream_hosts: {entry:?} is not a host name with an optional port (such as files.pythonhosted.org or 10.0.0.5:8080)"
                    )));
                }
            }
        }
        Ok(UpstreamHosts(hosts))
    }
}

/// `host` or `host:port`, lowercase, when `entry` is only that.
fn host_and_port(entry: &str) -> Option<String> {
    if entry.contains(['/', '@', '?', '#']) {
        return None;
    }
    let url = url::Url::parse(&format!("http://{entry}/")).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None if entry.ends_with(':') => return None,
        None => host,
    })
}

/// Checks the upstream settings together (each also checked alone as it is read).
pub fn check(settings: &super::Settings) -> anyhow::Result<()> {
    for (name, span) in [
        ("upstream_ttl", settings.upstream_ttl),
        ("upstream_timeout", settings.upstream_timeout),
        ("upstream_file_timeout", settings.upstream_file_timeout),
    ] {
        if span.0 < Duration::from_secs(1) {
            anyhow::bail!("{name} must be at least 1s");
        }
    }
    let Some(given) = &settings.upstream_url else {
        return Ok(());
    };
    let parsed = url::Url::parse(given)
        .map_err(|e| anyhow::anyhow!("invalid upstream_url {given:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        anyhow::bail!(
            "invalid upstream_url {given:?}: use the http:// or https:// URL of a Simple index, such as https://pypi.org/simple/"
        );
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        anyhow::bail!(
            "upstream_url must not carry credentials: set upstream_username and upstream_password (or upstream_token)"
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        anyhow::bail!(
            "invalid upstream_url {given:?}: a Simple index URL has no query or fragment"
        );
    }
    if settings.upstream_token.is_some()
        && (settings.upstream_username.is_some() || settings.upstream_password.is_some())
    {
        anyhow::bail!("set either upstream_token or upstream_username/upstream_password, not both");
    }
    if settings.upstream_password.is_some() && settings.upstream_username.is_none() {
        anyhow::bail!("upstream_password needs upstream_username");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(text: &str) -> Result<PrivatePrefixes, String> {
        PrivatePrefixes::deserialize(
            serde::de::value::StrDeserializer::<serde::de::value::Error>::new(text),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn prefixes_are_normalised_and_keep_their_separator() {
        let p = prefixes("Acme_, internal.,corp").expect("valid");
        assert!(p.covers("acme-tools"));
        assert!(!p.covers("acmeish"));
        assert!(p.covers("internal-x"));
        assert!(p.covers("corporate"));
        assert!(!p.covers("other"));
        assert!(prefixes("acme/").unwrap_err().contains("acme/"));
    }

    #[test]
    fn spans_read_as_expires_in_does() {
        let span = |t: &str| {
            Span::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(t))
                .map(|s| s.0.as_secs())
        };
        assert_eq!(span("30s").ok(), Some(30));
        assert_eq!(span("10m").ok(), Some(600));
        assert_eq!(span("3d").ok(), Some(259_200));
        assert!(span("soon").is_err());
    }
}
