//! The settings of who may join: `registration` (open, invite, closed) and
//! `registration_email_domains` (the only domains whose addresses may register or be added).

use serde::{Deserialize, Serialize};

/// Who may create an account on the register page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Registration {
    /// Anyone who reaches the site.
    #[default]
    Open,
    /// Only someone holding an invitation an admin sent.
    Invite,
    /// No one: admins create accounts (`wharf user create`).
    Closed,
}

impl Registration {
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Invite => "invite",
            Registration::Closed => "closed",
        }
    }
}

impl Serialize for Registration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Registration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = String::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("registration must be one of \"open\", \"invite\", \"closed\"")
        })?;
        match given.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Registration::Open),
            "invite" => Ok(Registration::Invite),
            "closed" => Ok(Registration::Closed),
            _ => Err(serde::de::Error::custom(format!(
                "registration must be one of \"open\", \"invite\", \"closed\" (not {given:?})"
            ))),
        }
    }
}

/// `registration_email_domains`: when not empty, only addresses in these domains (exactly:
/// a subdomain only when it is listed too) may register or be added to an account. Kept in
/// their ASCII (IDNA) form, lowercase, without a trailing dot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmailDomains(Vec<String>);

/// A domain as addresses are compared: trimmed, without the trailing dot of a fully
/// qualified name, lowercase, international names in their IDNA (`xn--`) form. `None` for
/// what is not a domain name (an IP address, a wildcard, an empty or one-label name).
pub fn normalize_domain(domain: &str) -> Option<String> {
    let domain = domain.trim();
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.contains(['*', '@', '/', ':', ' ']) {
        return None;
    }
    match url::Host::parse(domain).ok()? {
        url::Host::Domain(ascii) => {
            let ascii = ascii.to_ascii_lowercase();
            let labels_ok = ascii.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            (labels_ok && ascii.contains('.')).then_some(ascii)
        }
        _ => None,
    }
}

impl EmailDomains {
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<EmailDomains, String> {
        let mut domains = Vec::new();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            let domain = normalize_domain(entry).ok_or_else(|| {
                format!(
                    "registration_email_domains: {entry:?} is not a domain name (list each domain, subdomains too, such as \"example.org\")"
                )
            })?;
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
        Ok(EmailDomains(domains))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The domains, for pages and messages.
    pub fn list(&self) -> &[String] {
        &self.0
    }

    /// Whether `email` may register or be added: always when no domain is set, else when
    /// its domain (normalized) is one of them.
    pub fn allows(&self, email: &str) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        normalize_domain(domain).is_some_and(|d| self.0.contains(&d))
    }
}

impl Serialize for EmailDomains {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for EmailDomains {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = super::ListOrText::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "registration_email_domains must be a list of domains, or one comma-separated string",
            )
        })?;
        EmailDomains::parse(given.entries()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_compared_after_normalisation_and_subdomains_must_be_listed() {
        let domains =
            EmailDomains::parse(["Example.ORG.", "bücher.example"]).expect("valid domains");
        assert_eq!(domains.list(), ["example.org", "xn--bcher-kva.example"]);
        assert!(domains.allows("alice@example.org"));
        assert!(domains.allows("Alice@EXAMPLE.org"));
        assert!(domains.allows("bob@BÜCHER.example"));
        assert!(domains.allows("bob@xn--bcher-kva.example"));
        assert!(!domains.allows("carol@mail.example.org"));
        assert!(!domains.allows("carol@example.org.evil.test"));
        assert!(!domains.allows("carol@notexample.org"));
        assert!(!domains.allows("no-at-sign"));
        assert!(EmailDomains::default().allows("anyone@anywhere.test"));
        for bad in [
            "*.example.org",
            "192.0.2.1",
            "localhost",
            "a@b.org",
            "ex ample.org",
        ] {
            assert!(EmailDomains::parse([bad]).is_err(), "{bad}");
        }
    }
}
