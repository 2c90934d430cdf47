//! The second step of signing in (TOTP, security key, recovery code), signing in with a
//! passkey, and the pages where a user sets up and removes their second factors.

use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use webauthn_rs::prelude::{
    Credential, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration,
    Uuid, Webauthn,
};

use super::webauthn::{self as wa, Kind};
use super::{recovery, totp};
use crate::accounts::views::{start_session, too_many};
use crate::accounts::{self, User};
use crate::events::{EventTag, Source};
use crate::ratelimit::{self, Limit, Reservation};
use crate::signing::SignatureError;
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

const PENDING_COOKIE: &str = "wharf_2fa";
const PENDING_PURPOSE: &str = "two-factor";
/// The second step must follow the password within 5 minutes.
pub const PENDING_SECS: i64 = 300;
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
    crate::app::rate_key(&web.meta)
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

// ---- the sign-in step -------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct Pending {
    u: String,
    pd: i64,
    next: String,
    /// Names this step, so that once it has signed someone in it cannot again.
    #[serde(default)]
    n: String,
}

/// A user half signed in: who, where they go next, and the step's nonce.
struct Step {
    user: User,
    next: String,
    nonce: String,
}

/// After a right password: remember who is half signed in (a signed cookie that lasts 5
/// minutes) and ask for the second factor.
pub fn begin(web: &mut Web, user: &User, password_date: i64, next: &str) -> Response {
    let token = web.state.keys.sign(
        PENDING_PURPOSE,
        &Pending {
            u: user.id.clone(),
            pd: password_date,
            next: next.to_owned(),
            n: uuid::Uuid::new_v4().simple().to_string(),
        },
        web.now_secs() + PENDING_SECS,
    );
    let cookie = web.cookie(PENDING_COOKIE, token);
    web.set_cookie(cookie);
    web.redirect("/account/two-factor/")
}

/// The user half signed in, or the page that says the step is over.
async fn pending(web: &Web) -> Result<Step, Response> {
    let expired = |web: &Web| {
        web.redirect_with(
            "/account/login/",
            Flash::error(
                "The two-factor step lasts 5 minutes and this one has ended. Sign in again.",
            ),
        )
    };
    let Some(value) = web.cookie_value(PENDING_COOKIE) else {
        return Err(expired(web));
    };
    let claims: Pending = match web
        .state
        .keys
        .verify(PENDING_PURPOSE, &value, web.now_secs())
    {
        Ok(claims) => claims,
        Err(SignatureError::Expired | SignatureError::Invalid) => return Err(expired(web)),
    };
    if claims.n.is_empty() {
        return Err(expired(web));
    }
    let used = super::step_used(&web.state.db, &claims.n)
        .await
        .or_page(web)?;
    if used {
        return Err(expired(web));
    }
    let state = accounts::password_state(&web.state.db, &claims.u)
        .await
        .or_page(web)?;
    let user = accounts::find_by_id(&web.state.db, &claims.u)
        .await
        .or_page(web)?;
    match (state, user) {
        (Some((_, date)), Some(user)) if date == claims.pd && user.is_active => Ok(Step {
            user,
            next: claims.next,
            nonce: claims.n,
        }),
        _ => Err(expired(web)),
    }
}

