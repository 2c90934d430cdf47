//! TOTP (`spec/warehouse-security.md` §2): SHA-1, 6 digits, 30-second steps, 160-bit secrets,
//! accepted within one step either side. Replay is refused by remembering the last accepted
//! time step (not the code): a step is accepted once, and never one older than it. Secrets
//! are stored encrypted (AES-256-GCM under a key derived from the server key).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use serde_json::json;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::db::Db;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::signing::ServerKey;

pub const SECRET_BYTES: usize = 20;
const STEP_SECS: u64 = 30;
const ENCRYPTION_PURPOSE: &str = "totp-secret-encryption";

#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// The code is good for this step, which is newer than the last one accepted.
    Valid(i64),
    /// Not six digits.
    Malformed,
    /// The code was right but its step was used already.
    Replayed,
    Invalid,
}

pub fn generate_secret() -> Vec<u8> {
    rand::random::<[u8; SECRET_BYTES]>().to_vec()
}

fn totp(secret: &[u8]) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(STEP_SECS)
        .with_skew(0)
        .with_secret(Secret::from(secret.to_vec()))
        .build()
        .ok()
}

/// The code for a time (unix seconds).
pub fn code_at(secret: &[u8], unix_secs: i64) -> String {
    totp(secret).map_or_else(String::new, |t| {
        t.generate(u64::try_from(unix_secs).unwrap_or(0))
            .to_string()
    })
}

pub fn base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// Whitespace removed; `None` unless six digits remain.
pub fn normalize(code: &str) -> Option<String> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Checks a code at `now_secs` against the last step accepted for this user.
pub fn check(secret: &[u8], code: &str, now_secs: i64, last_step: Option<i64>) -> Check {
    let Some(code) = normalize(code) else {
        return Check::Malformed;
    };
    let Some(totp) = totp(secret) else {
        return Check::Invalid;
    };
    let current = now_secs.div_euclid(STEP_SECS as i64);
    let matches = |step: i64| {
        u64::try_from(step * STEP_SECS as i64).is_ok_and(|at| totp.check(&code, at).is_some())
    };
    for step in [current, current - 1, current + 1] {
        if matches(step) {
            return match last_step {
                Some(last) if step <= last => Check::Replayed,
                _ => Check::Valid(step),
            };
        }
    }
    Check::Invalid
}

/// `otpauth://totp/<issuer>:<username>?secret=…&algorithm=SHA1&digits=6&period=30&issuer=…`
pub fn provisioning_uri(secret: &[u8], username: &str, issuer: &str) -> String {
    let enc = |s: &str| crate::site::urlencode(s);
    format!(
        "otpauth://totp/{}:{}?secret={}&algorithm=SHA1&digits=6&period=30&issuer={}",
        enc(issuer),
        enc(username),
        base32(secret),
        enc(issuer)
    )
}

/// The URI as an SVG QR code.
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

/// Encrypts a secret for the database: nonce (12 bytes) then ciphertext.
pub fn seal(keys: &ServerKey, secret: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(&keys.derive(ENCRYPTION_PURPOSE).into());
    let nonce: [u8; 12] = rand::random();
    let mut out = nonce.to_vec();
    // Encryption fails only for inputs of gigabytes; an empty result never decrypts.
    if let Ok(ciphertext) = cipher.encrypt(&Nonce::from(nonce), secret) {
        out.extend(ciphertext);
    }
    out
}

pub fn open(keys: &ServerKey, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 {
        return None;
    }
    let cipher = Aes256Gcm::new(&keys.derive(ENCRYPTION_PURPOSE).into());
    let (nonce, ciphertext) = sealed.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    cipher.decrypt(&Nonce::from(nonce), ciphertext).ok()
}

// ---- the store: a user's secret lives in `users` ------------------------------------------

/// A user's authentication application as stored: the sealed secret and the last time step
/// accepted from it.
pub struct Enrolled {
    pub sealed: Vec<u8>,
    pub last_step: Option<i64>,
}

/// The user's authentication application, if they have one.
pub async fn enrolled(db: &Db, user_id: &str) -> Result<Option<Enrolled>, sqlx::Error> {
    let row: Option<(Option<Vec<u8>>, Option<i64>)> =
        sqlx::query_as("SELECT totp_secret, totp_last_step FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.and_then(|(sealed, last_step)| {
        Some(Enrolled {
            sealed: sealed?,
            last_step,
        })
    }))
}

