//! `/files/upstream/<name>/<sha256>/<filename>[.metadata]`: a proxied project's files. A kept
//! file is served from storage like a hosted one. A file asked for the first time is fetched
//! once (others asking meanwhile wait and are then served from storage), streamed to the
//! client while it is written to storage, and kept only if its bytes have the SHA-256 (and the
//! size) the upstream's page gave; otherwise the transfer is cut, nothing is kept, the refusal
//! is logged and recorded, and later requests answer 502 until the upstream's page changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Proxy;
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

    /// Where the file is kept. A `.metadata` file is kept under its own hash too: an upstream
    /// that serves a new metadata file for the same distribution is not answered with the old.
    fn storage_key(&self, metadata_sha256: Option<&str>) -> String {
        match (self.metadata, metadata_sha256) {
            (true, Some(metadata)) => format!(
                "upstream/{}/{}/{metadata}/{}.metadata",
                self.normalized, self.sha256, self.filename
            ),
            _ => format!(
                "upstream/{}/{}/{}",
                self.normalized, self.sha256, self.filename
            ),
        }
    }

    fn etag(&self, metadata_sha256: Option<&str>) -> HeaderValue {
        let hash = match (self.metadata, metadata_sha256) {
            (true, Some(metadata)) => metadata,
            _ => self.sha256,
        };
        HeaderValue::try_from(format!("\"{hash}\""))
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
        .entry_for_file(&state.db, &state.clock, wanted.normalized)
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
    let metadata_sha256 = file.metadata_sha256.as_deref();
    if wanted.metadata && metadata_sha256.is_none() {
        return AppError::not_found().render(headers);
    }
    let key = wanted.storage_key(metadata_sha256);
    let stored = || {
        let filename = wanted.served_name(&key);
        crate::files::File {
            filename,
            headers: std::sync::Arc::new(crate::files::file_headers(
                filename,
                wanted.etag(metadata_sha256),
            )),
        }
    };
    if is_kept(state, &proxy, &key).await {
        proxy
            .counters
            .files_from_cache
            .fetch_add(1, Ordering::Relaxed);
        return crate::files::stored(state, method, &key, stored(), headers).await;
    }
    if let Some(why) = proxy.file_failure(&key) {
        return bad_gateway(&upstream, &why).render(headers);
    }
    let flight = proxy.file_flights.join(&key).await;
    // Whoever held the flight before has kept the file, or remembered why not.
    if is_kept(state, &proxy, &key).await {
        drop(flight);
        return crate::files::stored(state, method, &key, stored(), headers).await;
    }
    if let Some(why) = proxy.file_failure(&key) {
        return bad_gateway(&upstream, &why).render(headers);
    }
    // A HEAD is answered from the page: it must not make the index fetch a file nobody reads.
    if *method == Method::HEAD {
        drop(flight);
        let size = file.size.unwrap_or(0);
        let meta = Meta {
            size,
            last_modified: SystemTime::now(),
        };
        let mut response = stored().answer(StatusCode::OK, Body::empty(), size, &meta);
        if file.size.is_none() {
            response
                .headers_mut()
                .remove(axum::http::header::CONTENT_LENGTH);
        }
        return response;
    }
    // A bounded number of files on their way from the upstream at once, whatever is asked.
    let permit = match tokio::time::timeout(
        FETCH_TURN_WAIT,
        proxy.file_fetches.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(permit)) => permit,
        _ => {
            return AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many files are being fetched from the upstream index just now. Try again shortly.",
            )
            .with_header(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("5"),
            )
            .render(headers);
        }
    };
    let Ok(url) = entry.base.join(&file.url) else {
        let why = "the upstream's file URL is not a URL";
        fail(
            state,
            &proxy,
            &wanted,
            &key,
            &Fault::Refused(why.to_owned()),
        )
        .await;
        return bad_gateway(&upstream, why).render(headers);
    };
    if wanted.metadata {
        let mut url = url;
        url.set_path(&format!("{}.metadata", url.path()));
        let expected = metadata_sha256.unwrap_or_default();
        let result = fetch_metadata(state, &proxy, &url, expected, &key).await;
        drop(permit);
        // What happened is remembered before the flight ends, so those waiting share it.
        if let Err(fault) = &result {
            fail(state, &proxy, &wanted, &key, fault).await;
        }
        drop(flight);
        return match result {
            Ok(()) => crate::files::stored(state, method, &key, stored(), headers).await,
            Err(fault) => bad_gateway(&upstream, fault.why()).render(headers),
        };
    }
    let mut download = match proxy.upstream.file(&url).await {
        Ok(download) => download,
        Err(error) => {
            let fault = Fault::Transient(error.0);
            fail(state, &proxy, &wanted, &key, &fault).await;
            return bad_gateway(&upstream, fault.why()).render(headers);
        }
    };
    let announced = download.announced_size();
    if let (Some(size), Some(announced)) = (file.size, announced)
        && size != announced
    {
        let fault = Fault::Refused(format!(
            "the upstream sent {announced} bytes for {}, whose page says {size}",
            wanted.filename
        ));
        fail(state, &proxy, &wanted, &key, &fault).await;
        return bad_gateway(&upstream, fault.why()).render(headers);
    }
    let limit = file.size.or(announced).unwrap_or(UPLOAD_LIMIT_CAP);
    if limit > UPLOAD_LIMIT_CAP {
        // (The page's size is checked before a file is offered: this is an announced length.)
        let fault = Fault::Transient(format!(
            "the upstream announces {} as larger than any file this index keeps",
            wanted.filename
        ));
        fail(state, &proxy, &wanted, &key, &fault).await;
        return bad_gateway(&upstream, fault.why()).render(headers);
    }
    let mut writer = match state.storage.writer(&key).await {
        Ok(writer) => writer,
        Err(error) => {
            let fault = Fault::Transient(format!("storage failed: {error:#}"));
            fail(state, &proxy, &wanted, &key, &fault).await;
            return AppError::internal(fault.why().to_owned()).render(headers);
        }
    };
    // The download goes on in a task of its own (holding the flight) and never waits for the
    // client: a client that leaves or lags is cut off, and the file is still kept for the
    // ones waiting.
    let (mut feed, stream) = ClientFeed::new();
    let flights = proxy.file_flights.clone();
    let task_state = state.clone();
    let task_proxy = proxy.clone();
    let expected = file.sha256.clone().unwrap_or_default();
    let (normalized, filename) = (wanted.normalized.to_owned(), wanted.filename.to_owned());
    let task_key = key.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        // The last chunk is held back until the hash is checked: a client must never receive
        // every byte of a file that does not match (with Content-Length it would look whole).
        let mut held: Option<bytes::Bytes> = None;
        let fault = loop {
            match download.chunk().await {
                // Its client gone and nobody waiting for it: not worth fetching on.
                _ if feed.gone() && flights.waiting(&task_key) == 0 => {
                    break Some(Fault::Abandoned);
                }
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    if received > limit {
                        break Some(Fault::Refused(format!(
                            "the upstream sent more than the {limit} bytes of {filename}"
                        )));
                    }
                    hasher.update(&chunk);
                    if let Err(error) = writer.write(&chunk).await {
                        break Some(Fault::Transient(format!("storage failed: {error:#}")));
                    }
                    task_proxy
                        .counters
                        .bytes_fetched
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if let Some(previous) = held.replace(chunk) {
                        feed.send(previous);
                    }
                }
                Ok(None) => break None,
                Err(error) => break Some(Fault::Transient(error.0)),
            }
        };
        let digest = hex::encode(hasher.finalize());
        let fault = fault.or_else(|| {
            if digest != expected {
                Some(Fault::Refused(format!(
                    "the upstream's {filename} does not match the SHA-256 its page gives (expected {expected}, got {digest})"
                )))
            } else if received < limit && file.size.or(announced).is_some() {
                Some(Fault::Refused(format!(
                    "the upstream sent {received} of the {limit} bytes of {filename}"
                )))
            } else {
                None
            }
        });
        let fault = match fault {
            None => writer
                .finish()
                .await
                .err()
                .map(|e| Fault::Transient(format!("storage failed: {e:#}"))),
            Some(fault) => {
                let _ = writer.abort().await;
                Some(fault)
            }
        };
        let wanted = Wanted {
            normalized: &normalized,
            sha256: &expected,
            filename: &filename,
            metadata: false,
        };
        match fault {
            None => {
                task_proxy.remember_kept(&task_key);
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
                // The flight ends with the file kept: those waiting are served from storage.
                drop(flight);
                if let Some(last) = held.take() {
                    feed.send(last);
                }
                feed.catch_up(&task_state.storage, &task_key).await;
            }
            Some(fault) => {
                fail(&task_state, &task_proxy, &wanted, &task_key, &fault).await;
                // The flight ends with the failure remembered, so those waiting share it.
                drop(flight);
                feed.fail(fault.why());
            }
        }
    });
    let body = Body::from_stream(stream);
    let meta = Meta {
        size: limit,
        last_modified: SystemTime::now(),
    };
    let answer = File {
        filename: wanted.filename,
        headers: std::sync::Arc::new(crate::files::file_headers(
            wanted.filename,
            wanted.etag(None),
        )),
    };
    let mut response = answer.answer(StatusCode::OK, body, limit, &meta);
    if file.size.or(announced).is_none() {
        // The length is not known before the end.
        response
            .headers_mut()
            .remove(axum::http::header::CONTENT_LENGTH);
    }
    response
}

