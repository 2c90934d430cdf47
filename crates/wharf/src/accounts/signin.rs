//! The sign-in rules: checking a password to sign in, and checking the signed-in user's
//! password again before a change that needs it. Each reserves its rate-limit slots before
//! argon2 runs and records its failures; the views only turn the outcomes into messages.

use serde_json::json;

use super::{MAX_PASSWORD_CHARS, User, password_state, user_from_row, verify_password};
use crate::db::Db;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::ratelimit::{self, Limited};

/// Who tries, from where and when: what the limits and the failure events need.
pub struct Attempt<'a> {
    /// The address's rate-limit key (an IPv4 address, or an IPv6 /64).
    pub ip: String,
    pub meta: &'a RequestMeta,
    pub now_micros: i64,
}

impl Attempt<'_> {
    fn now_secs(&self) -> i64 {
        self.now_micros.div_euclid(1_000_000)
    }

    /// Records a failure. A failure to record it does not change the answer (it is logged).
    async fn record(&self, db: &Db, source: Source<'_>, tag: EventTag, reason: serde_json::Value) {
        let recorded = async {
            let mut conn = db.pool().acquire().await?;
            events::record(&mut conn, source, tag, self.meta, self.now_micros, reason).await
        };
        if let Err(e) = recorded.await {
            tracing::error!(error = %e, "cannot record an event");
        }
    }
}

/// What checking a sign-in password found.
pub enum PasswordCheck {
    Ok(User),
    /// No such account, or not its password: the visitor is told the same.
    Wrong,
    /// The right password of a disabled account.
    Disabled,
    /// Refused: the failures of the account (or, for a wrong password or an unknown name, of
    /// the address) are used up.
    Limited(Limited),
}

/// Signs in with a username (or verified address) and password: [`sign_in`]'s limits, and
/// an `account:login:failure` event for each failure (under the account, or anonymous with
/// the name tried when there is no such account).
pub async fn check_password(
    db: &Db,
    login: &str,
    password: &str,
    attempt: &Attempt<'_>,
) -> Result<PasswordCheck, sqlx::Error> {
    // Refused unhashed, unrecorded and uncounted: no password is that long.
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Ok(PasswordCheck::Wrong);
    }
    let failure = |reason: &str| json!({ "reason": reason });
    Ok(
        match sign_in(db, login, password, &attempt.ip, attempt.now_secs()).await? {
            SignIn::Valid(user) => PasswordCheck::Ok(user),
            SignIn::Limited(limited) => PasswordCheck::Limited(limited),
            SignIn::UnknownUser => {
                // No account to file it under: an admin-visible event.
                let username: String = login.trim().chars().take(100).collect();
                let reason = json!({"reason": "invalid_username", "username": username});
                let tag = EventTag::AccountLoginFailure;
                attempt.record(db, Source::Anonymous, tag, reason).await;
                PasswordCheck::Wrong
            }
            SignIn::WrongPassword(user) => {
                let source = Source::User(&user.id);
                let tag = EventTag::AccountLoginFailure;
                attempt
                    .record(db, source, tag, failure("invalid_password"))
                    .await;
                PasswordCheck::Wrong
            }
            SignIn::WrongPasswordLimited(user, limited) => {
                let source = Source::User(&user.id);
                let tag = EventTag::AccountLoginFailure;
                attempt
                    .record(db, source, tag, failure("invalid_password"))
                    .await;
                PasswordCheck::Limited(limited)
            }
            SignIn::Disabled(user) => {
                let source = Source::User(&user.id);
                let tag = EventTag::AccountLoginFailure;
                attempt.record(db, source, tag, failure("disabled")).await;
                PasswordCheck::Disabled
            }
        },
    )
}

/// What checking the signed-in user's password again found.
pub enum Recheck {
    Ok,
    Wrong,
    /// The account's failures are used up: the password was not checked.
    Limited(Limited),
}

/// The one password re-check of every form that asks for it (re-authentication, changing
/// the password, deleting the account or a token, removing a second factor): under the
/// account's failure limit, the same one sign-in counts against, so a stolen session cannot
/// guess the password through these forms faster than through the sign-in page. A wrong
/// password is recorded as `account:reauthenticate:failure`.
pub async fn recheck_password(
    db: &Db,
    user_id: &str,
    password: &str,
    attempt: &Attempt<'_>,
) -> Result<Recheck, sqlx::Error> {
    Ok(
        match confirm_password(db, user_id, password, &attempt.ip, attempt.now_secs()).await? {
            Ok(true) => Recheck::Ok,
            Ok(false) => {
                let source = Source::User(user_id);
                let tag = EventTag::AccountReauthenticateFailure;
                let reason = json!({"reason": "invalid_password"});
                attempt.record(db, source, tag, reason).await;
                Recheck::Wrong
            }
            Err(limited) => Recheck::Limited(limited),
        },
    )
}

