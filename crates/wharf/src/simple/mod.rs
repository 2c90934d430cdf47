//! The Simple Repository API (PEP 503 HTML, PEP 691 JSON, with 592, 658/714, 700): `/simple/`
//! and `/simple/<project>/`, served from the page cache.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;
use wharf_packaging::name;

pub use wharf_packaging::negotiate::{Format, negotiate};

use crate::cache::{Page, PageKey};
use crate::clock::iso8601_micros;
use crate::error::{AppError, AppResult, html_escape};
use crate::packaging::{self, Contents, FileDetail};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/simple/", get(index))
        .route("/simple", get(index_redirect))
        .route("/simple/{project}/", get(project))
        .route("/simple/{project}", get(project_redirect))
}

pub const API_VERSION: &str = "1.4";

/// Characters left as they are in file URLs.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

/// The URL path of a stored file, relative to the site root, without a leading slash.
pub fn file_url_path(file: &FileDetail) -> String {
    let (dir, filename) = file.path.rsplit_once('/').unwrap_or(("", &file.path));
    format!("files/{dir}/{}", encode_segment(filename))
}

static X_PYPI_LAST_SERIAL: HeaderName = HeaderName::from_static("x-pypi-last-serial");

/// Sends a cached page with the read API's headers, or 304 when the client has it already.
pub fn respond(page: &Page, request: &HeaderMap, cache_control: &'static str) -> Response {
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == "*" || t.trim().as_bytes() == page.etag.as_bytes())
        });
    // The headers in a map sized for all of them (and for the ones the layers and hyper add):
    // growing one from empty costs a reallocation and a rehash on every request.
    let mut headers = HeaderMap::with_capacity(16);
    if !not_modified {
        headers.insert(header::CONTENT_TYPE, page.content_type.clone());
    }
    headers.insert(header::ETAG, page.etag.clone());
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    headers.insert(X_PYPI_LAST_SERIAL.clone(), HeaderValue::from(page.serial));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    cors(&mut headers);
    let mut response = if not_modified {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        Response::new(Body::from(page.body.clone()))
    };
    *response.headers_mut() = headers;
    response
}

