//! Sign-in through an identity provider: `/account/sso/<name>/login` sends the browser to the
//! provider, `/account/sso/<name>/callback` takes it back and signs in the linked account; a
//! first sign-in ends on `/account/sso/finish`, which creates an account, or links an
//! existing one when the provider vouches for its address and the person enters its
//! password. The same flow re-authenticates a signed-in user who has a linked identity.

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::{attempt, locked_out, release, reserve_registration, start_session};
use crate::accounts::sso::{self, FLOW_SECS, Flow, Identity};
use crate::accounts::{self, AccountError, PasswordCheck, User, session};
use crate::config::sso::SsoProvider;
use crate::error::AppError;
use crate::events::{EventTag, Source};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

pub(crate) const FLOW_COOKIE: &str = "sso_flow";
const FLOW_PURPOSE: &str = "sso-flow";
pub(crate) const NEW_COOKIE: &str = "sso_new";
const NEW_PURPOSE: &str = "sso-new";
const LOGIN: &str = "/account/login/";

fn redirect_uri(web: &Web, provider: &SsoProvider) -> String {
    format!(
        "{}/account/sso/{}/callback",
        web.state.settings.base_url(),
        provider.name
    )
}

fn provider<'a>(web: &'a Web, name: &str) -> Result<&'a SsoProvider, axum::response::Response> {
    web.state
        .sso
        .provider(name)
        .ok_or_else(|| web.error(AppError::not_found()))
}

/// The sign-in buttons, for the sign-in and re-authentication pages.
pub fn buttons(web: &Web) -> Vec<minijinja::Value> {
    web.state
        .sso
        .providers()
        .iter()
        .map(|p| context! { name => p.name.clone(), display_name => p.display_name.clone() })
        .collect()
}

