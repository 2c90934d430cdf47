//! The second step of signing in and the pages where a user sets up and removes their
//! second factors, one file per URL area: `step` (`/account/two-factor/…`,
//! `/account/recovery-code/`), `passkey_signin` (`/account/passkey…`), `totp`, `recovery`
//! (recovery codes) and `keys` (security keys and passkeys) under `/manage/account/`. What
//! they share is here: the second-factor rate limits, notices, the WebAuthn script's JSON
//! answers, and the rules on removing a method.

mod keys;
mod passkey_signin;
mod recovery;
mod step;
mod totp;

use std::sync::Arc;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use webauthn_rs::prelude::{Credential, SecurityKey, Webauthn};

pub use keys::{
    RegisterOptionsForm, RemoveKeyForm, webauthn_provision_page, webauthn_register,
    webauthn_register_options, webauthn_remove,
};
pub use passkey_signin::{PASSKEY_BEGIN_IP, passkey_options, passkey_submit};
pub use recovery::{
    GenerateForm, recovery_burn, recovery_burn_page, recovery_codes_generate, recovery_codes_page,
};
pub use step::{
    PENDING_SECS, Resume, begin, recovery_page, recovery_submit, step_page, totp_submit,
    webauthn_options, webauthn_submit,
};
pub use totp::{RemoveTotpForm, totp_provision, totp_provision_page, totp_remove};

use crate::accounts::views::too_many;
use crate::accounts::{self, User};
use crate::events::{EventTag, Source};
use crate::ratelimit::{self, Limit, Reservation};
use crate::twofactor::{self, webauthn as wa};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

const MANAGE: &str = "/manage/account/two-factor/";

/// Second-factor failures: 5 per 5 minutes per account, 10 per 5 minutes per IP (§6).
pub const TWO_FA_USER: Limit = Limit {
    bucket: "2fa.user",
    max: 5,
    window_secs: 300,
};
pub const TWO_FA_IP: Limit = Limit {
    bucket: "2fa.ip",
    max: 10,
    window_secs: 300,
};

async fn record(web: &Web, user_id: Option<&str>, tag: EventTag, additional: serde_json::Value) {
    let source = user_id.map_or(Source::Anonymous, Source::User);
    web.record_event(source, tag, additional).await;
}

fn ip(web: &Web) -> String {
    crate::request::rate_key(&web.meta)
}

/// Slots in both second-factor limits, reserved before a factor is checked: of parallel
/// guesses only as many as the limits allow are evaluated. Dropped, they stay counted (a
/// failure); `succeeded` gives them back.
struct Attempt {
    user: Reservation,
    ip: Reservation,
}

impl Attempt {
    async fn succeeded(self, web: &Web) {
        for slot in [self.user, self.ip] {
            if let Err(e) = slot.release(&web.state.db).await {
                tracing::error!(error = %e, "cannot release a rate-limit reservation");
            }
        }
    }
}

/// An attempt at a second factor, or the refusal when either limit is used up.
async fn attempt(web: &Web, user_id: &str) -> Result<Attempt, Response> {
    let db = &web.state.db;
    let lockout = |limited: ratelimit::Limited| {
        too_many(
            web,
            limited,
            format!(
                "There have been too many unsuccessful two-factor attempts. You have been locked out for {}. Please try again later.",
                ratelimit::humanize(limited.retry_after_secs)
            ),
        )
    };
    let user = match TWO_FA_USER
        .reserve(db, user_id, web.now_secs())
        .await
        .or_page(web)?
    {
        Ok(slot) => slot,
        Err(limited) => return Err(lockout(limited).await),
    };
    // The account's slot is given back when the IP's is refused.
    let refused = match TWO_FA_IP
        .reserve(db, &ip(web), web.now_secs())
        .await
        .or_page(web)
    {
        Ok(Ok(slot)) => return Ok(Attempt { user, ip: slot }),
        Ok(Err(limited)) => lockout(limited).await,
        Err(page) => page,
    };
    if let Err(e) = user.release(db).await {
        tracing::error!(error = %e, "cannot release a rate-limit reservation");
    }
    Err(refused)
}

/// Records a failed second factor on the account's log (its attempt stays counted).
async fn failed(web: &Web, _counted: Attempt, user_id: &str, reason: &str) {
    record(
        web,
        Some(user_id),
        EventTag::AccountLoginFailure,
        json!({"reason": reason}),
    )
    .await;
}