fn cors(headers: &mut HeaderMap) {
    for (name, value) in [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::ACCESS_CONTROL_ALLOW_METHODS, "GET"),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Content-Type, If-Match, If-Modified-Since, If-None-Match, If-Unmodified-Since",
        ),
        (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        (header::ACCESS_CONTROL_EXPOSE_HEADERS, "X-PyPI-Last-Serial"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

const SIMPLE_CACHE_CONTROL: &str = "max-age=600, public";

fn accept(headers: &HeaderMap) -> Format {
    negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
}

fn kind(format: Format) -> &'static str {
    match format {
        Format::Html => "simple-html",
        Format::V1Html => "simple-v1-html",
        Format::V1Json => "simple-v1-json",
    }
}

pub async fn index(State(state): State<AppState>, request: Request) -> Response {
    // The request itself rather than a copy of its headers: this is the hottest path.
    let headers = request.headers();
    let format = accept(headers);
    let key = PageKey {
        project: None,
        kind: kind(format),
        variant: None,
    };
    let page = match state
        .cache
        .get_or_render(&key, || render_index(&state, format))
        .await
    {
        Ok(page) => page,
        Err(error) => return error.render(headers),
    };
    respond(&page, headers, SIMPLE_CACHE_CONTROL)
}

async fn render_index(state: &AppState, format: Format) -> AppResult<Page> {
    let serial = packaging::last_serial(&state.db).await?;
    let projects = packaging::list_projects(&state.db).await?;
    let body = if format.is_json() {
        let projects: Vec<_> = projects
            .iter()
            .map(|p| json!({"_last-serial": p.last_serial, "name": p.name}))
            .collect();
        json_bytes(
            &json!({"meta": {"_last-serial": serial, "api-version": API_VERSION}, "projects": projects}),
        )
    } else {
        let mut html = String::with_capacity(128 + projects.len() * 64);
        html.push_str("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"");
        html.push_str(API_VERSION);
        html.push_str("\">\n    <title>Simple index</title>\n  </head>\n  <body>\n");
        for p in &projects {
            html.push_str(&format!(
                "    <a href=\"{}/\">{}</a>\n",
                encode_segment(&p.normalized_name),
                html_escape(&p.name)
            ));
        }
        html.push_str("  </body>\n</html>\n");
        html.into_bytes()
    };
    Ok(Page::new(body, format.content_type(), serial))
}

/// Compact JSON with sorted keys and a trailing newline, as warehouse writes it.
pub fn json_bytes(value: &serde_json::Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

pub async fn index_redirect() -> Redirect {
    Redirect::permanent("/simple/")
}

/// `/simple/<name>` without the slash, or any non-normalised name: 301 to the canonical URL.
pub async fn project_redirect(Path(project): Path<String>) -> Response {
    moved(&format!(
        "/simple/{}/",
        encode_segment(&name::normalize(&project))
    ))
}

/// 301, as warehouse answers for non-canonical names.
pub fn moved(location: &str) -> Response {
    let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

pub async fn project(
    State(state): State<AppState>,
    Path(project): Path<String>,
    request: Request,
) -> Response {
    let headers = request.headers();
    if !name::is_normalized(&project) {
        let normalized = name::normalize(&project);
        return moved(&format!("/simple/{}/", encode_segment(&normalized)));
    }
    let format = accept(headers);
    let key = PageKey {
        project: Some(project),
        kind: kind(format),
        variant: None,
    };
    let normalized = key.project.as_deref().unwrap_or_default();
    let page = match state
        .cache
        .get_or_render(&key, || render_project(&state, normalized, format))
        .await
    {
        Ok(page) => page,
        Err(error) => return error.render(headers),
    };
    respond(&page, headers, SIMPLE_CACHE_CONTROL)
}

async fn render_project(state: &AppState, normalized: &str, format: Format) -> AppResult<Page> {
    let Some(project) = packaging::find_project(&state.db, normalized).await? else {
        // Not hosted: the upstream's, when there is one.
        let Some(proxy) = &state.proxy else {
            return Err(AppError::not_found());
        };
        let entry = proxy
            .entry(&state.db, &state.clock, normalized)
            .await
            .map_err(|e| e.into_app_error(proxy.upstream.describe()))?;
        return Ok(proxied_page(state, proxy, normalized, &entry, format));
    };
    let contents = Contents::load(&state.db, &project.id).await?;
    let body = if format.is_json() {
        project_json(&project.normalized_name, project.last_serial, &contents)
    } else {
        project_html(&project.normalized_name, project.last_serial, &contents)
    };
    Ok(Page::new(body, format.content_type(), project.last_serial))
}

/// One file as a Simple project page lists it, hosted or from the upstream.
pub struct Listed<'a> {
    pub filename: &'a str,
    /// Relative to the project page.
    pub url: String,
    pub sha256: &'a str,
    pub requires_python: Option<&'a str>,
    /// `None`: not yanked; `Some("")`: yanked without a reason.
    pub yanked: Option<&'a str>,
    pub metadata_sha256: Option<&'a str>,
    pub size: Option<u64>,
    pub upload_time_micros: Option<i64>,
}

fn hosted_listing(contents: &Contents) -> Vec<Listed<'_>> {
    contents
        .files
        .iter()
        .map(|file| {
            let release = contents.release_of(file);
            Listed {
                filename: &file.filename,
                url: format!("../../{}", file_url_path(file)),
                sha256: &file.sha256_digest,
                requires_python: release.and_then(|r| r.requires_python.as_deref()),
                yanked: release
                    .filter(|r| r.yanked)
                    .map(|r| r.yanked_reason.as_str()),
                metadata_sha256: file.metadata_sha256.as_deref(),
                size: Some(file.size as u64),
                upload_time_micros: Some(file.upload_time),
            }
        })
        .collect()
}

/// The page of a proxied name: the upstream's files that may be offered, pointing at this
/// index's `/files/upstream/…`, kept in the page cache until the upstream is due again.
fn proxied_page(
    state: &AppState,
    proxy: &crate::proxy::Proxy,
    normalized: &str,
    entry: &crate::proxy::Entry,
    format: Format,
) -> Page {
    let listed: Vec<Listed> = proxy
        .offered(entry, &state.clock)
        .into_iter()
        .map(|file| {
            let sha256 = file.sha256.as_deref().unwrap_or_default();
            Listed {
                filename: &file.filename,
                url: format!(
                    "../../files/upstream/{}/{sha256}/{}",
                    encode_segment(normalized),
                    encode_segment(&file.filename)
                ),
                sha256,
                requires_python: file.requires_python.as_deref(),
                yanked: file.yanked.as_deref(),
                metadata_sha256: file.metadata_sha256.as_deref(),
                size: file.size,
                upload_time_micros: file.upload_time_micros,
            }
        })
        .collect();
    let body = if format.is_json() {
        let versions = entry.versions();
        let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
        listing_json(normalized, 0, &listed, &versions)
    } else {
        listing_html(normalized, 0, &listed)
    };
    Page::new(body, format.content_type(), 0).expiring(entry.fresh_until)
}

fn project_json(normalized: &str, serial: i64, contents: &Contents) -> Vec<u8> {
    let versions: Vec<&str> = contents
        .releases
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    listing_json(normalized, serial, &hosted_listing(contents), &versions)
}

fn project_html(normalized: &str, serial: i64, contents: &Contents) -> Vec<u8> {
    listing_html(normalized, serial, &hosted_listing(contents))
}

/// A PEP 691 project page.
pub fn listing_json(normalized: &str, serial: i64, files: &[Listed], versions: &[&str]) -> Vec<u8> {
    let files: Vec<_> = files
        .iter()
        .map(|file| {
            let core_metadata = match file.metadata_sha256 {
                Some(sha256) => json!({"sha256": sha256}),
                None => json!(false),
            };
            let yanked = match file.yanked {
                Some("") => json!(true),
                Some(reason) => json!(reason),
                None => json!(false),
            };
            let mut entry = json!({
                "core-metadata": core_metadata,
                "data-dist-info-metadata": core_metadata,
                "filename": file.filename,
                "hashes": {"sha256": file.sha256},
                "provenance": null,
                "requires-python": file.requires_python,
                "url": file.url,
                "yanked": yanked,
            });
            if let Some(size) = file.size {
                entry["size"] = json!(size);
            }
            if let Some(micros) = file.upload_time_micros {
                entry["upload-time"] = json!(iso8601_micros(micros));
            }
            entry
        })
        .collect();
    json_bytes(&json!({
        "files": files,
        "meta": {"_last-serial": serial, "api-version": API_VERSION},
        "name": normalized,
        "project-status": {"status": "active"},
        "versions": versions,
    }))
}

/// A PEP 503 project page.
pub fn listing_html(normalized: &str, serial: i64, files: &[Listed]) -> Vec<u8> {
    let mut html = format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    \
         <meta name=\"pypi:project-status\" content=\"active\">\n    <title>Links for {0}</title>\n  </head>\n  \
         <body>\n    <h1>Links for {0}</h1>\n",
        html_escape(normalized)
    );
    for file in files {
        html.push_str(&format!(
            "    <a href=\"{}#sha256={}\"",
            html_escape(&file.url),
            file.sha256
        ));
        if let Some(requires_python) = file.requires_python {
            html.push_str(&format!(
                " data-requires-python=\"{}\"",
                html_escape(requires_python)
            ));
        }
        if let Some(reason) = file.yanked {
            html.push_str(&format!(" data-yanked=\"{}\"", html_escape(reason)));
        }
        if let Some(sha256) = file.metadata_sha256 {
            html.push_str(&format!(" data-dist-info-metadata=\"sha256={sha256}\" data-core-metadata=\"sha256={sha256}\""));
        }
        html.push_str(&format!(">{}</a><br />\n", html_escape(file.filename)));
    }
    html.push_str(&format!("  </body>\n</html>\n<!--SERIAL {serial}-->\n"));
    html.into_bytes()
}
