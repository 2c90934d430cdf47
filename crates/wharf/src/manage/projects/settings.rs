//! A project's settings: requiring two-factor authentication of its Owners and Maintainers,
//! and deleting the project.

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use minijinja::context;
use serde::Deserialize;
use wharf_packaging::name;

use super::page_of;
use crate::manage::project_for;
use crate::packaging::permissions::Permission;
use crate::packaging::{self, Project};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

pub async fn settings(web: Web, Path(project): Path<String>) -> Page {
    let back = page_of(&project, "settings/");
    let (_, project) = project_for(&web, &project, Permission::ManageSettings, &back).await?;
    settings_page(&web, &project, StatusCode::OK, FormErrors::default()).await
}

async fn settings_page(
    web: &Web,
    project: &Project,
    status: StatusCode,
    errors: FormErrors,
) -> Page {
    let requires = crate::twofactor::project_requires(&web.state.db, &project.id)
        .await
        .or_page(web)?;
    Ok(web.render_status(
        status,
        "manage_project_settings.html",
        context! {
            project => context! { name => project.name.clone(), normalized_name => project.normalized_name.clone() },
            requires_2fa => requires,
            errors => errors,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TwoFactorForm {
    require: String,
}

/// Turns "Owners and Maintainers must use 2FA" on or off.
pub async fn set_requires_2fa(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<TwoFactorForm>,
) -> Page {
    let back = page_of(&project, "settings/");
    let (session, project) = project_for(&web, &project, Permission::ManageSettings, &back).await?;
    let enable = form.require == "yes";
    if enable
        && !crate::twofactor::methods(&web.state.db, &session.user.id)
            .await
            .or_page(&web)?
            .any()
    {
        return Ok(web.redirect_with(
            &back,
            Flash::error(
                "Set up two-factor authentication for your own account before you require it of others.",
            ),
        ));
    }
    packaging::set_owners_require_2fa(&web.state.db, &project, enable, &web.actor(&session.user))
        .await
        .or_page(&web)?;
    let message = if enable {
        format!(
            "Owners and Maintainers of {} must now use two-factor authentication to manage it and upload to it.",
            project.name
        )
    } else {
        format!(
            "{} no longer requires two-factor authentication.",
            project.name
        )
    };
    Ok(web.redirect_with(&back, Flash::success(message)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteProjectForm {
    confirm_project_name: String,
}

pub async fn delete_project(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<DeleteProjectForm>,
) -> Page {
    let back = page_of(&project, "settings/");
    let (session, project) = project_for(&web, &project, Permission::DeleteProject, &back).await?;
    if name::normalize(form.confirm_project_name.trim()) != project.normalized_name {
        let message = format!(
            "Type the project name, {}, to confirm: the project was not deleted.",
            project.name
        );
        return settings_page(
            &web,
            &project,
            StatusCode::BAD_REQUEST,
            FormErrors::one("confirm_project_name", message),
        )
        .await;
    }
    packaging::delete_project(&web.state.db, &project, &web.actor(&session.user))
        .await
        .or_page(&web)?;
    web.state.cache.invalidate_project(&project.normalized_name);
    Ok(web.redirect_with(
        "/manage/projects/",
        Flash::success(format!("Deleted the project {}.", project.name)),
    ))
}
