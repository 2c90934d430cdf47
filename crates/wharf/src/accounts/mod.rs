//! Users, their e-mail addresses and passwords; sessions (`session`), the sign-in rules
//! (`signin`) and the account pages (`views`).

pub mod directory;
pub mod invitations;
mod password;
pub mod session;
mod signin;
pub mod sso;
pub mod views;

pub use password::{argon2_peak, argon2_permits, argon2_runs, hash_password, verify_password};
pub use signin::{Attempt, PasswordCheck, Recheck, check_password, recheck_password};

use crate::db::{Db, Tx};
use crate::events::{self, EventTag, RequestMeta, Source};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    pub is_active: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "invalid username '{0}': use 1 to 50 letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
    )]
    InvalidUsername(String),
    #[error("invalid e-mail address '{0}'")]
    InvalidEmail(String),
    #[error("the password must be at least 8 characters long")]
    PasswordTooShort,
    #[error("{0}")]
    WeakPassword(String),
    #[error("the username '{0}' is already taken")]
    UsernameTaken(String),
    #[error("the e-mail address '{0}' is already in use")]
    EmailTaken(String),
    #[error("the invitation has been used, revoked or has expired")]
    InvitationUnusable,
    #[error("this sign-in is linked to an account already: sign in again")]
    SsoLinked,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// PyPI's username rule: letters, digits, `.`, `_`, `-`, starting and ending with a letter
/// or digit, at most 50 characters.
pub fn is_valid_username(username: &str) -> bool {
    username.len() <= 50 && wharf_packaging::name::is_valid(username)
}

/// A plausible address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && email.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','))
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub is_admin: bool,
    pub email_verified: bool,
}

/// Creates a user with a primary e-mail address and records `account:create`.
pub async fn create_user(
    db: &Db,
    new: &NewUser<'_>,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<User, AccountError> {
    create_user_with(db, new, Then::Nothing, meta, now_micros).await
}

/// Whether the account has a password of its own (one made through a provider has none
/// until it is set through the reset page).
pub async fn has_password(db: &Db, user_id: &str) -> Result<bool, sqlx::Error> {
    Ok(password_state(db, user_id)
        .await?
        .is_some_and(|(hash, _)| hash != NO_PASSWORD))
}

/// The stored hash of an account without a password: not a PHC string, so it never verifies.
const NO_PASSWORD: &str = "!none";

/// What else the transaction that creates an account does.
enum Then<'a> {
    Nothing,
    /// Uses up a registration invitation.
    Invitation(&'a str),
    /// Links the identity provider's subject that is signing in.
    Sso(&'a sso::Identity),
}

/// [`create_user`] for someone signing in through an identity provider for the first time:
/// the account (without a password: one can be set through the reset page) and the
/// provider's subject are linked in one transaction.
pub async fn create_sso_user(
    db: &Db,
    username: &str,
    identity: &sso::Identity,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<User, AccountError> {
    let new = NewUser {
        username,
        email: &identity.email,
        password: "",
        is_admin: false,
        email_verified: identity.email_verified,
    };
    create_user_with(db, &new, Then::Sso(identity), meta, now_micros).await
}

/// [`create_user`] that uses up a registration invitation in the same transaction: no
/// account without the invitation, no invitation used without the account.
pub async fn create_invited_user(
    db: &Db,
    new: &NewUser<'_>,
    invitation_id: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<User, AccountError> {
    create_user_with(db, new, Then::Invitation(invitation_id), meta, now_micros).await
}

async fn create_user_with(
    db: &Db,
    new: &NewUser<'_>,
    then: Then<'_>,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<User, AccountError> {
    if !is_valid_username(new.username) {
        return Err(AccountError::InvalidUsername(new.username.to_owned()));
    }
    if !is_valid_email(new.email) {
        return Err(AccountError::InvalidEmail(new.email.to_owned()));
    }
    // An account made through a provider has no password (one can be set by the reset
    // page): no argon2 run, and a stored hash that never verifies.
    let password_hash = if matches!(then, Then::Sso(_)) {
        NO_PASSWORD.to_owned()
    } else {
        if new.password.chars().count() < 8 {
            return Err(AccountError::PasswordTooShort);
        }
        if let Some(problem) = password_problem(new.password, &[new.username, new.email]) {
            return Err(AccountError::WeakPassword(problem));
        }
        hash_password(new.password).await
    };
    let id = uuid::Uuid::new_v4().to_string();
    let mut tx = db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO users (id, username, username_key, password_hash, password_date, is_admin, created) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username_key) DO NOTHING",
    )
    .bind(&id)
    .bind(new.username)
    .bind(new.username.to_lowercase())
    .bind(&password_hash)
    .bind(now_micros)
    .bind(i64::from(new.is_admin))
    .bind(now_micros)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AccountError::UsernameTaken(new.username.to_owned()));
    }
    release_stale_claim(&mut tx, new.email, now_micros).await?;
    let inserted = sqlx::query(
        "INSERT INTO user_emails (id, user_id, email, email_key, is_primary, verified, created) \
         VALUES ($1, $2, $3, $4, 1, $5, $6) ON CONFLICT (email_key) DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&id)
    .bind(new.email)
    .bind(new.email.to_lowercase())
    .bind(i64::from(new.email_verified))
    .bind(now_micros)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AccountError::EmailTaken(new.email.to_owned()));
    }
    events::record(
        &mut tx,
        Source::User(&id),
        EventTag::AccountCreate,
        meta,
        now_micros,
        match &then {
            Then::Sso(identity) => {
                serde_json::json!({"email": new.email, "via": format!("sso:{}", identity.provider)})
            }
            _ => serde_json::json!({"email": new.email}),
        },
    )
    .await?;
    match then {
        Then::Nothing => {}
        Then::Invitation(invitation_id) => {
            if !invitations::accept(&mut tx, invitation_id, &id, meta, now_micros).await? {
                return Err(AccountError::InvitationUnusable);
            }
        }
        Then::Sso(identity) => {
            if !sso::link(&mut tx, identity, &id, new.username, meta, now_micros).await? {
                return Err(AccountError::SsoLinked);
            }
        }
    }
    tx.commit().await?;
    Ok(User {
        id,
        username: new.username.to_owned(),
        is_admin: new.is_admin,
        is_active: true,
    })
}

