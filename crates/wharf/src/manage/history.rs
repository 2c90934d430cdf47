//! Security history: the account's events of the last 90 days, and a project's (with its
//! files'), 25 a page, sortable by time, event or IP address.

use axum::extract::{Path, Query};
use minijinja::context;
use serde::Deserialize;

use crate::events::query::{self, Filter, Sort};
use crate::packaging::permissions::Permission;
use crate::web::{OrPage, Page, Web};

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
) -> Page {
    let page = paging.page.unwrap_or(1).max(1);
    let sort = Sort::parse(&paging.sort);
    let (events, total) = query::list(&web.state.db, filter, sort, page, PER_PAGE)
        .await
        .or_page(web)?;
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let path = web.here.split('?').next().unwrap_or_default().to_owned();
    Ok(web.render(
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
    ))
}

pub async fn account(web: Web, Query(paging): Query<Paging>) -> Page {
    let session = web.require_recent_auth("/manage/account/history/")?.clone();
    let filter = Filter {
        user_id: Some(session.user.id.clone()),
        since: Some(web.now_micros() - ACCOUNT_DAYS * 86_400 * 1_000_000),
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

pub async fn project(web: Web, Path(project): Path<String>, Query(paging): Query<Paging>) -> Page {
    let back = web.here.clone();
    let (_, project) = super::project_for(&web, &project, Permission::ViewHistory, &back).await?;
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
