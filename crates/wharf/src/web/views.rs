//! The public pages: home, search, a project and its releases, a user.

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wharf_packaging::name;

use super::{OrPage, Page, Web, readme};
use crate::accounts;
use crate::error::AppError;
use crate::packaging::{self, Contents, ReleaseDetail};
use crate::simple::{encode_segment, file_url_path};

pub async fn home(web: Web) -> Page {
    web.require_reader()?;
    let recent = packaging::recent_releases(&web.state.db, 10)
        .await
        .or_page(&web)?;
    Ok(web.render("index.html", context! { recent => recent }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    q: String,
}

pub async fn search(web: Web, Query(query): Query<SearchQuery>) -> Page {
    web.require_reader()?;
    let q: String = query.q.trim().chars().take(200).collect();
    let results = if q.is_empty() {
        Vec::new()
    } else {
        packaging::search(&web.state.db, &q, 50)
            .await
            .or_page(&web)?
    };
    Ok(web.render("search.html", context! { q => q, results => results }))
}

#[derive(Clone, Debug, Serialize)]
struct FileView {
    filename: String,
    url: String,
    packagetype: String,
    python_version: String,
    size: i64,
    sha256: String,
    upload_time: i64,
}

#[derive(Clone, Debug, Serialize)]
struct ReleaseView {
    version: String,
    created: i64,
    yanked: bool,
    yanked_reason: String,
    is_prerelease: bool,
}

fn release_view(release: &ReleaseDetail) -> ReleaseView {
    ReleaseView {
        version: release.version.clone(),
        created: release.created,
        yanked: release.yanked,
        yanked_reason: release.yanked_reason.clone(),
        is_prerelease: release.is_prerelease,
    }
}

/// The release a project page shows by default: the newest stable one that is not yanked,
/// else the newest one that is not yanked, else the newest.
pub fn latest(releases: &[ReleaseDetail]) -> Option<&ReleaseDetail> {
    releases
        .iter()
        .rev()
        .find(|r| !r.yanked && !r.is_prerelease)
        .or_else(|| releases.iter().rev().find(|r| !r.yanked))
        .or_else(|| releases.last())
}

pub async fn project(web: Web, Path(project): Path<String>) -> Page {
    show_project(web, project, None).await
}

pub async fn release(web: Web, Path((project, version)): Path<(String, String)>) -> Page {
    show_project(web, project, Some(version)).await
}

async fn show_project(web: Web, project: String, version: Option<String>) -> Page {
    web.require_reader()?;
    let normalized = name::normalize(&project);
    if normalized != project {
        let rest = version
            .map(|v| format!("{}/", encode_segment(&v)))
            .unwrap_or_default();
        return Ok(Redirect::permanent(&format!(
            "/project/{}/{rest}",
            encode_segment(&normalized)
        ))
        .into_response());
    }
    let found = packaging::find_project(&web.state.db, &normalized)
        .await
        .or_page(&web)?;
    let Some(project) = found else {
        return Err(web.error(AppError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("There is no project named \"{project}\" on this index. Check the spelling, or search for it."),
        )));
    };
    let contents = Contents::load(&web.state.db, &project.id)
        .await
        .or_page(&web)?;
    let shown = match &version {
        Some(v) => contents.releases.iter().find(|r| &r.version == v),
        None => latest(&contents.releases),
    };
    let Some(shown) = shown else {
        return match version {
            Some(v) => Err(web.error(AppError::new(
                axum::http::StatusCode::NOT_FOUND,
                format!("The project {} has no release {v}.", project.name),
            ))),
            None => Ok(web.render(
                "project.html",
                context! { project => context! { name => project.name, normalized_name => project.normalized_name }, release => None::<()>, releases => Vec::<ReleaseView>::new() },
            )),
        };
    };
    let metadata: Value = serde_json::from_str(&shown.metadata).unwrap_or_default();
    let description = metadata["description"].as_str().unwrap_or_default();
    let description_html = readme::render(
        description,
        metadata["description_content_type"].as_str(),
        &web.state.settings.base_url(),
    );
    let files: Vec<FileView> = contents
        .files
        .iter()
        .filter(|f| f.release_id == shown.id)
        .map(|f| FileView {
            filename: f.filename.clone(),
            url: format!("/{}", file_url_path(f)),
            packagetype: if f.packagetype == "sdist" {
                "Source".to_owned()
            } else {
                "Wheel".to_owned()
            },
            python_version: f.python_version.clone(),
            size: f.size,
            sha256: f.sha256_digest.clone(),
            upload_time: f.upload_time,
        })
        .collect();
    let maintainers = packaging::roles::collaborators(&web.state.db, &project.id)
        .await
        .or_page(&web)?;
    let is_latest = latest(&contents.releases).is_some_and(|l| l.id == shown.id);
    let install = if is_latest {
        format!("pip install {}", project.name)
    } else {
        format!("pip install {}=={}", project.name, shown.version)
    };
    let history: Vec<ReleaseView> = contents.releases.iter().rev().map(release_view).collect();
    Ok(web.render(
        "project.html",
        context! {
            project => context! { name => project.name, normalized_name => project.normalized_name },
            release => release_view(shown),
            summary => metadata["summary"].as_str(),
            requires_python => shown.requires_python.clone(),
            license => metadata["license_expression"].as_str().or(metadata["license"].as_str()),
            project_urls => minijinja::value::Serde(metadata["project_urls"].clone()),
            description_html => minijinja::Value::from_safe_string(description_html),
            files => files,
            releases => history,
            maintainers => maintainers,
            install => install,
        },
    ))
}

pub async fn user(web: Web, Path(username): Path<String>) -> Page {
    web.require_reader()?;
    let found = accounts::find_by_username(&web.state.db, &username)
        .await
        .or_page(&web)?;
    let Some(user) = found else {
        return Err(web.error(AppError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("There is no user named \"{username}\" on this index."),
        )));
    };
    let projects = packaging::projects_of(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    Ok(web.render(
        "user.html",
        context! { profile => context! { username => user.username }, projects => projects },
    ))
}

/// The fallback: a 404 page with this visitor's navigation.
pub async fn not_found(web: Web) -> Response {
    web.error(AppError::new(
        axum::http::StatusCode::NOT_FOUND,
        "There is nothing at this address. Check it for typos, or search for a project.",
    ))
}

crate::site::template_value!(FileView, ReleaseView);
