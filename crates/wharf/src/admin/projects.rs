//! `/admin/projects/`: every project (searchable, paged) with its Owners, size and upload
//! limit, and the admin actions on one: delete a spam project with its files, transfer it to
//! a user, set its own upload size limit. Each asks for the password again after
//! `reauth_secs`, and deleting asks for the project's name as confirmation.

use axum::Form;
use axum::extract::Query;
use minijinja::context;
use serde::Deserialize;

use super::actions::{self, AdminActor};
use super::store;
use super::users::{acting_admin, refused};
use crate::error::AppError;
use crate::web::{Flash, OrPage, Page, Web};

const PAGE: &str = "/admin/projects/";
const PER_PAGE: i64 = 50;
const MB: u64 = 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    q: String,
    page: Option<i64>,
}

pub async fn list(web: Web, Query(form): Query<ListQuery>) -> Page {
    super::require_admin(&web)?;
    let search: String = form.q.trim().chars().take(100).collect();
    let page = form.page.unwrap_or(1).max(1);
    let (projects, total) =
        store::projects(&web.state.db, &search, PER_PAGE, (page - 1) * PER_PAGE)
            .await
            .or_page(&web)?;
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let filters: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("q", &search)
        .finish();
    Ok(web.render(
        "admin_projects.html",
        context! {
            projects => projects,
            total => total,
            page => page,
            pages => pages,
            q => search,
            filters => filters,
            default_limit_mb => web.state.settings.max_upload_size / MB,
            cap_mb => crate::config::UPLOAD_LIMIT_CAP / MB,
            proxying => web.state.proxy.is_some(),
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActionForm {
    /// `delete`, `transfer` or `upload-limit`.
    action: String,
    project: String,
    /// For `delete`: the project's name typed again.
    confirm: String,
    /// For `transfer`: the new Owner's username.
    to: String,
    /// For `upload-limit`: megabytes, or empty for the default.
    limit_mb: String,
}

pub async fn act(web: Web, Form(form): Form<ActionForm>) -> Page {
    let admin = acting_admin(&web, PAGE).await?;
    let actor = AdminActor {
        admin: Some(&admin),
        meta: &web.meta,
        now_micros: web.now_micros(),
    };
    let deps = (&web.state).into();
    let name = form.project.trim();
    let done = match form.action.as_str() {
        "delete" => {
            if wharf_packaging::name::normalize(form.confirm.trim())
                != wharf_packaging::name::normalize(name)
            {
                return Ok(web.redirect_with(
                    PAGE,
                    Flash::error(format!(
                        "Type the project's name, {name}, to confirm that it is to be deleted. Nothing was deleted."
                    )),
                ));
            }
            actions::delete_project(deps, &actor, name)
                .await
                .map(|project| {
                    web.state.cache.invalidate_project(&project.normalized_name);
                    format!(
                        "Deleted the project {} with its releases and files. Its collaborators were told by e-mail.",
                        project.name
                    )
                })
        }
        "transfer" => actions::transfer_project(deps, &actor, name, &form.to)
            .await
            .map(|(project, removed)| {
                web.state.cache.invalidate_project(&project.normalized_name);
                let mut message =
                    format!("{} is now owned by {} alone.", project.name, form.to.trim());
                if !removed.is_empty() {
                    message.push_str(&format!(" Roles removed: {}.", removed.join(", ")));
                }
                message
            }),
        "upload-limit" => {
            let limit = match form.limit_mb.trim() {
                "" => None,
                text => match text.parse::<u64>() {
                    Ok(mb) if mb <= crate::config::UPLOAD_LIMIT_CAP / MB => Some(mb * MB),
                    _ => {
                        return Ok(web.redirect_with(
                            PAGE,
                            Flash::error(format!(
                                "\"{text}\" is not a size: give whole megabytes, at most {}, or leave it empty for the default.",
                                crate::config::UPLOAD_LIMIT_CAP / MB
                            )),
                        ));
                    }
                },
            };
            let default = web.state.settings.max_upload_size;
            actions::set_upload_limit(deps, &actor, name, limit, default)
                .await
                .map(|project| match project.upload_limit {
                    Some(l) => format!(
                        "{} may now take files up to {} MB.",
                        project.name,
                        l as u64 / MB
                    ),
                    None => format!(
                        "{} is back to the default upload limit of {} MB.",
                        project.name,
                        default / MB
                    ),
                })
        }
        _ => {
            return Err(web.error(AppError::bad_request(
                "Choose one of the actions on the projects page.",
            )));
        }
    };
    match done {
        Ok(message) => Ok(web.redirect_with(PAGE, Flash::success(message))),
        Err(error) => refused(&web, PAGE, error),
    }
}
