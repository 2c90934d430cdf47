//! Users, their e-mail addresses and passwords.

mod password;

pub use password::{hash_password, verify_password};

use crate::db::Db;
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
    #[error("the username '{0}' is already taken")]
    UsernameTaken(String),
    #[error("the e-mail address '{0}' is already in use")]
    EmailTaken(String),
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
    now: i64,
) -> Result<User, AccountError> {
    if !is_valid_username(new.username) {
        return Err(AccountError::InvalidUsername(new.username.to_owned()));
    }
    if !is_valid_email(new.email) {
        return Err(AccountError::InvalidEmail(new.email.to_owned()));
    }
    if new.password.chars().count() < 8 {
        return Err(AccountError::PasswordTooShort);
    }
    let password_hash = hash_password(new.password);
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
    .bind(now)
    .bind(i64::from(new.is_admin))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AccountError::UsernameTaken(new.username.to_owned()));
    }
    let inserted = sqlx::query(
        "INSERT INTO user_emails (id, user_id, email, email_key, is_primary, verified, created) \
         VALUES ($1, $2, $3, $4, 1, $5, $6) ON CONFLICT (email_key) DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&id)
    .bind(new.email)
    .bind(new.email.to_lowercase())
    .bind(i64::from(new.email_verified))
    .bind(now)
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
        now,
        serde_json::json!({"email": new.email}),
    )
    .await?;
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

/// Whether the user's primary e-mail address is verified (uploads require it, as on PyPI).
pub async fn has_verified_primary_email(db: &Db, user_id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT verified FROM user_emails WHERE user_id = $1 AND is_primary = 1")
            .bind(user_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.is_some_and(|(v,)| v != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

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
