//! Token leak reports (`spec/warehouse-security.md` §1.8): a secret scanner posts the tokens it
//! found, signed with ECDSA P-256/SHA-256; each genuine one is revoked, its owner told where
//! it leaked, and `account:api_token:removed_leak` recorded. The answer is 204 whatever the
//! outcome (the scanner learns nothing about our tokens), 400 for a bad signature or body,
//! 404 without the signature headers (the route is in `views.rs`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minijinja::context;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

use super::{Deps, Removal, TokenInfo};

/// Keys fetched from a URL are kept this long, as warehouse does.
const KEY_CACHE: Duration = Duration::from_secs(30 * 60);

/// A key identifier and its key, as a keys URL publishes them.
type PublishedPair = (String, VerifyingKey);

/// Where the public keys come from.
pub enum LeakKeys {
    None,
    File(Vec<VerifyingKey>),
    Url {
        url: String,
        cache: Mutex<Option<(Instant, Vec<PublishedPair>)>>,
    },
}

impl LeakKeys {
    pub fn load(setting: Option<&str>) -> anyhow::Result<LeakKeys> {
        let Some(setting) = setting else {
            return Ok(LeakKeys::None);
        };
        if setting.starts_with("https://") || setting.starts_with("http://") {
            return Ok(LeakKeys::Url {
                url: setting.to_owned(),
                cache: Mutex::new(None),
            });
        }
        let text = std::fs::read_to_string(setting)
            .map_err(|e| anyhow::anyhow!("cannot read leak_report_keys {setting}: {e}"))?;
        let keys = pem_blocks(&text)
            .iter()
            .map(|block| VerifyingKey::from_public_key_pem(block))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                anyhow::anyhow!("leak_report_keys {setting}: not P-256 public keys: {e}")
            })?;
        if keys.is_empty() {
            anyhow::bail!("leak_report_keys {setting} holds no public key");
        }
        Ok(LeakKeys::File(keys))
    }

    /// The keys that may have signed a report with this key identifier.
    async fn candidates(&self, identifier: &str) -> Result<Vec<VerifyingKey>, String> {
        match self {
            LeakKeys::None => Err("no leak-report keys are configured".to_owned()),
            LeakKeys::File(keys) => Ok(keys.clone()),
            LeakKeys::Url { url, cache } => {
                let cached = cache
                    .lock()
                    .ok()
                    .and_then(|c| c.clone())
                    .filter(|(at, _)| at.elapsed() < KEY_CACHE);
                let keys = match cached {
                    Some((_, keys)) => keys,
                    None => {
                        let keys = fetch(url).await?;
                        if let Ok(mut c) = cache.lock() {
                            *c = Some((Instant::now(), keys.clone()));
                        }
                        keys
                    }
                };
                Ok(keys
                    .into_iter()
                    .filter(|(id, _)| id == identifier)
                    .map(|(_, key)| key)
                    .collect())
            }
        }
    }
}

fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
        if line.starts_with("-----END ") {
            blocks.extend(current.take());
        }
    }
    blocks
}

#[derive(Deserialize)]
struct KeyList {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

/// Whether `signature` (base64 DER ECDSA) by the key `identifier` signs `body`; if not, the
/// reason, in words for the scanner.
pub async fn verify(
    keys: &LeakKeys,
    identifier: &str,
    signature: &str,
    body: &[u8],
) -> Result<(), &'static str> {
    let keys = match keys.candidates(identifier).await {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "a leak report could not be checked");
            return Err("The report's signature cannot be checked: no matching public key.");
        }
    };
    let signature = STANDARD
        .decode(signature.trim())
        .ok()
        .and_then(|der| Signature::from_der(&der).ok());
    let Some(signature) = signature else {
        return Err("Invalid signature: not a base64 DER ECDSA signature.");
    };
    if !keys.iter().any(|key| key.verify(body, &signature).is_ok()) {
        return Err("Invalid signature.");
    }
    Ok(())
}

async fn fetch(url: &str) -> Result<Vec<(String, VerifyingKey)>, String> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("cannot fetch leak-report keys: {e}"))?;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("cannot fetch leak-report keys: {e}"))?;
    let list: KeyList =
        serde_json::from_slice(&bytes).map_err(|e| format!("leak-report keys: {e}"))?;
    Ok(list
        .public_keys
        .into_iter()
        .filter_map(|k| {
            VerifyingKey::from_public_key_pem(&k.key)
                .ok()
                .map(|key| (k.key_identifier, key))
        })
        .collect())
}

/// Revokes a genuine token that `origin` found published at `public_url`, and tells its owner.
/// Anything else (not a token, a forged one, one already gone) changes nothing.
pub async fn revoke_leaked(
    deps: Deps<'_>,
    token: &str,
    public_url: &str,
    origin: &str,
    meta: &crate::events::RequestMeta,
) -> Result<(), sqlx::Error> {
    let Ok(presented) = super::lookup(deps.db, deps.keys, deps.cache, token.trim()).await? else {
        return Ok(());
    };
    if presented.check_signature().is_err() {
        return Ok(());
    }
    let Some(token) = super::find(deps.db, &presented.id).await? else {
        return Ok(());
    };
    let now = deps.clock.now_micros();
    let removal = Removal::Leaked { public_url, origin };
    if super::delete(deps, &token, removal, meta, now).await? {
        notify(
            deps,
            &token,
            "token-compromised-leak",
            context! { public_url => public_url, origin => origin },
            meta,
        )
        .await;
    }
    Ok(())
}

/// E-mails a token's owner at their primary address, verified or not (a leak is urgent).
pub async fn notify<'a>(
    deps: impl Into<Deps<'a>>,
    token: &TokenInfo,
    template: &str,
    page: minijinja::Value,
    meta: &crate::events::RequestMeta,
) {
    let deps = deps.into();
    let Ok(Some(primary)) = crate::accounts::primary_email(deps.db, &token.user_id).await else {
        return;
    };
    let page = context! { ..page, ..context! {
        username => token.username.clone(),
        description => token.description.clone(),
        projects => token.projects.clone(),
    } };
    deps.mailer
        .notify(
            deps.db,
            (&token.user_id, &primary.email),
            template,
            page,
            meta,
            deps.clock.now_micros(),
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_files_hold_one_key_or_several() {
        let block = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert_eq!(pem_blocks(block).len(), 1);
        assert_eq!(pem_blocks(&format!("{block}\n{block}")).len(), 2);
        assert!(pem_blocks("nothing").is_empty());
    }
}
