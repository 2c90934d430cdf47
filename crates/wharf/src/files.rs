//! Distribution files and their PEP 658 `.metadata`, served from their content address, and only
//! while the file has a row: a deleted file stops answering at once, before its blob is gone.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use std::time::SystemTime;

use std::sync::{Arc, OnceLock};

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::cache::FileHeaders;
use crate::error::AppError;
use crate::packaging;
use crate::state::AppState;
use crate::storage::{GetRange, Meta, Part};

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
    method: Method,
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
    let known = match live(&state, &parts).await {
        Ok(Some(known)) => known,
        Ok(None) => return AppError::not_found().render(&headers),
        Err(error) => return error.render(&headers),
    };
    let file = File {
        filename: parts[3],
        headers: known,
    };
    stored(&state, &method, &path, file, &headers).await
}

/// A stored file's bytes (HEAD, a range, or all of them) under storage key `path`.
pub async fn stored(
    state: &AppState,
    method: &Method,
    path: &str,
    file: File<'_>,
    headers: &HeaderMap,
) -> Response {
    // Ranges are defined for GET only (RFC 9110 §14.2): HEAD describes the whole file, and
    // asks storage for no bytes at all.
    if *method == Method::HEAD {
        return match state.storage.head(path).await {
            Ok(Some(meta)) => file.answer(StatusCode::OK, Body::empty(), meta.size, &meta),
            Ok(None) => AppError::not_found().render(headers),
            Err(error) => AppError::from(error).render(headers),
        };
    }
    let Some(range) = headers
        .get(header::RANGE)
        .and_then(|v| parse_range(v.as_bytes()))
    else {
        return whole(state, path, file, headers).await;
    };
    // If-Range: the range only while the client's partial copy is of this very file. An entity
    // tag is compared (strongly: `W/"…"` never matches) before storage is asked anything.
    let validator = headers.get(header::IF_RANGE);
    if validator.is_some_and(|v| is_entity_tag(v) && v != file.headers.etag) {
        return whole(state, path, file, headers).await;
    }
    let part = match state.storage.get_range(path, range).await {
        Ok(Some(part)) => part,
        Ok(None) => return AppError::not_found().render(headers),
        Err(error) => return AppError::from(error).render(headers),
    };
    let meta = match &part {
        Part::Bytes(blob) => blob.meta,
        Part::Unsatisfiable(meta) => *meta,
    };
    // A date is known only once storage has answered; a mismatch (rare) costs a second read.
    if validator.is_some_and(|v| !is_entity_tag(v) && !same_date(v, meta.last_modified)) {
        drop(part);
        return whole(state, path, file, headers).await;
    }
    match part {
        Part::Bytes(blob) => {
            let length = blob.range.end - blob.range.start;
            let content_range = format!(
                "bytes {}-{}/{}",
                blob.range.start,
                blob.range.end - 1,
                meta.size
            );
            let body = Body::from_stream(blob.stream);
            let mut response = file.answer(StatusCode::PARTIAL_CONTENT, body, length, &meta);
            if let Ok(value) = HeaderValue::try_from(content_range) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            response
        }
        Part::Unsatisfiable(meta) => {
            // No Cache-Control: the one-year `immutable` of the file is not this answer's.
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            let h = response.headers_mut();
            if let Ok(value) = HeaderValue::try_from(format!("bytes */{}", meta.size)) {
                h.insert(header::CONTENT_RANGE, value);
            }
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(header::ETAG, file.headers.etag.clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            response
        }
    }
}

/// The whole file, 200.
async fn whole(state: &AppState, path: &str, file: File<'_>, headers: &HeaderMap) -> Response {
    match state.storage.get(path).await {
        Ok(Some(blob)) => file.answer(
            StatusCode::OK,
            Body::from_stream(blob.stream),
            blob.meta.size,
            &blob.meta,
        ),
        Ok(None) => AppError::not_found().render(headers),
        Err(error) => AppError::from(error).render(headers),
    }
}

/// What every answer with the file's bytes (or, for HEAD, their length) says about it.
pub struct File<'a> {
    pub filename: &'a str,
    /// Made once per live file (kept with it in the page cache).
    pub headers: Arc<FileHeaders>,
}

/// The headers of `filename` whose entity tag is `etag`.
pub fn file_headers(filename: &str, etag: HeaderValue) -> FileHeaders {
    FileHeaders {
        etag,
        disposition: attachment(filename),
        last_modified: OnceLock::new(),
    }
}

