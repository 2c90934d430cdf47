//! Who is making a request. The upload API accepts API tokens only (PyPI's rules,
//! `spec/warehouse-security.md` §1.2): Basic `__token__:<token>`, or `token`/`bearer <token>`.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::accounts::User;
use crate::error::{AppError, AppResult};
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::oidc::tokens::PublisherToken;
use crate::packaging::Project;
use crate::ratelimit::{Coalesce, Limit};
use crate::state::AppState;
use crate::tokens::{self, PresentedToken, Rejection};

/// The credential a request carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    Token(String),
    /// Basic auth with a real username: refused on the upload API.
    Password {
        username: String,
    },
    Missing,
}

pub fn credential(headers: &HeaderMap) -> Credential {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Credential::Missing;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Some(decoded) = STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return Credential::Missing;
        };
        return match decoded.split_once(':') {
            Some(("__token__", token)) => Credential::Token(token.trim().to_owned()),
            Some((username, _)) if !username.is_empty() => Credential::Password {
                username: recordable_username(username),
            },
            _ => Credential::Missing,
        };
    }
    if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
        return Credential::Token(rest.to_owned());
    }
    Credential::Missing
}

/// The username of a refused Basic credential as it may be recorded: a token put in the
/// username (`https://pypi-…@host/simple/`, a common slip) is a secret and never stored.
fn recordable_username(username: &str) -> String {
    if username
        .strip_prefix(wharf_macaroon::TOKEN_PREFIX)
        .is_some_and(|rest| rest.starts_with('-'))
    {
        "(an API token sent as the username: not recorded)".to_owned()
    } else {
        username.chars().take(100).collect()
    }
}

pub fn invalid_auth_message(state: &AppState) -> String {
    format!(
        "Invalid or non-existent authentication information. See {}/help/#invalid-auth for more information.",
        state.settings.base_url()
    )
}

/// Why a genuine token of a disabled account is refused.
pub const ACCOUNT_DISABLED: &str = "account disabled";

/// An identity proven by an API token whose signature is good: a user's token, or one a
/// trusted publisher was given (`oidc::tokens`). Its caveats are checked against the project
/// with [`UploadIdentity::authorize`].
pub enum UploadIdentity {
    User { user: User, token: PresentedToken },
    Publisher(Box<PublisherToken>),
}

/// Looks up the request's token and checks its signature. Refusals are recorded as events.
pub async fn authenticate_upload(
    state: &AppState,
    headers: &HeaderMap,
    meta: &RequestMeta,
) -> AppResult<UploadIdentity> {
    let token = match credential(headers) {
        Credential::Token(token) => token,
        Credential::Password { username } => {
            record_anonymous_failure(
                state,
                meta,
                (Refused::Upload, "password_auth"),
                Some(&username),
            )
            .await;
            let base = state.settings.base_url();
            return Err(AppError::forbidden(format!(
                "Username/Password authentication is no longer supported. Migrate to API Tokens or Trusted Publishers instead. See {base}/help/#apitoken and {base}/help/#trusted-publishers"
            )));
        }
        Credential::Missing => {
            record_anonymous_failure(state, meta, (Refused::Upload, "no_credentials"), None).await;
            return Err(AppError::forbidden(invalid_auth_message(state)));
        }
    };
    let presented = match tokens::lookup(&state.db, &state.keys, &state.token_cache, &token).await?
    {
        Ok(presented) => presented,
        Err(Rejection::Deleted {
            id,
            user_id,
            description,
        }) => {
            let failure = TokenFailure {
                user_id: &user_id,
                token_id: &id,
                description: &description,
                reason: "deleted or nonexistent macaroon",
                project: None,
            };
            record_token_failure(state, meta, &failure).await;
            return Err(AppError::forbidden(invalid_auth_message(state)));
        }
        Err(_) => {
            // Not a user's token: perhaps one minted for a trusted publisher.
            if let Some(publisher) =
                crate::oidc::tokens::lookup(&state.db, &state.keys, &token).await?
            {
                return Ok(UploadIdentity::Publisher(Box::new(publisher)));
            }
            record_anonymous_failure(state, meta, (Refused::Upload, "unknown_token"), None).await;
            return Err(AppError::forbidden(invalid_auth_message(state)));
        }
    };
    let user = presented.user().clone();
    let identity = UserToken {
        user: &user,
        token: &presented,
    };
    if let Err(reason) = presented.check_signature() {
        return Err(identity.refuse(state, meta, None, reason).await);
    }
    if !user.is_active {
        // A genuine token of a disabled account: recorded (coalesced) and refused plainly.
        let reason = Rejection::Invalid(ACCOUNT_DISABLED.to_owned());
        return Err(identity.refuse(state, meta, None, reason).await);
    }
    if presented.is_read_only() {
        return Err(identity.refuse_read_only(state, meta).await);
    }
    Ok(UploadIdentity::User {
        user,
        token: presented,
    })
}