/// Remembers `step` as the last one accepted, only if no newer step was accepted meanwhile:
/// a code works once, even in a race. False when another request won.
pub async fn accept_step(db: &Db, user_id: &str, step: i64) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
    )
    .bind(step)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Stores a confirmed secret (sealed), with `step` (the one its first code came from) as used,
/// and records `account:two_factor:method_added`.
pub async fn enable(
    db: &Db,
    user_id: &str,
    sealed: &[u8],
    step: i64,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE users SET totp_secret = $1, totp_pending_secret = NULL, totp_last_step = $2 WHERE id = $3",
    )
    .bind(sealed)
    .bind(step)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    events::record(
        &mut tx,
        Source::User(user_id),
        EventTag::AccountTwoFactorMethodAdded,
        meta,
        now_micros,
        json!({"method": "totp"}),
    )
    .await?;
    tx.commit().await
}

/// Forgets the user's secret and records `account:two_factor:method_removed`. False (and
/// nothing recorded) when there was none.
pub async fn remove(
    db: &Db,
    user_id: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE users SET totp_secret = NULL, totp_last_step = NULL WHERE id = $1 AND totp_secret IS NOT NULL",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let removed = done.rows_affected() == 1;
    if removed {
        events::record(
            &mut tx,
            Source::User(user_id),
            EventTag::AccountTwoFactorMethodRemoved,
            meta,
            now_micros,
            json!({"method": "totp"}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1: the last six digits of the eight-digit values.
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at(secret, time), code, "{time}");
        }
    }

    #[test]
    fn a_step_is_accepted_once_and_never_an_older_one() {
        let secret = generate_secret();
        let now = 1_800_000_000;
        let code = code_at(&secret, now);
        let Check::Valid(step) = check(&secret, &code, now, None) else {
            panic!("valid")
        };
        assert_eq!(check(&secret, &code, now, Some(step)), Check::Replayed);
        let previous = code_at(&secret, now - 30);
        assert_eq!(check(&secret, &previous, now, Some(step)), Check::Replayed);
        let next = code_at(&secret, now + 30);
        assert_eq!(
            check(&secret, &next, now + 30, Some(step)),
            Check::Valid(step + 1)
        );
    }

    #[test]
    fn skew_window_and_nothing_beyond() {
        let secret = generate_secret();
        let now = 1_800_000_015;
        assert!(matches!(
            check(&secret, &code_at(&secret, now - 30), now, None),
            Check::Valid(_)
        ));
        assert!(matches!(
            check(&secret, &code_at(&secret, now + 30), now, None),
            Check::Valid(_)
        ));
        // A code for a nearby time is as wrong as any other: no hint that it was close.
        assert_eq!(
            check(&secret, &code_at(&secret, now - 90), now, None),
            Check::Invalid
        );
        assert_eq!(
            check(&secret, &code_at(&secret, now + 290), now, None),
            Check::Invalid
        );
        assert_eq!(
            check(&secret, &code_at(&secret, now - 3600), now, None),
            Check::Invalid
        );
        for bad in ["12345", "1234567", "abcdef", ""] {
            assert_eq!(check(&secret, bad, now, None), Check::Malformed, "{bad}");
        }
        let spaced = code_at(&secret, now);
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert!(matches!(
            check(&secret, &spaced, now, None),
            Check::Valid(_)
        ));
    }

    #[test]
    fn secrets_are_sealed_with_the_server_key() {
        let keys = ServerKey::from_bytes([3; 32]);
        let secret = generate_secret();
        let sealed = seal(&keys, &secret);
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_slice()));
        assert_eq!(open(&keys, &sealed), Some(secret));
        assert_eq!(open(&ServerKey::from_bytes([4; 32]), &sealed), None);
    }

    #[test]
    fn provisioning_uri_and_qr_code() {
        let secret = b"12345678901234567890";
        let uri = provisioning_uri(secret, "alice", "wharf");
        assert_eq!(
            uri,
            "otpauth://totp/wharf:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=6&period=30&issuer=wharf"
        );
        assert!(qr_svg(&uri).is_some_and(|svg| svg.contains("<svg")));
    }
}
