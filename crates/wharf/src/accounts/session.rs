//! Server-side sessions in the database, so any process of a deployment accepts them. The
//! cookie carries 32 random bytes; the database keeps only their SHA-256. A session ends when
//! it expires, when its user signs out, or when the user's password changes (§8).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::User;
use crate::db::Db;
use crate::events::RequestMeta;

pub const COOKIE: &str = "wharf_session";
/// How long a sign-in lasts (warehouse: 12 hours).
pub const LIFETIME_SECS: i64 = 12 * 3600;

/// A signed-in session.
#[derive(Clone, Debug)]
pub struct Session {
    pub id_hash: String,
    pub user: User,
    /// When the password was last entered (micros).
    pub reauth_at: i64,
    /// Whether the account is linked to an identity provider (it may confirm through one).
    pub sso_linked: bool,
}

impl Session {
    /// Whether the password was entered within `window_secs` (the `reauth_secs` setting).
    pub fn recently_authenticated(&self, now_micros: i64, window_secs: i64) -> bool {
        now_micros - self.reauth_at < window_secs * 1_000_000
    }
}

pub fn hash_id(cookie_value: &str) -> String {
    hex::encode(Sha256::digest(cookie_value.as_bytes()))
}

/// Starts a session for the user and returns the cookie value. The caller ends the session
/// the visitor had before, so the id changes at sign-in.
pub async fn create(
    db: &Db,
    user_id: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<String, sqlx::Error> {
    let cookie_value = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let (password_date,): (i64,) = sqlx::query_as("SELECT password_date FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(db.pool())
        .await?;
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, created, expires, password_date, reauth_at, ip_address, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(hash_id(&cookie_value))
    .bind(user_id)
    .bind(now_micros)
    .bind(now_micros + LIFETIME_SECS * 1_000_000)
    .bind(password_date)
    .bind(now_micros)
    .bind(meta.ip_address.as_deref())
    .bind(meta.user_agent.as_deref())
    .execute(db.pool())
    .await?;
    sqlx::query("UPDATE users SET last_login = $1 WHERE id = $2")
        .bind(now_micros)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(cookie_value)
}

/// The live session behind a cookie value, if any.
pub async fn load(
    db: &Db,
    cookie_value: &str,
    now_micros: i64,
) -> Result<Option<Session>, sqlx::Error> {
    type Row = (String, i64, i64, String, String, i64, i64, i64, i64);
    let row: Option<Row> = sqlx::query_as(
        "SELECT s.id_hash, s.expires, s.reauth_at, u.id, u.username, u.is_admin, u.is_active, \
                CASE WHEN s.password_date = u.password_date THEN 1 ELSE 0 END, \
                CASE WHEN EXISTS (SELECT 1 FROM sso_identities i WHERE i.user_id = u.id) \
                     THEN 1 ELSE 0 END \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
    )
    .bind(hash_id(cookie_value))
    .fetch_optional(db.pool())
    .await?;
    let Some((
        id_hash,
        expires,
        reauth_at,
        id,
        username,
        is_admin,
        is_active,
        same_password,
        sso_linked,
    )) = row
    else {
        return Ok(None);
    };
    if expires <= now_micros || is_active == 0 || same_password == 0 {
        // Expired, disabled, or the password changed since: the session is over.
        delete_by_hash(db, &id_hash).await?;
        return Ok(None);
    }
    Ok(Some(Session {
        id_hash,
        user: User {
            id,
            username,
            is_admin: is_admin != 0,
            is_active: true,
        },
        reauth_at,
        sso_linked: sso_linked != 0,
    }))
}

pub async fn delete_by_hash(db: &Db, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Records that the password was just entered in this session.
pub async fn mark_reauthenticated(
    db: &Db,
    id_hash: &str,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET reauth_at = $1 WHERE id_hash = $2")
        .bind(now_micros)
        .bind(id_hash)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// After a password change: every other session of the user ends; this one carries on under
/// the new password date.
pub async fn keep_only(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    keep_id_hash: Option<&str>,
    password_date: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
        .bind(user_id)
        .bind(keep_id_hash.unwrap_or(""))
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE sessions SET password_date = $1 WHERE user_id = $2")
        .bind(password_date)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
