//! Distribution files and their PEP 658 `.metadata`, served from their content address, and only
//! while the file has a row: a deleted file stops answering at once, before its blob is gone.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::AppError;
use crate::packaging;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/files/{*path}", get(serve))
}

/// `attachment; filename="…"`: distribution file names are plain ASCII; anything else is sent
/// percent-encoded (RFC 6266 `filename*`), so no name can break out of the header.
fn attachment(filename: &str) -> HeaderValue {
    let plain = filename
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-+!~".contains(&b));
    let value = if plain {
        format!("attachment; filename=\"{filename}\"")
    } else {
        let encoded =
            percent_encoding::utf8_percent_encode(filename, percent_encoding::NON_ALPHANUMERIC);
        format!("attachment; filename*=UTF-8''{encoded}")
    };
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

pub async fn serve(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    // Content addresses are `aa/bb/<60 hex>/<filename>`; refuse anything else outright.
    let parts: Vec<&str> = path.split('/').collect();
    let well_formed = parts.len() == 4
        && parts[..3]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit()))
        && !parts[3].is_empty()
        && !parts[3].starts_with('.');
    if !well_formed {
        return AppError::not_found().render(&headers);
    }
    match is_live(&state, &parts).await {
        Ok(true) => {}
        Ok(false) => return AppError::not_found().render(&headers),
        Err(error) => return error.render(&headers),
    }
    match state.storage.get(&path).await {
        Ok(Some((size, stream))) => {
            let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
            let h = response.headers_mut();
            let content_type = if path.ends_with(".metadata") {
                "text/plain; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            for (name, value) in [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                // An uploaded file is never a page of this site, even if a browser is sent to
                // it: saved, not shown, and sandboxed should it be shown anyway.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; sandbox",
                ),
            ] {
                h.insert(name, HeaderValue::from_static(value));
            }
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            h.insert(header::CONTENT_DISPOSITION, attachment(parts[3]));
            response
        }
        Ok(None) => AppError::not_found().render(&headers),
        Err(error) => AppError::internal(format!("{error:#}")).render(&headers),
    }
}

/// Whether `aa/bb/<60 hex>/<filename>[.metadata]` names a file that has a row: remembered per
/// process, so the hot path asks the database once per file.
async fn is_live(state: &AppState, parts: &[&str]) -> Result<bool, AppError> {
    // The digest straight from the path's three parts: no allocation on a cache hit.
    let mut digest = [0u8; 32];
    let (first, rest) = digest.split_at_mut(1);
    let (second, tail) = rest.split_at_mut(1);
    let decoded = hex::decode_to_slice(parts[0], first).is_ok()
        && hex::decode_to_slice(parts[1], second).is_ok()
        && hex::decode_to_slice(parts[2], tail).is_ok();
    if !decoded {
        return Ok(false);
    }
    let filename = parts[3].strip_suffix(".metadata").unwrap_or(parts[3]);
    if state.cache.is_live_file(&digest, filename) {
        return Ok(true);
    }
    let generation = state.cache.generation();
    let digest_hex = hex::encode(digest);
    match packaging::blobs::live_file_project(&state.db, &digest_hex, filename).await? {
        Some(project) => {
            state
                .cache
                .insert_live_file(digest, filename, &project, generation);
            Ok(true)
        }
        None => Ok(false),
    }
}
