//! Signing in and out, and re-authenticating (`/account/login/`, `/account/logout/`,
//! `/account/reauthenticate/`).

use axum::Form;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::{attempt, locked_out, recheck};
use crate::accounts::{self, PasswordCheck, User, session};
use crate::events::{EventTag, Source};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

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
        context! {
            next => after_sign_in(&web, &query.next),
            username => "",
            errors => FormErrors::default(),
            sso => super::sso::buttons(&web),
            sso_only => web.state.settings.sso_only,
        },
    ))
}

/// Where to go after signing in: the page that asked for it, or the user's projects.
fn after_sign_in(web: &Web, next: &str) -> String {
    web.next_or(next, "/manage/projects/")
}

const LOGIN_FAILED: &str = "The username or password is incorrect.";

pub async fn login(mut web: Web, Form(form): Form<LoginForm>) -> Page {
    let refuse = |web: &Web, message: &str| {
        web.render_status(
            StatusCode::UNAUTHORIZED,
            "login.html",
            context! {
                next => after_sign_in(web, &form.next),
                username => form.username.trim(),
                errors => FormErrors::one("username", message),
                sso => super::sso::buttons(web),
                sso_only => web.state.settings.sso_only,
            },
        )
    };
    if form.username.trim().is_empty() || form.password.is_empty() {
        return Ok(refuse(&web, "Enter your username and your password."));
    }
    // Under `sso_only`, a password signs in administrators only: anyone else is refused
    // before the password is even checked, with the same words whether it was right or not.
    let sso_only = web.state.settings.sso_only;
    let password_refused = |web: &Web| {
        refuse(
            web,
            "Password sign-in is for administrators of this index: sign in with your organization's account.",
        )
    };
    if sso_only {
        let found = accounts::find_by_login(&web.state.db, &form.username)
            .await
            .or_page(&web)?;
        if !found.as_ref().is_some_and(|u| u.is_admin) {
            if let Some(user) = &found {
                web.record_event(
                    Source::User(&user.id),
                    EventTag::AccountLoginFailure,
                    json!({"reason": "sso_only"}),
                )
                .await;
            }
            return Ok(password_refused(&web));
        }
    }
    let checked = accounts::check_password(
        &web.state.db,
        &form.username,
        &form.password,
        &attempt(&web),
    )
    .await
    .or_page(&web)?;
    let user = match checked {
        PasswordCheck::Wrong if sso_only => return Ok(password_refused(&web)),
        PasswordCheck::Ok(user) => user,
        PasswordCheck::Wrong => return Ok(refuse(&web, LOGIN_FAILED)),
        PasswordCheck::Disabled => {
            return Ok(refuse(
                &web,
                "This account is disabled. Contact the administrators of this index.",
            ));
        }
        PasswordCheck::Limited(limited) => return Err(locked_out(&web, limited).await),
    };
    // With a second factor, the password only opens the two-factor step.
    let methods = crate::twofactor::methods(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    if methods.any() {
        let Some((_, password_date)) = accounts::password_state(&web.state.db, &user.id)
            .await
            .or_page(&web)?
        else {
            return Ok(refuse(&web, LOGIN_FAILED));
        };
        let next = after_sign_in(&web, &form.next);
        let resume = crate::twofactor::views::Resume {
            next,
            login_method: "password".to_owned(),
            link: None,
        };
        return Ok(crate::twofactor::views::begin(
            &mut web,
            &user,
            password_date,
            resume,
        ));
    }
    start_session(&mut web, &user).await?;
    web.record_event(
        Source::User(&user.id),
        EventTag::AccountLoginSuccess,
        json!({"two_factor_method": null, "two_factor_label": null, "login_method": "password"}),
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
    let value = session::create(&web.state.db, &user.id, &web.meta, web.now_micros())
        .await
        .or_page(web)?;
    let cookie = web.cookie(session::COOKIE, value);
    web.set_cookie(cookie);
    web.rotate_csrf();
    // A first sign-in through a provider left unfinished is not this person's to finish.
    for name in [super::sso::FLOW_COOKIE, super::sso::NEW_COOKIE] {
        if web.cookie_value(name).is_some() {
            web.remove_cookie(name);
        }
    }
    Ok(())
}

pub async fn logout(mut web: Web) -> Page {
    if let Some(session) = web.session.take() {
        session::delete_by_hash(&web.state.db, &session.id_hash)
            .await
            .or_page(&web)?;
        web.record_event(
            Source::User(&session.user.id),
            EventTag::AccountLogout,
            json!({}),
        )
        .await;
    }
    web.remove_cookie(session::COOKIE);
    for name in [super::sso::FLOW_COOKIE, super::sso::NEW_COOKIE] {
        if web.cookie_value(name).is_some() {
            web.remove_cookie(name);
        }
    }
    web.rotate_csrf();
    Ok(web.redirect_with("/", Flash::success("You are signed out.")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReauthForm {
    password: String,
    next: String,
}

pub async fn reauthenticate(web: Web, Form(form): Form<ReauthForm>) -> Page {
    let session = web.require_session()?.clone();
    if !recheck(&web, &session.user, &form.password).await? {
        return Ok(web.render_status(
            StatusCode::UNAUTHORIZED,
            "reauthenticate.html",
            context! {
                next => web.next_or(&form.next, "/"),
                errors => FormErrors::one("password", "The password is incorrect."),
                sso => super::sso::reauth_buttons(&web, &session),
            },
        ));
    }
    session::mark_reauthenticated(&web.state.db, &session.id_hash, web.now_micros())
        .await
        .or_page(&web)?;
    Ok(web.redirect(&form.next))
}
