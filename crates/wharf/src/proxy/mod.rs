//! The proxy of an upstream index (`upstream_url`): every name that is not hosted here is
//! answered from the upstream — its page cached for `upstream_ttl` and kept for when the
//! upstream is down, its files fetched once, checked against the page's SHA-256 and kept in
//! the index's own storage. A name is hosted or proxied, never both: a hosted name is never
//! looked up upstream, names under `private_prefixes` never leave the index, and a name served
//! from the upstream may become hosted only once an admin claims it.
//!
//! One fetch per name and per file at a time, however many clients ask (`Flights`).

pub mod actions;
pub mod files;
mod flights;
mod recent;
pub mod store;
pub mod upstream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use url::Url;
use wharf_packaging::index_page::{PageFile, ProjectPage};
use wharf_packaging::version::Version;

use flights::Flights;
use recent::Recent;
use store::{Block, Kept};
use upstream::{PageAnswer, Upstream, UpstreamError};

use crate::clock::Clock;
use crate::config::{PrivatePrefixes, Settings};
use crate::db::Db;
use crate::error::AppError;

/// Why a name cannot be answered from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Not a name the upstream is asked about (private prefix, claimed), or the upstream has
    /// no such project.
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl ProxyError {
    pub fn into_app_error(self, upstream: &str) -> AppError {
        match self {
            ProxyError::NotFound => AppError::not_found(),
            ProxyError::Upstream(e) => AppError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                format!("The upstream index {upstream} could not be used: {e}. Try again later."),
            ),
            ProxyError::Database(e) => AppError::from(e),
        }
    }
}

/// A project page from the upstream as this process holds it.
#[derive(Debug)]
pub struct Entry {
    pub page: ProjectPage,
    /// The upstream page's URL, which relative file URLs are resolved against.
    base: Url,
    /// When it is to be asked for again.
    pub fresh_until: Instant,
    blocks: Vec<Block>,
}

impl Entry {
    /// PEP 700 versions, less those blocked: as the upstream's JSON page gives them, or, from
    /// an HTML page (which has none), read from its file names, in PEP 440 order.
    pub fn versions(&self) -> Vec<String> {
        if self.blocks.iter().any(|b| b.version.is_empty()) {
            return Vec::new();
        }
        let given: Vec<String> = if self.page.versions.is_empty() {
            let mut found: Vec<Version> = self
                .page
                .files
                .iter()
                .filter_map(|f| version_of(&f.filename))
                .collect();
            found.sort();
            found.dedup();
            found.iter().map(ToString::to_string).collect()
        } else {
            self.page.versions.clone()
        };
        given
            .into_iter()
            .filter(|v| {
                let version = wharf_packaging::version::parse(v).ok();
                !self.blocks.iter().any(|b| b.covers(version.as_ref()))
            })
            .collect()
    }

    /// Whether a file of this page may be offered: it has a hash to check it by, a name that
    /// is a file name, and no block covers it.
    fn offers(
        &self,
        file: &PageFile,
        min_age_micros: i64,
        now_micros: i64,
        blocks: &[Block],
    ) -> bool {
        let safe_name = !file.filename.is_empty()
            && !file.filename.starts_with('.')
            && !file.filename.contains(['/', '\\'])
            && !file.filename.chars().any(char::is_control);
        let old_enough = min_age_micros == 0
            || file
                .upload_time_micros
                .is_some_and(|t| now_micros.saturating_sub(t) >= min_age_micros);
        // A file larger than any this index keeps could never be served: not offered.
        let keepable = file
            .size
            .is_none_or(|size| size <= crate::config::UPLOAD_LIMIT_CAP);
        safe_name
            && file.sha256.is_some()
            && keepable
            && old_enough
            && !blocks
                .iter()
                .any(|b| b.covers(version_of(&file.filename).as_ref()))
    }
}