/// How far the first client may fall behind the upstream before the fetch stops feeding it.
const CLIENT_LAG_MAX: usize = 8 * 1024 * 1024;
/// How long a first request waits for a turn to fetch from the upstream (`FILE_FETCHES_MAX`).
const FETCH_TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The first client's copy of a file being fetched. The fetch never waits for it: what the
/// client has not read yet is queued, up to `CLIENT_LAG_MAX`. A client that falls further
/// behind gets nothing more during the fetch and the rest from storage once the file is kept,
/// at its own pace; if the file is not kept, it gets an error (its connection is cut).
struct ClientFeed {
    sender: Option<tokio::sync::mpsc::UnboundedSender<std::io::Result<bytes::Bytes>>>,
    shared: Arc<FeedShared>,
    /// Bytes handed to the client so far.
    sent: u64,
    behind: bool,
}

struct FeedShared {
    queued: AtomicUsize,
    /// Told when the client has read a chunk, or has gone.
    read: tokio::sync::Notify,
}

/// The client's side of the feed; its end (the client gone) wakes a catch-up waiting on it.
struct Reader {
    receiver: tokio::sync::mpsc::UnboundedReceiver<std::io::Result<bytes::Bytes>>,
    shared: Arc<FeedShared>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.shared.read.notify_one();
    }
}

