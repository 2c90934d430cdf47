//! `/files/upstream/<name>/<sha256>/<filename>[.metadata]`: a proxied project's files. A kept
//! file is served from storage like a hosted one. A file asked for the first time is fetched
//! once (others asking meanwhile wait and are then served from storage), streamed to the
//! client while it is written to storage, and kept only if its bytes have the SHA-256 (and the
//! size) the upstream's page gave; otherwise the transfer is cut, nothing is kept, the refusal
//! is logged and recorded, and later requests answer 502 until the upstream's page changes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Proxy, ProxyError};
use crate::config::UPLOAD_LIMIT_CAP;
use crate::error::AppError;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::files::File;
use crate::state::AppState;
use crate::storage::Meta;

/// `.metadata` files are small; anything larger from an upstream is refused.
const METADATA_MAX: usize = 16 * 1024 * 1024;

/// What a request names: a file of a project's upstream page, by hash and file name.
struct Wanted<'a> {
    normalized: &'a str,
    sha256: &'a str,
    filename: &'a str,
    metadata: bool,
}

impl<'a> Wanted<'a> {
    fn parse(rest: &'a str) -> Option<Wanted<'a>> {
        let mut parts = rest.split('/');
        let (normalized, sha256, name) = (parts.next()?, parts.next()?, parts.next()?);
        let well_formed = parts.next().is_none()
            && wharf_packaging::name::normalize(normalized) == normalized
            && sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && !name.is_empty()
            && !name.starts_with('.');
        if !well_formed {
            return None;
        }
        let (filename, metadata) = match name.strip_suffix(".metadata") {
            Some(filename) => (filename, true),
            None => (name, false),
        };
        Some(Wanted {
            normalized,
            sha256,
            filename,
            metadata,
        })
    }

    fn storage_key(&self) -> String {
        let suffix = if self.metadata { ".metadata" } else { "" };
        format!(
            "upstream/{}/{}/{}{suffix}",
            self.normalized, self.sha256, self.filename
        )
    }

    fn etag(&self) -> HeaderValue {
        let suffix = if self.metadata { ".metadata" } else { "" };
        HeaderValue::try_from(format!("\"{}{suffix}\"", self.sha256))
            .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    }

    fn served_name(&self, key: &'a str) -> &'a str {
        key.rsplit('/').next().unwrap_or(self.filename)
    }
}

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/files/upstream/{*rest}", axum::routing::get(serve))
}

async fn serve(
    axum::extract::State(state): axum::extract::State<AppState>,
    method: Method,
    axum::extract::Path(rest): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    serve_file(&state, &method, &rest, &headers).await
}

pub async fn serve_file(
    state: &AppState,
    method: &Method,
    rest: &str,
    headers: &HeaderMap,
) -> Response {
    let (Some(proxy), Some(wanted)) = (state.proxy.clone(), Wanted::parse(rest)) else {
        return AppError::not_found().render(headers);
    };
    let upstream = proxy.upstream.describe().to_owned();
    let entry = match proxy
        .entry(&state.db, &state.clock, wanted.normalized)
        .await
    {
        Ok(entry) => entry,
        Err(error) => return error.into_app_error(&upstream).render(headers),
    };
    // Blocks made by another process count at once, not when this one next asks upstream.
    let version = super::version_of(wanted.filename);
    let blocks = match super::store::blocks_of(&state.db, wanted.normalized).await {
        Ok(blocks) => blocks,
        Err(error) => return AppError::from(error).render(headers),
    };
    if let Some(block) = blocks.iter().find(|b| b.covers(version.as_ref())) {
        return AppError::forbidden(format!(
            "This file of {} is blocked by the index's administrators: {}",
            wanted.normalized, block.reason
        ))
        .render(headers);
    }
    let Some(file) = proxy
        .offered_file(
            &entry,
            wanted.sha256,
            wanted.filename,
            &state.clock,
            &blocks,
        )
        .cloned()
    else {
        return AppError::not_found().render(headers);
    };
    if wanted.metadata && file.metadata_sha256.is_none() {
        return AppError::not_found().render(headers);
    }
    let key = wanted.storage_key();
    let stored = || {
        let filename = wanted.served_name(&key);
        crate::files::File {
            filename,
            headers: std::sync::Arc::new(crate::files::file_headers(filename, wanted.etag())),
        }
    };
    if is_kept(state, &proxy, &key).await {
        proxy
            .counters
            .files_from_cache
            .fetch_add(1, Ordering::Relaxed);
        return crate::files::stored(state, method, &key, stored(), headers).await;
    }
    if let Some(why) = proxy.refusal(&key) {
        return bad_gateway(&upstream, &why).render(headers);
    }
    let flight = proxy.file_flights.join(&key).await;
    // Whoever held the flight before has kept the file (or failed to).
    if is_kept(state, &proxy, &key).await {
        drop(flight);
        return crate::files::stored(state, method, &key, stored(), headers).await;
    }
    if let Some(why) = proxy.refusal(&key) {
        return bad_gateway(&upstream, &why).render(headers);
    }
    let Ok(url) = entry.base.join(&file.url) else {
        return bad_gateway(&upstream, "the upstream's file URL is not a URL").render(headers);
    };
    if wanted.metadata {
        let mut url = url;
        url.set_path(&format!("{}.metadata", url.path()));
        let expected = file.metadata_sha256.clone().unwrap_or_default();
        let result = fetch_metadata(state, &proxy, &url, &expected, &key).await;
        drop(flight);
        return match result {
            Ok(()) => crate::files::stored(state, method, &key, stored(), headers).await,
            Err(why) => {
                refuse(state, &proxy, &wanted, &key, &why).await;
                bad_gateway(&upstream, &why).render(headers)
            }
        };
    }
    let mut download = match proxy.upstream.file(&url).await {
        Ok(download) => download,
        Err(error) => {
            proxy.counters.files_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(file = wanted.filename, "{error}");
            return ProxyError::Upstream(error)
                .into_app_error(&upstream)
                .render(headers);
        }
    };
    let announced = download.announced_size();
    if let (Some(size), Some(announced)) = (file.size, announced)
        && size != announced
    {
        let why = format!(
            "the upstream sent {announced} bytes for {}, whose page says {size}",
            wanted.filename
        );
        refuse(state, &proxy, &wanted, &key, &why).await;
        return bad_gateway(&upstream, &why).render(headers);
    }
    let limit = file.size.or(announced).unwrap_or(UPLOAD_LIMIT_CAP);
    if limit > UPLOAD_LIMIT_CAP {
        let why = format!(
            "{} is larger than any file this index keeps",
            wanted.filename
        );
        refuse(state, &proxy, &wanted, &key, &why).await;
        return bad_gateway(&upstream, &why).render(headers);
    }
    let mut writer = match state.storage.writer(&key).await {
        Ok(writer) => writer,
        Err(error) => return AppError::internal(format!("{error:#}")).render(headers),
    };
    // The download goes on in a task of its own (holding the flight), so a client that leaves
    // does not waste it for the ones waiting.
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let task_state = state.clone();
    let task_proxy = proxy.clone();
    let expected = file.sha256.clone().unwrap_or_default();
    let (normalized, filename) = (wanted.normalized.to_owned(), wanted.filename.to_owned());
    let task_key = key.clone();
    tokio::spawn(async move {
        let _flight = flight;
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        // The last chunk is held back until the hash is checked: a client must never receive
        // every byte of a file that does not match (with Content-Length it would look whole).
        let mut held: Option<bytes::Bytes> = None;
        let failure = loop {
            match download.chunk().await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    if received > limit {
                        break Some(format!(
                            "the upstream sent more than the {limit} bytes of {filename}"
                        ));
                    }
                    hasher.update(&chunk);
                    if let Err(error) = writer.write(&chunk).await {
                        break Some(format!("storage failed: {error:#}"));
                    }
                    task_proxy
                        .counters
                        .bytes_fetched
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    // A client that went away no longer reads; the download goes on.
                    if let Some(previous) = held.replace(chunk) {
                        let _ = sender.send(Ok(previous)).await;
                    }
                }
                Ok(None) => break None,
                Err(error) => break Some(error.to_string()),
            }
        };
        let digest = hex::encode(hasher.finalize());
        let failure = failure.or_else(|| {
            if digest != expected {
                Some(format!(
                    "the upstream's {filename} does not match the SHA-256 its page gives (expected {expected}, got {digest})"
                ))
            } else if received < limit && file.size.or(announced).is_some() {
                Some(format!(
                    "the upstream sent {received} of the {limit} bytes of {filename}"
                ))
            } else {
                None
            }
        });
        let failure = match failure {
            None => writer
                .finish()
                .await
                .err()
                .map(|e| format!("storage failed: {e:#}")),
            Some(why) => {
                let _ = writer.abort().await;
                Some(why)
            }
        };
        match failure {
            None => {
                task_proxy.remember_kept(&task_key);
                if let Some(last) = held.take() {
                    let _ = sender.send(Ok(last)).await;
                }
                task_proxy
                    .counters
                    .files_fetched
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    project = normalized,
                    file = filename,
                    bytes = received,
                    "proxied file fetched from the upstream and kept"
                );
            }
            Some(why) => {
                let wanted = Wanted {
                    normalized: &normalized,
                    sha256: &expected,
                    filename: &filename,
                    metadata: false,
                };
                refuse(&task_state, &task_proxy, &wanted, &task_key, &why).await;
                let _ = sender.send(Err(std::io::Error::other(why))).await;
            }
        }
    });
    let body = Body::from_stream(receiver_stream(receiver));
    let meta = Meta {
        size: limit,
        last_modified: SystemTime::now(),
    };
    let answer = File {
        filename: wanted.filename,
        headers: std::sync::Arc::new(crate::files::file_headers(wanted.filename, wanted.etag())),
    };
    let mut response = answer.answer(StatusCode::OK, body, limit, &meta);
    if file.size.or(announced).is_none() {
        // The length is not known before the end.
        response
            .headers_mut()
            .remove(axum::http::header::CONTENT_LENGTH);
    }
    if *method == Method::HEAD {
        *response.body_mut() = Body::empty();
    }
    response
}

