//! PyPI's API token format, byte-compatible with pymacaroons and pypitoken.
//!
//! A token is `pypi-` followed by the unpadded URL-safe base64 of a version 2 binary macaroon.
//! The signature chain is libmacaroons': `k = HMAC(b"macaroons-key-generator", root_key)`,
//! `sig = HMAC(k, identifier)`, then `sig = HMAC(sig, caveat)` for each first-party caveat.
//! Caveats are JSON arrays `[tag, *fields]` (tags 0–4) or the legacy JSON objects.

mod caveat;
mod wire;

pub use caveat::{Caveat, Context, ProjectRef, PublisherRef};
pub use wire::Macaroon;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// The prefix of every token this server issues.
pub const TOKEN_PREFIX: &str = "pypi";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token has an invalid prefix")]
    InvalidPrefix,
    #[error("token is not valid base64")]
    InvalidBase64,
    #[error("token is not a valid macaroon: {0}")]
    Malformed(&'static str),
}

impl Macaroon {
    /// The token string: `pypi-` + unpadded URL-safe base64 of the binary form.
    pub fn to_token(&self) -> String {
        format!(
            "{TOKEN_PREFIX}-{}",
            URL_SAFE_NO_PAD.encode(self.serialize())
        )
    }

    /// Parses a token string. Like warehouse, splits on the first `-` and requires the `pypi`
    /// prefix; like pymacaroons, accepts padded or unpadded, URL-safe or standard base64.
    pub fn from_token(token: &str) -> Result<Macaroon, TokenError> {
        let (prefix, raw) = token.split_once('-').ok_or(TokenError::InvalidPrefix)?;
        if prefix != TOKEN_PREFIX || raw.is_empty() {
            return Err(TokenError::InvalidPrefix);
        }
        let bytes = decode_lenient(raw).ok_or(TokenError::InvalidBase64)?;
        Macaroon::deserialize(&bytes)
    }
}

fn decode_lenient(raw: &str) -> Option<Vec<u8>> {
    let trimmed = raw.trim_end_matches('=');
    if trimmed.contains(['+', '/']) {
        STANDARD_NO_PAD.decode(trimmed).ok()
    } else {
        URL_SAFE_NO_PAD.decode(trimmed).ok()
    }
}

/// Why a token was refused. The message is what warehouse reports after "Invalid API Token: ".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("signatures do not match")]
    SignatureMismatch,
    #[error("{}", .0.join(", "))]
    Caveats(Vec<String>),
}

/// Verifies `macaroon` against its root key: the signature chain over the presented caveats,
/// then every presented caveat and every caveat stored with the token (`stored_caveats`, which
/// warehouse appends at verification) against `context`.
pub fn verify(
    macaroon: &Macaroon,
    root_key: &[u8],
    stored_caveats: &[String],
    context: &Context<'_>,
) -> Result<(), VerifyError> {
    if !macaroon.signature_matches(root_key) {
        return Err(VerifyError::SignatureMismatch);
    }
    let presented = macaroon.caveats().iter().map(|c| c.as_slice());
    let stored = stored_caveats.iter().map(|c| c.as_bytes());
    let mut failures: Vec<String> = Vec::new();
    for raw in presented.chain(stored) {
        let failure = match Caveat::parse(raw) {
            Ok(caveat) => caveat.check(context).err(),
            Err(message) => Some(message),
        };
        // Stored caveats repeat embedded ones: report each reason once.
        if let Some(failure) = failure.filter(|f| !failures.contains(f)) {
            failures.push(failure);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(VerifyError::Caveats(failures))
    }
}

#[cfg(test)]
mod tests;