type UserRow = (String, String, i64, i64);

fn user_from_row((id, username, is_admin, is_active): UserRow) -> User {
    User {
        id,
        username,
        is_admin: is_admin != 0,
        is_active: is_active != 0,
    }
}

pub async fn find_by_username(db: &Db, username: &str) -> Result<Option<User>, sqlx::Error> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, is_admin, is_active FROM users WHERE username_key = $1",
    )
    .bind(username.to_lowercase())
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(user_from_row))
}

pub async fn find_by_id(db: &Db, id: &str) -> Result<Option<User>, sqlx::Error> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, username, is_admin, is_active FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(user_from_row))
}

/// The user a login names: by username, else by one of their addresses (verified or not).
pub async fn find_by_login(db: &Db, login: &str) -> Result<Option<User>, sqlx::Error> {
    if let Some(user) = find_by_username(db, login).await? {
        return Ok(Some(user));
    }
    let row: Option<(String,)> =
        sqlx::query_as("SELECT user_id FROM user_emails WHERE email_key = $1")
            .bind(login.to_lowercase())
            .fetch_optional(db.pool())
            .await?;
    match row {
        Some((id,)) => find_by_id(db, &id).await,
        None => Ok(None),
    }
}

/// Where a password-reset link for `login` goes: the user it names and their primary address.
pub async fn reset_recipient(db: &Db, login: &str) -> Result<Option<(User, String)>, sqlx::Error> {
    let Some(user) = find_by_login(db, login).await? else {
        return Ok(None);
    };
    let Some(primary) = primary_email(db, &user.id).await? else {
        return Ok(None);
    };
    Ok(Some((user, primary.email)))
}

/// Whether the user's primary e-mail address is verified (uploads require it, as on PyPI).
pub async fn has_verified_primary_email(db: &Db, user_id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT verified FROM user_emails WHERE user_id = $1 AND is_primary = 1")
            .bind(user_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.is_some_and(|(v,)| v != 0))
}

/// Longest password accepted (argon2 hashes anything, but a megabyte of password is an attack).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Why a new password is refused, or `None` when it will do: at least 8 characters and not
/// easily guessed (zxcvbn score 3 or more, the username and e-mail counted as known words).
pub fn password_problem(password: &str, user_inputs: &[&str]) -> Option<String> {
    let chars = password.chars().count();
    if chars < 8 {
        return Some("The password must be at least 8 characters long.".to_owned());
    }
    if chars > MAX_PASSWORD_CHARS {
        return Some(format!(
            "The password must be at most {MAX_PASSWORD_CHARS} characters long."
        ));
    }
    let estimate = zxcvbn::zxcvbn(password, user_inputs);
    if u8::from(estimate.score()) >= 3 {
        return None;
    }
    let mut message = "This password is too easy to guess.".to_owned();
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            message.push(' ');
            message.push_str(&warning.to_string());
        }
        for suggestion in feedback.suggestions() {
            message.push(' ');
            message.push_str(&suggestion.to_string());
        }
    }
    Some(message)
}