fn receiver_stream(
    mut receiver: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

async fn is_kept(state: &AppState, proxy: &Proxy, key: &str) -> bool {
    if proxy.is_kept(key) {
        return true;
    }
    match state.storage.head(key).await {
        Ok(Some(_)) => {
            proxy.remember_kept(key);
            true
        }
        _ => false,
    }
}

async fn fetch_metadata(
    state: &AppState,
    proxy: &Proxy,
    url: &url::Url,
    expected: &str,
    key: &str,
) -> Result<(), String> {
    let mut download = proxy.upstream.file(url).await.map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(chunk) = download.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > METADATA_MAX {
            return Err("the upstream's metadata file is larger than 16 MiB".to_owned());
        }
        body.extend_from_slice(&chunk);
    }
    proxy
        .counters
        .bytes_fetched
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let digest = hex::encode(Sha256::digest(&body));
    if digest != expected {
        return Err(format!(
            "the upstream's metadata file does not match the SHA-256 its page gives (expected {expected}, got {digest})"
        ));
    }
    state
        .storage
        .put_bytes(key, body)
        .await
        .map_err(|e| format!("storage failed: {e:#}"))?;
    proxy.remember_kept(key);
    Ok(())
}

fn bad_gateway(upstream: &str, why: &str) -> AppError {
    AppError::new(
        StatusCode::BAD_GATEWAY,
        format!("The upstream index {upstream} could not be used: {why}."),
    )
}

/// A file the upstream sent wrong: logged, recorded, counted, and refused until its page is
/// asked for again.
async fn refuse(state: &AppState, proxy: &Arc<Proxy>, wanted: &Wanted<'_>, key: &str, why: &str) {
    proxy.counters.files_refused.fetch_add(1, Ordering::Relaxed);
    proxy.remember_refusal(key, why);
    tracing::warn!(
        project = wanted.normalized,
        file = wanted.filename,
        "refused an upstream file: {why}"
    );
    let details = json!({
        "project_name": wanted.normalized,
        "filename": wanted.filename,
        "metadata": wanted.metadata,
        "upstream": proxy.upstream.describe(),
        "reason": why,
    });
    let recorded = async {
        let mut conn = state.db.pool().acquire().await?;
        events::record(
            &mut conn,
            Source::Anonymous,
            EventTag::ProxyFileRefused,
            &RequestMeta::default(),
            state.clock.now_micros(),
            details,
        )
        .await
    };
    if let Err(error) = recorded.await {
        tracing::error!(error = %error, "could not record an upstream file's refusal");
    }
}
