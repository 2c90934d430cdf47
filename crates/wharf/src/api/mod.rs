//! The JSON API: `/pypi/<project>/json` and `/pypi/<project>/<version>/json`, with the fields
//! poetry and twine read (`spec/index-protocols.md` §3).

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use wharf_packaging::metadata::Metadata;
use wharf_packaging::{name, version};

use crate::cache::{Page, PageKey};
use crate::clock::{iso8601_micros, iso8601_seconds};
use crate::error::{AppError, AppResult};
use crate::packaging::{self, Contents, FileDetail, Project, ReleaseDetail};
use crate::simple::{encode_segment, file_url_path, json_bytes, moved, respond};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pypi/{project}/json", get(project))
        .route("/pypi/{project}/json/", get(project))
        .route("/pypi/{project}/{version}/json", get(release))
        .route("/pypi/{project}/{version}/json/", get(release))
}

const JSON_CACHE_CONTROL: &str = "max-age=900, public";

/// The release metadata kept from the first upload of a version, keyed as the JSON API's
/// `info` names them.
pub fn metadata_json(meta: &Metadata) -> Value {
    let project_urls: serde_json::Map<String, Value> = meta
        .project_urls
        .iter()
        .filter_map(|entry| entry.split_once(','))
        .map(|(label, url)| (label.trim().to_owned(), json!(url.trim())))
        .collect();
    json!({
        "metadata_version": meta.metadata_version,
        "name": meta.name,
        "summary": meta.summary,
        "description": meta.description,
        "description_content_type": meta.description_content_type,
        "keywords": meta.keywords,
        "home_page": meta.home_page,
        "download_url": meta.download_url,
        "author": meta.author,
        "author_email": meta.author_email,
        "maintainer": meta.maintainer,
        "maintainer_email": meta.maintainer_email,
        "license": meta.license,
        "license_expression": meta.license_expression,
        "license_files": if meta.license_files.is_empty() { Value::Null } else { json!(meta.license_files) },
        "classifiers": meta.classifiers,
        "platform": meta.platforms.first(),
        "requires_python": meta.requires_python,
        "requires_dist": if meta.requires_dist.is_empty() { Value::Null } else { json!(meta.requires_dist) },
        "provides_extra": if meta.provides_extra.is_empty() { Value::Null } else { json!(meta.provides_extra) },
        "project_urls": if project_urls.is_empty() { Value::Null } else { Value::Object(project_urls) },
        "dynamic": if meta.dynamic.is_empty() { Value::Null } else { json!(meta.dynamic) },
    })
}

/// Redirects non-normalised names, as warehouse does.
fn canonical_redirect(project: &str, rest: impl FnOnce() -> String) -> Option<Response> {
    if name::is_normalized(project) {
        return None;
    }
    let normalized = name::normalize(project);
    Some(moved(&format!(
        "/pypi/{}/{}",
        encode_segment(&normalized),
        rest()
    )))
}

pub async fn project(
    State(state): State<AppState>,
    Path(project): Path<String>,
    request: Request,
) -> Response {
    let headers = request.headers();
    if let Some(redirect) = canonical_redirect(&project, || "json".to_owned()) {
        return redirect;
    }
    serve(&state, headers, project, None).await
}

pub async fn release(
    State(state): State<AppState>,
    Path((project, version)): Path<(String, String)>,
    request: Request,
) -> Response {
    let headers = request.headers();
    if let Some(redirect) =
        canonical_redirect(&project, || format!("{}/json", encode_segment(&version)))
    {
        return redirect;
    }
    serve(&state, headers, project, Some(version)).await
}

async fn serve(
    state: &AppState,
    headers: &HeaderMap,
    project: String,
    version: Option<String>,
) -> Response {
    // The key owns the names the extractor made: no copy of them per request.
    let key = PageKey {
        project: Some(project),
        kind: "json",
        variant: version,
    };
    let (project, version) = (
        key.project.as_deref().unwrap_or_default(),
        key.variant.as_deref(),
    );
    let page = match state
        .cache
        .get_or_render(&key, || render(state, project, version))
        .await
    {
        Ok(page) => page,
        Err(error) => return error.render(headers),
    };
    respond(&page, headers, JSON_CACHE_CONTROL)
}

