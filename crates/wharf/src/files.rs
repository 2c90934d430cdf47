//! Distribution files and their PEP 658 `.metadata`, served from their content address.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::AppError;

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
    match state.storage.get(&path).await {
        Ok(Some((size, stream))) => {
            let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
            let h = response.headers_mut();
            let content_type = if path.ends_with(".metadata") {
                "text/plain; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            // An uploaded file is never a page of this site, even if a browser is sent to it:
            // saved, not shown, and sandboxed should it be shown anyway.
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            h.insert(header::CONTENT_DISPOSITION, attachment(parts[3]));
            response
        }
        Ok(None) => AppError::not_found().render(&headers),
        Err(error) => AppError::internal(format!("{error:#}")).render(&headers),
    }
}