async fn notify(web: &Web, user: &User, template: &str, page: minijinja::Value) {
    let Ok(Some(primary)) = accounts::primary_email(&web.state.db, &user.id).await else {
        return;
    };
    let page = context! { ..page, ..context! { username => user.username.clone() } };
    web.state
        .mailer
        .notify(
            &web.state.db,
            (&user.id, &primary.email),
            template,
            page,
            &web.meta,
            web.now_micros(),
        )
        .await;
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CodeForm {
    code: String,
}

/// Without a domain name in the base URL there is no relying party (browsers refuse IP
/// addresses as WebAuthn ids).
fn webauthn_unavailable() -> Response {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Security keys and passkeys need this index to be served under a domain name (its base URL), such as http://localhost:8000/.",
    )
}

/// The relying party, or the answer that there is none.
fn relying_party(web: &Web) -> Result<Arc<Webauthn>, Response> {
    web.state.webauthn.clone().ok_or_else(webauthn_unavailable)
}

/// A JSON answer for the WebAuthn script.
fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn json_location(web: &Web, location: &str) -> Response {
    // Through `Web::redirect` for its cookies, then made a JSON answer the script follows.
    let mut response = web.redirect(location);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().remove(header::LOCATION);
    let (parts, _) = response.into_parts();
    let body = axum::body::Body::from(json!({"location": location}).to_string());
    let mut response = Response::from_parts(parts, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

fn options_json(ceremony: &str, options: impl Serialize) -> Response {
    let mut value = serde_json::to_value(options).unwrap_or_default();
    // A button starts the ceremony: no conditional (autofill) mediation.
    if let Some(object) = value.as_object_mut() {
        object.remove("mediation");
    }
    Json(json!({"ceremony": ceremony, "options": value})).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CeremonyForm {
    ceremony: String,
    credential: String,
    /// `security_key` or `passkey`, when registering.
    kind: String,
}

/// Stores the credential's new sign counter.
async fn keep_counter(
    web: &Web,
    mut stored: wa::Stored,
    result: &webauthn_rs::prelude::AuthenticationResult,
) -> Result<(), Response> {
    let mut key = SecurityKey::from(stored.credential.clone());
    key.update_credential(result);
    stored.credential = Credential::from(key);
    wa::touch(&web.state.db, &stored, web.now_micros())
        .await
        .or_page(web)
}

// ---- management -----------------------------------------------------------------------

/// The signed-in user, if they entered their password in the last 30 minutes.
fn recent(web: &Web) -> Result<User, Response> {
    web.require_recent_auth(MANAGE).map(|s| s.user.clone())
}

pub async fn manage_page(web: Web) -> Page {
    let user = recent(&web)?;
    let methods = twofactor::methods(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    let credentials: Vec<wa::Listed> = wa::credentials_of(&web.state.db, &user.id)
        .await
        .or_page(&web)?
        .iter()
        .map(wa::Stored::listed)
        .collect();
    let required = twofactor::required_for(&web.state.db, &web.state.settings, &user.id)
        .await
        .unwrap_or(true);
    Ok(web.render(
        "manage_two_factor.html",
        context! { methods => methods, credentials => credentials, required => required, errors => FormErrors::default() },
    ))
}

/// TOTP and keys wait until the user has proved they saved their recovery codes.
async fn needs_recovery_codes(web: &Web, user: &User) -> Result<(), Response> {
    if twofactor::methods(&web.state.db, &user.id)
        .await
        .or_page(web)?
        .recovery_codes_confirmed
    {
        return Ok(());
    }
    Err(web.redirect_with(
        "/manage/account/recovery-codes/",
        Flash::error("First generate your recovery codes, save them, and use one of them here to show you saved them. Then you can add an authentication application or a security key."),
    ))
}

/// Refuses to remove the last method of a user who must keep one.
async fn may_remove_one(web: &Web, user: &User) -> Result<(), Response> {
    let methods = twofactor::methods(&web.state.db, &user.id)
        .await
        .or_page(web)?;
    let required = twofactor::required_for(&web.state.db, &web.state.settings, &user.id)
        .await
        .or_page(web)?;
    if required && methods.count() <= 1 {
        return Err(web.redirect_with(
            MANAGE,
            Flash::error("You cannot remove your last two-factor method: two-factor authentication is required for your account. Add another method first."),
        ));
    }
    Ok(())
}
