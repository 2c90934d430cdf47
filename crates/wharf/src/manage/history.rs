//! Security history: the account's events of the last 90 days, and a project's (with its
//! files'), 25 a page, sortable by time, event or IP address.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use super::internal;
use crate::error::AppError;
use crate::events::query::{self, Filter, Sort};
use crate::packaging::{self, Role};
use crate::web::Web;

pub const PER_PAGE: i64 = 25;
/// The account page shows this much history, as PyPI does.
const ACCOUNT_DAYS: i64 = 90;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Paging {
    pub page: Option<i64>,
    pub sort: String,
}

/// Renders a page of events with the shared template.
pub async fn render(
    web: &Web,
    heading: &str,
    filter: &Filter,
    paging: &Paging,
    extra: minijinja::Value,
) -> Response {
    let page = paging.page.unwrap_or(1).max(1);
    let sort = Sort::parse(&paging.sort);
    match query::list(&web.state.db, filter, sort, page, PER_PAGE).await {
        Ok((events, total)) => {
            let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
            let path = web.here.split('?').next().unwrap_or_default().to_owned();
            web.render(
                "history.html",
                context! {
                    heading => heading,
                    events => events,
                    total => total,
                    page => page,
                    pages => pages,
                    sort => if paging.sort.is_empty() { "newest" } else { paging.sort.as_str() },
                    path => path,
                    ..extra
                },
            )
        }
        Err(e) => internal(web, e),
    }
}

pub async fn account(web: Web, Query(paging): Query<Paging>) -> Response {
    let session = match web.require_recent_auth("/manage/account/history/") {
        Ok(session) => session.clone(),
        Err(response) => return response,
    };
    let filter = Filter {
        user_id: Some(session.user.id.clone()),
        since: Some(web.now() - ACCOUNT_DAYS * 86_400 * 1_000_000),
        ..Filter::default()
    };
    render(
        &web,
        "Security history of your account",
        &filter,
        &paging,
        context! { scope => "account", query => "" },
    )
    .await
}

pub async fn project(
    web: Web,
    Path(project): Path<String>,
    Query(paging): Query<Paging>,
) -> Response {
    let session = match web.require_session() {
        Ok(session) => session.clone(),
        Err(response) => return response,
    };
    let normalized = wharf_packaging::name::normalize(&project);
    let project = match packaging::find_project(&web.state.db, &normalized).await {
        Ok(Some(project)) => project,
        Ok(None) => {
            return web.error(AppError::new(
                StatusCode::NOT_FOUND,
                format!("There is no project named \"{project}\" on this index."),
            ));
        }
        Err(e) => return internal(&web, e),
    };
    match packaging::role_of(&web.state.db, &project.id, &session.user.id).await {
        Ok(Some(Role::Owner)) => {}
        Ok(_) if session.user.is_admin => {}
        Ok(_) => {
            return web.error(AppError::forbidden(format!(
                "Only Owners of {} can read its security history.",
                project.name
            )));
        }
        Err(e) => return internal(&web, e),
    }
    let filter = Filter {
        project_id: Some(project.id.clone()),
        ..Filter::default()
    };
    render(
        &web,
        &format!("Security history of {}", project.name),
        &filter,
        &paging,
        context! { scope => "project", project => context! { name => project.name.clone(), normalized_name => project.normalized_name.clone() }, query => "" },
    )
    .await
}