/// Signs the user in after a second factor (with the step's nonce, which is used up here:
/// of two requests racing with one step cookie only one signs in) or a passkey.
async fn finish(
    web: &mut Web,
    user: &User,
    method: &str,
    label: Option<&str>,
    next: &str,
    step: Option<&str>,
) -> Result<String, Response> {
    if let Some(nonce) = step {
        let first = super::use_step(
            &web.state.db,
            nonce,
            web.now_secs() + PENDING_SECS,
            web.now_secs(),
        )
        .await
        .or_page(web)?;
        if !first {
            web.remove_cookie(PENDING_COOKIE);
            return Err(web.redirect_with(
                "/account/login/",
                Flash::error("This two-factor step has been used already. Sign in again."),
            ));
        }
    }
    start_session(web, user).await?;
    web.remove_cookie(PENDING_COOKIE);
    record(
        web,
        Some(&user.id),
        EventTag::AccountLoginSuccess,
        json!({"two_factor_method": method, "two_factor_label": label}),
    )
    .await;
    if let Ok(methods) = super::methods(&web.state.db, &user.id).await
        && methods.recovery_codes > 0
        && methods.recovery_codes_left == 0
    {
        notify(web, user, "recovery-code-reminder", context! {}).await;
    }
    Ok(web.next_or(next, "/manage/projects/"))
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
            web.now(),
        )
        .await;
}

pub async fn step_page(web: Web) -> Page {
    let Step { user, .. } = pending(&web).await?;
    step(&web, &user, StatusCode::OK, FormErrors::default()).await
}

