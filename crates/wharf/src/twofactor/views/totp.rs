//! Setting up and removing an authentication application (TOTP):
//! `/manage/account/totp-provision` and `/manage/account/totp/delete`.

use axum::Form;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{CodeForm, MANAGE, may_remove_one, needs_recovery_codes, notify, recent};
use crate::accounts::User;
use crate::twofactor::totp;
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

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
    let uri = totp::provisioning_uri(secret, &user.username, crate::site::SITE_NAME);
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
                web.now_micros(),
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RemoveTotpForm {
    confirm_password: String,
}

pub async fn totp_remove(web: Web, Form(form): Form<RemoveTotpForm>) -> Page {
    let user = recent(&web)?;
    // The one password re-check: limited per account, failures recorded.
    let valid = crate::accounts::views::recheck(&web, &user, &form.confirm_password).await?;
    if !valid {
        return Ok(web.redirect_with(
            MANAGE,
            Flash::error(
                "The password is incorrect: the authentication application was not removed.",
            ),
        ));
    }
    may_remove_one(&web, &user).await?;
    let removed = totp::remove(&web.state.db, &user.id, &web.meta, web.now_micros())
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