/// The result of a sign-in with a username and password.
enum SignIn {
    Valid(User),
    UnknownUser,
    WrongPassword(User),
    /// A wrong password from an address whose failures are used up.
    WrongPasswordLimited(User, Limited),
    Disabled(User),
    /// Refused before the password was checked.
    Limited(Limited),
}

/// The account a login names (its username, or one of its verified addresses), with its
/// password hash.
async fn find_for_sign_in(db: &Db, login: &str) -> Result<Option<(User, String)>, sqlx::Error> {
    let row: Option<(String, String, i64, i64, String)> = sqlx::query_as(
        "SELECT u.id, u.username, u.is_admin, u.is_active, u.password_hash FROM users u \
         WHERE u.username_key = $1 \
            OR u.id = (SELECT user_id FROM user_emails WHERE email_key = $1 AND verified = 1)",
    )
    .bind(login.trim().to_lowercase())
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(id, username, is_admin, is_active, hash)| {
        (user_from_row((id, username, is_admin, is_active)), hash)
    }))
}

/// Checks a username (or e-mail address) and password from `ip`, under the failure limits
/// per account and per address: a slot in each is reserved before argon2 runs, so parallel
/// guesses cannot outrun them, and given back when the password is right (only failures
/// count). Unknown users cost the same argon2 work as known ones, so timing does not tell
/// which usernames exist.
///
/// A full per-address bucket alone never refuses a right password: behind a shared address
/// (a NAT, an office) one client's failures would lock everyone out. The password is then
/// still checked under the account's own limit, and a wrong one answered as limited. An
/// unknown name from such an address is refused without the decoy argon2 run, so that the
/// address cannot make the server hash without bound (whether an account exists is no
/// secret on an index that shows its maintainers anyway).
async fn sign_in(
    db: &Db,
    login: &str,
    password: &str,
    ip: &str,
    now_secs: i64,
) -> Result<SignIn, sqlx::Error> {
    let ip_slot = ratelimit::LOGIN_IP.reserve(db, ip, now_secs).await?;
    let Some((user, hash)) = find_for_sign_in(db, login).await? else {
        return Ok(match ip_slot {
            // Kept: a failure of this address.
            Ok(_failure) => {
                let _ = verify_password(password, DUMMY_HASH).await;
                SignIn::UnknownUser
            }
            Err(limited) => SignIn::Limited(limited),
        });
    };
    let user_slot = match ratelimit::LOGIN_USER
        .reserve(db, &user.id, now_secs)
        .await?
    {
        Ok(slot) => slot,
        Err(limited) => {
            // Not evaluated: not the address's failure either.
            if let Ok(slot) = ip_slot {
                slot.release(db).await?;
            }
            return Ok(SignIn::Limited(limited));
        }
    };
    if !verify_password(password, &hash).await {
        // Both slots stay counted.
        return Ok(match ip_slot {
            Ok(_failure) => SignIn::WrongPassword(user),
            Err(limited) => SignIn::WrongPasswordLimited(user, limited),
        });
    }
    user_slot.release(db).await?;
    if let Ok(slot) = ip_slot {
        slot.release(db).await?;
    }
    if !user.is_active {
        return Ok(SignIn::Disabled(user));
    }
    Ok(SignIn::Valid(user))
}

/// Checks the signed-in user's password again under the account's failure limit; a failure
/// also counts against `ip`. `Err` when the account's failures are used up (nothing was
/// checked). Records nothing: [`recheck_password`], which every form uses, records the
/// failures.
async fn confirm_password(
    db: &Db,
    user_id: &str,
    password: &str,
    ip: &str,
    now_secs: i64,
) -> Result<Result<bool, Limited>, sqlx::Error> {
    let slot = match ratelimit::LOGIN_USER.reserve(db, user_id, now_secs).await? {
        Ok(slot) => slot,
        Err(limited) => return Ok(Err(limited)),
    };
    let valid = password.chars().count() <= MAX_PASSWORD_CHARS
        && match password_state(db, user_id).await? {
            Some((hash, _)) => verify_password(password, &hash).await,
            None => false,
        };
    if valid {
        slot.release(db).await?;
    } else {
        ratelimit::LOGIN_IP.hit(db, ip, now_secs).await?;
    }
    Ok(Ok(valid))
}

/// An argon2id hash of nothing anyone knows, verified against when the user does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0DLwP0G4UO6c6kMbIiYXe1bBj0n+Pt1cJ6PwXGpwJiM";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_dummy_hash_is_a_valid_hash() {
        assert!(argon2::PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify_password("anything", DUMMY_HASH).await);
    }
}
