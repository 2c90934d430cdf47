//! Rendered read-path responses (Simple API and JSON API pages) and the files known to be live,
//! kept per project and dropped when the project changes. Changes made by this process drop
//! entries at once; changes made by other processes are noticed by polling the journal's newest
//! serial.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use axum::http::HeaderValue;
use blake2::Digest;
use bytes::Bytes;

/// Which page: the project it belongs to (`None` for index-wide pages) and what it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub project: Option<String>,
    pub kind: &'static str,
    /// E.g. the version of a JSON API release page.
    pub variant: Option<String>,
}

#[derive(Debug)]
pub struct Page {
    pub body: Bytes,
    pub content_type: HeaderValue,
    pub etag: HeaderValue,
    pub serial: i64,
    /// Pages of proxied projects are kept only until their upstream page is due again.
    pub expires: Option<std::time::Instant>,
}

impl Page {
    pub fn new(body: Vec<u8>, content_type: &'static str, serial: i64) -> Page {
        let digest = blake2::Blake2s256::digest(&body);
        let etag = HeaderValue::from_str(&format!("\"{}\"", &hex::encode(digest)[..32]))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Page {
            body: Bytes::from(body),
            content_type: HeaderValue::from_static(content_type),
            etag,
            serial,
            expires: None,
        }
    }

    pub fn expiring(self, at: std::time::Instant) -> Page {
        Page {
            expires: Some(at),
            ..self
        }
    }
}

/// Bytes of expiring pages (proxied projects', whose names anyone may ask for) kept at most;
/// past it the expired go, then all of them (they are rendered again from the proxy's own
/// bounded memory).
const EXPIRING_PAGES_BYTES: usize = 32 * 1024 * 1024;

/// Bytes of hosted projects' pages kept at most (proxied ones have their own budget above,
/// so the two never push each other out): past it an arbitrary half of them goes, again
/// until they fit (the pages asked for often are rendered again at once), so that memory
/// stays flat however many of the index's projects are read, and an invalidation's scan
/// short. The index-wide pages (`/simple/`) are always kept: each lists every project.
const HOSTED_PAGES_BYTES: usize = 32 * 1024 * 1024;

/// How many live files `/files` remembers; past it the map starts afresh (a miss costs one
/// indexed query, and the bound keeps memory flat however large the index grows).
const LIVE_FILES_MAX: usize = 16_384;

/// A file row known to exist: its project (for invalidation) and its filename, and the
/// headers `/files` sends about it (the file's, and its `.metadata`'s), made on first use.
#[derive(Debug)]
struct LiveFile {
    project: Arc<str>,
    filename: Box<str>,
    served: [OnceLock<Arc<FileHeaders>>; 2],
}

/// What `/files` says about a stored file that does not change from one request to the next.
#[derive(Debug)]
pub struct FileHeaders {
    pub etag: HeaderValue,
    pub disposition: HeaderValue,
    /// `Last-Modified`, formatted for the blob's time when first sent.
    pub last_modified: OnceLock<(std::time::SystemTime, HeaderValue)>,
}