impl ClientFeed {
    fn new() -> (
        ClientFeed,
        impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + use<>,
    ) {
        let (sender, receiver) =
            tokio::sync::mpsc::unbounded_channel::<std::io::Result<bytes::Bytes>>();
        let shared = Arc::new(FeedShared {
            queued: AtomicUsize::new(0),
            read: tokio::sync::Notify::new(),
        });
        let mut reader = Reader {
            receiver,
            shared: shared.clone(),
        };
        let stream = futures_util::stream::poll_fn(move |cx| {
            let item = std::task::ready!(reader.receiver.poll_recv(cx));
            if let Some(Ok(chunk)) = &item {
                reader
                    .shared
                    .queued
                    .fetch_sub(chunk.len(), Ordering::Relaxed);
                reader.shared.read.notify_one();
            }
            std::task::Poll::Ready(item)
        });
        (
            ClientFeed {
                sender: Some(sender),
                shared,
                sent: 0,
                behind: false,
            },
            stream,
        )
    }

    /// Whether the client has gone.
    fn gone(&self) -> bool {
        self.sender.as_ref().is_none_or(|s| s.is_closed())
    }

    fn send(&mut self, chunk: bytes::Bytes) {
        if self.behind {
            return;
        }
        let Some(sender) = &self.sender else {
            return;
        };
        let len = chunk.len();
        if self.shared.queued.load(Ordering::Relaxed) + len > CLIENT_LAG_MAX {
            self.behind = true;
            return;
        }
        self.shared.queued.fetch_add(len, Ordering::Relaxed);
        if sender.send(Ok(chunk)).is_err() {
            self.sender = None;
        } else {
            self.sent += len as u64;
        }
    }