impl File<'_> {
    pub fn answer(self, status: StatusCode, body: Body, length: u64, meta: &Meta) -> Response {
        // One map sized for every header (those below, `Content-Range`, the layers' and
        // hyper's): growing one from empty costs reallocations and rehashes per download.
        let mut headers = HeaderMap::with_capacity(16);
        let h = &mut headers;
        let content_type = if self.filename.ends_with(".metadata") {
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
            // So that an interrupted download (pip's resume) can ask for just the rest.
            (header::ACCEPT_RANGES, "bytes"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ] {
            h.insert(name, HeaderValue::from_static(value));
        }
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        h.insert(
            header::CONTENT_DISPOSITION,
            self.headers.disposition.clone(),
        );
        h.insert(header::ETAG, self.headers.etag.clone());
        // A blob's time does not change: formatted once, unless storage says otherwise.
        let cached = self
            .headers
            .last_modified
            .get_or_init(|| (meta.last_modified, http_date(meta.last_modified)));
        if cached.0 == meta.last_modified {
            h.insert(header::LAST_MODIFIED, cached.1.clone());
        } else {
            h.insert(header::LAST_MODIFIED, http_date(meta.last_modified));
        }
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

fn http_date(time: SystemTime) -> HeaderValue {
    HeaderValue::try_from(httpdate::fmt_http_date(time))
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// The blob's content address (the BLAKE2b-256 digest its path is made of) is a strong
/// validator for free: a file's bytes never change under its address. A `.metadata` file is
/// other bytes under the same digest, so its tag says so.
pub fn entity_tag(parts: &[&str]) -> HeaderValue {
    let metadata = parts[3].ends_with(".metadata");
    let mut tag = String::with_capacity(2 + 64 + ".metadata".len());
    tag.push('"');
    for part in &parts[..3] {
        tag.push_str(part);
    }
    if metadata {
        tag.push_str(".metadata");
    }
    tag.push('"');
    // Hex digits and a dot are always a valid header value.
    HeaderValue::try_from(tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// An If-Range value is an entity tag (`"…"` or `W/"…"`) or else an HTTP date.
fn is_entity_tag(value: &HeaderValue) -> bool {
    let value = value.as_bytes();
    value.starts_with(b"\"") || value.starts_with(b"W/")
}

/// Whether an If-Range date is the blob's Last-Modified (to the second, as it was sent); a
/// date that does not parse matches nothing.
fn same_date(value: &HeaderValue, last_modified: SystemTime) -> bool {
    value
        .to_str()
        .ok()
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|date| {
            httpdate::HttpDate::from(date) == httpdate::HttpDate::from(last_modified)
        })
}

/// The one byte range of a `Range: bytes=…` header (RFC 9110 §14.1.2). `None` for anything
/// else — malformed, another unit, several ranges — which is answered with the whole file, as
/// RFC 9110 allows (and nginx does for several ranges).
fn parse_range(value: &[u8]) -> Option<GetRange> {
    let value = std::str::from_utf8(value).ok()?;
    let (unit, set) = value.split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let spec = set.trim_matches([' ', '\t']);
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |digits: &str| -> Option<u64> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(GetRange::Suffix(number(last)?)),
        (false, true) => Some(GetRange::Offset(number(first)?)),
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            if last < first {
                return None;
            }
            Some(match last.checked_add(1) {
                Some(end) => GetRange::Bounded(first..end),
                None => GetRange::Offset(first),
            })
        }
    }
}

/// Whether `aa/bb/<60 hex>/<filename>[.metadata]` names a file that has a row, and then its
/// headers: remembered per process, so the hot path asks the database once per file.
async fn live(state: &AppState, parts: &[&str]) -> Result<Option<Arc<FileHeaders>>, AppError> {
    let Some((digest, filename, metadata)) = decoded(parts) else {
        return Ok(None);
    };
    let make = || file_headers(parts[3], entity_tag(parts));
    if let Some(known) = state
        .cache
        .live_file_headers(&digest, filename, metadata, make)
    {
        return Ok(Some(known));
    }
    let generation = state.cache.generation();
    let digest_hex = hex::encode(digest);
    // Boxed: the query's future is large, and every request's future would carry it.
    match Box::pin(packaging::blobs::live_file_project(
        &state.db,
        &digest_hex,
        filename,
    ))
    .await?
    {
        Some(project) => {
            state
                .cache
                .insert_live_file(digest, filename, &project, generation);
            Ok(Some(
                state
                    .cache
                    .live_file_headers(&digest, filename, metadata, make)
                    // Not kept (invalidated in between): live a moment ago all the same.
                    .unwrap_or_else(|| Arc::new(make())),
            ))
        }
        None => Ok(None),
    }
}

/// The digest from the path's three parts (no allocation), the filename without
/// `.metadata`, and whether it had one.
fn decoded<'a>(parts: &[&'a str]) -> Option<([u8; 32], &'a str, bool)> {
    let mut digest = [0u8; 32];
    let (first, rest) = digest.split_at_mut(1);
    let (second, tail) = rest.split_at_mut(1);
    let decoded = hex::decode_to_slice(parts[0], first).is_ok()
        && hex::decode_to_slice(parts[1], second).is_ok()
        && hex::decode_to_slice(parts[2], tail).is_ok();
    if !decoded {
        return None;
    }
    let (filename, metadata) = match parts[3].strip_suffix(".metadata") {
        Some(filename) => (filename, true),
        None => (parts[3], false),
    };
    Some((digest, filename, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_range_or_none() {
        let parsed = |v: &str| parse_range(v.as_bytes()).map(|r| r.to_string());
        assert_eq!(parsed("bytes=0-99").as_deref(), Some("bytes=0-99"));
        assert_eq!(parsed("bytes=100-").as_deref(), Some("bytes=100-"));
        assert_eq!(parsed("bytes=-500").as_deref(), Some("bytes=-500"));
        assert_eq!(parsed("Bytes= 7-7 ").as_deref(), Some("bytes=7-7"));
        // A last byte past u64 is the rest of the file.
        assert_eq!(
            parsed(&format!("bytes=5-{}", u64::MAX)).as_deref(),
            Some("bytes=5-")
        );
        for ignored in [
            "bytes=0-1,5-6",
            "bytes=0-1,",
            "bytes=5-3",
            "bytes=-",
            "bytes=",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-2-3",
            "items=0-1",
            "bytes 0-1",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parsed(ignored), None, "{ignored}");
        }
    }
}