#[derive(Debug, Default)]
pub struct PageCache {
    pages: RwLock<HashMap<PageKey, Arc<Page>>>,
    /// Files with a row, by the BLAKE2b-256 digest that names their blob: `/files` serves only
    /// these, so a deleted file stops answering even while its blob is still in storage.
    live_files: RwLock<HashMap<[u8; 32], LiveFile>>,
    /// Bumped by every invalidation, so a page rendered from data read before an invalidation
    /// is never stored after it.
    generation: AtomicU64,
    /// The newest journal serial this process has accounted for.
    seen_serial: AtomicI64,
    /// Bytes of the expiring pages (proxied projects') in `pages`, changed under its lock.
    expiring_bytes: AtomicUsize,
    /// Bytes of every page in `pages`, changed under its lock.
    bytes: AtomicUsize,
    /// Pages asked of `get_or_render`, found and rendered (for `/metrics`).
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PageCache {
    pub fn get(&self, key: &PageKey) -> Option<Arc<Page>> {
        let page = self.pages.read().ok()?.get(key).cloned()?;
        match page.expires {
            Some(at) if at <= std::time::Instant::now() => None,
            _ => Some(page),
        }
    }

    /// The cached page, or the one `render` makes, stored unless the cache was invalidated
    /// while it was rendered (so a page made from stale data is never kept).
    /// The key is copied only to store a page, and the rendering is made only on a miss (in
    /// a box: the caller's future stays small, and a hit does not copy it around).
    pub async fn get_or_render<E, F, R>(&self, key: &PageKey, render: R) -> Result<Arc<Page>, E>
    where
        R: FnOnce() -> F,
        F: Future<Output = Result<Page, E>>,
    {
        if let Some(page) = self.get(key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(page);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let generation = self.generation();
        let page = Arc::new(Box::pin(render()).await?);
        self.insert(key.clone(), page.clone(), generation);
        Ok(page)
    }

    /// Pages found in the cache and pages rendered, since the start.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Call before reading the data a page is rendered from.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores the page unless the cache was invalidated since `generation` was taken.
    pub fn insert(&self, key: PageKey, page: Arc<Page>, generation: u64) {
        let Ok(mut pages) = self.pages.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let size = page.body.len();
        let expiring = page.expires.is_some();
        if expiring && self.expiring_bytes.load(Ordering::Relaxed) + size > EXPIRING_PAGES_BYTES {
            let now = std::time::Instant::now();
            pages.retain(|_, p| p.expires.is_none_or(|at| at > now));
            if expiring_bytes(&pages) + size > EXPIRING_PAGES_BYTES {
                pages.retain(|_, p| p.expires.is_none());
            }
            self.recount(&pages);
        }
        while !expiring && self.hosted_bytes() + size > HOSTED_PAGES_BYTES {
            let before = pages.len();
            let mut keep = false;
            pages.retain(|key, p| {
                if p.expires.is_some() || key.project.is_none() {
                    return true;
                }
                keep = !keep;
                keep
            });
            self.recount(&pages);
            if pages.len() == before {
                break;
            }
        }
        if let Some(old) = pages.insert(key, page) {
            self.bytes.fetch_sub(old.body.len(), Ordering::Relaxed);
            if old.expires.is_some() {
                self.expiring_bytes
                    .fetch_sub(old.body.len(), Ordering::Relaxed);
            }
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if expiring {
            self.expiring_bytes.fetch_add(size, Ordering::Relaxed);
        }
    }

    fn hosted_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed) - self.expiring_bytes.load(Ordering::Relaxed)
    }

    /// Counts the bytes held again, after pages were dropped (under the pages' write lock).
    fn recount(&self, pages: &HashMap<PageKey, Arc<Page>>) {
        self.expiring_bytes
            .store(expiring_bytes(pages), Ordering::Relaxed);
        let all = pages.values().map(|p| p.body.len()).sum();
        self.bytes.store(all, Ordering::Relaxed);
    }

    /// Drops the project's pages, its live files and every index-wide page.
    pub fn invalidate_project(&self, normalized_name: &str) {
        if let Ok(mut pages) = self.pages.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            pages.retain(|key, _| key.project.as_deref().is_some_and(|p| p != normalized_name));
            self.recount(&pages);
        }
        if let Ok(mut files) = self.live_files.write() {
            files.retain(|_, file| &*file.project != normalized_name);
        }
    }

    pub fn invalidate_all(&self) {
        if let Ok(mut pages) = self.pages.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            pages.clear();
            self.recount(&pages);
        }
        if let Ok(mut files) = self.live_files.write() {
            files.clear();
        }
    }

    /// Whether the file named by `digest` and `filename` is known to have a row.
    pub fn is_live_file(&self, digest: &[u8; 32], filename: &str) -> bool {
        self.live_files
            .read()
            .is_ok_and(|files| files.get(digest).is_some_and(|f| &*f.filename == filename))
    }

    /// The headers of the live file named by `digest` and `filename` (of its `.metadata`
    /// when `metadata`), made by `make` the first time; `None` unless it is known to have a
    /// row.
    pub fn live_file_headers(
        &self,
        digest: &[u8; 32],
        filename: &str,
        metadata: bool,
        make: impl FnOnce() -> FileHeaders,
    ) -> Option<Arc<FileHeaders>> {
        let files = self.live_files.read().ok()?;
        let file = files.get(digest).filter(|f| &*f.filename == filename)?;
        Some(
            file.served[usize::from(metadata)]
                .get_or_init(|| Arc::new(make()))
                .clone(),
        )
    }

    /// Remembers a file found in the database, unless the cache was invalidated since
    /// `generation` was taken (the row may have been deleted in between).
    pub fn insert_live_file(
        &self,
        digest: [u8; 32],
        filename: &str,
        project: &str,
        generation: u64,
    ) {
        let Ok(mut files) = self.live_files.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if files.len() >= LIVE_FILES_MAX {
            files.clear();
        }
        files.insert(
            digest,
            LiveFile {
                project: project.into(),
                filename: filename.into(),
                served: Default::default(),
            },
        );
    }

    pub fn seen_serial(&self) -> i64 {
        self.seen_serial.load(Ordering::Acquire)
    }

    pub fn set_seen_serial(&self, serial: i64) {
        self.seen_serial.fetch_max(serial, Ordering::AcqRel);
    }
}