    /// Once the file is kept: what a client that fell behind has not had, from storage, never
    /// more than `CLIENT_LAG_MAX` ahead of what it has read.
    async fn catch_up(&mut self, storage: &crate::storage::Storage, key: &str) {
        use futures_util::StreamExt;
        if !self.behind {
            return;
        }
        let Some(sender) = self.sender.take() else {
            return;
        };
        let rest = storage
            .get_range(key, crate::storage::GetRange::Offset(self.sent))
            .await;
        let mut stream = match rest {
            Ok(Some(crate::storage::Part::Bytes(blob))) => blob.stream,
            _ => {
                let _ = sender.send(Err(std::io::Error::other(
                    "the kept file could not be read back",
                )));
                return;
            }
        };
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    let _ = sender.send(Err(std::io::Error::other(error.to_string())));
                    return;
                }
            };
            while self.shared.queued.load(Ordering::Relaxed) > CLIENT_LAG_MAX / 2 {
                if sender.is_closed() {
                    return;
                }
                self.shared.read.notified().await;
            }
            self.shared.queued.fetch_add(chunk.len(), Ordering::Relaxed);
            if sender.send(Ok(chunk)).is_err() {
                return;
            }
        }
    }

    fn fail(&mut self, why: &str) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Err(std::io::Error::other(why.to_owned())));
        }
    }
}

/// Why a file was not served: the upstream sent it wrong (refused: recorded, and answered 502
/// for a TTL), or the upstream or storage failed (answered 502 for a few seconds, so that
/// those who waited share the answer, and then tried again).
enum Fault {
    Refused(String),
    Transient(String),
    /// Its client left and nobody waited: stopped, nothing remembered.
    Abandoned,
}

impl Fault {
    fn why(&self) -> &str {
        match self {
            Fault::Refused(why) | Fault::Transient(why) => why,
            Fault::Abandoned => "nobody wanted the file any more",
        }
    }
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
) -> Result<(), Fault> {
    let mut download = proxy
        .upstream
        .file(url)
        .await
        .map_err(|e| Fault::Transient(e.0))?;
    let mut body = Vec::new();
    while let Some(chunk) = download.chunk().await.map_err(|e| Fault::Transient(e.0))? {
        if body.len() + chunk.len() > METADATA_MAX {
            return Err(Fault::Refused(
                "the upstream's metadata file is larger than 16 MiB".to_owned(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    proxy
        .counters
        .bytes_fetched
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let digest = hex::encode(Sha256::digest(&body));
    if digest != expected {
        return Err(Fault::Refused(format!(
            "the upstream's metadata file does not match the SHA-256 its page gives (expected {expected}, got {digest})"
        )));
    }
    state
        .storage
        .put_bytes(key, body)
        .await
        .map_err(|e| Fault::Transient(format!("storage failed: {e:#}")))?;
    proxy.remember_kept(key);
    proxy.counters.files_fetched.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A file not served: remembered (so those waiting share the answer), logged; when the
/// upstream sent it wrong, also recorded and counted as refused.
async fn fail(state: &AppState, proxy: &Arc<Proxy>, wanted: &Wanted<'_>, key: &str, fault: &Fault) {
    match fault {
        Fault::Refused(why) => {
            proxy.remember_file_failure(key, why, true);
            refuse(state, proxy, wanted, why).await;
        }
        Fault::Abandoned => {
            tracing::debug!(
                project = wanted.normalized,
                file = wanted.filename,
                "stopped fetching an upstream file its client left"
            );
        }
        Fault::Transient(why) => {
            proxy.remember_file_failure(key, why, false);
            proxy.counters.files_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                project = wanted.normalized,
                file = wanted.filename,
                "could not fetch an upstream file: {why}"
            );
        }
    }
}

fn bad_gateway(upstream: &str, why: &str) -> AppError {
    AppError::new(
        StatusCode::BAD_GATEWAY,
        format!("The upstream index {upstream} could not be used: {why}."),
    )
}

/// A file the upstream sent wrong: logged, recorded, counted, and refused until its page is
/// asked for again.
async fn refuse(state: &AppState, proxy: &Arc<Proxy>, wanted: &Wanted<'_>, why: &str) {
    proxy.counters.files_refused.fetch_add(1, Ordering::Relaxed);
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