/// The version a distribution file name carries, if it is one. Besides wheels and today's
/// sdists, the older archive kinds an upstream may still list (`.tar.bz2`, `.tgz`, …) are read
/// as `name-version.ext`; anything else has no version (and blocks then cover it).
pub fn version_of(filename: &str) -> Option<Version> {
    use wharf_packaging::filename::{WheelFilename, parse_sdist_filename};
    if let Ok(wheel) = WheelFilename::parse(filename) {
        return Some(wheel.version);
    }
    if let Ok((_, version)) = parse_sdist_filename(filename) {
        return Some(version);
    }
    const OLDER: [&str; 6] = [".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tgz", ".tar"];
    let stem = OLDER.iter().find_map(|ext| filename.strip_suffix(ext))?;
    parse_sdist_filename(&format!("{stem}.tar.gz"))
        .ok()
        .map(|(_, v)| v)
}

/// Figures for `/metrics`.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    pub pages_fetched: AtomicU64,
    pub pages_not_modified: AtomicU64,
    pub pages_not_found: AtomicU64,
    pub pages_failed: AtomicU64,
    pub pages_stale_served: AtomicU64,
    pub files_fetched: AtomicU64,
    pub files_failed: AtomicU64,
    pub files_refused: AtomicU64,
    pub files_from_cache: AtomicU64,
    pub bytes_fetched: AtomicU64,
}

impl ProxyCounters {
    /// The figures in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP wharf_upstream_requests_total Requests to the upstream index, by what was asked and the result.\n# TYPE wharf_upstream_requests_total counter"
        );
        for (what, result, count) in [
            ("page", "fetched", &self.pages_fetched),
            ("page", "not_modified", &self.pages_not_modified),
            ("page", "not_found", &self.pages_not_found),
            ("page", "failed", &self.pages_failed),
            ("file", "fetched", &self.files_fetched),
            ("file", "failed", &self.files_failed),
            ("file", "refused", &self.files_refused),
        ] {
            let _ = writeln!(
                out,
                "wharf_upstream_requests_total{{what=\"{what}\",result=\"{result}\"}} {}",
                n(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP wharf_upstream_stale_pages_total Kept upstream pages served because the upstream failed.\n# TYPE wharf_upstream_stale_pages_total counter\nwharf_upstream_stale_pages_total {}",
            n(&self.pages_stale_served)
        );
        let _ = writeln!(
            out,
            "# HELP wharf_upstream_files_total Proxied files asked for, by whether they were kept already.\n# TYPE wharf_upstream_files_total counter\nwharf_upstream_files_total{{cache=\"hit\"}} {}\nwharf_upstream_files_total{{cache=\"miss\"}} {}",
            n(&self.files_from_cache),
            n(&self.files_fetched) + n(&self.files_failed) + n(&self.files_refused)
        );
        let _ = writeln!(
            out,
            "# HELP wharf_upstream_bytes_fetched_total Bytes of files fetched from the upstream.\n# TYPE wharf_upstream_bytes_fetched_total counter\nwharf_upstream_bytes_fetched_total {}",
            n(&self.bytes_fetched)
        );
    }
}

pub struct Proxy {
    pub upstream: Upstream,
    ttl: Duration,
    min_age_micros: i64,
    private: PrivatePrefixes,
    /// Pages held in memory, least recently used dropped first past `HELD_PAGES_*`.
    entries: Recent<Arc<Entry>>,
    /// Names the upstream has no project for, or failed to answer for just now: asked again
    /// only after a while, so random names or a failing upstream do not make a fetch each.
    misses: Recent<Miss>,
    page_flights: Arc<Flights>,
    file_flights: Arc<Flights>,
    /// Turns to ask the upstream: a bounded number of pages and files on their way at once.
    page_fetches: tokio::sync::Semaphore,
    file_fetches: Arc<tokio::sync::Semaphore>,
    /// Storage keys of upstream files known to be kept.
    kept_files: RwLock<std::collections::HashSet<String>>,
    /// Files the upstream could not give right now, or sent wrong, by storage key: why, until
    /// when they are answered 502 without asking again.
    file_failures: Recent<FileFailure>,
    pub counters: ProxyCounters,
}

/// Why a name was not answered, remembered for a while.
#[derive(Debug, Clone)]
enum Miss {
    NotFound,
    Failed(String),
}

/// Why a file was not served, remembered for a while.
#[derive(Debug, Clone)]
pub struct FileFailure(pub String);

