//! The account pages a visitor uses before and while signing in: register, verify an e-mail
//! address, sign in and out, reset a forgotten password, and re-authenticate.

use axum::Form;
use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;

use super::session;
use super::{AccountError, NewUser, SignIn, User};
use crate::error::AppError;
use crate::events::{EventTag, Source};
use crate::ratelimit::{self, Limit, Limited, Reservation};
use crate::signing::SignatureError;
use crate::web::{Flash, FormErrors, OrPage, Page, Web, forms};

const VERIFY_PURPOSE: &str = "verify-email";
const RESET_PURPOSE: &str = "password-reset";
/// Links in e-mails last 6 hours, as warehouse's signed tokens.
const LINK_SECS: i64 = 6 * 3600;

/// The 429 page with `Retry-After`, and the message warehouse shows. The refusal is recorded
/// (admins count them).
pub async fn too_many(web: &Web, limited: Limited, message: String) -> Response {
    let path = web.here.split('?').next().unwrap_or_default();
    match web.user().map(|u| u.id.clone()) {
        Some(user_id) => {
            record(
                web,
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
                record(
                    web,
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

async fn locked_out(web: &Web, limited: Limited) -> Response {
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
async fn reserve(
    web: &Web,
    limit: Limit,
    key: &str,
) -> Result<Result<Reservation, Limited>, Response> {
    limit
        .reserve(&web.state.db, key, web.now_secs())
        .await
        .or_page(web)
}

/// Gives a slot back: the attempt it was taken for did not happen.
async fn release(web: &Web, slot: Reservation) {
    if let Err(e) = slot.release(&web.state.db).await {
        tracing::error!(error = %e, "cannot release a rate-limit reservation");
    }
}

async fn record(web: &Web, source: Source<'_>, tag: EventTag, additional: serde_json::Value) {
    web.record_event(source, tag, additional).await;
}

fn ip_key(web: &Web) -> String {
    crate::app::rate_key(&web.meta)
}

// ---- register -------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterForm {
    username: String,
    email: String,
    password: String,
    password_confirm: String,
}

pub async fn register_page(web: Web) -> Page {
    if web.session.is_some() {
        return Ok(web.redirect("/manage/projects/"));
    }
    Ok(web.render(
        "register.html",
        context! { form => context!{}, errors => FormErrors::default() },
    ))
}

pub async fn register(mut web: Web, Form(form): Form<RegisterForm>) -> Page {
    let mut errors = FormErrors::default();
    let username = forms::text(&mut errors, "username", "The username", &form.username, 50);
    let email = forms::text(&mut errors, "email", "The e-mail address", &form.email, 254);
    if errors.is_empty() {
        if !super::is_valid_username(&username) {
            errors.add(
                "username",
                "The username must be 1 to 50 letters, digits, '.', '_' or '-', and start and end with a letter or digit.",
            );
        }
        if !super::is_valid_email(&email) {
            errors.add(
                "email",
                "Enter a valid e-mail address, such as name@example.org.",
            );
        }
    }
    if let Some(problem) = super::password_problem(&form.password, &[&username, &email]) {
        errors.add("password", problem);
    } else if form.password != form.password_confirm {
        errors.add("password_confirm", "The two passwords do not match.");
    }
    let page = |web: &Web, errors: FormErrors| {
        web.render_status(
            StatusCode::BAD_REQUEST,
            "register.html",
            context! { form => context!{ username => username.clone(), email => email.clone() }, errors => errors },
        )
    };
    if !errors.is_empty() {
        return Ok(page(&web, errors));
    }
    let slot = match reserve(&web, ratelimit::REGISTER_IP, &ip_key(&web)).await? {
        Ok(slot) => slot,
        Err(limited) => {
            return Err(too_many(
                &web,
                limited,
                "Too many accounts have been registered from your network. Please try again later."
                    .to_owned(),
            )
            .await);
        }
    };
    let new = NewUser {
        username: &username,
        email: &email,
        password: &form.password,
        is_admin: false,
        email_verified: false,
    };
    let created = super::create_user(&web.state.db, &new, &web.meta, web.now()).await;
    if created.is_err() {
        // Only accounts made count.
        release(&web, slot).await;
    }
    let user = match created {
        Ok(user) => user,
        Err(AccountError::UsernameTaken(_)) => {
            return Ok(page(
                &web,
                FormErrors::one(
                    "username",
                    "This username is already taken. Choose another one.",
                ),
            ));
        }
        Err(AccountError::EmailTaken(_)) => {
            return Ok(page(
                &web,
                FormErrors::one(
                    "email",
                    "This e-mail address is already used by another account.",
                ),
            ));
        }
        Err(AccountError::Database(e)) => return Err(e).or_page(&web),
        Err(other) => return Ok(page(&web, FormErrors::one("username", other.to_string()))),
    };
    send_verification(&web, &user, &email).await;
    start_session(&mut web, &user).await?;
    Ok(web.redirect_with(
        "/manage/account/",
        Flash::success(format!(
            "Welcome, {username}. We sent a link to {email}: open it to verify your address."
        )),
    ))
}

/// Sends the verification link for one of the user's addresses, counting it against the
/// user's verification limit.
pub async fn send_verification(web: &Web, user: &User, email: &str) {
    if let Err(e) = ratelimit::EMAIL_VERIFY
        .hit(&web.state.db, &user.id, web.now_secs())
        .await
    {
        tracing::error!(error = %e, "cannot count a verification e-mail");
    }
    mail_verification(web, user, email).await;
}

/// Sends the verification link, the caller having counted it (a re-send reserves its slot
/// in the verification limit first).
pub async fn mail_verification(web: &Web, user: &User, email: &str) {
    let token = web.state.keys.sign(
        VERIFY_PURPOSE,
        &json!({"u": user.id, "e": email}),
        web.now_secs() + LINK_SECS,
    );
    let link = format!(
        "{}/account/verify-email/?token={}",
        web.state.settings.base_url(),
        token
    );
    web.state
        .mailer
        .notify(
            &web.state.db,
            (&user.id, email),
            "verify-email",
            context! { username => user.username.clone(), email => email, link => link },
            &web.meta,
            web.now(),
        )
        .await;
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenQuery {
    token: String,
}

#[derive(Deserialize)]
struct VerifyClaims {
    u: String,
    e: String,
}

pub async fn verify_email(web: Web, Query(query): Query<TokenQuery>) -> Page {
    let claims: VerifyClaims = match web.state.keys.verify(
        VERIFY_PURPOSE,
        &query.token,
        web.now_secs(),
    ) {
        Ok(claims) => claims,
        Err(SignatureError::Expired) => {
            return Err(web.error(AppError::bad_request(
                "This verification link has expired. Sign in and send a new one from your account settings.",
            )));
        }
        Err(SignatureError::Invalid) => {
            return Err(web.error(AppError::bad_request(
                "This verification link is not valid. Check that you copied all of it, or send a new one from your account settings.",
            )));
        }
    };
    let verified = super::verify_email(&web.state.db, &claims.u, &claims.e, &web.meta, web.now())
        .await
        .or_page(&web)?;
    if !verified {
        return Err(web.error(AppError::bad_request(
            "This address is already verified, or it no longer belongs to the account.",
        )));
    }
    Ok(web.render(
            "message.html",
            context! {
                title => "E-mail address verified",
                message => format!("The address {} is verified.", claims.e),
                link => if web.session.is_some() { "/manage/account/" } else { "/account/login/" },
                link_text => if web.session.is_some() { "Go to your account settings" } else { "Sign in" },
            },
    ))
}

// ---- sign in and out ----------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginQuery {
    next: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    username: String,
    password: String,
    next: String,
}

pub async fn login_page(web: Web, Query(query): Query<LoginQuery>) -> Page {
    if web.session.is_some() {
        return Ok(web.redirect(&after_sign_in(&web, &query.next)));
    }
    Ok(web.render(
        "login.html",
        context! { next => after_sign_in(&web, &query.next), username => "", errors => FormErrors::default() },
    ))
}

/// Where to go after signing in: the page that asked for it, or the user's projects.
fn after_sign_in(web: &Web, next: &str) -> String {
    web.next_or(next, "/manage/projects/")
}

const LOGIN_FAILED: &str = "The username or password is incorrect.";

pub async fn login(mut web: Web, Form(form): Form<LoginForm>) -> Page {
    let ip = ip_key(&web);
    let refuse = |web: &Web, message: &str| {
        web.render_status(
            StatusCode::UNAUTHORIZED,
            "login.html",
            context! {
                next => after_sign_in(web, &form.next),
                username => form.username.trim(),
                errors => FormErrors::one("username", message),
            },
        )
    };
    if form.username.trim().is_empty() || form.password.is_empty() {
        return Ok(refuse(&web, "Enter your username and your password."));
    }
    if form.password.chars().count() > super::MAX_PASSWORD_CHARS {
        return Ok(refuse(&web, LOGIN_FAILED));
    }
    let outcome = super::sign_in(
        &web.state.db,
        &form.username,
        &form.password,
        &ip,
        web.now_secs(),
    )
    .await
    .or_page(&web)?;
    let user = match outcome {
        SignIn::Limited(limited) => return Err(locked_out(&web, limited).await),
        SignIn::UnknownUser => {
            // No account to file it under: an admin-visible event.
            let username: String = form.username.trim().chars().take(100).collect();
            record(
                &web,
                Source::Anonymous,
                EventTag::AccountLoginFailure,
                json!({"reason": "invalid_username", "username": username}),
            )
            .await;
            return Ok(refuse(&web, LOGIN_FAILED));
        }
        SignIn::WrongPassword(ref user) | SignIn::WrongPasswordLimited(ref user, _) => {
            record(
                &web,
                Source::User(&user.id),
                EventTag::AccountLoginFailure,
                json!({"reason": "invalid_password"}),
            )
            .await;
            if let SignIn::WrongPasswordLimited(_, limited) = outcome {
                return Err(locked_out(&web, limited).await);
            }
            return Ok(refuse(&web, LOGIN_FAILED));
        }
        SignIn::Disabled(user) => {
            record(
                &web,
                Source::User(&user.id),
                EventTag::AccountLoginFailure,
                json!({"reason": "disabled"}),
            )
            .await;
            return Ok(refuse(
                &web,
                "This account is disabled. Contact the administrators of this index.",
            ));
        }
        SignIn::Valid(user) => user,
    };
    // With a second factor, the password only opens the two-factor step.
    let methods = crate::twofactor::methods(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    if methods.any() {
        let Some((_, password_date)) = super::password_state(&web.state.db, &user.id)
            .await
            .or_page(&web)?
        else {
            return Ok(refuse(&web, LOGIN_FAILED));
        };
        let next = after_sign_in(&web, &form.next);
        return Ok(crate::twofactor::views::begin(
            &mut web,
            &user,
            password_date,
            &next,
        ));
    }
    start_session(&mut web, &user).await?;
    record(
        &web,
        Source::User(&user.id),
        EventTag::AccountLoginSuccess,
        json!({"two_factor_method": null, "two_factor_label": null}),
    )
    .await;
    Ok(web.redirect(&after_sign_in(&web, &form.next)))
}

/// Signs the user in: ends the visitor's old session, starts a new one under a new id, and
/// gives the browser a new CSRF secret.
pub async fn start_session(web: &mut Web, user: &User) -> Result<(), Response> {
    if let Some(old) = web.session.take() {
        session::delete_by_hash(&web.state.db, &old.id_hash)
            .await
            .or_page(web)?;
    }
    let value = session::create(&web.state.db, &user.id, &web.meta, web.now())
        .await
        .or_page(web)?;
    let cookie = web.cookie(session::COOKIE, value);
    web.set_cookie(cookie);
    web.rotate_csrf();
    Ok(())
}

pub async fn logout(mut web: Web) -> Page {
    if let Some(session) = web.session.take() {
        session::delete_by_hash(&web.state.db, &session.id_hash)
            .await
            .or_page(&web)?;
        record(
            &web,
            Source::User(&session.user.id),
            EventTag::AccountLogout,
            json!({}),
        )
        .await;
    }
    web.remove_cookie(session::COOKIE);
    web.rotate_csrf();
    Ok(web.redirect_with("/", Flash::success("You are signed out.")))
}

// ---- password reset -------------------------------------------------------------------

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
    let user = super::reset_recipient(&web.state.db, login)
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
    let password_date = super::password_state(&web.state.db, user_id)
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
        let (state, meta, now) = (web.state.clone(), web.meta.clone(), web.now());
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
    let state = super::password_state(&web.state.db, &claims.u)
        .await
        .or_page(web)?;
    let user = super::find_by_id(&web.state.db, &claims.u)
        .await
        .or_page(web)?;
    match (state, user) {
        (Some((_, date)), Some(user)) if date == claims.pd => Ok(user),
        (_, Some(user)) => {
            record(
                web,
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
    if let Some(problem) = super::password_problem(&form.password, &[&user.username]) {
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
    super::set_password(
        &web.state.db,
        &user.id,
        &form.password,
        None,
        EventTag::AccountPasswordReset,
        &web.meta,
        web.now(),
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
    let Ok(Some(primary)) = super::primary_email(&web.state.db, &user.id).await else {
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
                when => crate::clock::iso8601_seconds(web.now()).replace('T', " ") + " UTC",
            },
            &web.meta,
            web.now(),
        )
        .await;
}

// ---- re-authentication ------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReauthForm {
    password: String,
    next: String,
}

pub async fn reauthenticate(web: Web, Form(form): Form<ReauthForm>) -> Page {
    let session = web.require_session()?.clone();
    let user_id = session.user.id.clone();
    let valid = match super::confirm_password(
        &web.state.db,
        &user_id,
        &form.password,
        &ip_key(&web),
        web.now_secs(),
    )
    .await
    .or_page(&web)?
    {
        Ok(valid) => valid,
        Err(limited) => return Err(locked_out(&web, limited).await),
    };
    if !valid {
        record(
            &web,
            Source::User(&user_id),
            EventTag::AccountReauthenticateFailure,
            json!({"reason": "invalid_password"}),
        )
        .await;
        return Ok(web.render_status(
            StatusCode::UNAUTHORIZED,
            "reauthenticate.html",
            context! { next => web.next_or(&form.next, "/"), errors => FormErrors::one("password", "The password is incorrect.") },
        ));
    }
    session::mark_reauthenticated(&web.state.db, &session.id_hash, web.now())
        .await
        .or_page(&web)?;
    Ok(web.redirect(&form.next))
}
