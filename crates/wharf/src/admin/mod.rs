//! Admin pages: every event with filters, the accounts and projects with the admin actions
//! (`users`, `projects`, `actions`), bulk token invalidation (`tokens`), the upstream
//! proxy's blocks and claims (`proxy`), invitations, and the adoption figures
//! (`/admin/stats/` and the same numbers on `/metrics` for Prometheus).

pub mod actions;
pub mod invitations;
pub mod metrics;
mod projects;
mod proxy;
pub mod stats;
pub mod store;
mod tokens;
mod users;

use crate::state::AppState;
use axum::Router;
use axum::extract::Query;
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use crate::accounts;
use crate::error::AppError;
use crate::events::query::Filter;
use crate::manage::history::{Paging, render};
use crate::web::{OrPage, Page, Web};

/// The admin pages (behind the web layer's CSRF check and headers).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/events/", get(events))
        .route("/admin/stats/", get(stats::page))
        .route("/admin/invitations/", get(invitations::page))
        .route("/admin/invitations/send", post(invitations::send))
        .route("/admin/invitations/revoke", post(invitations::revoke))
        .route("/admin/users/", get(users::list))
        .route(
            "/admin/users/{username}/",
            get(users::show).post(users::act),
        )
        .route("/admin/projects/", get(projects::list).post(projects::act))
        .route("/admin/proxy/", get(proxy::page).post(proxy::act))
        .route("/admin/tokens/", get(tokens::page).post(tokens::act))
}

/// `/metrics`, for Prometheus: not a page.
pub fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(stats::metrics))
}

/// The signed-in admin, or the page that says no.
pub fn require_admin(web: &Web) -> Result<(), Response> {
    let session = web.require_session()?;
    if session.user.is_admin {
        Ok(())
    } else {
        Err(web.error(AppError::forbidden(
            "This page is for the administrators of this index.",
        )))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EventFilters {
    user: String,
    project: String,
    tag: String,
    ip: String,
    /// Dates, `YYYY-MM-DD` (UTC), from the start of `since` to the end of `until`.
    since: String,
    until: String,
    page: Option<i64>,
    sort: String,
}

fn day_start(date: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(date.trim(), &format)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1_000_000)
}

pub async fn events(web: Web, Query(form): Query<EventFilters>) -> Page {
    require_admin(&web)?;
    let db = &web.state.db;
    let mut filter = Filter::default();
    let mut problems = Vec::new();
    if !form.user.trim().is_empty() {
        match accounts::find_by_username(db, form.user.trim())
            .await
            .or_page(&web)?
        {
            Some(user) => filter.user_id = Some(user.id),
            None => problems.push(format!("There is no user named \"{}\".", form.user.trim())),
        }
    }
    if !form.project.trim().is_empty() {
        match crate::packaging::find_project(
            db,
            &wharf_packaging::name::normalize(form.project.trim()),
        )
        .await
        .or_page(&web)?
        {
            Some(project) => filter.project_id = Some(project.id),
            None => problems.push(format!(
                "There is no project named \"{}\".",
                form.project.trim()
            )),
        }
    }
    if !form.tag.trim().is_empty() {
        filter.tag = Some(form.tag.trim().to_owned());
    }
    if !form.ip.trim().is_empty() {
        filter.ip_address = Some(form.ip.trim().to_owned());
    }
    for (value, slot, end) in [
        (&form.since, &mut filter.since, false),
        (&form.until, &mut filter.until, true),
    ] {
        if value.trim().is_empty() {
            continue;
        }
        match day_start(value) {
            Some(start) => {
                *slot = Some(if end {
                    start + 86_400 * 1_000_000
                } else {
                    start
                })
            }
            None => problems.push(format!(
                "\"{}\" is not a date: use YYYY-MM-DD.",
                value.trim()
            )),
        }
    }
    if !problems.is_empty() {
        // A filter that names nothing must not show everything.
        filter.tag = Some("-".to_owned());
    }
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("user", &form.user),
            ("project", &form.project),
            ("tag", &form.tag),
            ("ip", &form.ip),
            ("since", &form.since),
            ("until", &form.until),
        ])
        .finish();
    let tags: Vec<&str> = crate::events::EventTag::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    let paging = Paging {
        page: form.page,
        sort: form.sort.clone(),
    };
    render(
        &web,
        "Security events",
        &filter,
        &paging,
        context! {
            scope => "admin",
            filters => context! { user => form.user, project => form.project, tag => form.tag, ip => form.ip, since => form.since, until => form.until },
            tags => tags,
            problems => problems,
            query => format!("&{query}"),
        },
    )
    .await
}