/// How many kept upstream files a process remembers before it starts afresh.
const KEPT_FILES_MAX: usize = 16_384;
/// Pages held in memory: at most this many, of at most this many bytes in all (estimated).
const HELD_PAGES_MAX: usize = 4_096;
const HELD_PAGES_BYTES: usize = 64 * 1024 * 1024;
/// Misses and file failures remembered.
const MISSES_MAX: usize = 16_384;
/// How long an upstream "no such project" is believed (at most `upstream_ttl`): a project
/// published upstream is seen within this.
const NOT_FOUND_FOR: Duration = Duration::from_secs(60);
/// How long an upstream failure is answered without asking again: long enough that the
/// requests which waited for the failed fetch share its answer, short enough that a
/// recovered upstream is used at once.
pub const FAILURE_FOR: Duration = Duration::from_secs(5);
/// How long a page request waits for the upstream before a kept page past its TTL is
/// served instead (installers time out after 15 s; a hanging upstream must not cost that).
const PAGE_PATIENCE: Duration = Duration::from_secs(2);
/// Upstream files fetched at once by a process, at most; more wait for a turn.
pub const FILE_FETCHES_MAX: usize = 16;
/// Upstream pages fetched at once by a process (each may be up to 20 MiB in memory).
const PAGE_FETCHES_MAX: usize = 32;

impl Proxy {
    pub fn new(settings: &Settings) -> anyhow::Result<Option<Proxy>> {
        let Some(upstream) = Upstream::new(settings)? else {
            return Ok(None);
        };
        Ok(Some(Proxy {
            upstream,
            ttl: settings.upstream_ttl.0,
            min_age_micros: i64::try_from(settings.upstream_min_age.0.as_micros())
                .unwrap_or(i64::MAX),
            private: settings.private_prefixes.clone(),
            entries: Recent::new(HELD_PAGES_MAX, HELD_PAGES_BYTES),
            misses: Recent::new(MISSES_MAX, MISSES_MAX),
            page_flights: Arc::default(),
            file_flights: Arc::default(),
            page_fetches: tokio::sync::Semaphore::new(PAGE_FETCHES_MAX),
            file_fetches: Arc::new(tokio::sync::Semaphore::new(FILE_FETCHES_MAX)),
            kept_files: RwLock::default(),
            file_failures: Recent::new(MISSES_MAX, MISSES_MAX),
            counters: ProxyCounters::default(),
        }))
    }

    /// Whether the upstream may ever be asked about this (normalised) name.
    pub fn may_ask(&self, normalized: &str) -> bool {
        // Only a real normalised name: letters, digits and '-' (no '%', '/', '?', '#' that
        // would reach another upstream path, with the upstream's credentials).
        let is_name = !normalized.is_empty()
            && normalized
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        is_name && !self.private.covers(normalized)
    }

    /// Drops what this process holds of a name (claimed, blocked, or changed elsewhere).
    pub fn forget(&self, normalized: &str) {
        self.entries.remove(normalized);
        self.misses.remove(normalized);
    }

    fn held(&self, normalized: &str) -> Option<Arc<Entry>> {
        self.entries.get(normalized)
    }

    fn held_fresh(&self, normalized: &str) -> Option<Arc<Entry>> {
        self.held(normalized)
            .filter(|e| e.fresh_until > Instant::now())
    }

    fn missed(&self, normalized: &str) -> Option<ProxyError> {
        Some(match self.misses.get(normalized)? {
            Miss::NotFound => ProxyError::NotFound,
            Miss::Failed(why) => ProxyError::Upstream(UpstreamError(why)),
        })
    }

    /// The upstream's page of a name that is not hosted: held, kept, or asked for (once at a
    /// time per name). Past its TTL a kept page is asked for again; if the upstream has not
    /// answered within `PAGE_PATIENCE`, the kept page is served and the answer, when it
    /// comes, is kept for the next request.
    pub async fn entry(
        self: &Arc<Self>,
        db: &Db,
        clock: &Clock,
        normalized: &str,
    ) -> Result<Arc<Entry>, ProxyError> {
        self.entry_within(db, clock, normalized, PAGE_PATIENCE)
            .await
    }