/// The providers a signed-in user may confirm it is them with: none unless the account is
/// linked to one (with several providers, all are offered then; one the account is not
/// linked to sends it back with a message).
pub fn reauth_buttons(web: &Web, session: &session::Session) -> Vec<minijinja::Value> {
    if session.sso_linked {
        buttons(web)
    } else {
        Vec::new()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StartQuery {
    next: String,
    reauth: String,
}

pub async fn start(
    mut web: Web,
    Path(name): Path<String>,
    Query(query): Query<StartQuery>,
) -> Page {
    let provider = provider(&web, &name)?.clone();
    let reauth = !query.reauth.is_empty();
    let next = web.next_or(&query.next, "/manage/projects/");
    if reauth {
        let user_id = web.require_session()?.user.id.clone();
        let linked = sso::providers_of(&web.state.db, &user_id)
            .await
            .or_page(&web)?;
        if !linked.contains(&provider.name) {
            return Ok(web.redirect_with(
                &next,
                Flash::error(format!(
                    "Your account is not linked to {}: confirm with your password.",
                    provider.display_name
                )),
            ));
        }
    }
    let begun = web
        .state
        .sso
        .begin(
            &provider,
            &redirect_uri(&web, &provider),
            &next,
            reauth,
            web.now_secs(),
        )
        .await;
    let (url, flow) = match begun {
        Ok(begun) => begun,
        Err(reason) => {
            tracing::warn!(provider = %provider.name, reason = %reason, "cannot start a sign-in with an identity provider");
            return Ok(web.redirect_with(
                LOGIN,
                Flash::error(format!(
                    "{} cannot be reached just now: sign in another way, or try again in a minute.",
                    provider.display_name
                )),
            ));
        }
    };
    let signed = web
        .state
        .keys
        .sign(FLOW_PURPOSE, &flow, web.now_secs() + FLOW_SECS);
    let cookie = web.cookie(FLOW_COOKIE, signed);
    web.set_cookie(cookie);
    Ok(web.redirect_away(&url))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CallbackQuery {
    code: String,
    state: String,
    error: String,
}

/// A refused sign-in: the sign-in page with the reason, and an `account:login:failure`.
async fn refused(web: &Web, provider: &SsoProvider, reason: &str, message: String) -> Page {
    web.record_event(
        Source::Anonymous,
        EventTag::AccountLoginFailure,
        json!({"reason": reason, "login_method": format!("sso:{}", provider.name)}),
    )
    .await;
    Ok(web.redirect_with(LOGIN, Flash::error(message)))
}

pub async fn callback(
    mut web: Web,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Page {
    let provider = provider(&web, &name)?.clone();
    // The flow is used once, whatever happens next.
    let flow: Option<Flow> = web
        .cookie_value(FLOW_COOKIE)
        .and_then(|v| web.state.keys.verify(FLOW_PURPOSE, &v, web.now_secs()).ok());
    web.remove_cookie(FLOW_COOKIE);
    let shown = provider.display_name.clone();
    // The provider's own refusal counts only for this browser's sign-in (its state): a
    // crafted link can neither write events nor put its words on the page.
    let ours = flow
        .as_ref()
        .is_some_and(|f| f.provider == provider.name && f.state == query.state);
    if !query.error.is_empty() && !ours {
        return Ok(web.redirect_with(
            LOGIN,
            Flash::error(format!(
                "The sign-in with {shown} did not finish. Start again."
            )),
        ));
    }
    if !query.error.is_empty() {
        let error: String = query
            .error
            .chars()
            .filter(char::is_ascii_graphic)
            .take(64)
            .collect();
        return refused(
            &web,
            &provider,
            "sso_provider_error",
            format!("{shown} did not sign you in ({error})."),
        )
        .await;
    }
    let Some(flow) = flow else {
        return refused(
            &web,
            &provider,
            "sso_no_flow",
            format!("This sign-in with {shown} has expired or was started in another browser. Start again."),
        )
        .await;
    };
    let finished = web
        .state
        .sso
        .finish(
            &provider,
            &flow,
            &query.state,
            &query.code,
            &redirect_uri(&web, &provider),
            web.now_secs(),
        )
        .await;
    let identity = match finished {
        Ok(identity) => identity,
        // The details are for the operator's log, not for the page.
        Err(refusal) => {
            tracing::info!(provider = %provider.name, reason = %refusal.detail, "sign-in with an identity provider refused");
            let message = if refusal.reason == "sso_claims" {
                format!(
                    "{shown} signed you in with an account of another organization: this index takes only its own."
                )
            } else {
                format!(
                    "The sign-in with {shown} could not be checked. Start again; if it happens again, tell the administrators of this index."
                )
            };
            return refused(&web, &provider, refusal.reason, message).await;
        }
    };
    // Listed domains admit only addresses the provider has verified.
    let admitted = provider.email_domains.is_empty()
        || (identity.email_verified && provider.allows_email(&identity.email));
    if !admitted {
        return refused(
            &web,
            &provider,
            "sso_email_domain",
            format!(
                "{shown} signed you in as {}, an address this index does not accept (it takes verified addresses of {}).",
                identity.email,
                provider.email_domains.join(", ")
            ),
        )
        .await;
    }
    let linked = sso::linked_user(&web.state.db, &identity)
        .await
        .or_page(&web)?;
    if flow.reauth {
        let session = web.require_session()?.clone();
        // The provider must have authenticated the person again, after this flow began (a
        // provider may answer from its own session, whatever `max_age` asked).
        let fresh = identity
            .auth_time
            .is_some_and(|t| t >= flow.started - crate::oidc::jwt::LEEWAY_SECS);
        if linked.as_deref() != Some(session.user.id.as_str()) || !fresh {
            let reason = if fresh {
                "sso_other_account"
            } else {
                "sso_not_fresh"
            };
            web.record_event(
                Source::User(&session.user.id),
                EventTag::AccountReauthenticateFailure,
                json!({"reason": reason, "login_method": format!("sso:{}", provider.name)}),
            )
            .await;
            let message = if fresh {
                format!("{shown} signed in someone else: confirm with your own account.")
            } else {
                format!(
                    "{shown} did not ask you to sign in again: confirm with your password, or try again."
                )
            };
            return Ok(web.redirect_with(&flow.next, Flash::error(message)));
        }
        session::mark_reauthenticated(&web.state.db, &session.id_hash, web.now_micros())
            .await
            .or_page(&web)?;
        return Ok(web.redirect(&flow.next));
    }
    let Some(user_id) = linked else {
        // A first sign-in: the person chooses what it becomes.
        let signed = web.state.keys.sign(
            NEW_PURPOSE,
            &(&identity, &flow.next),
            web.now_secs() + FLOW_SECS,
        );
        let cookie = web.cookie(NEW_COOKIE, signed);
        web.set_cookie(cookie);
        return Ok(web.redirect("/account/sso/finish"));
    };
    let user = accounts::find_by_id(&web.state.db, &user_id)
        .await
        .or_page(&web)?;
    let Some(user) = user.filter(|u| u.is_active) else {
        return refused(
            &web,
            &provider,
            "disabled",
            "This account is disabled. Contact the administrators of this index.".to_owned(),
        )
        .await;
    };
    sso::touch(
        &web.state.db,
        &identity.provider,
        &identity.subject,
        web.now_micros(),
    )
    .await
    .or_page(&web)?;
    sign_in(&mut web, &user, &identity, &flow.next, false).await
}

/// Signs in through the provider: wharf's own second factor first when the settings ask it
/// (`sso_requires_2fa`; unset, only when the provider does not say it checked one). With
/// `link`, the identity is linked to the account only once every factor has been given.
async fn sign_in(web: &mut Web, user: &User, identity: &Identity, next: &str, link: bool) -> Page {
    let method = format!("sso:{}", identity.provider);
    // A link is proven by the account's own factors, all of them: the provider's MFA says who
    // holds the provider's account, not who owns this one.
    let requires = link || web.state.settings.sso_requires_2fa.unwrap_or(!identity.mfa);
    if requires
        && crate::twofactor::methods(&web.state.db, &user.id)
            .await
            .or_page(web)?
            .any()
    {
        let Some((_, password_date)) = accounts::password_state(&web.state.db, &user.id)
            .await
            .or_page(web)?
        else {
            return Err(web.error(AppError::not_found()));
        };
        let resume = crate::twofactor::views::Resume {
            next: next.to_owned(),
            login_method: method,
            link: link.then(|| identity.clone()),
        };
        return Ok(crate::twofactor::views::begin(
            web,
            user,
            password_date,
            resume,
        ));
    }
    if link && !link_now(web, user, identity).await? {
        return Ok(already_linked(web));
    }
    start_session(web, user).await?;
    web.record_event(
        Source::User(&user.id),
        EventTag::AccountLoginSuccess,
        json!({"two_factor_method": null, "two_factor_label": null, "login_method": method}),
    )
    .await;
    Ok(web.redirect(next))
}

/// Links a first sign-in's identity to the account just proven; false when either is
/// linked already (a race with another sign-in, or an admin).
pub(crate) async fn link_now(
    web: &mut Web,
    user: &User,
    identity: &Identity,
) -> Result<bool, axum::response::Response> {
    let linked = sso::link_proven(&web.state, identity, user, &web.meta, web.now_micros())
        .await
        .or_page(web)?;
    web.remove_cookie(NEW_COOKIE);
    Ok(linked)
}

pub(crate) fn already_linked(web: &Web) -> axum::response::Response {
    web.redirect_with(
        LOGIN,
        Flash::error("This sign-in, or this account, is linked already: sign in again."),
    )
}

/// The first sign-in waiting to be finished.
fn waiting(web: &Web) -> Result<(Identity, String), axum::response::Response> {
    web.cookie_value(NEW_COOKIE)
        .and_then(|v| {
            web.state
                .keys
                .verify::<(Identity, String)>(NEW_PURPOSE, &v, web.now_secs())
                .ok()
        })
        .ok_or_else(|| {
            web.redirect_with(
                LOGIN,
                Flash::error("This first sign-in has expired. Sign in with your provider again."),
            )
        })
}

/// The account whose verified address the provider vouches for, if any: the one a first
/// sign-in may be linked to (with its password).
async fn linkable(
    web: &Web,
    identity: &Identity,
) -> Result<Option<User>, axum::response::Response> {
    if !identity.email_verified || identity.email.is_empty() {
        return Ok(None);
    }
    sso::account_with_verified_email(&web.state.db, &identity.email)
        .await
        .or_page(web)
}

async fn finish_page(
    web: &Web,
    status: StatusCode,
    identity: &Identity,
    username: &str,
    errors: FormErrors,
) -> Page {
    let provider = provider(web, &identity.provider)?;
    let existing = linkable(web, identity).await?;
    Ok(web.render_status(
        status,
        "sso_finish.html",
        context! {
            provider => provider.display_name.clone(),
            email => identity.email.clone(),
            email_verified => identity.email_verified,
            username => username,
            existing => existing.map(|u| u.username),
            errors => errors,
        },
    ))
}

pub async fn finish(web: Web) -> Page {
    let (identity, _) = waiting(&web)?;
    let proposed = identity.proposed_username.clone();
    finish_page(
        &web,
        StatusCode::OK,
        &identity,
        &proposed,
        FormErrors::default(),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateForm {
    username: String,
}

pub async fn create(mut web: Web, Form(form): Form<CreateForm>) -> Page {
    let (identity, next) = waiting(&web)?;
    let username = form.username.trim().to_owned();
    // Accounts made through a provider count against the address's registrations too.
    let slot = reserve_registration(&web).await?;
    let created = accounts::create_sso_user(
        &web.state.db,
        &username,
        &identity,
        &web.meta,
        web.now_micros(),
    )
    .await;
    if created.is_err() {
        release(&web, slot).await;
    }
    let user = match created {
        Ok(user) => user,
        Err(AccountError::Database(e)) => return Err(web.error(e.into())),
        Err(e) => {
            let message = match &e {
                AccountError::EmailTaken(_) => format!(
                    "An account already has the address {}: link it below with its password, or ask an administrator to link it.",
                    identity.email
                ),
                other => crate::web::forms::sentence(&other.to_string()),
            };
            let errors = FormErrors::one("username", message);
            return finish_page(&web, StatusCode::BAD_REQUEST, &identity, &username, errors).await;
        }
    };
    web.remove_cookie(NEW_COOKIE);
    sign_in(&mut web, &user, &identity, &next, false).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LinkForm {
    password: String,
}

pub async fn link(mut web: Web, Form(form): Form<LinkForm>) -> Page {
    let (identity, next) = waiting(&web)?;
    let Some(existing) = linkable(&web, &identity).await? else {
        return Ok(web.redirect_with(
            "/account/sso/finish",
            Flash::error("No account has this verified address: create one instead."),
        ));
    };
    // The account's own password, under its sign-in limits: proof that it is theirs.
    let checked = accounts::check_password(
        &web.state.db,
        &existing.username,
        &form.password,
        &attempt(&web),
    )
    .await
    .or_page(&web)?;
    let user = match checked {
        PasswordCheck::Ok(user) => user,
        PasswordCheck::Limited(limited) => return Err(locked_out(&web, limited).await),
        PasswordCheck::Wrong | PasswordCheck::Disabled => {
            let errors = FormErrors::one("password", "The password is incorrect.");
            let proposed = identity.proposed_username.clone();
            return finish_page(&web, StatusCode::UNAUTHORIZED, &identity, &proposed, errors).await;
        }
    };
    // Linked once the second factor, if the account has one, is given too.
    sign_in(&mut web, &user, &identity, &next, true).await
}
