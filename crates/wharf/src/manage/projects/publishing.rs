//! A project's trusted publishers (`/manage/project/<name>/publishing/`): register a GitHub
//! Actions workflow or a GitLab CI pipeline, remove one, and "Only trusted publishers may
//! upload". Owners only, with a recently entered password; each change is an event.

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use minijinja::context;
use serde::Deserialize;

use super::page_of;
use crate::manage::project_for;
use crate::manage::publishing::{
    PublisherForm, field_of, generic_forms, gitlab_issuers, new_publisher, sentence, shown,
};
use crate::oidc::publishers::{self, By, PublisherError};
use crate::packaging::Project;
use crate::packaging::permissions::Permission;
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

pub async fn publishing(web: Web, Path(project): Path<String>) -> Page {
    let back = page_of(&project, "publishing/");
    let (_, project) = project_for(&web, &project, Permission::ManagePublishing, &back).await?;
    publishing_page(
        &web,
        &project,
        StatusCode::OK,
        PublisherForm::default(),
        FormErrors::default(),
    )
    .await
}

async fn publishing_page(
    web: &Web,
    project: &Project,
    status: StatusCode,
    form: PublisherForm,
    errors: FormErrors,
) -> Page {
    let listed = publishers::for_project(&web.state.db, &project.id)
        .await
        .or_page(web)?;
    let rules = publishers::publishing(&web.state.db, &project.id)
        .await
        .or_page(web)?;
    let listed: Vec<minijinja::Value> = listed.iter().map(shown).collect();
    Ok(web.render_status(
        status,
        "manage_project_publishing.html",
        context! {
            project => context! { name => project.name.clone(), normalized_name => project.normalized_name.clone() },
            publishers => listed,
            trusted_only => rules.trusted_only,
            form => minijinja::Value::from(minijinja::value::Serde(&form)),
            gitlab_issuers => gitlab_issuers(web),
            generic_issuers => generic_forms(web),
            errors => errors,
        },
    ))
}

fn by<'a>(web: &'a Web, username: &'a str) -> By<'a> {
    By {
        username: Some(username),
        via: "web",
        meta: &web.meta,
        now_micros: web.now_micros(),
    }
}

pub async fn add_publisher(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<PublisherForm>,
) -> Page {
    let back = page_of(&project, "publishing/");
    let (session, project) =
        project_for(&web, &project, Permission::ManagePublishing, &back).await?;
    let new = match new_publisher(&form, &web.state.oidc) {
        Ok(new) => new,
        Err((field, message)) => {
            let errors = FormErrors::one(&field, message);
            return publishing_page(&web, &project, StatusCode::BAD_REQUEST, form, errors).await;
        }
    };
    match publishers::add(
        &web.state.db,
        new,
        &project,
        &by(&web, &session.user.username),
    )
    .await
    {
        Ok(added) => {
            notify(
                &web,
                &project,
                "trusted-publisher-added",
                &added.specifier(),
                &session.user.username,
            );
            Ok(web.redirect_with(
                &back,
                Flash::success(format!(
                    "Added a trusted publisher: {} may now publish {}.",
                    added.specifier(),
                    project.name
                )),
            ))
        }
        Err(PublisherError::Database(e)) => Err(web.error(e.into())),
        Err(e) => {
            let field = field_of(&form, &web.state.oidc, &e);
            let errors = FormErrors::one(&field, sentence(&e.to_string()));
            publishing_page(&web, &project, StatusCode::BAD_REQUEST, form, errors).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RemovePublisherForm {
    publisher_id: String,
}

pub async fn remove_publisher(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<RemovePublisherForm>,
) -> Page {
    let back = page_of(&project, "publishing/");
    let (session, project) =
        project_for(&web, &project, Permission::ManagePublishing, &back).await?;
    let listed = publishers::for_project(&web.state.db, &project.id)
        .await
        .or_page(&web)?;
    let specifier = listed
        .iter()
        .find(|p| p.id == form.publisher_id.trim())
        .map(|p| p.specifier());
    let removed = publishers::remove(
        &web.state.db,
        &project,
        form.publisher_id.trim(),
        &by(&web, &session.user.username),
    )
    .await
    .or_page(&web)?;
    if let (true, Some(specifier)) = (removed, &specifier) {
        notify(
            &web,
            &project,
            "trusted-publisher-removed",
            specifier,
            &session.user.username,
        );
    }
    Ok(if removed {
        web.redirect_with(
            &back,
            Flash::success(format!(
                "Removed the publisher: it can no longer publish {}, and its tokens stop working.",
                project.name
            )),
        )
    } else {
        web.redirect_with(
            &back,
            Flash::error("That publisher is not registered for this project."),
        )
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TrustedOnlyForm {
    only: String,
}

pub async fn set_trusted_only(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<TrustedOnlyForm>,
) -> Page {
    let back = page_of(&project, "publishing/");
    let (session, project) =
        project_for(&web, &project, Permission::ManagePublishing, &back).await?;
    let enable = form.only == "yes";
    publishers::set_trusted_only(
        &web.state.db,
        &project,
        enable,
        &by(&web, &session.user.username),
    )
    .await
    .or_page(&web)?;
    let message = if enable {
        format!(
            "Only trusted publishers may now upload to {}: uploads with API tokens are refused.",
            project.name
        )
    } else {
        format!("API tokens may upload to {} again.", project.name)
    };
    Ok(web.redirect_with(&back, Flash::success(message)))
}

/// Tells every Owner that a publisher was added or removed (Warehouse does): a hijacked
/// session cannot plant one unseen.
fn notify(web: &Web, project: &Project, template: &'static str, specifier: &str, by: &str) {
    web.state.mailer.notify_owners(
        &web.state.db,
        &project.id,
        template,
        serde_json::json!({
            "project_name": project.name,
            "normalized_name": project.normalized_name,
            "specifier": specifier,
            "submitted_by": by,
        }),
        &web.meta,
        web.now_micros(),
    );
}