/// A user's token being checked.
struct UserToken<'a> {
    user: &'a User,
    token: &'a PresentedToken,
}

impl UploadIdentity {
    /// The account of a user's token; `None` for a trusted publisher.
    pub fn user(&self) -> Option<&User> {
        match self {
            UploadIdentity::User { user, .. } => Some(user),
            UploadIdentity::Publisher(_) => None,
        }
    }

    /// The id of the token presented.
    pub fn token_id(&self) -> &str {
        match self {
            UploadIdentity::User { token, .. } => &token.id,
            UploadIdentity::Publisher(token) => &token.id,
        }
    }

    /// Checks every caveat for an upload to `project` (which may be about to be created). Who
    /// may upload at all is `packaging::permissions`' decision, asked next (for a user; a
    /// publisher's token passes only for the publisher's projects).
    pub async fn authorize(
        &self,
        state: &AppState,
        meta: &RequestMeta,
        project: &Project,
    ) -> AppResult<()> {
        match self {
            UploadIdentity::User { user, token } => {
                if let Err(rejection) = token.verify(Some(project), state.clock.now_secs()) {
                    let identity = UserToken { user, token };
                    return Err(identity.refuse(state, meta, Some(project), rejection).await);
                }
                Ok(())
            }
            UploadIdentity::Publisher(token) => {
                let checked = token
                    .verify(&state.db, project, state.clock.now_secs())
                    .await?;
                if let Err(reason) = checked {
                    let recorded = format!("trusted publisher token: {reason}");
                    record_anonymous_failure(state, meta, (Refused::Upload, &recorded), None).await;
                    return Err(AppError::forbidden(format!("Invalid API Token: {reason}")));
                }
                Ok(())
            }
        }
    }
}

impl UserToken<'_> {
    /// A read-only token presented for an upload: 403, saying so (recorded like any refusal).
    async fn refuse_read_only(&self, state: &AppState, meta: &RequestMeta) -> AppError {
        let failure = TokenFailure {
            user_id: &self.user.id,
            token_id: &self.token.id,
            description: self.token.description(),
            reason: "read-only token",
            project: None,
        };
        record_token_failure(state, meta, &failure).await;
        AppError::forbidden(format!(
            "Invalid API Token: this token is read-only: it can download from this index but never upload. Create an upload token at {}/manage/account/tokens/",
            state.settings.base_url()
        ))
    }

    async fn refuse(
        &self,
        state: &AppState,
        meta: &RequestMeta,
        project: Option<&Project>,
        rejection: Rejection,
    ) -> AppError {
        let reason = match rejection {
            Rejection::Invalid(reason) => reason,
            Rejection::Unknown | Rejection::Deleted { .. } => "unknown token".to_owned(),
        };
        let failure = TokenFailure {
            user_id: &self.user.id,
            token_id: &self.token.id,
            description: self.token.description(),
            reason: &reason,
            project: project.map(|p| p.normalized_name.as_str()),
        };
        record_token_failure(state, meta, &failure).await;
        AppError::forbidden(format!("Invalid API Token: {reason}"))
    }
}

/// A refused use of a genuine token.
pub(crate) struct TokenFailure<'a> {
    pub user_id: &'a str,
    pub token_id: &'a str,
    pub description: &'a str,
    pub reason: &'a str,
    pub project: Option<&'a str>,
}

