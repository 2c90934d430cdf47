//! The issuers' signing keys: OpenID discovery (`/.well-known/openid-configuration`), then
//! the JWKS it names, kept in memory per issuer. A token signed with a key the cached set
//! does not have makes the set be fetched again, but at most once per [`REFETCH_SECS`] per
//! issuer, so garbage `kid`s cannot make wharf hammer the issuer. A set older than
//! [`MAX_AGE_SECS`] is fetched again on its next use (a key the issuer withdrew stops being
//! trusted); when the issuer cannot be reached the keys already held go on being used.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// An unknown `kid` refetches the issuer's keys at most this often.
pub const REFETCH_SECS: i64 = 60;
/// Keys are fetched again when used this long after they were fetched.
pub const MAX_AGE_SECS: i64 = 3600;
/// A discovery document or key set larger than this is refused.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A key an issuer publishes, with the one algorithm it verifies.
#[derive(Clone)]
pub struct VerifyingKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

struct KeySet {
    keys: HashMap<String, VerifyingKey>,
    fetched_secs: i64,
}

#[derive(Default)]
struct IssuerKeys {
    held: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching (one fetch per issuer at a time), with the last attempt's time.
    fetching: tokio::sync::Mutex<Option<i64>>,
}

/// Why no key could be had.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{issuer} does not publish a key {kid:?} (its keys were fetched again at most a minute ago)"
    )]
    Unknown { issuer: String, kid: String },
    #[error("the keys of {0} cannot be fetched: {1}")]
    Unavailable(String, String),
}

/// The configured issuers' keys (the issuers are fixed by the settings).
pub struct KeyCache {
    client: reqwest::Client,
    issuers: HashMap<String, IssuerKeys>,
}

impl KeyCache {
    pub fn new<'a>(issuers: impl IntoIterator<Item = &'a str>) -> anyhow::Result<KeyCache> {
        let client = reqwest::Client::builder()
            .user_agent(concat!(
                "wharf/",
                env!("CARGO_PKG_VERSION"),
                " (trusted publishing)"
            ))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(KeyCache {
            client,
            issuers: issuers
                .into_iter()
                .map(|i| (i.to_owned(), IssuerKeys::default()))
                .collect(),
        })
    }

    fn held(keys: &IssuerKeys) -> Option<Arc<KeySet>> {
        keys.held.read().ok().and_then(|held| held.clone())
    }

    /// The key `kid` of `issuer`: from memory while the set is fresh and has it; otherwise the
    /// set is fetched again (within the bounds above).
    pub async fn key(
        &self,
        issuer: &str,
        kid: &str,
        now_secs: i64,
    ) -> Result<VerifyingKey, KeyError> {
        let unknown = || KeyError::Unknown {
            issuer: issuer.to_owned(),
            kid: kid.to_owned(),
        };
        let Some(keys) = self.issuers.get(issuer) else {
            return Err(unknown());
        };
        let fresh = |set: &KeySet| now_secs - set.fetched_secs < MAX_AGE_SECS;
        if let Some(set) = Self::held(keys)
            && fresh(&set)
            && let Some(key) = set.keys.get(kid)
        {
            return Ok(key.clone());
        }
        let mut last_attempt = keys.fetching.lock().await;
        // Another request may have fetched the set while this one waited.
        let held = Self::held(keys);
        if let Some(set) = &held
            && fresh(set)
            && let Some(key) = set.keys.get(kid)
        {
            return Ok(key.clone());
        }
        let recently = last_attempt.is_some_and(|at| now_secs - at < REFETCH_SECS);
        let mut failure = None;
        let held = if recently {
            held
        } else {
            *last_attempt = Some(now_secs);
            match self.fetch(issuer).await {
                Ok(fetched) => {
                    let set = Arc::new(KeySet {
                        keys: fetched,
                        fetched_secs: now_secs,
                    });
                    if let Ok(mut slot) = keys.held.write() {
                        *slot = Some(set.clone());
                    }
                    Some(set)
                }
                Err(reason) => {
                    tracing::warn!(issuer, reason = %reason, "cannot fetch a trusted publishing issuer's keys");
                    failure = Some(reason);
                    held
                }
            }
        };
        match held.and_then(|set| set.keys.get(kid).cloned()) {
            Some(key) => Ok(key),
            None => match failure {
                Some(reason) => Err(KeyError::Unavailable(issuer.to_owned(), reason)),
                None => Err(unknown()),
            },
        }
    }

    /// An issuer's discovery document, checked to name the issuer (sign-in reads its
    /// endpoints from it).
    pub async fn discovery(&self, issuer: &str) -> Result<Value, String> {
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let document = self.get_json(&discovery).await?;
        if document.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(format!("{discovery} names another issuer"));
        }
        Ok(document)
    }

    /// The HTTP client the keys are fetched with (no redirects, short timeouts).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(format!("{url} sent more than {MAX_DOCUMENT_BYTES} bytes"));
        }
        read_json(url, response).await
    }

    /// Discovery, then the key set it names.
    async fn fetch(&self, issuer: &str) -> Result<HashMap<String, VerifyingKey>, String> {
        let document = self.discovery(issuer).await?;
        let jwks_uri = document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{issuer}'s discovery document has no jwks_uri"))?;
        let parsed = url::Url::parse(jwks_uri).map_err(|_| format!("bad jwks_uri {jwks_uri}"))?;
        // Plain http only for an issuer an admin configured as plain http (a test issuer).
        let scheme_ok = parsed.scheme() == "https"
            || (parsed.scheme() == "http" && issuer.starts_with("http://"));
        if !scheme_ok {
            return Err(format!("jwks_uri {jwks_uri} is not https"));
        }
        let jwks = self.get_json(jwks_uri).await?;
        let keys = parse_key_set(&jwks);
        if keys.is_empty() {
            return Err(format!("{jwks_uri} has no RS256 or ES256 key with a kid"));
        }
        Ok(keys)
    }
}

