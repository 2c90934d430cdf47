//! Trusted publishing, PyPI's protocol: a CI job proves who it is with an OpenID Connect ID
//! token (`POST /_/oidc/mint-token`) and receives a project-scoped upload token that lives 15
//! minutes. The issuers are the settings' (`[trusted_publishing]`); their keys are fetched and
//! cached (`keys.rs`), tokens verified (`jwt.rs`), matched to a registered publisher
//! (`claims.rs` decides, `publishers.rs` stores), accepted once (`replay.rs`), and exchanged
//! (`mint.rs`) for a token that `tokens.rs` finds again on upload. `views.rs` has the two
//! endpoints.

pub mod claims;
pub mod jwt;
pub mod keys;
pub mod mint;
pub mod pending;
pub mod publishers;
pub mod replay;
pub mod tokens;
pub mod views;

use crate::config::Settings;
use crate::config::trusted_publishing::GenericIssuer;
use claims::Kind;

/// The issuers this index trusts, with their keys.
pub struct Issuers {
    pub keys: keys::KeyCache,
    github: String,
    gitlab: Vec<String>,
    google: String,
    generic: Vec<GenericIssuer>,
}

impl Issuers {
    pub fn new(settings: &Settings) -> anyhow::Result<Issuers> {
        let table = &settings.trusted_publishing;
        let github = table.github_issuer.as_str().to_owned();
        let gitlab: Vec<String> = table
            .gitlab_issuers
            .0
            .iter()
            .map(|i| i.as_str().to_owned())
            .collect();
        let google = table.google_issuer.as_str().to_owned();
        let generic = table.generic_issuers.clone();
        let all = [github.as_str(), google.as_str()]
            .into_iter()
            .chain(gitlab.iter().map(String::as_str))
            .chain(generic.iter().map(|g| g.issuer.as_str()));
        Ok(Issuers {
            keys: keys::KeyCache::new(all)?,
            github,
            gitlab,
            google,
            generic,
        })
    }

    /// The kind of publisher an issuer's tokens name, for the issuers configured.
    pub fn kind_of(&self, issuer: &str) -> Option<Kind> {
        if issuer == self.github {
            Some(Kind::GitHub)
        } else if self.gitlab.iter().any(|i| i == issuer) {
            Some(Kind::GitLab)
        } else if issuer == self.google {
            Some(Kind::Google)
        } else if self.generic(issuer).is_some() {
            Some(Kind::Generic)
        } else {
            None
        }
    }

    /// The issuer a new Google publisher is registered with.
    pub fn google(&self) -> &str {
        &self.google
    }

    /// The generic issuers configured, in the settings' order.
    pub fn generic_issuers(&self) -> &[GenericIssuer] {
        &self.generic
    }

    /// The generic issuer of this URL.
    pub fn generic(&self, issuer: &str) -> Option<&GenericIssuer> {
        self.generic.iter().find(|g| g.issuer.as_str() == issuer)
    }

    /// The generic issuer an admin named `name` (any case).
    pub fn generic_named(&self, name: &str) -> Option<&GenericIssuer> {
        self.generic
            .iter()
            .find(|g| g.name.trim().eq_ignore_ascii_case(name.trim()))
    }

    /// The audience an issuer's tokens must carry: a generic issuer's own, else the index's.
    pub fn audience_for<'a>(&'a self, issuer: &str, index: &'a str) -> &'a str {
        self.generic(issuer)
            .and_then(|g| g.audience.as_deref())
            .unwrap_or(index)
    }

    /// The issuer a new GitHub publisher is registered with.
    pub fn github(&self) -> &str {
        &self.github
    }

    /// Whether `issuer` is one of the GitLab instances configured.
    pub fn is_gitlab(&self, issuer: &str) -> bool {
        self.gitlab.iter().any(|i| i == issuer)
    }

    /// gitlab.com, or the first GitLab instance configured.
    pub fn default_gitlab(&self) -> Option<&str> {
        self.gitlab
            .iter()
            .find(|i| *i == crate::config::trusted_publishing::GITLAB_ISSUER)
            .or_else(|| self.gitlab.first())
            .map(String::as_str)
    }
}
