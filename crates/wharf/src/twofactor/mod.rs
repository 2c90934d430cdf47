//! Two-factor authentication: TOTP, WebAuthn security keys and passkeys, recovery codes, the
//! sign-in step that asks for a second factor, and the rules on who must have one.

pub mod recovery;
pub mod totp;
pub mod views;
pub mod webauthn;

use serde::Serialize;

use crate::config::Settings;
use crate::db::Db;

/// The second factors a user has.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Methods {
    pub totp: bool,
    pub security_keys: usize,
    pub passkeys: usize,
    pub recovery_codes: i64,
    pub recovery_codes_left: i64,
    /// The user proved they saved their recovery codes by using one.
    pub recovery_codes_confirmed: bool,
}

crate::site::template_value!(Methods);

impl Methods {
    /// Whether signing in asks for a second factor.
    pub fn any(&self) -> bool {
        self.totp || self.security_keys + self.passkeys > 0
    }

    /// How many methods could be removed before none is left.
    pub fn count(&self) -> usize {
        usize::from(self.totp) + self.security_keys + self.passkeys
    }
}

pub async fn methods(db: &Db, user_id: &str) -> Result<Methods, sqlx::Error> {
    let (totp,): (i64,) = sqlx::query_as(
        "SELECT CASE WHEN totp_secret IS NULL THEN 0 ELSE 1 END FROM users WHERE id = $1",
    )
    .bind(user_id)
    .fetch_one(db.pool())
    .await?;
    let kinds: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, COUNT(*) FROM webauthn_credentials WHERE user_id = $1 GROUP BY kind",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    let count = |kind: &str| {
        kinds
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| usize::try_from(*n).unwrap_or(0))
    };
    let (generated, left) = recovery::counts(db, user_id).await?;
    Ok(Methods {
        totp: totp != 0,
        security_keys: count("security_key"),
        passkeys: count("passkey"),
        recovery_codes: generated,
        recovery_codes_left: left,
        recovery_codes_confirmed: generated > left,
    })
}

/// Whether the user must keep a second factor: every account must when the admins say so,
/// and Owners and Maintainers of projects that ask for it.
pub async fn required_for(
    db: &Db,
    settings: &Settings,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    if settings.require_2fa {
        return Ok(true);
    }
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM roles r JOIN projects p ON p.id = r.project_id \
         WHERE r.user_id = $1 AND p.owners_require_2fa = 1",
    )
    .bind(user_id)
    .fetch_one(db.pool())
    .await?;
    Ok(n > 0)
}

/// Whether a project asks its Owners and Maintainers to use two-factor authentication.
pub async fn project_requires(db: &Db, project_id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT owners_require_2fa FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.is_some_and(|(flag,)| flag != 0))
}

/// Whether a two-factor step (its cookie's nonce) has signed someone in already.
pub async fn step_used(db: &Db, nonce: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM two_factor_steps_used WHERE nonce = $1")
            .bind(nonce)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.is_some())
}

/// Uses up a two-factor step until `expires` (unix seconds, when its cookie ends anyway).
/// False when it was used already (a replayed or raced cookie). Forgets expired steps.
pub async fn use_step(
    db: &Db,
    nonce: &str,
    expires: i64,
    now_secs: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query("DELETE FROM two_factor_steps_used WHERE expires < $1")
        .bind(now_secs)
        .execute(db.pool())
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO two_factor_steps_used (nonce, expires) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
    )
    .bind(nonce)
    .bind(expires)
    .execute(db.pool())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// What an admin's reset removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Reset {
    pub totp: bool,
    pub webauthn_credentials: u64,
    pub recovery_codes: u64,
}

/// Removes every second factor of the user (TOTP, security keys, passkeys, recovery codes,
/// WebAuthn ceremonies in progress), in the caller's transaction.
pub async fn remove_all(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
) -> Result<Reset, sqlx::Error> {
    let totp = sqlx::query(
        "UPDATE users SET totp_secret = NULL, totp_pending_secret = NULL, totp_last_step = NULL \
         WHERE id = $1 AND totp_secret IS NOT NULL",
    )
    .bind(user_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    sqlx::query("UPDATE users SET totp_pending_secret = NULL WHERE id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let mut removed = [0u64; 2];
    for (slot, table) in ["webauthn_credentials", "recovery_codes"]
        .iter()
        .enumerate()
    {
        removed[slot] = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE user_id = $1"
        )))
        .bind(user_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    sqlx::query("DELETE FROM webauthn_ceremonies WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(Reset {
        totp,
        webauthn_credentials: removed[0],
        recovery_codes: removed[1],
    })
}
