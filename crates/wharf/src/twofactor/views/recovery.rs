//! Recovery codes: `/manage/account/recovery-codes/` (generate, regenerate) and `…/burn`,
//! where using one proves they were saved.

use axum::Form;
use axum::http::StatusCode;
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
