//! Recovery codes: `/manage/account/recovery-codes/` (generate, regenerate) and `…/burn`,
//! where using one proves they were saved.

use axum::Form;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::{CodeForm, MANAGE, attempt, failed, notify, recent, record};
use crate::events::EventTag;
use crate::twofactor::{self, recovery};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

pub async fn recovery_codes_page(web: Web) -> Page {
    let user = recent(&web)?;
    let methods = twofactor::methods(&web.state.db, &user.id)
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
    let methods = twofactor::methods(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    let regenerate = methods.recovery_codes > 0;
    if regenerate && form.regenerate != "yes" {
        return Ok(web.redirect_with(
            "/manage/account/recovery-codes/",
            Flash::error("You have recovery codes already. Generating new ones invalidates your existing codes: use the regenerate button if that is what you want."),
        ));
    }
    let codes = recovery::generate(
        &web.state.db,
        &user.id,
        regenerate,
        &web.meta,
        web.now_micros(),
    )
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
    match use_code(&web, &user.id, &form.code, json!({"purpose": "confirm_saved"})).await? {
        Ok(()) => Ok(web.redirect_with(MANAGE, Flash::success("Recovery code accepted: you have saved your codes. You can now add an authentication application or a security key."))),
        Err(e) => Ok(web.render_status(
            StatusCode::BAD_REQUEST,
            "recovery_burn.html",
            context! { errors => FormErrors::one("code", e.to_string()) },
        )),
    }
}

/// Burns a recovery code under the second-factor limits and records its use (with
/// `additional`); a wrong or used code counts as a failure and comes back for the caller's
/// page. A database failure is an error page.
pub(super) async fn use_code(
    web: &Web,
    user_id: &str,
    code: &str,
    additional: serde_json::Value,
) -> Result<Result<(), recovery::RecoveryError>, Response> {
    let attempt = attempt(web, user_id).await?;
    match recovery::burn(&web.state.db, user_id, code, web.now_micros()).await {
        Ok(()) => {
            attempt.succeeded(web).await;
            record(
                web,
                Some(user_id),
                EventTag::AccountRecoveryCodesUsed,
                additional,
            )
            .await;
            Ok(Ok(()))
        }
        Err(recovery::RecoveryError::Database(e)) => {
            Err::<Result<(), recovery::RecoveryError>, _>(e).or_page(web)
        }
        Err(e) => {
            let reason = if e == recovery::RecoveryError::Burned {
                "burned_recovery_code"
            } else {
                "invalid_recovery_code"
            };
            failed(web, attempt, user_id, reason).await;
            Ok(Err(e))
        }
    }
}
