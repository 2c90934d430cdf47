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
use claims::Kind;

/// The issuers this index trusts, with their keys.
pub struct Issuers {
    pub keys: keys::KeyCache,
    github: String,
    gitlab: Vec<String>,
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
        let all = std::iter::once(github.as_str()).chain(gitlab.iter().map(String::as_str));
        Ok(Issuers {
            keys: keys::KeyCache::new(all)?,
            github,
            gitlab,
        })
    }

    /// The kind of publisher an issuer's tokens name, for the issuers configured.
    pub fn kind_of(&self, issuer: &str) -> Option<Kind> {
        if issuer == self.github {
            Some(Kind::GitHub)
        } else if self.gitlab.iter().any(|i| i == issuer) {
            Some(Kind::GitLab)
        } else {
            None
        }
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
