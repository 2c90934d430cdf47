//! The `sso` setting: the organization's OpenID Connect providers people sign in with, and
//! `sso_only` / `sso_requires_2fa`, how they combine with passwords and wharf's own 2FA.

use serde::{Deserialize, Serialize};

use super::trusted_publishing::Issuer;

/// One provider (Okta, Keycloak, Google Workspace, GitLab, Azure AD…), registered there
/// with the redirect URI `<base URL>/account/sso/<name>/callback`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SsoProvider {
    /// Its name in URLs and events (`sso:<name>`): letters, digits, '-' and '_'.
    pub name: String,
    /// "Sign in with <display_name>".
    pub display_name: String,
    pub issuer: Issuer,
    pub client_id: String,
    pub client_secret: String,
    /// When given, only addresses of these domains may sign in (subdomains must be listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_domains: Vec<String>,
}

// The secret never reaches a log.
impl std::fmt::Debug for SsoProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoProvider")
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"…")
            .field("email_domains", &self.email_domains)
            .finish()
    }
}

impl SsoProvider {
    /// Whether `email` may sign in through this provider.
    pub fn allows_email(&self, email: &str) -> bool {
        if self.email_domains.is_empty() {
            return true;
        }
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.email_domains
            .iter()
            .any(|d| d.trim().trim_end_matches('.').eq_ignore_ascii_case(&domain))
    }
}

/// Checks the providers as a whole.
pub fn check(providers: &[SsoProvider]) -> anyhow::Result<()> {
    let mut names: Vec<&str> = Vec::new();
    for provider in providers {
        let name = provider.name.as_str();
        let well_formed = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            anyhow::bail!(
                "sso: the name {name:?} must be 1 to 32 letters, digits, '-' or '_' (it is part of the redirect URI)"
            );
        }
        if names.contains(&name) {
            anyhow::bail!("sso: two providers are named {name:?}");
        }
        names.push(name);
        if provider.display_name.trim().is_empty() || provider.display_name.len() > 60 {
            anyhow::bail!("sso: {name} needs a display_name of 1 to 60 characters");
        }
        if provider.client_id.trim().is_empty() {
            anyhow::bail!("sso: {name} needs its client_id");
        }
        if provider.client_secret.trim().is_empty() {
            anyhow::bail!("sso: {name} needs its client_secret");
        }
        if let Some(bad) = provider
            .email_domains
            .iter()
            .find(|d| d.trim().is_empty() || d.contains('@') || d.contains(char::is_whitespace))
        {
            anyhow::bail!("sso: {name}: {bad:?} is not a domain (such as example.org)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(domains: &[&str]) -> SsoProvider {
        SsoProvider {
            name: "corp".into(),
            display_name: "Corp".into(),
            issuer: Issuer("https://login.example.org".into()),
            client_id: "wharf".into(),
            client_secret: "s3cret-value".into(),
            email_domains: domains.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn domains_and_names_are_checked_and_the_secret_is_never_printed() {
        assert!(provider(&[]).allows_email("a@anything.test"));
        let limited = provider(&["Example.org"]);
        assert!(limited.allows_email("a@example.ORG"));
        assert!(!limited.allows_email("a@sub.example.org"));
        assert!(!limited.allows_email("no-at-sign"));
        assert!(!format!("{limited:?}").contains("s3cret"));
        assert!(check(&[provider(&[])]).is_ok());
        let mut bad = provider(&[]);
        bad.name = "has space".into();
        assert!(check(&[bad]).is_err());
        assert!(check(&[provider(&[]), provider(&[])]).is_err());
        let mut secretless = provider(&[]);
        secretless.client_secret = " ".into();
        assert!(check(&[secretless]).is_err());
        assert!(check(&[provider(&["a@b.org"])]).is_err());
    }
}
