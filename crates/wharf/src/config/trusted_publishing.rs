//! The `[trusted_publishing]` table: which OpenID Connect issuers may prove a CI job's
//! identity, and the audience their ID tokens must name. Each field may also be given as
//! `WHARF_TRUSTED_PUBLISHING_<FIELD>` (a list as one comma-separated string).

use serde::{Deserialize, Serialize};

use super::ListOrText;

/// GitHub Actions' issuer.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// gitlab.com's issuer (self-managed instances are added to `gitlab_issuers`).
pub const GITLAB_ISSUER: &str = "https://gitlab.com";
/// Google's issuer.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TrustedPublishing {
    /// The `aud` every ID token must carry. Unset: the base URL without its scheme (host,
    /// port and path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub github_issuer: Issuer,
    pub gitlab_issuers: Issuers,
    pub google_issuer: Issuer,
    /// Other CI systems' issuers (Forgejo, Buildkite, Jenkins with an OIDC plugin), each with
    /// the claims that identify a publisher of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generic_issuers: Vec<GenericIssuer>,
}

/// An issuer an admin registers for another CI system: its publishers are identified by the
/// values of `claims` (Owners give one value per claim), and its tokens must carry
/// `audience` (default: the index's).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenericIssuer {
    /// How pages and events name it, such as "Forgejo Actions".
    pub name: String,
    pub issuer: Issuer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub claims: Vec<String>,
}

impl Default for TrustedPublishing {
    fn default() -> TrustedPublishing {
        TrustedPublishing {
            audience: None,
            github_issuer: Issuer(GITHUB_ISSUER.to_owned()),
            gitlab_issuers: Issuers(vec![Issuer(GITLAB_ISSUER.to_owned())]),
            google_issuer: Issuer(GOOGLE_ISSUER.to_owned()),
            generic_issuers: Vec::new(),
        }
    }
}

/// The table's field names: what a config file and `WHARF_TRUSTED_PUBLISHING_*` may set.
pub const FIELDS: &[&str] = &[
    "audience",
    "github_issuer",
    "gitlab_issuers",
    "google_issuer",
    "generic_issuers",
];

/// An issuer URL, exactly as its tokens' `iss` claim gives it. Plain http is accepted: every
/// issuer is one an admin configured (the tests run one on loopback).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Issuer(pub String);

impl Issuer {
    fn parse(given: &str) -> Result<Issuer, String> {
        let given = given.trim();
        let valid = url::Url::parse(given).ok().is_some_and(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
                && url.password().is_none()
        });
        if !valid {
            return Err(format!(
                "{given:?} is not an issuer URL (http:// or https://, such as {GITLAB_ISSUER})"
            ));
        }
        Ok(Issuer(given.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Issuer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = String::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("trusted_publishing issuers must be URLs given as strings")
        })?;
        Issuer::parse(&given).map_err(serde::de::Error::custom)
    }
}

/// `gitlab_issuers`: gitlab.com and the self-managed instances whose CI may publish.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Issuers(pub Vec<Issuer>);

impl<'de> Deserialize<'de> for Issuers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = ListOrText::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "trusted_publishing.gitlab_issuers must be a list of issuer URLs, or one comma-separated string",
            )
        })?;
        let mut issuers = Vec::new();
        for entry in given.entries().into_iter().map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let issuer = Issuer::parse(entry).map_err(serde::de::Error::custom)?;
            if !issuers.contains(&issuer) {
                issuers.push(issuer);
            }
        }
        Ok(Issuers(issuers))
    }
}

/// Checks the table as a whole (each field was checked as it was read).
pub fn check(settings: &super::Settings) -> anyhow::Result<()> {
    let table = &settings.trusted_publishing;
    if let Some(audience) = &table.audience
        && (audience.trim().is_empty() || audience.chars().any(char::is_whitespace))
    {
        anyhow::bail!(
            "trusted_publishing.audience must be one word, such as the index's host name (unset: the base URL without its scheme)"
        );
    }
    let mut seen: Vec<&str> = Vec::new();
    let named = [
        ("github_issuer", &table.github_issuer),
        ("google_issuer", &table.google_issuer),
    ]
    .into_iter()
    .chain(table.gitlab_issuers.0.iter().map(|i| ("gitlab_issuers", i)))
    .chain(
        table
            .generic_issuers
            .iter()
            .map(|g| ("generic_issuers", &g.issuer)),
    );
    for (setting, issuer) in named {
        if seen.contains(&issuer.as_str()) {
            anyhow::bail!(
                "trusted_publishing.{setting}: {} is given for two kinds of publisher; each issuer may be one kind only",
                issuer.as_str()
            );
        }
        seen.push(issuer.as_str());
    }
    let mut names: Vec<&str> = Vec::new();
    for generic in &table.generic_issuers {
        let name = generic.name.trim();
        if name.is_empty() || name.len() > 50 || names.iter().any(|n| n.eq_ignore_ascii_case(name))
        {
            anyhow::bail!(
                "trusted_publishing.generic_issuers: each needs its own name, 1 to 50 characters ({:?})",
                generic.name
            );
        }
        names.push(name);
        let claim_ok = |c: &String| {
            !c.is_empty()
                && c.len() <= 64
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
        };
        if generic.claims.is_empty() || !generic.claims.iter().all(claim_ok) {
            anyhow::bail!(
                "trusted_publishing.generic_issuers: {name} needs the claims that identify a publisher, such as claims = [\"repository\", \"workflow\"]"
            );
        }
        // Checked by every exchange, whatever the publisher registered.
        if let Some(reserved) = generic
            .claims
            .iter()
            .find(|c| ["iss", "aud", "exp", "nbf", "iat", "jti"].contains(&c.as_str()))
        {
            anyhow::bail!(
                "trusted_publishing.generic_issuers: {name}: '{reserved}' is checked for every token; name the claims that say which job it is"
            );
        }
        if let Some(audience) = &generic.audience
            && (audience.trim().is_empty() || audience.chars().any(char::is_whitespace))
        {
            anyhow::bail!(
                "trusted_publishing.generic_issuers: {name}: the audience must be one word"
            );
        }
    }
    Ok(())
}
