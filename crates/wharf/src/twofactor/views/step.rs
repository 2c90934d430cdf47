//! The second step of signing in, after a right password: `/account/two-factor/` (a TOTP
//! code or a security key) and `/account/recovery-code/`. Who is half signed in waits in a
//! signed cookie that lasts 5 minutes and signs in once.

use axum::Form;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use webauthn_rs::prelude::{PublicKeyCredential, SecurityKey, SecurityKeyAuthentication};

use super::recovery::use_code;
use super::{
    CeremonyForm, CodeForm, attempt, failed, json_error, json_location, keep_counter, notify,
    options_json, record, relying_party,
};
use crate::accounts::sso::Identity;
use crate::accounts::views::{sso as sso_views, start_session};
use crate::accounts::{self, User};
use crate::events::EventTag;
use crate::signing::SignatureError;
use crate::twofactor::{self, totp, webauthn as wa};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

const PENDING_COOKIE: &str = "wharf_2fa";
const PENDING_PURPOSE: &str = "two-factor";
/// The second step must follow the password within 5 minutes.
pub const PENDING_SECS: i64 = 300;

#[derive(Serialize, Deserialize)]
struct Pending {
    u: String,
    pd: i64,
    next: String,
    /// Names this step, so that once it has signed someone in it cannot again.
    #[serde(default)]
    n: String,
    /// How the first factor was given: `password`, or `sso:<provider>`.
    #[serde(default)]
    m: String,
    /// A provider's identity to link once the second factor is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<Identity>,
}

/// Where a sign-in goes once its last factor is given: the page it was headed for, how the
/// first factor was given (for the `account:login:success` event), and a provider's identity
/// to link to the account then (a first sign-in proven with the account's password).
pub struct Resume {
    pub next: String,
    pub login_method: String,
    pub link: Option<Identity>,
}

/// A user half signed in, what follows, and the step's nonce.
struct Step {
    user: User,
    resume: Resume,
    nonce: String,
}

/// After the first factor: remember who is half signed in (a signed cookie that lasts 5
/// minutes) and ask for the second.
pub fn begin(web: &mut Web, user: &User, password_date: i64, resume: Resume) -> Response {
    let token = web.state.keys.sign(
        PENDING_PURPOSE,
        &Pending {
            u: user.id.clone(),
            pd: password_date,
            next: resume.next,
            n: uuid::Uuid::new_v4().simple().to_string(),
            m: resume.login_method,
            l: resume.link,
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
    let used = twofactor::step_used(&web.state.db, &claims.n)
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
            resume: Resume {
                next: claims.next,
                login_method: if claims.m.is_empty() {
                    "password".to_owned()
                } else {
                    claims.m
                },
                link: claims.l,
            },
            nonce: claims.n,
        }),
        _ => Err(expired(web)),
    }
}

/// Signs the user in after a second factor (with the step's nonce, which is used up here:
/// of two requests racing with one step cookie only one signs in) or a passkey, and links
/// the provider's identity the step carries.
pub(super) async fn finish(
    web: &mut Web,
    user: &User,
    method: &str,
    label: Option<&str>,
    resume: &Resume,
    step: Option<&str>,
) -> Result<String, Response> {
    if let Some(nonce) = step {
        let first = twofactor::use_step(
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
    if let Some(identity) = &resume.link
        && !sso_views::link_now(web, user, identity).await?
    {
        web.remove_cookie(PENDING_COOKIE);
        return Err(sso_views::already_linked(web));
    }
    start_session(web, user).await?;
    web.remove_cookie(PENDING_COOKIE);
    record(
        web,
        Some(&user.id),
        EventTag::AccountLoginSuccess,
        json!({"two_factor_method": method, "two_factor_label": label, "login_method": resume.login_method}),
    )
    .await;
    if let Ok(methods) = twofactor::methods(&web.state.db, &user.id).await
        && methods.recovery_codes > 0
        && methods.recovery_codes_left == 0
    {
        notify(web, user, "recovery-code-reminder", context! {}).await;
    }
    Ok(web.next_or(&resume.next, "/manage/projects/"))
}

pub async fn step_page(web: Web) -> Page {
    let Step { user, .. } = pending(&web).await?;
    step(&web, &user, StatusCode::OK, FormErrors::default()).await
}

async fn step(web: &Web, user: &User, status: StatusCode, errors: FormErrors) -> Page {
    let methods = twofactor::methods(&web.state.db, &user.id)
        .await
        .or_page(web)?;
    Ok(web.render_status(
        status,
        "two_factor.html",
        context! { methods => methods, errors => errors },
    ))
}

pub async fn totp_submit(mut web: Web, Form(form): Form<CodeForm>) -> Page {
    let Step {
        user,
        resume,
        nonce,
    } = pending(&web).await?;
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
                let to = finish(&mut web, &user, "totp", None, &resume, Some(&nonce)).await?;
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
    let id = wa::save_ceremony(
        &web.state.db,
        Some(&user.id),
        "2fa",
        &state,
        web.now_micros(),
    )
    .await
    .or_page(&web)?;
    Ok(options_json(&id, options))
}

pub async fn webauthn_submit(mut web: Web, Form(form): Form<CeremonyForm>) -> Page {
    let rp = relying_party(&web)?;
    let Step {
        user,
        resume,
        nonce,
    } = pending_json(&web).await?;
    let attempt = attempt(&web, &user.id).await?;
    let refused = "Your security key was not accepted. Try again, or use another method.";
    let state: Option<SecurityKeyAuthentication> = wa::take_ceremony(
        &web.state.db,
        &form.ceremony,
        Some(&user.id),
        "2fa",
        web.now_micros(),
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
        &resume,
        Some(&nonce),
    )
    .await?;
    Ok(json_location(&web, &to))
}

pub async fn recovery_page(web: Web) -> Page {
    pending(&web).await?;
    Ok(web.render(
        "recovery_code_login.html",
        context! { errors => FormErrors::default() },
    ))
}

pub async fn recovery_submit(mut web: Web, Form(form): Form<CodeForm>) -> Page {
    let Step {
        user,
        resume,
        nonce,
    } = pending(&web).await?;
    match use_code(&web, &user.id, &form.code, json!({})).await? {
        Ok(()) => {
            notify(&web, &user, "recovery-code-used", context! {}).await;
            let to = finish(
                &mut web,
                &user,
                "recovery-code",
                None,
                &resume,
                Some(&nonce),
            )
            .await?;
            Ok(web.redirect(&to))
        }
        Err(e) => Ok(web.render_status(
            StatusCode::UNAUTHORIZED,
            "recovery_code_login.html",
            context! { errors => FormErrors::one("code", e.to_string()) },
        )),
    }
}
