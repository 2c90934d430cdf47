//! `/admin/invitations/`: the invitations to register, with their status; send one, revoke
//! one. Admins only; sending and revoking ask for the password again after `reauth_secs`.

use axum::Form;
use axum::http::StatusCode;
use minijinja::context;
use serde::Deserialize;

use super::require_admin;
use crate::accounts::invitations::{self, SendError, Sender};
use crate::config::Registration;
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

const PAGE: &str = "/admin/invitations/";

async fn render(web: &Web, status: StatusCode, errors: FormErrors, email: &str) -> Page {
    let list = invitations::list(&web.state.db, web.now_micros())
        .await
        .or_page(web)?;
    let settings = &web.state.settings;
    Ok(web.render_status(
        status,
        "admin_invitations.html",
        context! {
            invitations => list,
            errors => errors,
            email => email,
            registration => settings.registration.as_str(),
            domains => settings.registration_email_domains.list().to_vec(),
        },
    ))
}

pub async fn page(web: Web) -> Page {
    require_admin(&web)?;
    render(&web, StatusCode::OK, FormErrors::default(), "").await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendForm {
    email: String,
}

pub async fn send(web: Web, Form(form): Form<SendForm>) -> Page {
    require_admin(&web)?;
    let admin = web.require_recent_auth(PAGE)?.user.clone();
    let email = form.email.trim();
    let refuse = |message: String| {
        render(
            &web,
            StatusCode::BAD_REQUEST,
            FormErrors::one("email", message),
            email,
        )
    };
    if web.state.settings.registration == Registration::Closed {
        return Ok(web.redirect_with(
            PAGE,
            Flash::error("Registration is closed on this index: invitations cannot be used. Set registration = \"invite\" first."),
        ));
    }
    let settings = &web.state.settings;
    let base_url = settings.base_url();
    let sender = Sender {
        keys: &web.state.keys,
        mailer: &web.state.mailer,
        base_url: &base_url,
        domains: &settings.registration_email_domains,
    };
    let sent = invitations::send(
        &web.state.db,
        &sender,
        email,
        Some(&admin),
        &web.meta,
        web.now_micros(),
    )
    .await;
    match sent {
        Ok(invitation) => Ok(web.redirect_with(
            PAGE,
            Flash::success(format!(
                "Sent an invitation to {}. Its link works for 7 days.",
                invitation.email
            )),
        )),
        Err(SendError::InvalidEmail(_)) => {
            refuse("Enter a valid e-mail address, such as name@example.org.".to_owned()).await
        }
        Err(SendError::DomainNotAllowed(_, domains)) => {
            refuse(format!(
                "This index accepts only addresses in {domains} (registration_email_domains)."
            ))
            .await
        }
        Err(SendError::AccountExists(_)) => {
            refuse("An account with this address exists already.".to_owned()).await
        }
        Err(SendError::Mail(e)) => {
            tracing::error!(error = %e, "cannot send an invitation");
            refuse("The invitation e-mail could not be sent, so no invitation was made. Try again later.".to_owned()).await
        }
        Err(SendError::Database(e)) => Err(e).or_page(&web),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RevokeForm {
    id: String,
}

pub async fn revoke(web: Web, Form(form): Form<RevokeForm>) -> Page {
    require_admin(&web)?;
    let admin = web.require_recent_auth(PAGE)?.user.clone();
    let revoked = invitations::revoke(&web.state.db, &form.id, &admin, &web.meta, web.now_micros())
        .await
        .or_page(&web)?;
    Ok(match revoked {
        Some(email) => web.redirect_with(
            PAGE,
            Flash::success(format!(
                "Revoked the invitation to {email}: its link no longer works."
            )),
        ),
        None => web.redirect_with(
            PAGE,
            Flash::error(
                "That invitation is no longer pending: it was used, revoked or has expired.",
            ),
        ),
    })
}