async fn render(state: &AppState, normalized: &str, version: Option<&str>) -> AppResult<Page> {
    let project = packaging::find_project(&state.db, normalized)
        .await?
        .ok_or_else(AppError::not_found)?;
    let contents = Contents::load(&state.db, &project.id).await?;
    let release = match version {
        Some(v) => {
            let canonical = version::parse(v)
                .map(|v| version::canonicalize(&v))
                .map_err(|_| AppError::not_found())?;
            contents
                .releases
                .iter()
                .find(|r| r.canonical_version == canonical)
        }
        None => crate::packaging::latest_release(&contents.releases),
    }
    .ok_or_else(AppError::not_found)?;
    let roles = packaging::project_roles(&state.db, &project.id).await?;
    let base = state.settings.base_url();
    let files_of = |release: &ReleaseDetail| -> Vec<Value> {
        contents
            .files
            .iter()
            .filter(|f| f.release_id == release.id)
            .map(|f| file_json(&base, f, release))
            .collect()
    };
    let mut body = json!({
        "info": info_json(&base, &project, release),
        "last_serial": project.last_serial,
        "urls": files_of(release),
        "vulnerabilities": [],
        "ownership": {
            "roles": roles.iter().map(|(role, user)| json!({"role": role, "user": user})).collect::<Vec<_>>(),
            "organization": null,
        },
    });
    if version.is_none() {
        let releases: serde_json::Map<String, Value> = contents
            .releases
            .iter()
            .map(|r| (r.version.clone(), json!(files_of(r))))
            .collect();
        body["releases"] = Value::Object(releases);
    }
    let page = Page::new(json_bytes(&body), "application/json", project.last_serial);
    Ok(page)
}

fn info_json(base: &str, project: &Project, release: &ReleaseDetail) -> Value {
    let mut info: Value = serde_json::from_str(&release.metadata).unwrap_or_else(|_| json!({}));
    let project_url = format!("{base}/project/{}/", project.normalized_name);
    let extra = json!({
        "name": project.name,
        "version": release.version,
        "bugtrack_url": null,
        "docs_url": null,
        "downloads": {"last_day": -1, "last_week": -1, "last_month": -1},
        "package_url": project_url,
        "project_url": project_url,
        "release_url": format!("{base}/project/{}/{}/", project.normalized_name, release.version),
        "yanked": release.yanked,
        "yanked_reason": if release.yanked_reason.is_empty() { Value::Null } else { json!(release.yanked_reason) },
    });
    if let (Some(info), Value::Object(extra)) = (info.as_object_mut(), extra) {
        info.remove("metadata_version");
        info.extend(extra);
    }
    info
}

fn file_json(base: &str, file: &FileDetail, release: &ReleaseDetail) -> Value {
    json!({
        "comment_text": file.comment_text.clone().unwrap_or_default(),
        "core-metadata": match &file.metadata_sha256 {
            Some(sha256) => json!({"sha256": sha256}),
            None => json!(false),
        },
        "digests": {
            "blake2b_256": file.blake2_256_digest,
            "md5": file.md5_digest,
            "sha256": file.sha256_digest,
        },
        "downloads": -1,
        "filename": file.filename,
        "has_sig": false,
        "md5_digest": file.md5_digest,
        "packagetype": file.packagetype,
        "python_version": file.python_version,
        "requires_python": release.requires_python,
        "size": file.size,
        "upload_time": iso8601_seconds(file.upload_time),
        "upload_time_iso_8601": iso8601_micros(file.upload_time),
        "url": format!("{base}/{}", file_url_path(file)),
        "yanked": release.yanked,
        "yanked_reason": if release.yanked_reason.is_empty() { Value::Null } else { json!(release.yanked_reason) },
    })
}
