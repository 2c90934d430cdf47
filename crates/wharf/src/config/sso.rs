//! The `sso` setting: the organization's OpenID Connect providers people sign in with, and
//! `sso_only` / `sso_requires_2fa`, how they combine with passwords and wharf's own 2FA.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::trusted_publishing::Issuer;

/// Issuers where anyone can have an account: on an index that is not open to everyone, a
/// provider pointed at one must say whose accounts it takes (`email_domains` or
/// `required_claims`), else it would be an open door.
const PUBLIC_ISSUERS: &[&str] = &[
    "https://accounts.google.com",
    "https://gitlab.com",
    "https://login.microsoftonline.com/common/v2.0",
    "https://login.microsoftonline.com/organizations/v2.0",
    "https://login.microsoftonline.com/consumers/v2.0",
    // The tenant of personal Microsoft accounts, as its tokens name their issuer.
    "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
    "https://appleid.apple.com",
];

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
    /// Claims the ID token must carry with exactly these values: the tenant of a provider
    /// shared by many organizations (Google Workspace's `hd`, Azure AD's `tid`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_claims: BTreeMap<String, String>,
    /// The provider's addresses count as verified without an `email_verified` claim (Azure AD
    /// sends none): only for a provider whose addresses the organization itself assigns.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emails_verified: bool,
}

/// Claims wharf checks or reads itself: requiring a value of one would say nothing, or
/// break sign-in.
const CHECKED_CLAIMS: &[&str] = &[
    "iss",
    "aud",
    "exp",
    "nbf",
    "iat",
    "nonce",
    "sub",
    "azp",
    "auth_time",
    "amr",
    "email",
    "email_verified",
];

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
            .field("required_claims", &self.required_claims)
            .field("emails_verified", &self.emails_verified)
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

/// Checks the providers as a whole. `open`: anyone may register on this index (open
/// registration, without `registration_email_domains`).
pub fn check(providers: &[SsoProvider], open: bool) -> anyhow::Result<()> {
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
        let public = PUBLIC_ISSUERS.contains(&provider.issuer.as_str().trim_end_matches('/'));
        if public
            && !open
            && provider.email_domains.is_empty()
            && provider.required_claims.is_empty()
        {
            anyhow::bail!(
                "sso: {name}: anyone can have an account at {}, and this index is not open to everyone: set email_domains or required_claims to your organization's",
                provider.issuer.as_str()
            );
        }
        if public && provider.emails_verified && provider.required_claims.is_empty() {
            anyhow::bail!(
                "sso: {name}: emails_verified is for a provider whose addresses your organization assigns; at {} anyone chooses theirs (name your tenant in required_claims)",
                provider.issuer.as_str()
            );
        }
        for (claim, value) in &provider.required_claims {
            let bare = |s: &str| !s.is_empty() && s.trim() == s;
            if !bare(claim) || !bare(value) {
                anyhow::bail!(
                    "sso: {name}: required_claims needs claim names and values without spaces around them (such as hd = \"acme.example\")"
                );
            }
            if CHECKED_CLAIMS.contains(&claim.as_str()) {
                anyhow::bail!(
                    "sso: {name}: required_claims cannot name {claim:?}, which wharf checks itself"
                );
            }
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
            required_claims: BTreeMap::new(),
            emails_verified: false,
        }
    }

    fn check_open(providers: &[SsoProvider]) -> anyhow::Result<()> {
        check(providers, true)
    }

    #[test]
    fn a_public_issuer_needs_domains_or_claims_unless_anyone_may_register() {
        let mut google = provider(&[]);
        google.issuer = Issuer("https://accounts.google.com".into());
        assert!(check(&[google.clone()], true).is_ok());
        let error = check(&[google.clone()], false).unwrap_err().to_string();
        assert!(error.contains("anyone can have an account"), "{error}");
        let mut workspace = google.clone();
        workspace
            .required_claims
            .insert("hd".into(), "acme.example".into());
        assert!(check(&[workspace.clone()], false).is_ok());
        let mut domains = google;
        domains.email_domains = vec!["acme.example".into()];
        assert!(check(&[domains.clone()], false).is_ok());
        // Anyone picks their address at a public provider: only a tenant vouches for them.
        domains.emails_verified = true;
        let error = check(&[domains], true).unwrap_err().to_string();
        assert!(error.contains("emails_verified"), "{error}");
        workspace.emails_verified = true;
        assert!(check(&[workspace], false).is_ok());
        // The organization's own provider is its own gate.
        assert!(check(&[provider(&[])], false).is_ok());
    }

    #[test]
    fn domains_and_names_are_checked_and_the_secret_is_never_printed() {
        assert!(provider(&[]).allows_email("a@anything.test"));
        let limited = provider(&["Example.org"]);
        assert!(limited.allows_email("a@example.ORG"));
        assert!(!limited.allows_email("a@sub.example.org"));
        assert!(!limited.allows_email("no-at-sign"));
        assert!(!format!("{limited:?}").contains("s3cret"));
        assert!(check_open(&[provider(&[])]).is_ok());
        let mut bad = provider(&[]);
        bad.name = "has space".into();
        assert!(check_open(&[bad]).is_err());
        assert!(check_open(&[provider(&[]), provider(&[])]).is_err());
        let mut secretless = provider(&[]);
        secretless.client_secret = " ".into();
        assert!(check_open(&[secretless]).is_err());
        assert!(check_open(&[provider(&["a@b.org"])]).is_err());
        let mut tenant = provider(&[]);
        tenant
            .required_claims
            .insert("tid".into(), "9188040d".into());
        assert!(check_open(&[tenant.clone()]).is_ok());
        tenant.required_claims.insert("aud".into(), "other".into());
        assert!(
            check_open(&[tenant.clone()])
                .unwrap_err()
                .to_string()
                .contains("checks itself")
        );
        for (claim, value) in [
            ("hd", " "),
            ("hd", "acme.example "),
            (" tid", "x"),
            ("email_verified", "true"),
        ] {
            tenant.required_claims.clear();
            tenant.required_claims.insert(claim.into(), value.into());
            assert!(
                check_open(&[tenant.clone()]).is_err(),
                "{claim:?} = {value:?}"
            );
        }
    }
}