    /// The page to find a file in: a kept page past its TTL will do at once (it is refreshed
    /// in the background), so kept files never wait on a slow upstream.
    pub async fn entry_for_file(
        self: &Arc<Self>,
        db: &Db,
        clock: &Clock,
        normalized: &str,
    ) -> Result<Arc<Entry>, ProxyError> {
        self.entry_within(db, clock, normalized, Duration::ZERO)
            .await
    }

    async fn entry_within(
        self: &Arc<Self>,
        db: &Db,
        clock: &Clock,
        normalized: &str,
        patience: Duration,
    ) -> Result<Arc<Entry>, ProxyError> {
        if !self.may_ask(normalized) {
            return Err(ProxyError::NotFound);
        }
        if let Some(entry) = self.held_fresh(normalized) {
            return Ok(entry);
        }
        if let Some(miss) = self.missed(normalized) {
            return Err(miss);
        }
        // A file request takes a stale page at once, and starts one refresh (not one per
        // request while the upstream is slow).
        if patience.is_zero()
            && let Some(stale) = self.stale(db, normalized).await?
        {
            if !self.page_flights.busy(normalized) {
                let (proxy, db, clock, name) = (
                    self.clone(),
                    db.clone(),
                    clock.clone(),
                    normalized.to_owned(),
                );
                tokio::spawn(async move { proxy.fetch(&db, &clock, &name).await });
            }
            return Ok(stale);
        }
        // The fetch runs in a task of its own: it goes on (and its answer is kept) when this
        // request stops waiting for it.
        let mut fetch = {
            let (proxy, db, clock, name) = (
                self.clone(),
                db.clone(),
                clock.clone(),
                normalized.to_owned(),
            );
            tokio::spawn(async move { proxy.fetch(&db, &clock, &name).await })
        };
        let joined = |done: Result<Result<Arc<Entry>, ProxyError>, tokio::task::JoinError>| {
            done.unwrap_or_else(|e| {
                Err(ProxyError::Upstream(UpstreamError(format!(
                    "the page's fetch failed: {e}"
                ))))
            })
        };
        if !patience.is_zero() {
            if let Ok(done) = tokio::time::timeout(patience, &mut fetch).await {
                return joined(done);
            }
            if let Some(stale) = self.stale(db, normalized).await? {
                return Ok(stale);
            }
        }
        joined(fetch.await)
    }

    /// A page past its TTL, held or kept, if the name is still the upstream's.
    async fn stale(&self, db: &Db, normalized: &str) -> Result<Option<Arc<Entry>>, ProxyError> {
        if let Some(entry) = self.held(normalized) {
            return Ok(Some(entry));
        }
        if crate::packaging::find_project(db, normalized)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let state = store::name_state(db, normalized).await?;
        match state.kept {
            Some(kept) if !state.claimed => Ok(Some(
                self.hold(db, normalized, kept.page, Duration::ZERO).await?,
            )),
            _ => Ok(None),
        }
    }