/// One logged failure per token and reason per 10 minutes: the first is recorded, the others
/// are counted and reported with the next one, so that no one can flood an owner's log by
/// replaying a token (warehouse#6447).
const TOKEN_FAILURES: Coalesce = Coalesce {
    logged: Limit {
        bucket: "token.failure.logged",
        max: 1,
        window_secs: 600,
    },
    suppressed: Limit {
        bucket: "token.failure.suppressed",
        max: i64::MAX,
        window_secs: 86_400 * 30,
    },
};

/// What was refused to a request with no account to file it under.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Refused {
    /// An upload (`upload:auth:failure`).
    Upload,
    /// A read of a private index (`read:auth:failure`).
    Read,
}

impl Refused {
    /// Once per IP address, reason and 10 minutes, the others counted: a script without
    /// credentials cannot fill the admins' log.
    const fn coalesce(self) -> Coalesce {
        let (logged, suppressed) = match self {
            Refused::Upload => ("upload.anonymous.logged", "upload.anonymous.suppressed"),
            Refused::Read => ("read.anonymous.logged", "read.anonymous.suppressed"),
        };
        Coalesce {
            logged: Limit {
                bucket: logged,
                max: 1,
                window_secs: 600,
            },
            suppressed: Limit {
                bucket: suppressed,
                max: i64::MAX,
                window_secs: 86_400 * 30,
            },
        }
    }

    fn tag(self) -> EventTag {
        match self {
            Refused::Upload => EventTag::UploadAuthFailure,
            Refused::Read => EventTag::ReadAuthFailure,
        }
    }
}

pub(crate) async fn record_token_failure(
    state: &AppState,
    meta: &RequestMeta,
    failure: &TokenFailure<'_>,
) {
    let now = state.clock.now_micros();
    let now_secs = state.clock.now_secs();
    let key = format!("{}:{}", failure.token_id, failure.reason);
    let recorded = async {
        let Some(suppressed) = TOKEN_FAILURES.admit(&state.db, &key, now_secs).await? else {
            return Ok(());
        };
        let additional = serde_json::json!({
            "macaroon_id": failure.token_id,
            "description": failure.description,
            "reason": failure.reason,
            "project": failure.project,
            "similar_failures_not_logged": suppressed,
        });
        let mut conn = state.db.pool().acquire().await?;
        events::record(
            &mut conn,
            Source::User(failure.user_id),
            EventTag::AccountApiTokenFailure,
            meta,
            now,
            additional,
        )
        .await
    };
    if let Err(e) = recorded.await {
        tracing::warn!(error = %e, "could not record a failed token use");
    }
}

pub(crate) async fn record_anonymous_failure(
    state: &AppState,
    meta: &RequestMeta,
    (refused, reason): (Refused, &str),
    username: Option<&str>,
) {
    let now = state.clock.now_micros();
    let key = format!("{}:{reason}", crate::request::rate_key(meta));
    let recorded = async {
        let Some(suppressed) = refused
            .coalesce()
            .admit(&state.db, &key, state.clock.now_secs())
            .await?
        else {
            return Ok(());
        };
        let additional = serde_json::json!({
            "reason": reason,
            "username": username,
            "similar_failures_not_logged": suppressed,
        });
        let mut conn = state.db.pool().acquire().await?;
        events::record(
            &mut conn,
            Source::Anonymous,
            refused.tag(),
            meta,
            now,
            additional,
        )
        .await
    };
    if let Err(e) = recorded.await {
        tracing::warn!(error = %e, "could not record a refused request without an account");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn reads_every_form_of_credential() {
        let basic = |s: &str| format!("Basic {}", STANDARD.encode(s));
        assert_eq!(
            credential(&headers(&basic("__token__: pypi-abc "))),
            Credential::Token("pypi-abc".into())
        );
        assert_eq!(
            credential(&headers("token pypi-abc")),
            Credential::Token("pypi-abc".into())
        );
        assert_eq!(
            credential(&headers("Bearer pypi-abc")),
            Credential::Token("pypi-abc".into())
        );
        assert_eq!(
            credential(&headers(&basic("alice:secret"))),
            Credential::Password {
                username: "alice".into()
            }
        );
        assert_eq!(credential(&headers("Basic !!!")), Credential::Missing);
        assert_eq!(credential(&headers("Digest abc")), Credential::Missing);
        assert_eq!(credential(&HeaderMap::new()), Credential::Missing);
    }
}
