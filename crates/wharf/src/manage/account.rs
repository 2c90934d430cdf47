//! `/manage/account/`: e-mail addresses, password, and deleting the account. The page and
//! every change on it ask for the password again after 30 minutes.

use axum::Form;
use axum::http::StatusCode;
use minijinja::context;
use serde::Deserialize;

use crate::accounts::views::{
    mail_verification, notify_password_change, recheck, send_verification, too_many,
};
use crate::accounts::{self, AccountError, User, session};
use crate::events::EventTag;
use crate::ratelimit;
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

const PAGE: &str = "/manage/account/";

async fn page_with(
    web: &Web,
    user: &User,
    status: StatusCode,
    errors: FormErrors,
    new_email: &str,
) -> Page {
    let emails = accounts::emails(&web.state.db, &user.id)
        .await
        .or_page(web)?;
    let linked: Vec<minijinja::Value> = accounts::sso::providers_of(&web.state.db, &user.id)
        .await
        .or_page(web)?
        .into_iter()
        .map(|name| {
            let shown = web
                .state
                .sso
                .provider(&name)
                .map_or_else(|| name.clone(), |p| p.display_name.clone());
            context! { name => name, display_name => shown }
        })
        .collect();
    Ok(web.render_status(
        status,
        "manage_account.html",
        context! { emails => emails, errors => errors, new_email => new_email, sso_linked => linked },
    ))
}