    /// Asks the upstream for a page (once at a time per name), keeps what it says, and falls
    /// back on the kept page when it fails.
    async fn fetch(
        self: &Arc<Self>,
        db: &Db,
        clock: &Clock,
        normalized: &str,
    ) -> Result<Arc<Entry>, ProxyError> {
        let _flight = self.page_flights.join(normalized).await;
        // Whoever held the flight before has held the page, or remembered why not.
        if let Some(entry) = self.held_fresh(normalized) {
            return Ok(entry);
        }
        if let Some(miss) = self.missed(normalized) {
            return Err(miss);
        }
        // A hosted name is never looked up upstream.
        if crate::packaging::find_project(db, normalized)
            .await?
            .is_some()
        {
            return Err(ProxyError::NotFound);
        }
        let state = store::name_state(db, normalized).await?;
        if state.claimed {
            self.forget(normalized);
            return Err(ProxyError::NotFound);
        }
        let now_micros = clock.now_micros();
        let ttl_micros = i64::try_from(self.ttl.as_micros()).unwrap_or(i64::MAX);
        if let Some(kept) = &state.kept {
            let age = now_micros.saturating_sub(kept.fetched_micros);
            // Another process may have asked the upstream moments ago.
            if (0..ttl_micros).contains(&age) {
                let left = Duration::from_micros((ttl_micros - age) as u64);
                return self.hold(db, normalized, kept.page.clone(), left).await;
            }
        }
        let kept = state.kept;
        let _turn = self.page_fetches.acquire().await;
        let answer = self
            .upstream
            .page(
                normalized,
                kept.as_ref().and_then(|k| k.etag.as_deref()),
                kept.as_ref().and_then(|k| k.last_modified.as_deref()),
            )
            .await;
        match (answer, kept) {
            (Ok(PageAnswer::NotModified), Some(kept)) => {
                self.counters
                    .pages_not_modified
                    .fetch_add(1, Ordering::Relaxed);
                store::touch(db, normalized, now_micros).await?;
                self.hold(db, normalized, kept.page, self.ttl).await
            }
            (Ok(PageAnswer::NotModified), None) => {
                let why = "the upstream answered 304 to an unconditional request";
                self.remember_miss(normalized, Miss::Failed(why.to_owned()), FAILURE_FOR);
                Err(ProxyError::Upstream(UpstreamError(why.to_owned())))
            }
            (
                Ok(PageAnswer::Page {
                    page,
                    etag,
                    last_modified,
                }),
                _,
            ) => {
                self.counters.pages_fetched.fetch_add(1, Ordering::Relaxed);
                let kept = Kept {
                    page,
                    etag,
                    last_modified,
                    fetched_micros: now_micros,
                };
                // Claimed or hosted meanwhile (by another process): not the upstream's now.
                if !store::save_page(db, normalized, &kept).await? {
                    self.forget(normalized);
                    return Err(ProxyError::NotFound);
                }
                self.hold(db, normalized, kept.page, self.ttl).await
            }
            (Ok(PageAnswer::NotFound), _) => {
                // Gone upstream: its files are not served from the kept page either (the name
                // stays one served from the upstream).
                self.counters
                    .pages_not_found
                    .fetch_add(1, Ordering::Relaxed);
                store::drop_page(db, normalized).await?;
                self.entries.remove(normalized);
                self.remember_miss(normalized, Miss::NotFound, NOT_FOUND_FOR.min(self.ttl));
                Err(ProxyError::NotFound)
            }
            (Err(error), Some(kept)) => {
                // Stale-if-error: the kept page, asked for again after a TTL (not on every
                // request while the upstream is down).
                self.counters.pages_failed.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .pages_stale_served
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(project = normalized, "{error}; serving the kept page");
                self.hold(db, normalized, kept.page, self.ttl).await
            }
            (Err(error), None) => {
                self.counters.pages_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(project = normalized, "{error}");
                self.remember_miss(normalized, Miss::Failed(error.0.clone()), FAILURE_FOR);
                Err(ProxyError::Upstream(error))
            }
        }
    }

    fn remember_miss(&self, normalized: &str, miss: Miss, for_: Duration) {
        self.misses
            .insert(normalized, miss, 1, Instant::now() + for_);
    }

    async fn hold(
        &self,
        db: &Db,
        normalized: &str,
        page: ProjectPage,
        fresh_for: Duration,
    ) -> Result<Arc<Entry>, ProxyError> {
        let base = self.upstream.page_url(normalized)?;
        let blocks = store::blocks_of(db, normalized).await?;
        let weight = page_weight(&page);
        let entry = Arc::new(Entry {
            page,
            base,
            fresh_until: Instant::now() + fresh_for,
            blocks,
        });
        // Held past its TTL too: a stale page still finds kept files (`entry_for_file`).
        let until = Instant::now() + fresh_for + self.ttl.max(Duration::from_secs(3600));
        self.entries
            .insert(normalized, entry.clone(), weight, until);
        Ok(entry)
    }