fn expiring_bytes(pages: &HashMap<PageKey, Arc<Page>>) -> usize {
    pages
        .values()
        .filter(|p| p.expires.is_some())
        .map(|p| p.body.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(project: Option<&str>) -> PageKey {
        PageKey {
            project: project.map(str::to_owned),
            kind: "simple",
            variant: None,
        }
    }

    #[test]
    fn invalidation_drops_the_project_and_index_pages_only() {
        let cache = PageCache::default();
        let page = Arc::new(Page::new(b"x".to_vec(), "text/html", 1));
        for k in [key(None), key(Some("a")), key(Some("b"))] {
            cache.insert(k, page.clone(), cache.generation());
        }
        cache.invalidate_project("a");
        assert!(cache.get(&key(None)).is_none());
        assert!(cache.get(&key(Some("a"))).is_none());
        assert!(cache.get(&key(Some("b"))).is_some());
    }

    #[test]
    fn hosted_pages_stay_under_their_bound_however_many_are_read() {
        let cache = PageCache::default();
        let held = |cache: &PageCache| -> usize {
            cache
                .pages
                .read()
                .expect("lock")
                .values()
                .map(|p| p.body.len())
                .sum()
        };
        // The index-wide page, and a proxied one: neither is dropped for hosted pages.
        let root = Arc::new(Page::new(vec![b'r'; 4 * 1024 * 1024], "text/html", 1));
        cache.insert(key(None), root, cache.generation());
        let later = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let proxied = Page::new(vec![b'p'; 1024], "text/html", 1).expiring(later);
        cache.insert(key(Some("proxied")), Arc::new(proxied), cache.generation());
        for n in 0..100 {
            // Pages of mixed sizes, up to 3 MiB.
            let body = vec![b'x'; (n % 3 + 1) * 1024 * 1024];
            let page = Arc::new(Page::new(body, "text/html", 1));
            cache.insert(key(Some(&format!("p{n}"))), page, cache.generation());
            assert_eq!(held(&cache), cache.bytes.load(Ordering::Relaxed));
            assert!(
                cache.hosted_bytes() <= HOSTED_PAGES_BYTES,
                "{} hosted bytes held after {n} pages",
                cache.hosted_bytes()
            );
        }
        assert!(cache.get(&key(None)).is_some());
        assert!(cache.get(&key(Some("proxied"))).is_some());
        assert!(cache.get(&key(Some("p99"))).is_some());
        assert!(cache.hosted_bytes() >= HOSTED_PAGES_BYTES / 4);
        cache.invalidate_project("p99");
        assert_eq!(held(&cache), cache.bytes.load(Ordering::Relaxed));
    }

    #[test]
    fn live_files_are_dropped_with_their_project() {
        let cache = PageCache::default();
        let generation = cache.generation();
        cache.insert_live_file([1; 32], "a-1.0.tar.gz", "a", generation);
        cache.insert_live_file([2; 32], "b-1.0.tar.gz", "b", generation);
        assert!(cache.is_live_file(&[1; 32], "a-1.0.tar.gz"));
        assert!(!cache.is_live_file(&[1; 32], "other-1.0.tar.gz"));
        cache.invalidate_project("a");
        assert!(!cache.is_live_file(&[1; 32], "a-1.0.tar.gz"));
        assert!(cache.is_live_file(&[2; 32], "b-1.0.tar.gz"));
        // A lookup that raced with a deletion is not remembered.
        cache.insert_live_file([1; 32], "a-1.0.tar.gz", "a", generation);
        assert!(!cache.is_live_file(&[1; 32], "a-1.0.tar.gz"));
    }

    #[test]
    fn a_page_rendered_before_an_invalidation_is_not_stored() {
        let cache = PageCache::default();
        let generation = cache.generation();
        cache.invalidate_project("a");
        cache.insert(
            key(Some("a")),
            Arc::new(Page::new(b"old".to_vec(), "text/html", 1)),
            generation,
        );
        assert!(cache.get(&key(Some("a"))).is_none());
    }

    #[test]
    fn expiring_pages_stay_within_their_budget_and_hosted_pages_stay() {
        let cache = PageCache::default();
        cache.insert(
            key(Some("hosted")),
            Arc::new(Page::new(vec![b'h'; 10], "text/html", 1)),
            cache.generation(),
        );
        let later = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let size = 1024 * 1024;
        for i in 0..100 {
            let page = Page::new(vec![b'p'; size], "text/html", 1).expiring(later);
            cache.insert(
                key(Some(&format!("proxied-{i}"))),
                Arc::new(page),
                cache.generation(),
            );
            let held = expiring_bytes(&cache.pages.read().expect("lock"));
            assert!(held <= EXPIRING_PAGES_BYTES, "{held} bytes held");
            assert_eq!(held, cache.expiring_bytes.load(Ordering::Relaxed));
        }
        assert!(cache.get(&key(Some("hosted"))).is_some());
        assert!(cache.get(&key(Some("proxied-99"))).is_some());
        assert!(cache.get(&key(Some("proxied-0"))).is_none());
    }
}
