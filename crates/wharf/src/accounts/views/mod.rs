//! The account pages a visitor uses before and while signing in, one file per URL area:
//! register and verify an e-mail address (`register`), sign in and out and re-authenticate
//! (`login`), reset a forgotten password (`reset`). The rules they follow (limits, failure
//! events, password checks) are `accounts`'; this module holds what the pages share: the
//! 429 page, and the one password re-check every form that asks for the password uses.

mod login;
mod register;
mod reset;
pub mod sso;

pub use login::{
    LoginForm, LoginQuery, ReauthForm, login, login_page, logout, reauthenticate, start_session,
};
pub use register::{
    RegisterForm, mail_verification, register, register_page, send_verification, verify_email,
};
pub use reset::{
    ResetForm, ResetRequestForm, notify_password_change, reset, reset_page, reset_request,
    reset_request_page,
};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Attempt, Recheck, User};
use crate::error::AppError;
use crate::events::{EventTag, Source};
use crate::ratelimit::{self, Limit, Limited, Reservation};
use crate::web::{OrPage, Web};

/// The signed token of a link in an e-mail (verification, password reset).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenQuery {
    token: String,
}

/// Links in e-mails last 6 hours, as warehouse's signed tokens.
const LINK_SECS: i64 = 6 * 3600;

/// The 429 page with `Retry-After`, and the message warehouse shows. The refusal is recorded
/// (admins count them).
pub async fn too_many(web: &Web, limited: Limited, message: String) -> Response {
    let path = web.here.split('?').next().unwrap_or_default();
    match web.user().map(|u| u.id.clone()) {
        Some(user_id) => {
            web.record_event(
                Source::User(&user_id),
                EventTag::RateLimitRefused,
                json!({"path": path}),
            )
            .await;
        }
        // Anonymous refusals are coalesced per address.
        None => match ratelimit::ANONYMOUS_REFUSALS
            .admit(&web.state.db, &ip_key(web), web.now_secs())
            .await
        {
            Ok(Some(suppressed)) => {
                web.record_event(
                    Source::Anonymous,
                    EventTag::RateLimitRefused,
                    json!({"path": path, "similar_failures_not_logged": suppressed}),
                )
                .await;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot count a refusal"),
        },
    }
    let error = AppError::new(StatusCode::TOO_MANY_REQUESTS, message).with_header(
        header::RETRY_AFTER,
        HeaderValue::from(limited.retry_after_secs),
    );
    web.error(error)
}

pub(crate) async fn locked_out(web: &Web, limited: Limited) -> Response {
    too_many(
        web,
        limited,
        format!(
            "There have been too many unsuccessful sign-in attempts. You have been locked out for \
             {}. Please try again later.",
            ratelimit::humanize(limited.retry_after_secs)
        ),
    )
    .await
}

/// A slot in `limit`'s window for `key`, taken before the work it limits.
pub(crate) async fn reserve(
    web: &Web,
    limit: Limit,
    key: &str,
) -> Result<Result<Reservation, Limited>, Response> {
    limit
        .reserve(&web.state.db, key, web.now_secs())
        .await
        .or_page(web)
}

/// A slot among the address's account registrations (the register form's and first
/// sign-ins through a provider alike), or the 429 page.
pub(crate) async fn reserve_registration(web: &Web) -> Result<Reservation, Response> {
    match reserve(web, crate::ratelimit::REGISTER_IP, &ip_key(web)).await? {
        Ok(slot) => Ok(slot),
        Err(limited) => Err(too_many(
            web,
            limited,
            "Too many accounts have been registered from your network. Please try again later."
                .to_owned(),
        )
        .await),
    }
}

/// Gives a slot back: the attempt it was taken for did not happen.
pub(crate) async fn release(web: &Web, slot: Reservation) {
    if let Err(e) = slot.release(&web.state.db).await {
        tracing::error!(error = %e, "cannot release a rate-limit reservation");
    }
}

pub(crate) fn ip_key(web: &Web) -> String {
    crate::request::rate_key(&web.meta)
}

/// This request as a sign-in attempt: its address's rate key, its metadata, now.
pub(crate) fn attempt(web: &Web) -> Attempt<'_> {
    Attempt {
        ip: ip_key(web),
        meta: &web.meta,
        now_micros: web.now_micros(),
    }
}

/// The password re-check of every form that asks for the password
/// ([`accounts::recheck_password`](super::recheck_password)): whether `password` is `user`'s.
/// When the account's failures are used up, the answer is the 429 page instead.
pub async fn recheck(web: &Web, user: &User, password: &str) -> Result<bool, Response> {
    match super::recheck_password(&web.state.db, &user.id, password, &attempt(web))
        .await
        .or_page(web)?
    {
        Recheck::Ok => Ok(true),
        Recheck::Wrong => Ok(false),
        Recheck::Limited(limited) => Err(locked_out(web, limited).await),
    }
}