pub async fn page(web: Web) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    page_with(
        &web,
        &session.user,
        StatusCode::OK,
        FormErrors::default(),
        "",
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UnlinkForm {
    provider: String,
}

/// Unlinks an identity provider from the account (with a recent password or provider
/// sign-in). An account with no password of its own keeps its last provider: it could not
/// sign in otherwise (a password can be set through the reset page first).
pub async fn unlink_sso(web: Web, Form(form): Form<UnlinkForm>) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    let user = &session.user;
    let linked = accounts::sso::providers_of(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    let has_password = accounts::has_password(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    if linked.len() <= 1 && !has_password {
        return Ok(web.redirect_with(
            PAGE,
            Flash::error(
                "This is how you sign in: set a password first (Forgot your password? on the sign-in page), then unlink it.",
            ),
        ));
    }
    let done = accounts::sso::unlink(
        &web.state.db,
        &user.id,
        form.provider.trim(),
        &web.meta,
        web.now_micros(),
    )
    .await
    .or_page(&web)?;
    Ok(if done {
        web.redirect_with(
            PAGE,
            Flash::success("Unlinked: it no longer signs you in here."),
        )
    } else {
        web.redirect_with(
            PAGE,
            Flash::error("That provider is not linked to your account."),
        )
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddEmailForm {
    new_email: String,
}

pub async fn add_email(web: Web, Form(form): Form<AddEmailForm>) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    let user = &session.user;
    let email = form.new_email.trim();
    let refuse = |message: String| {
        page_with(
            &web,
            user,
            StatusCode::BAD_REQUEST,
            FormErrors::one("new_email", message),
            email,
        )
    };
    if email.chars().count() > 254 || !accounts::is_valid_email(email) {
        return refuse("Enter a valid e-mail address, such as name@example.org.".to_owned()).await;
    }
    let domains = &web.state.settings.registration_email_domains;
    if !domains.allows(email) {
        return refuse(format!(
            "This index accepts only addresses in {}.",
            domains.list().join(", ")
        ))
        .await;
    }
    let ip = crate::request::rate_key(&web.meta);
    let slot = match ratelimit::EMAIL_ADD
        .reserve(&web.state.db, &ip, web.now_secs())
        .await
        .or_page(&web)?
    {
        Ok(slot) => slot,
        Err(limited) => {
            return Err(too_many(
                &web,
                limited,
                format!(
                    "Too many e-mail addresses have been added from your network without being verified. Check your inbox and follow the verification links. (IP: {ip})"
                ),
            ).await);
        }
    };
    let added =
        accounts::add_email(&web.state.db, &user.id, email, &web.meta, web.now_micros()).await;
    if added.is_err() {
        // Only addresses added count.
        if let Err(e) = slot.release(&web.state.db).await {
            tracing::error!(error = %e, "cannot release a rate-limit reservation");
        }
    }
    let added = match added {
        Ok(added) => added,
        Err(AccountError::EmailTaken(_)) => {
            return refuse("This e-mail address is already used by an account.".to_owned()).await;
        }
        Err(AccountError::InvalidEmail(_)) => {
            return refuse("Enter a valid e-mail address, such as name@example.org.".to_owned())
                .await;
        }
        Err(e) => return Err(e).or_page(&web),
    };
    send_verification(&web, user, &added.email).await;
    if let Ok(Some(primary)) = accounts::primary_email(&web.state.db, &user.id).await {
        web.state
            .mailer
            .notify(
                &web.state.db,
                (&user.id, &primary.email),
                "new-email-added",
                context! { username => user.username.clone(), new_email => added.email.clone() },
                &web.meta,
                web.now_micros(),
            )
            .await;
    }
    Ok(web.redirect_with(
        PAGE,
        Flash::success(format!(
            "Added {}. We sent it a link: open it to verify the address.",
            added.email
        )),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EmailIdForm {
    email_id: String,
}

fn find_email<'a>(
    emails: &'a [accounts::EmailAddress],
    id: &str,
) -> Option<&'a accounts::EmailAddress> {
    emails.iter().find(|e| e.id == id)
}

pub async fn remove_email(web: Web, Form(form): Form<EmailIdForm>) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    let user = &session.user;
    let emails = accounts::emails(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    let not_yours = |web: &Web| {
        web.redirect_with(
            PAGE,
            Flash::error("That e-mail address is not on your account."),
        )
    };
    match find_email(&emails, &form.email_id) {
        None => return Ok(not_yours(&web)),
        Some(e) if e.primary => {
            return Ok(web.redirect_with(PAGE, Flash::error("You cannot remove your primary e-mail address. Make another address primary first.")));
        }
        Some(_) => {}
    }
    let Some(removed) = accounts::remove_email(
        &web.state.db,
        &user.id,
        &form.email_id,
        &web.meta,
        web.now_micros(),
    )
    .await
    .or_page(&web)?
    else {
        return Ok(not_yours(&web));
    };
    if let Some(primary) = emails.iter().find(|e| e.primary) {
        web.state
            .mailer
            .notify(
                &web.state.db,
                (&user.id, &primary.email),
                "email-removed",
                context! { username => user.username.clone(), removed_email => removed.clone() },
                &web.meta,
                web.now_micros(),
            )
            .await;
    }
    Ok(web.redirect_with(
        PAGE,
        Flash::success(format!("Removed {removed} from your account.")),
    ))
}

pub async fn make_primary(web: Web, Form(form): Form<EmailIdForm>) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    let user = &session.user;
    let Some((old, new)) = accounts::set_primary_email(
        &web.state.db,
        &user.id,
        &form.email_id,
        &web.meta,
        web.now_micros(),
    )
    .await
    .or_page(&web)?
    else {
        return Ok(web.redirect_with(
            PAGE,
            Flash::error("Only a verified address of your account can become the primary one."),
        ));
    };
    for address in [&old, &new] {
        web.state
            .mailer
            .notify(&web.state.db, (&user.id, address), "primary-email-change",
                context! { username => user.username.clone(), old_email => old.clone(), new_email => new.clone() },
                &web.meta, web.now_micros())
            .await;
    }
    Ok(web.redirect_with(
        PAGE,
        Flash::success(format!("{new} is now your primary e-mail address.")),
    ))
}

pub async fn resend_verification(web: Web, Form(form): Form<EmailIdForm>) -> Page {
    let session = web.require_session()?.clone();
    let user = &session.user;
    let emails = accounts::emails(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    let Some(email) = find_email(&emails, &form.email_id).filter(|e| !e.verified) else {
        return Ok(web.redirect_with(
            PAGE,
            Flash::error("That address is verified already, or not on your account."),
        ));
    };
    match ratelimit::EMAIL_VERIFY
        .reserve(&web.state.db, &user.id, web.now_secs())
        .await
        .or_page(&web)?
    {
        Ok(_sent) => {}
        Err(limited) => {
            return Err(too_many(
                &web,
                limited,
                format!(
                    "Too many incomplete attempts to verify e-mail addresses for {}. Complete the pending verification, or try again in {}.",
                    user.username,
                    ratelimit::humanize(limited.retry_after_secs)
                ),
            ).await);
        }
    }
    if !accounts::renew_email_claim(&web.state.db, &user.id, &email.id, web.now_micros())
        .await
        .or_page(&web)?
    {
        return Ok(web.redirect_with(
            PAGE,
            Flash::error(format!(
                "{} was not verified within 24 hours and another account uses it now.",
                email.email
            )),
        ));
    }
    web.record_event(
        crate::events::Source::User(&user.id),
        EventTag::AccountEmailReverify,
        serde_json::json!({"email": email.email}),
    )
    .await;
    mail_verification(&web, user, &email.email).await;
    Ok(web.redirect_with(
        PAGE,
        Flash::success(format!(
            "We sent a new verification link to {}.",
            email.email
        )),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    password: String,
    new_password: String,
    new_password_confirm: String,
}

pub async fn change_password(web: Web, Form(form): Form<PasswordForm>) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    let user = &session.user;
    let mut errors = FormErrors::default();
    if !recheck(&web, user, &form.password).await? {
        errors.add("password", "Your current password is incorrect.");
    } else if let Some(problem) = accounts::password_problem(&form.new_password, &[&user.username])
    {
        errors.add("new_password", problem);
    } else if form.new_password != form.new_password_confirm {
        errors.add(
            "new_password_confirm",
            "The two new passwords do not match.",
        );
    }
    if !errors.is_empty() {
        return page_with(&web, user, StatusCode::BAD_REQUEST, errors, "").await;
    }
    accounts::set_password(
        &web.state.db,
        &user.id,
        &form.new_password,
        Some(&session.id_hash),
        EventTag::AccountPasswordChange,
        &web.meta,
        web.now_micros(),
    )
    .await
    .or_page(&web)?;
    notify_password_change(&web, user, false).await;
    Ok(web.redirect_with(
        PAGE,
        Flash::success("Your password has changed. Your other sessions have been signed out."),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteForm {
    confirm_password: String,
}

pub async fn delete(mut web: Web, Form(form): Form<DeleteForm>) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    let user = &session.user;
    if !recheck(&web, user, &form.confirm_password).await? {
        return page_with(
            &web,
            user,
            StatusCode::BAD_REQUEST,
            FormErrors::one(
                "confirm_password",
                "The password is incorrect: the account was not deleted.",
            ),
            "",
        )
        .await;
    }
    let sole = accounts::sole_owned_projects(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    if !sole.is_empty() {
        return page_with(&web, user, StatusCode::CONFLICT, FormErrors::one("confirm_password", format!(
            "You cannot delete your account while you are the sole Owner of: {}. Add another Owner to these projects, or delete them, first.",
            sole.join(", "))), "").await;
    }
    let primary = accounts::primary_email(&web.state.db, &user.id)
        .await
        .ok()
        .flatten();
    accounts::delete_user(&web.state.db, user, &web.meta, web.now_micros())
        .await
        .or_page(&web)?;
    if let Err(e) = web.state.token_cache.refresh(&web.state.db).await {
        tracing::warn!(error = %e, "cannot read the token revocations");
    }
    if let Some(primary) = primary {
        // Recorded under the deleted account's id: the log outlives the account.
        web.state
            .mailer
            .notify(
                &web.state.db,
                (&user.id, &primary.email),
                "account-deleted",
                context! { username => user.username.clone() },
                &web.meta,
                web.now_micros(),
            )
            .await;
    }
    web.session = None;
    web.remove_cookie(session::COOKIE);
    web.rotate_csrf();
    Ok(web.redirect_with("/", Flash::success("Your account has been deleted.")))
}
