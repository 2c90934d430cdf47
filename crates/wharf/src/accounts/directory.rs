//! The accounts as the admins see them: a searchable, paged list with each user's primary
//! address, dates, second factors and flags, and the changes only admins make (the admin
//! flag, disabling). The admin actions that combine these live in `admin::actions`.

use sqlx::AnyConnection;

use crate::db::Db;

/// One account in the admins' list.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UserSummary {
    pub id: String,
    pub username: String,
    /// The primary address ("" when the account has none).
    pub email: String,
    pub email_verified: bool,
    pub created: i64,
    pub last_login: Option<i64>,
    pub is_admin: bool,
    pub is_active: bool,
    pub totp: bool,
    pub security_keys: i64,
    pub passkeys: i64,
    /// Recovery codes not used yet.
    pub recovery_codes: i64,
}

crate::site::template_value!(UserSummary);

impl UserSummary {
    /// The second factors, as `totp, 2 security keys, passkey, 8 recovery codes` (or `none`).
    pub fn two_factor_methods(&self) -> String {
        let mut parts = Vec::new();
        if self.totp {
            parts.push("totp".to_owned());
        }
        for (n, one) in [
            (self.security_keys, "security key"),
            (self.passkeys, "passkey"),
            (self.recovery_codes, "recovery code"),
        ] {
            match n {
                0 => {}
                1 => parts.push(one.to_owned()),
                n => parts.push(format!("{n} {one}s")),
            }
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// `admin`, `disabled`, `unverified` (the primary address), comma-separated, or `-`.
    pub fn flags(&self) -> String {
        let mut flags = Vec::new();
        if self.is_admin {
            flags.push("admin");
        }
        if !self.is_active {
            flags.push("disabled");
        }
        if !self.email_verified {
            flags.push("unverified");
        }
        if flags.is_empty() {
            "-".to_owned()
        } else {
            flags.join(",")
        }
    }
}

/// Which accounts to list.
#[derive(Clone, Debug, Default)]
pub struct UserQuery {
    /// Part of a username or of any of the user's addresses (case-insensitive); empty: all.
    pub search: String,
    pub admins_only: bool,
    pub disabled_only: bool,
}

type SummaryRow = (
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

const SUMMARY_SELECT: &str = "SELECT u.id, u.username, COALESCE(e.email, ''), COALESCE(e.verified, 0), \
       u.created, u.last_login, u.is_admin, u.is_active, \
       CASE WHEN u.totp_secret IS NULL THEN 0 ELSE 1 END, \
       (SELECT COUNT(*) FROM webauthn_credentials w WHERE w.user_id = u.id AND w.kind = 'security_key'), \
       (SELECT COUNT(*) FROM webauthn_credentials w WHERE w.user_id = u.id AND w.kind = 'passkey'), \
       (SELECT COUNT(*) FROM recovery_codes r WHERE r.user_id = u.id AND r.burned IS NULL) \
     FROM users u LEFT JOIN user_emails e ON e.user_id = u.id AND e.is_primary = 1";

const SUMMARY_WHERE: &str = "WHERE ($1 = '' OR u.username_key LIKE $2 ESCAPE '\\' \
        OR EXISTS (SELECT 1 FROM user_emails s WHERE s.user_id = u.id AND s.email_key LIKE $2 ESCAPE '\\')) \
       AND ($3 = 0 OR u.is_admin = 1) AND ($4 = 0 OR u.is_active = 0)";

fn summary_from_row(row: SummaryRow) -> UserSummary {
    let (
        id,
        username,
        email,
        verified,
        created,
        last_login,
        is_admin,
        is_active,
        totp,
        security_keys,
        passkeys,
        recovery_codes,
    ) = row;
    UserSummary {
        id,
        username,
        email,
        email_verified: verified != 0,
        created,
        last_login,
        is_admin: is_admin != 0,
        is_active: is_active != 0,
        totp: totp != 0,
        security_keys,
        passkeys,
        recovery_codes,
    }
}

/// `%` and `_` taken literally in a LIKE pattern.
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One page of the accounts the query matches, by username, and how many it matches.
pub async fn list(
    db: &Db,
    query: &UserQuery,
    limit: i64,
    offset: i64,
) -> Result<(Vec<UserSummary>, i64), sqlx::Error> {
    let search = query.search.trim().to_lowercase();
    let pattern = format!("%{}%", like_escape(&search));
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM users u {SUMMARY_WHERE}"
    )))
    .bind(&search)
    .bind(&pattern)
    .bind(i64::from(query.admins_only))
    .bind(i64::from(query.disabled_only))
    .fetch_one(db.pool())
    .await?;
    let rows: Vec<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SUMMARY_SELECT} {SUMMARY_WHERE} ORDER BY u.username_key LIMIT $5 OFFSET $6"
    )))
    .bind(&search)
    .bind(&pattern)
    .bind(i64::from(query.admins_only))
    .bind(i64::from(query.disabled_only))
    .bind(limit)
    .bind(offset.max(0))
    .fetch_all(db.pool())
    .await?;
    Ok((rows.into_iter().map(summary_from_row).collect(), total))
}

/// The account named `username` (any case), as the admins' list shows it.
pub async fn summary(db: &Db, username: &str) -> Result<Option<UserSummary>, sqlx::Error> {
    let row: Option<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SUMMARY_SELECT} WHERE u.username_key = $1"
    )))
    .bind(username.to_lowercase())
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(summary_from_row))
}

/// Sets or clears the admin flag. False when it had that value already.
pub async fn set_admin(
    conn: &mut AnyConnection,
    user_id: &str,
    is_admin: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET is_admin = $1 WHERE id = $2 AND is_admin <> $1")
        .bind(i64::from(is_admin))
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Disables (`false`) or enables an account. Disabling ends every session of the user. Either
/// way the user's tokens are logged as revoked, so that every process drops its cached copy
/// (which carries the account's state) and reads the account again on the next use; the
/// token rows themselves are kept. Returns the ids of those tokens (for this process's
/// cache), or `None` when the account was in that state already.
pub async fn set_active(
    conn: &mut AnyConnection,
    user_id: &str,
    is_active: bool,
    now_micros: i64,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET is_active = $1 WHERE id = $2 AND is_active <> $1")
        .bind(i64::from(is_active))
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    if !is_active {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
    }
    let tokens: Vec<(String,)> = sqlx::query_as("SELECT id FROM macaroons WHERE user_id = $1")
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut ids = Vec::with_capacity(tokens.len());
    for (id,) in tokens {
        crate::tokens::cache::log_revocation(conn, &id, now_micros).await?;
        ids.push(id);
    }
    Ok(Some(ids))
}

/// How many live sessions the user has (the admins' page shows it).
pub async fn session_count(db: &Db, user_id: &str, now_micros: i64) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND expires > $2")
            .bind(user_id)
            .bind(now_micros)
            .fetch_one(db.pool())
            .await?;
    Ok(n)
}
