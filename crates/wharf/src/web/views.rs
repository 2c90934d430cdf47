//! The public pages: home, search, a project and its releases, a user.

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wharf_packaging::name;

use super::{OrPage, Page, Web};
use crate::accounts;
use crate::error::AppError;
use crate::packaging::{self, Contents, ReleaseDetail};
use crate::simple::{encode_segment, file_url_path};
use wharf_packaging::readme;

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

/// The pip and uv commands that install `requirement` from this index (a bare `pip install`
/// would install whatever PyPI has under the name).
fn install_commands(web: &Web, requirement: &str) -> (String, String) {
    let index = format!("{}/simple/", web.state.settings.base_url());
    (
        format!("pip install --index-url {index} {requirement}"),
        format!("uv pip install --index-url {index} {requirement}"),
    )
}

/// The release a project page shows by default: the latest version (PyPI's rule,
/// `wharf_packaging::version::latest`).
pub fn latest(releases: &[ReleaseDetail]) -> Option<&ReleaseDetail> {
    crate::packaging::latest_release(releases)
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
        // Not hosted: the upstream's, read-only, when this index proxies one.
        if let Some(proxy) = web.state.proxy.clone()
            && proxy.may_ask(&normalized)
        {
            return show_upstream(&web, &proxy, &project, &normalized, version.as_deref()).await;
        }
        return Err(no_such_project(&web, &project));
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
    let requirement = if is_latest {
        project.name.clone()
    } else {
        format!("{}=={}", project.name, shown.version)
    };
    let (install, install_uv) = install_commands(&web, &requirement);
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
            install_uv => install_uv,
        },
    ))
}

fn no_such_project(web: &Web, project: &str) -> Response {
    web.error(AppError::new(
        axum::http::StatusCode::NOT_FOUND,
        format!("There is no project named \"{project}\" on this index. Check the spelling, or search for it."),
    ))
}

#[derive(Clone, Debug, Serialize)]
struct UpstreamFileView {
    filename: String,
    /// This index's own `/files/upstream/…` URL.
    url: String,
    size: Option<u64>,
    upload_time: Option<i64>,
    sha256: String,
    requires_python: Option<String>,
    /// None: not yanked; Some(""): yanked without a reason.
    yanked: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
struct UpstreamVersionView {
    version: String,
    is_prerelease: bool,
    /// How many of its files are offered now.
    files: usize,
}

/// A name that is not hosted here but served from the upstream: a read-only page of the
/// versions and files the proxy offers of it (not blocked, old enough, hashed). A version of
/// the upstream page is named by `version`; without one, the newest stable version that has
/// files offered.
async fn show_upstream(
    web: &Web,
    proxy: &std::sync::Arc<crate::proxy::Proxy>,
    project: &str,
    normalized: &str,
    version: Option<&str>,
) -> Page {
    use crate::proxy::{ProxyError, version_of};
    use wharf_packaging::version::Version;
    let entry = match proxy
        .entry(&web.state.db, &web.state.clock, normalized)
        .await
    {
        Ok(entry) => entry,
        Err(ProxyError::NotFound) => return Err(no_such_project(web, project)),
        Err(error) => return Err(web.error(error.into_app_error(proxy.upstream.describe()))),
    };
    let offered: Vec<(Version, &wharf_packaging::index_page::PageFile)> = proxy
        .offered(&entry, &web.state.clock)
        .into_iter()
        .filter_map(|f| Some((version_of(&f.filename)?, f)))
        .collect();
    // A version as parsed (PEP 440 equality: `1.0` is `1.0.0`) and as given.
    type Listed = (Option<Version>, String);
    let same = |a: &Listed, b: &Listed| match (&a.0, &b.0) {
        (Some(a), Some(b)) => a == b,
        _ => a.1 == b.1,
    };
    let listed = |given: &str| -> Listed {
        (
            wharf_packaging::version::parse(given).ok(),
            given.trim().to_owned(),
        )
    };
    // PEP 700's versions as given (blocked ones too: their page says that nothing of them is
    // offered), then those of offered files.
    let mut versions: Vec<Listed> = Vec::new();
    let given = entry.page.versions.iter().map(|v| listed(v));
    for version in given.chain(
        offered
            .iter()
            .map(|(v, _)| (Some(v.clone()), v.to_string())),
    ) {
        if !versions.iter().any(|known| same(known, &version)) {
            versions.push(version);
        }
    }
    // Newest first; what is not PEP 440 last.
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    let count = |version: &Listed| {
        offered
            .iter()
            .filter(|(v, _)| version.0.as_ref() == Some(v))
            .count()
    };
    let is_prerelease = |version: &Listed| version.0.as_ref().is_none_or(Version::any_prerelease);
    let shown: Option<&Listed> = match version {
        Some(v) => {
            let wanted = listed(v);
            let Some(found) = versions.iter().find(|known| same(known, &wanted)) else {
                return Err(web.error(AppError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    format!("The upstream project {normalized} has no version {v}."),
                )));
            };
            Some(found)
        }
        None => versions
            .iter()
            .find(|v| count(v) > 0 && !is_prerelease(v))
            .or_else(|| versions.iter().find(|v| count(v) > 0)),
    };
    let files: Vec<UpstreamFileView> = offered
        .iter()
        .filter(|(v, _)| shown.is_some_and(|(parsed, _)| parsed.as_ref() == Some(v)))
        .map(|(_, f)| {
            let sha256 = f.sha256.clone().unwrap_or_default();
            UpstreamFileView {
                url: format!(
                    "/files/upstream/{}/{sha256}/{}",
                    encode_segment(normalized),
                    encode_segment(&f.filename)
                ),
                filename: f.filename.clone(),
                size: f.size,
                upload_time: f.upload_time_micros,
                sha256,
                requires_python: f.requires_python.clone(),
                yanked: f.yanked.clone(),
            }
        })
        .collect();
    let history: Vec<UpstreamVersionView> = versions
        .iter()
        .map(|v| UpstreamVersionView {
            version: v.1.clone(),
            is_prerelease: is_prerelease(v),
            files: count(v),
        })
        .collect();
    let requirement = match shown {
        Some((_, given)) if version.is_some() => format!("{normalized}=={given}"),
        _ => normalized.to_owned(),
    };
    let (install, install_uv) = install_commands(web, &requirement);
    Ok(web.render(
        "project_upstream.html",
        context! {
            project => context! { name => normalized, normalized_name => normalized },
            upstream => proxy.upstream.describe(),
            version => shown.map(|(_, given)| given.clone()),
            files => files,
            versions => history,
            install => install,
            install_uv => install_uv,
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

crate::site::template_value!(FileView, ReleaseView, UpstreamFileView, UpstreamVersionView);