async fn step(web: &Web, user: &User, status: StatusCode, errors: FormErrors) -> Page {
    let methods = super::methods(&web.state.db, &user.id).await.or_page(web)?;
    Ok(web.render_status(
        status,
        "two_factor.html",
        context! { methods => methods, errors => errors },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CodeForm {
    code: String,
}

pub async fn totp_submit(mut web: Web, Form(form): Form<CodeForm>) -> Page {
    let Step { user, next, nonce } = pending(&web).await?;
    let attempt = attempt(&web, &user.id).await?;
    let enrolled = totp::enrolled(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    let Some(totp::Enrolled { sealed, last_step }) = enrolled else {
        attempt.succeeded(&web).await;
        return step(
            &web,
            &user,
            StatusCode::BAD_REQUEST,
            FormErrors::one("code", "This account has no authentication application."),
        )
        .await;
    };
    let secret = totp::open(&web.state.keys, &sealed)
        .ok_or("a TOTP secret does not decrypt: was the server key changed?")
        .or_page(&web)?;
    let message = match totp::check(&secret, &form.code, web.now_secs(), last_step) {
        totp::Check::Valid(accepted) => {
            if totp::accept_step(&web.state.db, &user.id, accepted)
                .await
                .or_page(&web)?
            {
                attempt.succeeded(&web).await;
                let to = finish(&mut web, &user, "totp", None, &next, Some(&nonce)).await?;
                return Ok(web.redirect(&to));
            }
            "Invalid TOTP code."
        }
        totp::Check::Malformed => "TOTP code must be 6 digits.",
        totp::Check::Replayed | totp::Check::Invalid => "Invalid TOTP code.",
    };
    failed(&web, attempt, &user.id, "invalid_totp").await;
    step(
        &web,
        &user,
        StatusCode::UNAUTHORIZED,
        FormErrors::one("code", message),
    )
    .await
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

/// The half signed-in user, or the JSON answer that the step is over.
async fn pending_json(web: &Web) -> Result<Step, Response> {
    pending(web).await.map_err(|_| {
        json_error(
            StatusCode::UNAUTHORIZED,
            "The two-factor step has ended. Sign in again.",
        )
    })
}

pub async fn webauthn_options(web: Web) -> Page {
    let rp = relying_party(&web)?;
    let Step { user, .. } = pending_json(&web).await?;
    let stored = wa::credentials_of(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    if stored.is_empty() {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            "This account has no security key.",
        ));
    }
    let keys: Vec<SecurityKey> = stored
        .into_iter()
        .map(|s| SecurityKey::from(s.credential))
        .collect();
    let (options, state) = rp.start_securitykey_authentication(&keys).or_page(&web)?;
    let id = wa::save_ceremony(&web.state.db, Some(&user.id), "2fa", &state, web.now())
        .await
        .or_page(&web)?;
    Ok(options_json(&id, options))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CeremonyForm {
    ceremony: String,
    credential: String,
    /// `security_key` or `passkey`, when registering.
    kind: String,
}

pub async fn webauthn_submit(mut web: Web, Form(form): Form<CeremonyForm>) -> Page {
    let rp = relying_party(&web)?;
    let Step { user, next, nonce } = pending_json(&web).await?;
    let attempt = attempt(&web, &user.id).await?;
    let refused = "Your security key was not accepted. Try again, or use another method.";
    let state: Option<SecurityKeyAuthentication> = wa::take_ceremony(
        &web.state.db,
        &form.ceremony,
        Some(&user.id),
        "2fa",
        web.now(),
    )
    .await
    .or_page(&web)?;
    let answer: Option<PublicKeyCredential> = serde_json::from_str(&form.credential).ok();
    let (Some(state), Some(answer)) = (state, answer) else {
        failed(&web, attempt, &user.id, "invalid_webauthn").await;
        return Ok(json_error(StatusCode::BAD_REQUEST, refused));
    };
    let stored = match wa::find(&web.state.db, answer.get_credential_id())
        .await
        .or_page(&web)?
    {
        Some(stored) if stored.user_id == user.id => stored,
        _ => {
            failed(&web, attempt, &user.id, "invalid_webauthn").await;
            return Ok(json_error(StatusCode::BAD_REQUEST, refused));
        }
    };
    let result = match rp.finish_securitykey_authentication(&answer, &state) {
        Ok(result) => result,
        Err(e) => {
            tracing::info!(error = %e, "a WebAuthn assertion was refused");
            failed(&web, attempt, &user.id, "invalid_webauthn").await;
            return Ok(json_error(StatusCode::BAD_REQUEST, refused));
        }
    };
    keep_counter(&web, stored.clone(), &result).await?;
    attempt.succeeded(&web).await;
    let to = finish(
        &mut web,
        &user,
        "webauthn",
        Some(&stored.label),
        &next,
        Some(&nonce),
    )
    .await?;
    Ok(json_location(&web, &to))
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
    wa::touch(&web.state.db, &stored, web.now())
        .await
        .or_page(web)
}

pub async fn recovery_page(web: Web) -> Page {
    pending(&web).await?;
    Ok(web.render(
        "recovery_code_login.html",
        context! { errors => FormErrors::default() },
    ))
}

pub async fn recovery_submit(mut web: Web, Form(form): Form<CodeForm>) -> Page {
    let Step { user, next, nonce } = pending(&web).await?;
    let attempt = attempt(&web, &user.id).await?;
    match recovery::burn(&web.state.db, &user.id, &form.code, web.now()).await {
        Ok(()) => {
            attempt.succeeded(&web).await;
            record(
                &web,
                Some(&user.id),
                EventTag::AccountRecoveryCodesUsed,
                json!({}),
            )
            .await;
            notify(&web, &user, "recovery-code-used", context! {}).await;
            let to = finish(&mut web, &user, "recovery-code", None, &next, Some(&nonce)).await?;
            Ok(web.redirect(&to))
        }
        Err(recovery::RecoveryError::Database(e)) => Err(e).or_page(&web),
        Err(e) => {
            let reason = if e == recovery::RecoveryError::Burned {
                "burned_recovery_code"
            } else {
                "invalid_recovery_code"
            };
            failed(&web, attempt, &user.id, reason).await;
            Ok(web.render_status(
                StatusCode::UNAUTHORIZED,
                "recovery_code_login.html",
                context! { errors => FormErrors::one("code", e.to_string()) },
            ))
        }
    }
}

// ---- passkeys: signing in without a password ----------------------------------------------

/// Passkey ceremonies begun per IP address: each stores a ceremony row, and nobody is
/// signed in yet to count them against.
pub const PASSKEY_BEGIN_IP: Limit = Limit {
    bucket: "passkey.begin.ip",
    max: 30,
    window_secs: 300,
};

/// The refusal of an anonymous passkey attempt over its IP limit.
async fn passkey_limited(web: &Web, limited: ratelimit::Limited) -> Response {
    too_many(
        web,
        limited,
        format!(
            "There have been too many passkey sign-in attempts from your network. Please try again in {}.",
            ratelimit::humanize(limited.retry_after_secs)
        ),
    )
    .await
}

pub async fn passkey_options(web: Web) -> Page {
    let rp = relying_party(&web)?;
    // Kept (not released): every ceremony begun counts.
    if let Err(limited) = PASSKEY_BEGIN_IP
        .reserve(&web.state.db, &ip(&web), web.now_secs())
        .await
        .or_page(&web)?
    {
        return Ok(passkey_limited(&web, limited).await);
    }
    let (options, state) = rp.start_discoverable_authentication().or_page(&web)?;
    let id = wa::save_ceremony(&web.state.db, None, "passkey", &state, web.now())
        .await
        .or_page(&web)?;
    Ok(options_json(&id, options))
}

pub async fn passkey_submit(mut web: Web, Form(form): Form<CeremonyForm>) -> Page {
    let rp = relying_party(&web)?;
    // A slot in the IP's sign-in failures before the assertion is checked; a passkey that
    // signs in gives it back.
    let slot = match ratelimit::LOGIN_IP
        .reserve(&web.state.db, &ip(&web), web.now_secs())
        .await
        .or_page(&web)?
    {
        Ok(slot) => slot,
        Err(limited) => return Ok(passkey_limited(&web, limited).await),
    };
    let state: Option<DiscoverableAuthentication> =
        wa::take_ceremony(&web.state.db, &form.ceremony, None, "passkey", web.now())
            .await
            .or_page(&web)?;
    let answer: Option<PublicKeyCredential> = serde_json::from_str(&form.credential).ok();
    let (Some(state), Some(answer)) = (state, answer) else {
        return Ok(refuse_passkey());
    };
    let Ok((user_uuid, credential_id)) = rp.identify_discoverable_authentication(&answer) else {
        return Ok(refuse_passkey());
    };
    let stored = match wa::find(&web.state.db, credential_id).await.or_page(&web)? {
        Some(stored) if stored.kind == Kind::Passkey && stored.user_id == user_uuid.to_string() => {
            stored
        }
        _ => return Ok(refuse_passkey()),
    };
    let result = match rp.finish_discoverable_authentication_v2(&answer, state, &stored.credential)
    {
        Ok(result) => result,
        Err(e) => {
            tracing::info!(error = %e, "a passkey assertion was refused");
            record(
                &web,
                Some(&stored.user_id),
                EventTag::AccountLoginFailure,
                json!({"reason": "invalid_webauthn"}),
            )
            .await;
            return Ok(refuse_passkey());
        }
    };
    let user = match accounts::find_by_id(&web.state.db, &stored.user_id)
        .await
        .or_page(&web)?
    {
        Some(user) if user.is_active => user,
        _ => return Ok(refuse_passkey()),
    };
    keep_counter(&web, stored.clone(), &result).await?;
    if let Err(e) = slot.release(&web.state.db).await {
        tracing::error!(error = %e, "cannot release a rate-limit reservation");
    }
    let to = finish(&mut web, &user, "passkey", Some(&stored.label), "", None).await?;
    Ok(json_location(&web, &to))
}

/// A refused passkey: its slot in the IP's sign-in failures stays counted.
fn refuse_passkey() -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        "That passkey was not accepted. Try again, or sign in with your password.",
    )
}

// ---- management -----------------------------------------------------------------------

/// The signed-in user, if they entered their password in the last 30 minutes.
fn recent(web: &Web) -> Result<User, Response> {
    web.require_recent_auth(MANAGE).map(|s| s.user.clone())
}

/// The same for the WebAuthn script, which gets JSON.
fn recent_json(web: &Web) -> Result<User, Response> {
    match web.session.as_ref() {
        Some(s) if s.recently_authenticated(web.now(), web.state.settings.reauth_secs) => {
            Ok(s.user.clone())
        }
        _ => Err(json_error(
            StatusCode::UNAUTHORIZED,
            "Confirm your password again: reload the page.",
        )),
    }
}

pub async fn manage_page(web: Web) -> Page {
    let user = recent(&web)?;
    let methods = super::methods(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    let credentials: Vec<wa::Listed> = wa::credentials_of(&web.state.db, &user.id)
        .await
        .or_page(&web)?
        .iter()
        .map(wa::Stored::listed)
        .collect();
    let required = super::required_for(&web.state.db, &web.state.settings, &user.id)
        .await
        .unwrap_or(true);
    Ok(web.render(
        "manage_two_factor.html",
        context! { methods => methods, credentials => credentials, required => required, errors => FormErrors::default() },
    ))
}

/// TOTP and keys wait until the user has proved they saved their recovery codes.
async fn needs_recovery_codes(web: &Web, user: &User) -> Result<(), Response> {
    if super::methods(&web.state.db, &user.id)
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

pub async fn totp_provision_page(mut web: Web) -> Page {
    let user = recent(&web)?;
    needs_recovery_codes(&web, &user).await?;
    // A new secret each time the page is shown, as warehouse does. A GET changes nothing on
    // the server: the secret waits, encrypted, in a signed cookie that lasts 10 minutes,
    // until the POST with a code from it stores it.
    let secret = totp::generate_secret();
    let token = web.state.keys.sign(
        SETUP_PURPOSE,
        &Setup {
            u: user.id.clone(),
            s: base64::engine::general_purpose::STANDARD
                .encode(totp::seal(&web.state.keys, &secret)),
        },
        web.now_secs() + SETUP_SECS,
    );
    let cookie = web.cookie(SETUP_COOKIE, token);
    web.set_cookie(cookie);
    Ok(totp_page(
        &web,
        &user,
        &secret,
        StatusCode::OK,
        FormErrors::default(),
    ))
}

const SETUP_COOKIE: &str = "wharf_totp_setup";
const SETUP_PURPOSE: &str = "totp-setup";
const SETUP_SECS: i64 = 600;

/// The secret being set up: its user and the sealed secret (base64).
#[derive(Serialize, Deserialize)]
struct Setup {
    u: String,
    s: String,
}

/// The secret the set-up page gave this user, if its cookie is still good.
fn setup_secret(web: &Web, user: &User) -> Option<Vec<u8>> {
    let value = web.cookie_value(SETUP_COOKIE)?;
    let setup: Setup = web
        .state
        .keys
        .verify(SETUP_PURPOSE, &value, web.now_secs())
        .ok()?;
    if setup.u != user.id {
        return None;
    }
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(setup.s)
        .ok()?;
    totp::open(&web.state.keys, &sealed)
}

fn totp_page(
    web: &Web,
    user: &User,
    secret: &[u8],
    status: StatusCode,
    errors: FormErrors,
) -> Response {
    let uri = totp::provisioning_uri(secret, &user.username, crate::web::SITE_NAME);
    let qr = totp::qr_svg(&uri)
        .map(|svg| {
            format!(
                "data:image/svg+xml;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(svg)
            )
        })
        .unwrap_or_default();
    let base32 = totp::base32(secret);
    let grouped: Vec<String> = base32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    web.render_status(
        status,
        "totp_provision.html",
        context! { qr => qr, secret => base32, secret_grouped => grouped.join(" "), errors => errors },
    )
}

pub async fn totp_provision(mut web: Web, Form(form): Form<CodeForm>) -> Page {
    let user = recent(&web)?;
    let Some(secret) = setup_secret(&web, &user) else {
        return Ok(web.redirect_with(
            "/manage/account/totp-provision",
            Flash::error("Scan the new code and enter the code it gives."),
        ));
    };
    let message = match totp::check(&secret, &form.code, web.now_secs(), None) {
        totp::Check::Valid(step) => {
            totp::enable(
                &web.state.db,
                &user.id,
                &totp::seal(&web.state.keys, &secret),
                step,
                &web.meta,
                web.now(),
            )
            .await
            .or_page(&web)?;
            web.remove_cookie(SETUP_COOKIE);
            notify(
                &web,
                &user,
                "two-factor-added",
                context! { method => "an authentication application (TOTP)" },
            )
            .await;
            return Ok(web.redirect_with(
                MANAGE,
                Flash::success(
                    "Your authentication application is set up: sign-ins now ask for its code.",
                ),
            ));
        }
        totp::Check::Malformed => "TOTP code must be 6 digits.",
        totp::Check::Replayed | totp::Check::Invalid => "Invalid TOTP code.",
    };
    Ok(totp_page(
        &web,
        &user,
        &secret,
        StatusCode::BAD_REQUEST,
        FormErrors::one("code", message),
    ))
}

/// Refuses to remove the last method of a user who must keep one.
async fn may_remove_one(web: &Web, user: &User) -> Result<(), Response> {
    let methods = super::methods(&web.state.db, &user.id).await.or_page(web)?;
    let required = super::required_for(&web.state.db, &web.state.settings, &user.id)
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RemoveTotpForm {
    confirm_password: String,
}

pub async fn totp_remove(web: Web, Form(form): Form<RemoveTotpForm>) -> Page {
    let user = recent(&web)?;
    let valid = match accounts::confirm_password(
        &web.state.db,
        &user.id,
        &form.confirm_password,
        &ip(&web),
        web.now_secs(),
    )
    .await
    .or_page(&web)?
    {
        Ok(valid) => valid,
        Err(limited) => {
            return Ok(too_many(
                &web,
                limited,
                format!(
                    "There have been too many unsuccessful attempts at your password. Please try again in {}.",
                    ratelimit::humanize(limited.retry_after_secs)
                ),
            )
            .await);
        }
    };
    if !valid {
        return Ok(web.redirect_with(
            MANAGE,
            Flash::error(
                "The password is incorrect: the authentication application was not removed.",
            ),
        ));
    }
    may_remove_one(&web, &user).await?;
    let removed = totp::remove(&web.state.db, &user.id, &web.meta, web.now())
        .await
        .or_page(&web)?;
    if !removed {
        return Ok(web.redirect(MANAGE));
    }
    notify(
        &web,
        &user,
        "two-factor-removed",
        context! { method => "an authentication application (TOTP)" },
    )
    .await;
    Ok(web.redirect_with(
        MANAGE,
        Flash::success("The authentication application was removed."),
    ))
}

pub async fn recovery_codes_page(web: Web) -> Page {
    let user = recent(&web)?;
    let methods = super::methods(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    Ok(web.render(
        "recovery_codes.html",
        context! { methods => methods, errors => FormErrors::default() },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GenerateForm {
    regenerate: String,
}

pub async fn recovery_codes_generate(web: Web, Form(form): Form<GenerateForm>) -> Page {
    let user = recent(&web)?;
    let methods = super::methods(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    let regenerate = methods.recovery_codes > 0;
    if regenerate && form.regenerate != "yes" {
        return Ok(web.redirect_with(
            "/manage/account/recovery-codes/",
            Flash::error("You have recovery codes already. Generating new ones invalidates your existing codes: use the regenerate button if that is what you want."),
        ));
    }
    let codes = recovery::generate(&web.state.db, &user.id, regenerate, &web.meta, web.now())
        .await
        .or_page(&web)?;
    notify(&web, &user, "recovery-codes-generated", context! {}).await;
    Ok(web.render("recovery_codes_show.html", context! { codes => codes }))
}

pub async fn recovery_burn_page(web: Web) -> Page {
    recent(&web)?;
    Ok(web.render(
        "recovery_burn.html",
        context! { errors => FormErrors::default() },
    ))
}

pub async fn recovery_burn(web: Web, Form(form): Form<CodeForm>) -> Page {
    let user = recent(&web)?;
    let attempt = attempt(&web, &user.id).await?;
    match recovery::burn(&web.state.db, &user.id, &form.code, web.now()).await {
        Ok(()) => {
            attempt.succeeded(&web).await;
            record(
                &web,
                Some(&user.id),
                EventTag::AccountRecoveryCodesUsed,
                json!({"purpose": "confirm_saved"}),
            )
            .await;
            Ok(web.redirect_with(MANAGE, Flash::success("Recovery code accepted: you have saved your codes. You can now add an authentication application or a security key.")))
        }
        Err(recovery::RecoveryError::Database(e)) => Err(e).or_page(&web),
        Err(e) => {
            failed(
                &web,
                attempt,
                &user.id,
                if e == recovery::RecoveryError::Burned {
                    "burned_recovery_code"
                } else {
                    "invalid_recovery_code"
                },
            )
            .await;
            Ok(web.render_status(
                StatusCode::BAD_REQUEST,
                "recovery_burn.html",
                context! { errors => FormErrors::one("code", e.to_string()) },
            ))
        }
    }
}

pub async fn webauthn_provision_page(web: Web) -> Page {
    let user = recent(&web)?;
    needs_recovery_codes(&web, &user).await?;
    Ok(web.render(
        "webauthn_provision.html",
        context! { errors => FormErrors::default() },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterOptionsForm {
    label: String,
    kind: String,
}

#[derive(Serialize, Deserialize)]
struct Registration<T> {
    label: String,
    state: T,
}

pub async fn webauthn_register_options(web: Web, Form(form): Form<RegisterOptionsForm>) -> Page {
    let rp = relying_party(&web)?;
    let user = recent_json(&web)?;
    let label = form.label.trim().to_owned();
    if label.is_empty() || label.chars().count() > 64 {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            "Give the key a label of 1 to 64 characters.",
        ));
    }
    if !super::methods(&web.state.db, &user.id)
        .await
        .or_page(&web)?
        .recovery_codes_confirmed
    {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            "Save your recovery codes first.",
        ));
    }
    let existing = wa::credentials_of(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    if existing.iter().any(|c| c.label == label) {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            &format!("Label '{label}' already in use: choose another one."),
        ));
    }
    let exclude = Some(
        existing
            .iter()
            .map(|c| c.credential.cred_id.clone())
            .collect(),
    );
    let user_uuid = Uuid::parse_str(&user.id)
        .map_err(|_| "user ids are UUIDs")
        .or_page(&web)?;
    let (id, options) = if form.kind == "passkey" {
        let (mut options, state) = rp
            .start_passkey_registration(user_uuid, &user.username, &user.username, exclude)
            .or_page(&web)?;
        // A passkey must be discoverable: it is found without a username.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = true;
            selection.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Required);
        }
        let id = wa::save_ceremony(
            &web.state.db,
            Some(&user.id),
            "register-passkey",
            &Registration { label, state },
            web.now(),
        )
        .await
        .or_page(&web)?;
        (id, serde_json::to_value(options).unwrap_or_default())
    } else {
        let (mut options, state) = rp
            .start_securitykey_registration(
                user_uuid,
                &user.username,
                &user.username,
                exclude,
                None,
                None,
            )
            .or_page(&web)?;
        // Chromium refuses "user verification required" protection on a credential that is
        // not discoverable, and a second factor needs no such protection: ask for none.
        if let Some(extensions) = options.public_key.extensions.as_mut() {
            extensions.cred_protect = None;
        }
        let id = wa::save_ceremony(
            &web.state.db,
            Some(&user.id),
            "register-security_key",
            &Registration { label, state },
            web.now(),
        )
        .await
        .or_page(&web)?;
        (id, serde_json::to_value(options).unwrap_or_default())
    };
    Ok(options_json(&id, options))
}

pub async fn webauthn_register(web: Web, Form(form): Form<CeremonyForm>) -> Page {
    let rp = relying_party(&web)?;
    let user = recent_json(&web)?;
    let refused = "The key could not be registered. Try again.";
    let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(&form.credential) else {
        return Ok(json_error(StatusCode::BAD_REQUEST, refused));
    };
    let kind = if form.kind == "passkey" {
        Kind::Passkey
    } else {
        Kind::SecurityKey
    };
    let purpose = format!("register-{}", kind.as_str());
    let registered = match kind {
        Kind::Passkey => {
            let taken: Option<Registration<PasskeyRegistration>> = wa::take_ceremony(
                &web.state.db,
                &form.ceremony,
                Some(&user.id),
                &purpose,
                web.now(),
            )
            .await
            .or_page(&web)?;
            taken.and_then(|r| {
                rp.finish_passkey_registration(&answer, &r.state)
                    .ok()
                    .map(|k: Passkey| (r.label, Credential::from(k)))
            })
        }
        Kind::SecurityKey => {
            let taken: Option<Registration<SecurityKeyRegistration>> = wa::take_ceremony(
                &web.state.db,
                &form.ceremony,
                Some(&user.id),
                &purpose,
                web.now(),
            )
            .await
            .or_page(&web)?;
            taken.and_then(|r| {
                rp.finish_securitykey_registration(&answer, &r.state)
                    .ok()
                    .map(|k: SecurityKey| (r.label, Credential::from(k)))
            })
        }
    };
    let Some((label, credential)) = registered else {
        return Ok(json_error(StatusCode::BAD_REQUEST, refused));
    };
    match wa::add(
        &web.state.db,
        &user.id,
        kind,
        &label,
        &credential,
        &web.meta,
        web.now(),
    )
    .await
    {
        Ok(()) => {}
        Err(wa::StoreError::Database) => return Err("cannot store a credential").or_page(&web),
        Err(e) => return Ok(json_error(StatusCode::BAD_REQUEST, &e.to_string())),
    }
    let method = match kind {
        Kind::Passkey => format!("a passkey ({label})"),
        Kind::SecurityKey => format!("a security key ({label})"),
    };
    notify(
        &web,
        &user,
        "two-factor-added",
        context! { method => method },
    )
    .await;
    let message = match kind {
        Kind::Passkey => format!("Passkey \"{label}\" added: you can sign in with it alone."),
        Kind::SecurityKey => format!("Security key \"{label}\" added."),
    };
    let mut response = json_location(&web, MANAGE);
    // The page the script goes to shows the message.
    let redirect = web.redirect_with(MANAGE, Flash::success(message));
    for value in redirect.headers().get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, value.clone());
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RemoveKeyForm {
    credential: String,
    confirm_label: String,
}

pub async fn webauthn_remove(web: Web, Form(form): Form<RemoveKeyForm>) -> Page {
    let user = recent(&web)?;
    let stored = wa::credentials_of(&web.state.db, &user.id)
        .await
        .or_page(&web)?
        .into_iter()
        .find(|c| c.id == form.credential);
    let Some(stored) = stored else {
        return Ok(web.redirect_with(MANAGE, Flash::error("That key is not on your account.")));
    };
    if form.confirm_label.trim() != stored.label {
        return Ok(web.redirect_with(
            MANAGE,
            Flash::error(format!(
                "Type the label, {}, to remove the key: it was not removed.",
                stored.label
            )),
        ));
    }
    may_remove_one(&web, &user).await?;
    let removed = wa::remove(&web.state.db, &user.id, &stored.id, &web.meta, web.now())
        .await
        .or_page(&web)?;
    let Some(label) = removed else {
        return Ok(web.redirect(MANAGE));
    };
    notify(
        &web,
        &user,
        "two-factor-removed",
        context! { method => format!("the key \"{label}\"") },
    )
    .await;
    Ok(web.redirect_with(MANAGE, Flash::success(format!("Removed \"{label}\"."))))
}