    /// The files of the entry that may be offered now (hashed, old enough, not blocked).
    pub fn offered<'e>(&self, entry: &'e Entry, clock: &Clock) -> Vec<&'e PageFile> {
        let now_micros = clock.now_micros();
        entry
            .page
            .files
            .iter()
            .filter(|f| entry.offers(f, self.min_age_micros, now_micros, &entry.blocks))
            .collect()
    }

    /// The file of a proxied page named by its SHA-256 and file name, if it is offered under
    /// the `blocks` in force now.
    fn offered_file<'e>(
        &self,
        entry: &'e Entry,
        sha256: &str,
        filename: &str,
        clock: &Clock,
        blocks: &[Block],
    ) -> Option<&'e PageFile> {
        let now_micros = clock.now_micros();
        entry.page.files.iter().find(|f| {
            f.filename == filename
                && f.sha256.as_deref() == Some(sha256)
                && entry.offers(f, self.min_age_micros, now_micros, blocks)
        })
    }

    fn file_failure(&self, key: &str) -> Option<String> {
        self.file_failures.get(key).map(|f| f.0)
    }

    /// Remembers why a file was not served: for `FAILURE_FOR` when the upstream or storage
    /// failed, for a TTL when the upstream sent it wrong.
    fn remember_file_failure(&self, key: &str, why: &str, refused: bool) {
        let for_ = if refused { self.ttl } else { FAILURE_FOR };
        self.file_failures
            .insert(key, FileFailure(why.to_owned()), 1, Instant::now() + for_);
    }

    fn is_kept(&self, key: &str) -> bool {
        self.kept_files.read().is_ok_and(|k| k.contains(key))
    }

    fn remember_kept(&self, key: &str) {
        if let Ok(mut kept) = self.kept_files.write() {
            if kept.len() >= KEPT_FILES_MAX {
                kept.clear();
            }
            kept.insert(key.to_owned());
        }
    }
}

/// About the bytes a page takes in memory.
fn page_weight(page: &ProjectPage) -> usize {
    const PER_FILE: usize = 160;
    let files: usize = page
        .files
        .iter()
        .map(|f| {
            PER_FILE
                + f.filename.len()
                + f.url.len()
                + f.requires_python.as_ref().map_or(0, String::len)
                + f.yanked.as_ref().map_or(0, String::len)
                + if f.sha256.is_some() { 64 } else { 0 }
                + if f.metadata_sha256.is_some() { 64 } else { 0 }
        })
        .sum();
    let versions: usize = page.versions.iter().map(|v| 24 + v.len()).sum();
    256 + files + versions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(filename: &str, size: Option<u64>) -> PageFile {
        PageFile {
            filename: filename.to_owned(),
            url: format!("/f/{filename}"),
            sha256: Some("0".repeat(64)),
            requires_python: None,
            yanked: None,
            metadata_sha256: None,
            size,
            upload_time_micros: None,
        }
    }

    fn entry(files: Vec<PageFile>, versions: Vec<String>, blocks: Vec<Block>) -> Entry {
        Entry {
            page: ProjectPage { files, versions },
            base: Url::parse("http://upstream.example/simple/demo/").expect("url"),
            fresh_until: Instant::now(),
            blocks,
        }
    }

    #[test]
    fn an_html_page_has_its_versions_read_from_its_file_names() {
        let html = entry(
            vec![
                file("demo-1.10.tar.gz", None),
                file("demo-1.9-py3-none-any.whl", None),
                file("demo-1.9.tar.gz", None),
                file("demo-2.0rc1.tar.bz2", None),
                file("README.txt", None),
            ],
            Vec::new(),
            Vec::new(),
        );
        assert_eq!(html.versions(), vec!["1.9", "1.10", "2.0rc1"]);
        let blocked = Block {
            normalized_name: "demo".to_owned(),
            version: "1.9".to_owned(),
            reason: "r".to_owned(),
            created_by: "admin".to_owned(),
            created: 0,
        };
        let json = entry(
            Vec::new(),
            vec!["1.9".to_owned(), "2.0".to_owned()],
            vec![blocked],
        );
        assert_eq!(json.versions(), vec!["2.0"]);
    }

    #[test]
    fn a_file_larger_than_any_kept_is_not_offered() {
        let page = entry(Vec::new(), Vec::new(), Vec::new());
        let cap = crate::config::UPLOAD_LIMIT_CAP;
        assert!(page.offers(&file("demo-1.0.tar.gz", Some(cap)), 0, 0, &[]));
        assert!(!page.offers(&file("demo-1.0.tar.gz", Some(cap + 1)), 0, 0, &[]));
        assert!(page.offers(&file("demo-1.0.tar.gz", None), 0, 0, &[]));
    }
}
