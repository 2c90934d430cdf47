//! The server key and what it signs: expiring links (e-mail verification, password reset,
//! invitations), CSRF tokens and flash cookies. HMAC-SHA256; the key is 32 random bytes kept
//! in `<data-dir>/secret.key` unless the settings give one (scale-out: every process the same).

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub struct ServerKey {
    key: [u8; 32],
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(…)")
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the link is not valid")]
    Invalid,
    #[error("the link has expired")]
    Expired,
}

#[derive(Serialize, serde::Deserialize)]
struct Envelope<T> {
    /// What the token is for, so a token of one kind is never accepted as another.
    p: String,
    /// Expiry, unix seconds.
    e: i64,
    d: T,
}

impl ServerKey {
    pub fn from_bytes(key: [u8; 32]) -> ServerKey {
        ServerKey { key }
    }

    /// The configured key (hex), or the one in the data directory, made on first use.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<ServerKey> {
        if let Some(hex_key) = configured {
            return parse_key(hex_key.trim())
                .ok_or_else(|| anyhow::anyhow!("secret_key must be 64 hexadecimal characters"));
        }
        let path = data_dir.join("secret.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_key(text.trim()).ok_or_else(|| {
                anyhow::anyhow!("{} must hold 64 hexadecimal characters", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                write_private(&path, hex::encode(key).as_bytes())
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                Ok(ServerKey { key })
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// A 32-byte key for one purpose (e.g. encrypting TOTP secrets), derived from this one.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        self.mac(&[b"derive", purpose.as_bytes()])
    }

    /// Encrypts `secret` for the database under a key derived for `purpose` (AES-256-GCM),
    /// bound to `context` (e.g. the row's id, so a sealed value copied to another row does not
    /// open): nonce (12 bytes), then ciphertext and tag.
    pub fn seal(&self, purpose: &str, context: &[u8], secret: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::{Aead, Payload};
        let cipher =
            <aes_gcm::Aes256Gcm as aes_gcm::aead::KeyInit>::new(&self.derive(purpose).into());
        let nonce: [u8; 12] = rand::random();
        let mut out = nonce.to_vec();
        let payload = Payload {
            msg: secret,
            aad: context,
        };
        // Encryption fails only for inputs of gigabytes; an empty result never opens.
        if let Ok(ciphertext) = cipher.encrypt(&aes_gcm::Nonce::from(nonce), payload) {
            out.extend(ciphertext);
        }
        out
    }

    /// The secret [`ServerKey::seal`] sealed, if this key, purpose and context sealed it.
    pub fn open(&self, purpose: &str, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        use aes_gcm::aead::{Aead, Payload};
        let (nonce, ciphertext) = sealed.split_at_checked(12)?;
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let cipher =
            <aes_gcm::Aes256Gcm as aes_gcm::aead::KeyInit>::new(&self.derive(purpose).into());
        let payload = Payload {
            msg: ciphertext,
            aad: context,
        };
        cipher.decrypt(&aes_gcm::Nonce::from(nonce), payload).ok()
    }

    /// A MAC of `value` for `purpose`, as URL-safe text.
    pub fn tag(&self, purpose: &str, value: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(&[purpose.as_bytes(), value.as_bytes()]))
    }

    pub fn check_tag(&self, purpose: &str, value: &str, tag: &str) -> bool {
        let expected = self.tag(purpose, value);
        expected.as_bytes().ct_eq(tag.as_bytes()).into()
    }

    /// `data` signed for `purpose`, valid until `expires` (unix seconds).
    pub fn sign<T: Serialize>(&self, purpose: &str, data: &T, expires: i64) -> String {
        let envelope = Envelope {
            p: purpose.to_owned(),
            e: expires,
            d: data,
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&envelope).unwrap_or_default());
        let tag = self.tag(purpose, &body);
        format!("{body}.{tag}")
    }

    pub fn verify<T: DeserializeOwned>(
        &self,
        purpose: &str,
        token: &str,
        now_secs: i64,
    ) -> Result<T, SignatureError> {
        let (body, tag) = token.split_once('.').ok_or(SignatureError::Invalid)?;
        if !self.check_tag(purpose, body, tag) {
            return Err(SignatureError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SignatureError::Invalid)?;
        let envelope: Envelope<T> =
            serde_json::from_slice(&bytes).map_err(|_| SignatureError::Invalid)?;
        if envelope.p != purpose {
            return Err(SignatureError::Invalid);
        }
        if now_secs >= envelope.e {
            return Err(SignatureError::Expired);
        }
        Ok(envelope.d)
    }
}

fn parse_key(text: &str) -> Option<ServerKey> {
    let bytes = hex::decode(text).ok()?;
    Some(ServerKey {
        key: bytes.try_into().ok()?,
    })
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ServerKey {
        ServerKey::from_bytes([7; 32])
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_purpose_and_context() {
        let sealed = key().seal("p", b"row-1", b"secret bytes");
        assert_eq!(sealed.len(), 12 + 12 + 16);
        assert_eq!(
            key().open("p", b"row-1", &sealed),
            Some(b"secret bytes".to_vec())
        );
        assert_eq!(key().open("q", b"row-1", &sealed), None);
        assert_eq!(key().open("p", b"row-2", &sealed), None);
        assert_eq!(
            ServerKey::from_bytes([8; 32]).open("p", b"row-1", &sealed),
            None
        );
        assert_eq!(key().open("p", b"row-1", &sealed[..11]), None);
    }

    #[test]
    fn signed_data_round_trips_until_it_expires() {
        let token = key().sign("verify-email", &("alice", 3), 1000);
        assert_eq!(
            key().verify::<(String, i32)>("verify-email", &token, 999),
            Ok(("alice".to_owned(), 3))
        );
        assert_eq!(
            key().verify::<(String, i32)>("verify-email", &token, 1000),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn tampering_and_other_purposes_are_refused() {
        let token = key().sign("verify-email", &"alice", 1000);
        assert_eq!(
            key().verify::<String>("password-reset", &token, 1),
            Err(SignatureError::Invalid)
        );
        let other = ServerKey::from_bytes([8; 32]).sign("verify-email", &"alice", 1000);
        assert_eq!(
            key().verify::<String>("verify-email", &other, 1),
            Err(SignatureError::Invalid)
        );
        let forged = format!("{}x", token);
        assert!(key().verify::<String>("verify-email", &forged, 1).is_err());
    }

    #[test]
    fn a_generated_key_is_kept_in_the_data_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ServerKey::load(None, dir.path()).expect("key");
        let second = ServerKey::load(None, dir.path()).expect("key");
        assert_eq!(first.key, second.key);
        assert!(ServerKey::load(Some("abc"), dir.path()).is_err());
    }
}
