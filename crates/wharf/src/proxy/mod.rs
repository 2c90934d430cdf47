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
pub mod store;
pub mod upstream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use url::Url;
use wharf_packaging::index_page::{PageFile, ProjectPage};
use wharf_packaging::version::Version;

use flights::Flights;
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
    /// PEP 700 versions, less those blocked.
    pub fn versions(&self) -> Vec<&str> {
        if self.blocks.iter().any(|b| b.version.is_empty()) {
            return Vec::new();
        }
        self.page
            .versions
            .iter()
            .map(String::as_str)
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
        safe_name
            && file.sha256.is_some()
            && old_enough
            && !blocks
                .iter()
                .any(|b| b.covers(version_of(&file.filename).as_ref()))
    }
}

/// The version a distribution file name carries, if it is one.
pub fn version_of(filename: &str) -> Option<Version> {
    use wharf_packaging::filename::{WheelFilename, parse_sdist_filename};
    match WheelFilename::parse(filename) {
        Ok(wheel) => Some(wheel.version),
        Err(_) => parse_sdist_filename(filename).ok().map(|(_, v)| v),
    }
}

/// Figures for `/metrics`.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    pub pages_fetched: AtomicU64,
    pub pages_not_modified: AtomicU64,
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
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    page_flights: Arc<Flights>,
    file_flights: Arc<Flights>,
    /// Storage keys of upstream files known to be kept.
    kept_files: RwLock<std::collections::HashSet<String>>,
    /// Files the upstream sent wrong, by storage key: why, and until when they are refused
    /// without asking again.
    refusals: RwLock<HashMap<String, (String, Instant)>>,
    pub counters: ProxyCounters,
}

/// How many kept upstream files a process remembers before it starts afresh.
const KEPT_FILES_MAX: usize = 16_384;

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
            entries: RwLock::default(),
            page_flights: Arc::default(),
            file_flights: Arc::default(),
            kept_files: RwLock::default(),
            refusals: RwLock::default(),
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
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(normalized);
        }
    }

    fn held(&self, normalized: &str) -> Option<Arc<Entry>> {
        self.entries.read().ok()?.get(normalized).cloned()
    }

    /// The upstream's page of a name that is not hosted: held, kept, or asked for (once at a
    /// time per name), and the kept copy when the upstream fails.
    pub async fn entry(
        &self,
        db: &Db,
        clock: &Clock,
        normalized: &str,
    ) -> Result<Arc<Entry>, ProxyError> {
        if !self.may_ask(normalized) {
            return Err(ProxyError::NotFound);
        }
        if let Some(entry) = self
            .held(normalized)
            .filter(|e| e.fresh_until > Instant::now())
        {
            return Ok(entry);
        }
        let _flight = self.page_flights.join(normalized).await;
        if let Some(entry) = self
            .held(normalized)
            .filter(|e| e.fresh_until > Instant::now())
        {
            return Ok(entry);
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
            return Err(ProxyError::NotFound);
        }
        let now_micros = clock.now_micros();
        let ttl_micros = i64::try_from(self.ttl.as_micros()).unwrap_or(i64::MAX);
        // Another process may have asked the upstream moments ago.
        if let Some(kept) = &state.kept {
            let age = now_micros.saturating_sub(kept.fetched_micros);
            if (0..ttl_micros).contains(&age) {
                let left = Duration::from_micros((ttl_micros - age) as u64);
                return self.hold(db, normalized, kept.page.clone(), left).await;
            }
        }
        let kept = state.kept;
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
            (Ok(PageAnswer::NotModified), None) => Err(ProxyError::Upstream(UpstreamError(
                "the upstream answered 304 to an unconditional request".to_owned(),
            ))),
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
                store::save_page(db, normalized, &kept).await?;
                self.hold(db, normalized, kept.page, self.ttl).await
            }
            (Ok(PageAnswer::NotFound), _) => {
                self.forget(normalized);
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
                Err(ProxyError::Upstream(error))
            }
        }
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
        let entry = Arc::new(Entry {
            page,
            base,
            fresh_until: Instant::now() + fresh_for,
            blocks,
        });
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(normalized.to_owned(), entry.clone());
        }
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

    fn refusal(&self, key: &str) -> Option<String> {
        let refusals = self.refusals.read().ok()?;
        let (why, until) = refusals.get(key)?;
        (*until > Instant::now()).then(|| why.clone())
    }

    fn remember_refusal(&self, key: &str, why: &str) {
        if let Ok(mut refusals) = self.refusals.write() {
            let now = Instant::now();
            refusals.retain(|_, (_, until)| *until > now);
            refusals.insert(key.to_owned(), (why.to_owned(), now + self.ttl));
        }
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
