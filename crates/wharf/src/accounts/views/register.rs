//! Registering (`/account/register/`) and verifying an e-mail address
//! (`/account/verify-email/`), with the verification e-mails the account pages send.

use axum::Form;
use axum::extract::Query;
use axum::http::StatusCode;
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::{LINK_SECS, TokenQuery, release, reserve_registration, start_session};
use axum::response::Response;

use crate::accounts::invitations::{self, Invitation, Refusal};
use crate::accounts::{self, AccountError, NewUser, User};
use crate::config::Registration;
use crate::error::AppError;
use crate::ratelimit;
use crate::signing::SignatureError;
use crate::web::{Flash, FormErrors, OrPage, Page, Web, forms};

const VERIFY_PURPOSE: &str = "verify-email";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterForm {
    username: String,
    email: String,
    password: String,
    password_confirm: String,
    invitation: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InvitationQuery {
    invitation: String,
}

/// What the register page says about who may join.
fn rules(web: &Web) -> minijinja::Value {
    let settings = &web.state.settings;
    context! {
        mode => settings.registration.as_str(),
        domains => settings.registration_email_domains.list().to_vec(),
    }
}

/// The invitation a link or form carries, or the page that refuses it (nothing changes).
async fn invitation_or_refusal(web: &Web, token: &str) -> Result<Invitation, Response> {
    if web.state.settings.registration == Registration::Closed {
        return Err(web.error(AppError::forbidden(
            "Registration is closed on this index: invitations can no longer be used. Ask an administrator to create your account.",
        )));
    }
    match invitations::check(&web.state.db, &web.state.keys, token, web.now_micros())
        .await
        .or_page(web)?
    {
        Ok(invitation) => Ok(invitation),
        Err(refusal) => {
            let status = match refusal {
                Refusal::Invalid => StatusCode::BAD_REQUEST,
                Refusal::Used | Refusal::Revoked | Refusal::Expired => StatusCode::GONE,
            };
            Err(web.error(AppError::new(status, refusal.message())))
        }
    }
}

/// Under `sso_only`, accounts are made by signing in with the organization's provider.
fn sso_only_refusal(web: &Web) -> Option<axum::response::Response> {
    web.state.settings.sso_only.then(|| {
        web.redirect_with(
            "/account/login/",
            crate::web::Flash::error(
                "Accounts on this index are created by signing in with your organization's account.",
            ),
        )
    })
}

pub async fn register_page(web: Web, Query(query): Query<InvitationQuery>) -> Page {
    if web.session.is_some() {
        return Ok(web.redirect("/manage/projects/"));
    }
    if let Some(refused) = sso_only_refusal(&web) {
        return Ok(refused);
    }
    let invitation = if query.invitation.is_empty() {
        None
    } else {
        Some(invitation_or_refusal(&web, &query.invitation).await?)
    };
    let form = match &invitation {
        Some(i) => context! { email => i.email.clone(), invitation => query.invitation },
        None => context! {},
    };
    Ok(web.render(
        "register.html",
        context! { form => form, errors => FormErrors::default(), rules => rules(&web), invited => invitation.is_some() },
    ))
}

pub async fn register(mut web: Web, Form(form): Form<RegisterForm>) -> Page {
    if let Some(refused) = sso_only_refusal(&web) {
        return Ok(refused);
    }
    let invitation = if form.invitation.is_empty() {
        match web.state.settings.registration {
            Registration::Open => None,
            Registration::Invite => {
                return Err(web.error(AppError::forbidden(
                    "Registration on this index is by invitation only: open the link in the invitation an administrator sent you.",
                )));
            }
            Registration::Closed => {
                return Err(web.error(AppError::forbidden(
                    "Registration is closed on this index: ask an administrator to create your account.",
                )));
            }
        }
    } else {
        Some(invitation_or_refusal(&web, &form.invitation).await?)
    };
    let mut errors = FormErrors::default();
    let username = forms::text(&mut errors, "username", "The username", &form.username, 50);
    let email = forms::text(&mut errors, "email", "The e-mail address", &form.email, 254);
    if errors.is_empty() {
        if !accounts::is_valid_username(&username) {
            errors.add(
                "username",
                "The username must be 1 to 50 letters, digits, '.', '_' or '-', and start and end with a letter or digit.",
            );
        }
        if !accounts::is_valid_email(&email) {
            errors.add(
                "email",
                "Enter a valid e-mail address, such as name@example.org.",
            );
        } else if let Some(invited) = &invitation
            && !invited.email.eq_ignore_ascii_case(&email)
        {
            errors.add(
                "email",
                format!(
                    "This invitation is for {}: register with that address, or ask an administrator for an invitation for yours.",
                    invited.email
                ),
            );
        } else if !web.state.settings.registration_email_domains.allows(&email) {
            errors.add(
                "email",
                format!(
                    "This index accepts only addresses in {}.",
                    web.state
                        .settings
                        .registration_email_domains
                        .list()
                        .join(", ")
                ),
            );
        }
    }
    if let Some(problem) = accounts::password_problem(&form.password, &[&username, &email]) {
        errors.add("password", problem);
    } else if form.password != form.password_confirm {
        errors.add("password_confirm", "The two passwords do not match.");
    }
    let page = |web: &Web, errors: FormErrors| {
        web.render_status(
            StatusCode::BAD_REQUEST,
            "register.html",
            context! { form => context!{ username => username.clone(), email => email.clone(), invitation => form.invitation.clone() }, errors => errors, rules => rules(web), invited => invitation.is_some() },
        )
    };
    if !errors.is_empty() {
        return Ok(page(&web, errors));
    }
    let slot = reserve_registration(&web).await?;
    let new = NewUser {
        username: &username,
        email: &email,
        password: &form.password,
        is_admin: false,
        // The invitation reached this address, and its link came back: it is verified.
        email_verified: invitation.is_some(),
    };
    let created = match &invitation {
        Some(invited) => {
            accounts::create_invited_user(
                &web.state.db,
                &new,
                &invited.id,
                &web.meta,
                web.now_micros(),
            )
            .await
        }
        None => accounts::create_user(&web.state.db, &new, &web.meta, web.now_micros()).await,
    };
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
        Err(AccountError::InvitationUnusable) => {
            return Err(web.error(AppError::new(StatusCode::GONE, Refusal::Used.message())));
        }
        Err(AccountError::Database(e)) => return Err(e).or_page(&web),
        Err(other) => return Ok(page(&web, FormErrors::one("username", other.to_string()))),
    };
    if invitation.is_some() {
        start_session(&mut web, &user).await?;
        return Ok(web.redirect_with(
            "/manage/account/",
            Flash::success(format!("Welcome, {username}. Your account is ready.")),
        ));
    }
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
            web.now_micros(),
        )
        .await;
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
    let verified = accounts::verify_email(
        &web.state.db,
        &claims.u,
        &claims.e,
        &web.meta,
        web.now_micros(),
    )
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
