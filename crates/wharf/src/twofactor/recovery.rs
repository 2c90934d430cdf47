//! Recovery codes (`spec/warehouse-security.md` §4): 8 codes of 16 hex characters, hashed
//! with argon2, each usable once. A user burns one to prove they saved them before TOTP or a
//! security key can be enabled.

use serde_json::json;

use crate::accounts::{hash_password, verify_password};
use crate::db::Db;
use crate::events::{self, EventTag, RequestMeta, Source};

pub const COUNT: usize = 8;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("Recovery codes are 16 characters: the digits 0-9 and the letters a-f.")]
    Malformed,
    #[error("Invalid recovery code.")]
    Invalid,
    #[error("Recovery code has been previously used.")]
    Burned,
    #[error("{0}")]
    Database(String),
}

impl From<sqlx::Error> for RecoveryError {
    fn from(e: sqlx::Error) -> RecoveryError {
        tracing::error!(error = %e, "database error");
        RecoveryError::Database("Internal Server Error".to_owned())
    }
}

/// Whitespace removed and lower-cased; `None` unless 16 hex characters remain.
pub fn normalize(code: &str) -> Option<String> {
    let code: String = code
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    (code.len() == 16 && code.bytes().all(|b| b.is_ascii_hexdigit())).then_some(code)
}

/// Replaces the user's codes with a new set, returned in clear (shown once). `regenerate`
/// says which event to record.
pub async fn generate(
    db: &Db,
    user_id: &str,
    regenerate: bool,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let codes: Vec<String> = (0..COUNT)
        .map(|_| hex::encode(rand::random::<[u8; 8]>()))
        .collect();
    let mut hashes = Vec::with_capacity(codes.len());
    for code in &codes {
        hashes.push(hash_password(code).await);
    }
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for hash in hashes {
        sqlx::query(
            "INSERT INTO recovery_codes (id, user_id, code_hash, generated) VALUES ($1, $2, $3, $4)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(user_id)
        .bind(hash)
        .bind(now_micros)
        .execute(&mut *tx)
        .await?;
    }
    let tag = if regenerate {
        EventTag::AccountRecoveryCodesRegenerated
    } else {
        EventTag::AccountRecoveryCodesGenerated
    };
    events::record(
        &mut tx,
        Source::User(user_id),
        tag,
        meta,
        now_micros,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(codes)
}

/// Burns the code if it is one of the user's unused ones.
pub async fn burn(
    db: &Db,
    user_id: &str,
    code: &str,
    now_micros: i64,
) -> Result<(), RecoveryError> {
    let code = normalize(code).ok_or(RecoveryError::Malformed)?;
    let rows: Vec<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT id, code_hash, burned FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(db.pool())
            .await?;
    let mut found = None;
    for (id, hash, burned) in rows {
        if verify_password(&code, &hash).await {
            found = Some((id, burned));
            break;
        }
    }
    let Some((id, burned)) = found else {
        return Err(RecoveryError::Invalid);
    };
    if burned.is_some() {
        return Err(RecoveryError::Burned);
    }
    // Conditional on `burned IS NULL`: two requests racing with one code cannot both win.
    let updated =
        sqlx::query("UPDATE recovery_codes SET burned = $1 WHERE id = $2 AND burned IS NULL")
            .bind(now_micros)
            .bind(&id)
            .execute(db.pool())
            .await?;
    if updated.rows_affected() == 0 {
        return Err(RecoveryError::Burned);
    }
    Ok(())
}

/// (codes generated, codes left).
pub async fn counts(db: &Db, user_id: &str) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN burned IS NULL THEN 1 ELSE 0 END), 0) \
         FROM recovery_codes WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(db.pool())
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_normalised_or_refused() {
        assert_eq!(
            normalize(" 0123 4567 89AB cdef "),
            Some("0123456789abcdef".to_owned())
        );
        assert_eq!(normalize("0123456789abcde"), None);
        assert_eq!(normalize("0123456789abcdeg"), None);
        assert_eq!(normalize("0123456789abcdef0"), None);
    }
}
