//! Who may read a private index (`read_access = "users"`): the layer in front of the Simple
//! API, the JSON API and the files. Installers send an API token (any of the user's tokens,
//! read-only ones included) as HTTP Basic `__token__:<token>` or `token`/`bearer <token>`; a
//! browser with a session on the site reads too (the download links of the project pages).
//! Refusals are 401 with `WWW-Authenticate: Basic`, so pip and uv ask their keyring and retry.
//!
//! The check is cheap, and ahead of the page cache: a token string that passed once is
//! remembered (`tokens::cache::ReadPass`), so a read costs a base64 decode and one hash-map
//! lookup — no password hash, no query, no event. `last_used` is written at most once a
//! minute per token, off the request. Failures are recorded with the coalescing of the upload
//! path (once per token or address, reason and window).
//!
//! Project scopes do not limit reads: every account may read the whole index, and a token's
//! project caveats are about uploads (as on PyPI). Expiry and user caveats do apply.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::accounts::session;
use crate::auth::{self, Credential, Refused, TokenFailure};
use crate::error::AppError;
use crate::events::RequestMeta;
use crate::state::AppState;
use crate::tokens::{self, Rejection};

/// The middleware: lets the request through when it carries a reader's credential, and then
/// makes the answer private to that reader.
pub async fn require_reader(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(refusal) = check(&state, &parts.headers).await {
        let meta = crate::request::request_meta(&parts, &state.settings);
        refusal.record(&state, &meta).await;
        return refusal.response(&state, &parts.headers);
    }
    let mut response = next.run(Request::from_parts(parts, body)).await;
    make_private(response.headers_mut());
    response
}

/// Why a read was refused, and what to record about it.
enum Refusal {
    /// No credential at all: nothing is recorded (pip asks without one first).
    Missing,
    /// Basic auth with a real username.
    Password { username: String },
    /// Not a token of ours.
    UnknownToken,
    /// A genuine token that may not read: deleted, expired, its owner disabled.
    Token {
        user_id: String,
        token_id: String,
        description: String,
        reason: String,
        message: String,
    },
}

async fn check(state: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    let token = match auth::credential(headers) {
        Credential::Token(token) => token,
        Credential::Password { username } => return Err(Refusal::Password { username }),
        Credential::Missing if headers.contains_key(header::AUTHORIZATION) => {
            return Err(Refusal::UnknownToken);
        }
        Credential::Missing => return check_session(state, headers).await,
    };
    let now_secs = state.clock.now_secs();
    // The hot path: this very token string passed before and is still valid.
    if let Some(pass) = state.token_cache.read_pass(&token)
        && pass.is_valid_at(now_secs)
    {
        if pass.claim_mark_used(now_secs) {
            mark_used(state, &pass.token_id);
        }
        return Ok(());
    }
    let presented = match tokens::lookup(&state.db, &state.keys, &state.token_cache, &token).await {
        Ok(Ok(presented)) => presented,
        Ok(Err(Rejection::Deleted {
            id,
            user_id,
            description,
        })) => {
            return Err(Refusal::Token {
                user_id,
                token_id: id,
                description,
                reason: "deleted or nonexistent macaroon".to_owned(),
                message: auth::invalid_auth_message(state),
            });
        }
        Ok(Err(_)) => return Err(Refusal::UnknownToken),
        Err(e) => {
            tracing::error!(error = %e, "cannot look up a token for a read");
            return Err(Refusal::UnknownToken);
        }
    };
    let refused = |reason: &str, message: String| Refusal::Token {
        user_id: presented.user().id.clone(),
        token_id: presented.id.clone(),
        description: presented.description().to_owned(),
        reason: reason.to_owned(),
        message,
    };
    if !presented.user().is_active {
        return Err(refused(
            auth::ACCOUNT_DISABLED,
            "This token's account is disabled: it cannot read this index.".to_owned(),
        ));
    }
    let window = match presented.verify_read(now_secs) {
        Ok(window) => window,
        Err(Rejection::Invalid(reason)) => {
            let message = format!("Invalid API Token: {reason}");
            return Err(refused(&reason, message));
        }
        Err(_) => return Err(Refusal::UnknownToken),
    };
    state
        .token_cache
        .remember_read(&token, &presented.id, presented.row().clone(), window);
    if let Some(pass) = state.token_cache.read_pass(&token) {
        if pass.claim_mark_used(now_secs) {
            mark_used(state, &presented.id);
        }
    } else {
        mark_used(state, &presented.id);
    }
    Ok(())
}

