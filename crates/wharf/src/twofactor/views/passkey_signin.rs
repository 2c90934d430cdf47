//! Signing in with a passkey alone (`/account/passkey/options`, `/account/passkey`): a
//! discoverable credential names its user, and counts as both factors.

use axum::Form;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use webauthn_rs::prelude::{DiscoverableAuthentication, PublicKeyCredential};

use super::step::{Resume, finish};
use super::{
    CeremonyForm, ip, json_error, json_location, keep_counter, options_json, record, relying_party,
};
use crate::accounts;
use crate::accounts::views::too_many;
use crate::events::EventTag;
use crate::ratelimit::{self, Limit};
use crate::twofactor::webauthn::{self as wa, Kind};
use crate::web::{OrPage, Page, Web};

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
    let id = wa::save_ceremony(&web.state.db, None, "passkey", &state, web.now_micros())
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
    let state: Option<DiscoverableAuthentication> = wa::take_ceremony(
        &web.state.db,
        &form.ceremony,
        None,
        "passkey",
        web.now_micros(),
    )
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
    // Under `sso_only` a passkey alone signs in administrators only: someone removed at the
    // organization's provider must not keep a way in.
    if web.state.settings.sso_only && !user.is_admin {
        record(
            &web,
            Some(&user.id),
            EventTag::AccountLoginFailure,
            json!({"reason": "sso_only"}),
        )
        .await;
        return Ok(refuse_passkey());
    }
    keep_counter(&web, stored.clone(), &result).await?;
    if let Err(e) = slot.release(&web.state.db).await {
        tracing::error!(error = %e, "cannot release a rate-limit reservation");
    }
    let resume = Resume {
        next: String::new(),
        login_method: "passkey".to_owned(),
        link: None,
    };
    let to = finish(
        &mut web,
        &user,
        "passkey",
        Some(&stored.label),
        &resume,
        None,
    )
    .await?;
    Ok(json_location(&web, &to))
}

/// A refused passkey: its slot in the IP's sign-in failures stays counted.
fn refuse_passkey() -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        "That passkey was not accepted. Try again, or sign in with your password.",
    )
}
