//! Each ID token is exchanged once: its `jti` is kept in `oidc_jwt_ids`, per issuer, until
//! after the token expires (plus the leeway and a margin), so any process refuses a replay.

use sqlx::AnyConnection;

use super::jwt::LEEWAY_SECS;
use crate::db::Db;

/// Whether the `jti` was exchanged already (a check before the work; `claim` decides).
pub async fn seen(db: &Db, issuer: &str, jti: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM oidc_jwt_ids WHERE issuer = $1 AND jti = $2")
            .bind(issuer)
            .bind(jti)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.is_some())
}

/// Records the `jti` in the exchange's transaction; `false` when another exchange has it.
pub async fn claim(
    conn: &mut AnyConnection,
    issuer: &str,
    jti: &str,
    exp_secs: i64,
) -> Result<bool, sqlx::Error> {
    let keep_until = exp_secs
        .saturating_add(LEEWAY_SECS + 5)
        .saturating_mul(1_000_000);
    let inserted = sqlx::query(
        "INSERT INTO oidc_jwt_ids (issuer, jti, expires) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(issuer)
    .bind(jti)
    .bind(keep_until)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Forgets the identifiers of tokens that can no longer be presented, and the minted upload
/// tokens a day past their expiry (Warehouse deletes them after a day). Returns the rows
/// removed.
pub async fn sweep(db: &Db, now_micros: i64) -> Result<u64, sqlx::Error> {
    let ids = sqlx::query("DELETE FROM oidc_jwt_ids WHERE expires < $1")
        .bind(now_micros)
        .execute(db.pool())
        .await?;
    let tokens = sqlx::query("DELETE FROM oidc_tokens WHERE expires < $1")
        .bind(now_micros - 86_400 * 1_000_000)
        .execute(db.pool())
        .await?;
    Ok(ids.rows_affected() + tokens.rows_affected())
}