/// A JSON body of at most [`MAX_DOCUMENT_BYTES`], read chunk by chunk so that a body without
/// a length is capped as it arrives.
pub async fn read_json(url: &str, mut response: reqwest::Response) -> Result<Value, String> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(format!("{url} sent more than {MAX_DOCUMENT_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{url} sent more than {MAX_DOCUMENT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| format!("{url} did not send JSON"))
}

/// The usable keys of a JWKS: those with a `kid` that verify RS256 or ES256 (others, such as
/// encryption keys, are skipped).
fn parse_key_set(jwks: &Value) -> HashMap<String, VerifyingKey> {
    let mut keys = HashMap::new();
    let Some(listed) = jwks.get("keys").and_then(Value::as_array) else {
        return keys;
    };
    for raw in listed {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let by_parameters = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Some(Algorithm::ES256)
            }
            _ => None,
        };
        let algorithm = match (jwk.common.key_algorithm, by_parameters) {
            (None, Some(algorithm)) => algorithm,
            (Some(KeyAlgorithm::RS256), Some(Algorithm::RS256)) => Algorithm::RS256,
            (Some(KeyAlgorithm::ES256), Some(Algorithm::ES256)) => Algorithm::ES256,
            _ => continue,
        };
        if raw
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, VerifyingKey { key, algorithm });
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signing_keys_with_an_id_of_the_two_algorithms_are_kept() {
        // A real RSA modulus is not needed to parse: the key is only built, not used.
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let jwks = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "n": n, "e": "AQAB", "alg": "RS256", "use": "sig"},
            {"kty": "RSA", "kid": "enc", "n": n, "e": "AQAB", "use": "enc"},
            {"kty": "RSA", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "n": n, "e": "AQAB", "alg": "PS256"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "b", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        let keys = parse_key_set(&jwks);
        let mut kids: Vec<&String> = keys.keys().collect();
        kids.sort();
        assert_eq!(kids, ["a", "b"]);
        assert_eq!(keys["a"].algorithm, Algorithm::RS256);
        assert_eq!(keys["b"].algorithm, Algorithm::ES256);
        assert!(parse_key_set(&serde_json::json!({"keys": "no"})).is_empty());
    }
}