/// Sets a new password, ends every other session of the user (the one in `keep_session`
/// carries on) and records `tag` (`account:password:change` or `…:reset`).
pub async fn set_password(
    db: &Db,
    user_id: &str,
    password: &str,
    keep_session: Option<&str>,
    tag: EventTag,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    let hash = hash_password(password).await;
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $1, password_date = $2 WHERE id = $3")
        .bind(&hash)
        .bind(now_micros)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    session::keep_only(&mut tx, user_id, keep_session, now_micros).await?;
    events::record(
        &mut tx,
        Source::User(user_id),
        tag,
        meta,
        now_micros,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await
}

/// The password hash and its date, for re-authentication and reset links.
pub async fn password_state(db: &Db, user_id: &str) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT password_hash, password_date FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db.pool())
        .await
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct EmailAddress {
    pub id: String,
    pub email: String,
    pub primary: bool,
    pub verified: bool,
}

pub async fn emails(db: &Db, user_id: &str) -> Result<Vec<EmailAddress>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT id, email, is_primary, verified FROM user_emails WHERE user_id = $1 \
         ORDER BY is_primary DESC, created, email",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, email, primary, verified)| EmailAddress {
            id,
            email,
            primary: primary != 0,
            verified: verified != 0,
        })
        .collect())
}

pub async fn primary_email(db: &Db, user_id: &str) -> Result<Option<EmailAddress>, sqlx::Error> {
    Ok(emails(db, user_id).await?.into_iter().find(|e| e.primary))
}

/// Adds an unverified address. `EmailTaken` when any account has it already.
pub async fn add_email(
    db: &Db,
    user_id: &str,
    email: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<EmailAddress, AccountError> {
    if !is_valid_email(email) {
        return Err(AccountError::InvalidEmail(email.to_owned()));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut tx = db.begin().await?;
    release_stale_claim(&mut tx, email, now_micros).await?;
    let inserted = sqlx::query(
        "INSERT INTO user_emails (id, user_id, email, email_key, is_primary, verified, created) \
         VALUES ($1, $2, $3, $4, 0, 0, $5) ON CONFLICT (email_key) DO NOTHING",
    )
    .bind(&id)
    .bind(user_id)
    .bind(email)
    .bind(email.to_lowercase())
    .bind(now_micros)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AccountError::EmailTaken(email.to_owned()));
    }
    events::record(
        &mut tx,
        Source::User(user_id),
        EventTag::AccountEmailAdd,
        meta,
        now_micros,
        serde_json::json!({"email": email}),
    )
    .await?;
    tx.commit().await?;
    Ok(EmailAddress {
        id,
        email: email.to_owned(),
        primary: false,
        verified: false,
    })
}

/// How long an unverified address holds its claim: after that it no longer keeps another
/// account from adding it, and can no longer be verified (a re-sent link renews it).
pub const EMAIL_CLAIM_SECS: i64 = 86_400;

fn claim_cutoff(now_micros: i64) -> i64 {
    now_micros - EMAIL_CLAIM_SECS * 1_000_000
}

/// Frees `email` for a new claim when it is only held by an unverified claim that expired:
/// a secondary address is deleted; a primary one (an account must keep its primary) keeps
/// its row but gives up its key, so it matches no lookup and verifies no more.
async fn release_stale_claim(tx: &mut Tx, email: &str, now_micros: i64) -> Result<(), sqlx::Error> {
    let key = email.to_lowercase();
    sqlx::query(
        "DELETE FROM user_emails WHERE email_key = $1 AND verified = 0 AND is_primary = 0 AND created < $2",
    )
    .bind(&key)
    .bind(claim_cutoff(now_micros))
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE user_emails SET email_key = '!expired:' || id \
         WHERE email_key = $1 AND verified = 0 AND is_primary = 1 AND created < $2",
    )
    .bind(&key)
    .bind(claim_cutoff(now_micros))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Renews the claim of one of the user's unverified addresses (a verification e-mail is