/// A person signed in on the site reads too: the project pages link to the files.
async fn check_session(state: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    let name = crate::web::cookie_name(&state.settings, session::COOKIE);
    let Some(cookie) = crate::web::cookies(headers)
        .into_iter()
        .find(|c| c.name() == name)
    else {
        return Err(Refusal::Missing);
    };
    match session::load(&state.db, cookie.value(), state.clock.now_micros()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(Refusal::Missing),
        Err(e) => {
            tracing::error!(error = %e, "cannot load a session for a read");
            Err(Refusal::Missing)
        }
    }
}

/// Writes the token's `last_used` off the request (the caller throttles it to once a minute).
fn mark_used(state: &AppState, token_id: &str) {
    let db = state.db.clone();
    let token_id = token_id.to_owned();
    let now = state.clock.now_micros();
    tokio::spawn(async move {
        if let Err(e) = tokens::mark_used(&db, &token_id, now).await {
            tracing::warn!(error = %e, "cannot record a token's last use");
        }
    });
}

impl Refusal {
    fn message(&self, state: &AppState) -> String {
        let base = state.settings.base_url();
        match self {
            Refusal::Missing => format!(
                "This index is private: authenticate with an API token (username __token__, the token as password). See {base}/help/#private-index"
            ),
            Refusal::Password { .. } => format!(
                "Username/Password authentication is not accepted: use an API token (username __token__, the token as password). See {base}/help/#private-index"
            ),
            Refusal::UnknownToken => auth::invalid_auth_message(state),
            Refusal::Token { message, .. } => message.clone(),
        }
    }

    fn response(&self, state: &AppState, headers: &HeaderMap) -> Response {
        let mut response = AppError::new(StatusCode::UNAUTHORIZED, self.message(state))
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"wharf\""),
            )
            .render(headers);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    async fn record(&self, state: &AppState, meta: &RequestMeta) {
        match self {
            Refusal::Missing => {}
            Refusal::Password { username } => {
                let what = (Refused::Read, "password_auth");
                auth::record_anonymous_failure(state, meta, what, Some(username)).await;
            }
            Refusal::UnknownToken => {
                let what = (Refused::Read, "unknown_token");
                auth::record_anonymous_failure(state, meta, what, None).await;
            }
            Refusal::Token {
                user_id,
                token_id,
                description,
                reason,
                ..
            } => {
                let failure = TokenFailure {
                    user_id,
                    token_id,
                    description,
                    reason,
                    project: None,
                };
                auth::record_token_failure(state, meta, &failure).await;
            }
        }
    }
}

/// The read API marks its answers `public`: here they are for one reader only, so no shared
/// cache (a proxy, a CDN) may keep them. Static values for the ones it sends: no allocation.
fn make_private(headers: &mut HeaderMap) {
    let Some(value) = headers.get(header::CACHE_CONTROL) else {
        return;
    };
    let private = match value.as_bytes() {
        b"max-age=600, public" => HeaderValue::from_static("max-age=600, private"),
        b"max-age=900, public" => HeaderValue::from_static("max-age=900, private"),
        b"public, max-age=31536000, immutable" => {
            HeaderValue::from_static("private, max-age=31536000, immutable")
        }
        other => match std::str::from_utf8(other) {
            Ok(text) if text.contains("public") => {
                match HeaderValue::from_str(&text.replace("public", "private")) {
                    Ok(value) => value,
                    Err(_) => HeaderValue::from_static("private"),
                }
            }
            _ => return,
        },
    };
    headers.insert(header::CACHE_CONTROL, private);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_answers_become_private() {
        for (given, expected) in [
            ("max-age=600, public", "max-age=600, private"),
            ("max-age=900, public", "max-age=900, private"),
            (
                "public, max-age=31536000, immutable",
                "private, max-age=31536000, immutable",
            ),
            ("public, max-age=60", "private, max-age=60"),
            ("no-store", "no-store"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(given));
            make_private(&mut headers);
            assert_eq!(headers[header::CACHE_CONTROL], expected);
        }
    }
}
