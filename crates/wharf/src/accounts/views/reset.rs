//! Resetting a forgotten password: asking for a link (`/account/reset-password/`) and
//! setting a new password with it (`/account/reset-password/confirm/`).

use axum::Form;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;

use super::{LINK_SECS, TokenQuery, reserve, too_many};
use crate::accounts::{self, User};
use crate::error::AppError;
use crate::events::{EventTag, Source};
use crate::ratelimit;
use crate::signing::SignatureError;
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

const RESET_PURPOSE: &str = "password-reset";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetRequestForm {
    login: String,
}

pub async fn reset_request_page(web: Web) -> Page {
    Ok(web.render(
        "reset_request.html",
        context! { login => "", errors => FormErrors::default() },
    ))
}

pub async fn reset_request(web: Web, Form(form): Form<ResetRequestForm>) -> Page {
    let login = form.login.trim();
    if login.is_empty() || login.chars().count() > 254 {
        return Ok(web.render_status(
            StatusCode::BAD_REQUEST,
            "reset_request.html",
            context! { login => login, errors => FormErrors::one("login", "Enter your username or the e-mail address of your account.") },
        ));
    }
    let user = accounts::reset_recipient(&web.state.db, login)
        .await
        .or_page(&web)?;
    // Known or not, the same work before the answer (a reservation, a read, a signature)
    // and the same limit; the event and the e-mail are queued, so that how long the answer
    // takes does not tell whether an account matched.
    let limit_key = match &user {
        Some((user, _)) => user.id.clone(),
        None => format!(
            "unknown:{}",
            hex::encode(sha2::Sha256::digest(login.to_lowercase()))
        ),
    };
    match reserve(&web, ratelimit::PASSWORD_RESET, &limit_key).await? {
        Ok(_sent) => {}
        Err(limited) => {
            return Err(too_many(
                &web,
                limited,
                "Too many password resets have been requested for this account without completing them. \
                 Check your inbox and follow the instructions in the e-mails we sent."
                    .to_owned(),
            )
            .await);
        }
    }
    let user_id = user
        .as_ref()
        .map_or(limit_key.as_str(), |(u, _)| u.id.as_str());
    let password_date = accounts::password_state(&web.state.db, user_id)
        .await
        .or_page(&web)?
        .map_or(0, |(_, date)| date);
    // The link names the password it replaces, so it works once.
    let token = web.state.keys.sign(
        RESET_PURPOSE,
        &json!({"u": user_id, "pd": password_date}),
        web.now_secs() + LINK_SECS,
    );
    if let Some((user, email)) = user {
        let link = format!(
            "{}/account/reset-password/confirm/?token={token}",
            web.state.settings.base_url()
        );
        let (state, meta, now) = (web.state.clone(), web.meta.clone(), web.now_micros());
        web.state.mailer.later(async move {
            let recorded = async {
                let mut conn = state.db.pool().acquire().await?;
                crate::events::record(
                    &mut conn,
                    Source::User(&user.id),
                    EventTag::AccountPasswordResetRequest,
                    &meta,
                    now,
                    json!({}),
                )
                .await
            };
            if let Err(e) = recorded.await {
                tracing::error!(error = %e, "cannot record an event");
            }
            state
                .mailer
                .notify(
                    &state.db,
                    (&user.id, &email),
                    "password-reset",
                    context! { username => user.username.clone(), link => link },
                    &meta,
                    now,
                )
                .await;
        });
    }
    // The same answer whether or not the account exists.
    Ok(web.render(
        "message.html",
        context! {
            title => "Check your e-mail",
            message => "If an account matches what you entered, we sent a link to reset its password to its primary e-mail address. The link lasts 6 hours.",
        },
    ))
}

#[derive(Deserialize)]
struct ResetClaims {
    u: String,
    pd: i64,
}

/// The user a reset link is for, if it is still good.
async fn reset_user(web: &Web, token: &str) -> Result<User, Response> {
    let invalid = |web: &Web, message: &str| web.error(AppError::bad_request(message.to_owned()));
    let claims: ResetClaims = match web.state.keys.verify(RESET_PURPOSE, token, web.now_secs()) {
        Ok(claims) => claims,
        Err(SignatureError::Expired) => {
            return Err(invalid(
                web,
                "This password-reset link has expired. Request a new one.",
            ));
        }
        Err(SignatureError::Invalid) => {
            return Err(invalid(
                web,
                "This password-reset link is not valid. Check that you copied all of it, or request a new one.",
            ));
        }
    };
    let state = accounts::password_state(&web.state.db, &claims.u)
        .await
        .or_page(web)?;
    let user = accounts::find_by_id(&web.state.db, &claims.u)
        .await
        .or_page(web)?;
    match (state, user) {
        (Some((_, date)), Some(user)) if date == claims.pd => Ok(user),
        (_, Some(user)) => {
            web.record_event(
                Source::User(&user.id),
                EventTag::AccountPasswordResetAttempt,
                json!({"reason": "used_link"}),
            )
            .await;
            Err(invalid(
                web,
                "This password-reset link has been used already. Request a new one if you still need it.",
            ))
        }
        _ => Err(invalid(web, "This password-reset link is not valid.")),
    }
}

pub async fn reset_page(web: Web, Query(query): Query<TokenQuery>) -> Page {
    reset_user(&web, &query.token).await?;
    Ok(web.render(
        "reset_password.html",
        context! { token => query.token, errors => FormErrors::default() },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetForm {
    token: String,
    password: String,
    password_confirm: String,
}

pub async fn reset(web: Web, Form(form): Form<ResetForm>) -> Page {
    let user = reset_user(&web, &form.token).await?;
    let mut errors = FormErrors::default();
    if let Some(problem) = accounts::password_problem(&form.password, &[&user.username]) {
        errors.add("password", problem);
    } else if form.password != form.password_confirm {
        errors.add("password_confirm", "The two passwords do not match.");
    }
    if !errors.is_empty() {
        return Ok(web.render_status(
            StatusCode::BAD_REQUEST,
            "reset_password.html",
            context! { token => form.token, errors => errors },
        ));
    }
    accounts::set_password(
        &web.state.db,
        &user.id,
        &form.password,
        None,
        EventTag::AccountPasswordReset,
        &web.meta,
        web.now_micros(),
    )
    .await
    .or_page(&web)?;
    notify_password_change(&web, &user, true).await;
    Ok(web.redirect_with(
        "/account/login/",
        Flash::success("Your password has been reset. Sign in with your new password."),
    ))
}

/// E-mails the user that their password changed (or was reset).
pub async fn notify_password_change(web: &Web, user: &User, reset: bool) {
    let Ok(Some(primary)) = accounts::primary_email(&web.state.db, &user.id).await else {
        return;
    };
    web.state
        .mailer
        .notify(
            &web.state.db,
            (&user.id, &primary.email),
            "password-change",
            context! {
                username => user.username.clone(),
                reset => reset,
                when => crate::clock::iso8601_seconds(web.now_micros()).replace('T', " ") + " UTC",
            },
            &web.meta,
            web.now_micros(),
        )
        .await;
}