/// sent again), taking its key back if it had expired and no one else holds it. False when
/// another account has the address now.
pub async fn renew_email_claim(
    db: &Db,
    user_id: &str,
    email_id: &str,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT email FROM user_emails WHERE id = $1 AND user_id = $2 AND verified = 0",
    )
    .bind(email_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((email,)) = row else {
        return Ok(false);
    };
    release_stale_claim(&mut tx, &email, now_micros).await?;
    let renewed = sqlx::query(
        "UPDATE user_emails SET created = $1, email_key = $2 WHERE id = $3 \
         AND NOT EXISTS (SELECT 1 FROM user_emails o WHERE o.email_key = $2 AND o.id <> $3)",
    )
    .bind(now_micros)
    .bind(email.to_lowercase())
    .bind(email_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(renewed.rows_affected() == 1)
}

/// Removes a non-primary address of the user. Returns the address removed.
pub async fn remove_email(
    db: &Db,
    user_id: &str,
    email_id: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row: Option<(String,)> = sqlx::query_as(
        "DELETE FROM user_emails WHERE id = $1 AND user_id = $2 AND is_primary = 0 RETURNING email",
    )
    .bind(email_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((email,)) = &row {
        events::record(
            &mut tx,
            Source::User(user_id),
            EventTag::AccountEmailRemove,
            meta,
            now_micros,
            serde_json::json!({"email": email}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(row.map(|(e,)| e))
}

/// Makes a verified address the primary one. Returns (old, new) addresses.
pub async fn set_primary_email(
    db: &Db,
    user_id: &str,
    email_id: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let new: Option<(String,)> = sqlx::query_as(
        "SELECT email FROM user_emails WHERE id = $1 AND user_id = $2 AND verified = 1 AND is_primary = 0",
    )
    .bind(email_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((new,)) = new else {
        return Ok(None);
    };
    let old: Option<(String,)> =
        sqlx::query_as("SELECT email FROM user_emails WHERE user_id = $1 AND is_primary = 1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    let old = old.map(|(e,)| e).unwrap_or_default();
    sqlx::query("UPDATE user_emails SET is_primary = CASE WHEN id = $1 THEN 1 ELSE 0 END WHERE user_id = $2")
        .bind(email_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    events::record(
        &mut tx,
        Source::User(user_id),
        EventTag::AccountEmailPrimaryChange,
        meta,
        now_micros,
        serde_json::json!({"old_primary": old, "new_primary": new}),
    )
    .await?;
    tx.commit().await?;
    Ok(Some((old, new)))
}

/// Marks the address verified, if it still belongs to the user. Returns whether it did.
pub async fn verify_email(
    db: &Db,
    user_id: &str,
    email: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let updated = sqlx::query(
        "UPDATE user_emails SET verified = 1 WHERE user_id = $1 AND email_key = $2 AND verified = 0 \
         AND created >= $3",
    )
    .bind(user_id)
    .bind(email.to_lowercase())
    .bind(claim_cutoff(now_micros))
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    events::record(
        &mut tx,
        Source::User(user_id),
        EventTag::AccountEmailVerified,
        meta,
        now_micros,
        serde_json::json!({"email": email}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Projects where the user is the only Owner: they block deleting the account.
pub async fn sole_owned_projects(db: &Db, user_id: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT p.name FROM projects p JOIN roles r ON r.project_id = p.id \
         WHERE r.user_id = $1 AND r.role_name = 'Owner' \
           AND NOT EXISTS (SELECT 1 FROM roles o WHERE o.project_id = p.id \
                           AND o.role_name = 'Owner' AND o.user_id <> $1) \
         ORDER BY p.normalized_name",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

/// Deletes the account with its addresses, sessions, tokens and roles. The caller checks
/// `sole_owned_projects` first; the events of the account stay for the admins.
pub async fn delete_user(
    db: &Db,
    user: &User,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    events::record(
        &mut tx,
        Source::User(&user.id),
        EventTag::AccountDelete,
        meta,
        now_micros,
        serde_json::json!({"username": user.username}),
    )
    .await?;
    // The account's tokens die with it: logged for the processes that keep tokens in memory.
    let token_ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM macaroons WHERE user_id = $1")
        .bind(&user.id)
        .fetch_all(&mut *tx)
        .await?;
    for (token_id,) in token_ids {
        crate::tokens::cache::log_revocation(&mut tx, &token_id, now_micros).await?;
    }
    for table in [
        "sessions",
        "macaroons",
        "roles",
        "role_invitations",
        "user_emails",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE user_id = $1"
        )))
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

crate::site::template_value!(EmailAddress);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_common_passwords_are_refused() {
        assert!(password_problem("short", &[]).is_some());
        assert!(password_problem("password123", &[]).is_some());
        assert!(password_problem("alice-alice-1", &["alice-alice"]).is_some());
        assert!(password_problem("correct horse battery staple", &[]).is_none());
        assert!(password_problem(&"x".repeat(2000), &[]).is_some());
    }

    #[test]
    fn usernames_and_emails() {
        assert!(is_valid_username("alice.smith-2"));
        assert!(!is_valid_username("alice smith"));
        assert!(!is_valid_username(&"a".repeat(51)));
        assert!(is_valid_email("alice@example.org"));
        for bad in [
            "alice",
            "@example.org",
            "alice@localhost",
            "a b@example.org",
            "a@b@c.org",
            "a@.org",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }
}
