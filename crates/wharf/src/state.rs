//! The application state every handler and task shares, and how it is opened. It imports no
//! handler module: handlers import it, and `router.rs` puts them together.

use std::sync::Arc;

use crate::admin::metrics::MetricsCache;
use crate::cache::PageCache;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Db;
use crate::email::Mailer;
use crate::signing::ServerKey;
use crate::storage::Storage;
use crate::tokens::cache::TokenCache;
use crate::tokens::leaks::LeakKeys;

/// One `Arc`: `State` extractors clone the state for every request, so a clone costs one
/// count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub db: Db,
    pub storage: Storage,
    pub settings: Arc<Settings>,
    pub cache: Arc<PageCache>,
    pub clock: Clock,
    pub keys: Arc<ServerKey>,
    pub mailer: Arc<Mailer>,
    /// `None` when the base URL has no domain name: WebAuthn is then unavailable.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    pub leak_keys: Arc<LeakKeys>,
    pub token_cache: Arc<TokenCache>,
    pub metrics: Arc<MetricsCache>,
    /// Whether the process is draining, and how many requests it is serving.
    pub lifecycle: Arc<Lifecycle>,
    /// This process's request figures for `/metrics`.
    pub requests: Arc<crate::observe::counters::RequestCounters>,
    /// The upstream index this one proxies (`upstream_url`), if any.
    pub proxy: Option<Arc<crate::proxy::Proxy>>,
    /// Trusted publishing's issuers and their cached keys.
    pub oidc: Arc<crate::oidc::Issuers>,
    /// The identity providers people sign in with (`sso`), and their cached keys.
    pub sso: Arc<crate::accounts::sso::Sso>,
}

/// The process's own state for its operator: draining after SIGTERM (`/_ready` answers 503)
/// and the requests in flight (counted by the access log's middleware).
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: std::sync::atomic::AtomicBool,
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Lifecycle {
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a request until the guard is dropped (also when the client goes away).
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(self.clone())
    }
}

pub struct InFlight(Arc<Lifecycle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl AppState {
    /// Opens the database (running migrations) and the blob store.
    pub async fn open(settings: Settings) -> anyhow::Result<AppState> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create data directory {}: {e}",
                settings.data_dir.display()
            )
        })?;
        let db = Db::connect(&settings.database_url()).await?;
        db.migrate().await?;
        let storage = Storage::open(&settings.storage_url())?;
        let keys = ServerKey::load(settings.secret_key.as_deref(), &settings.data_dir)?;
        // Token rows of earlier versions: root keys sealed, project ids recorded.
        crate::tokens::upgrade_stored(&db, &keys).await?;
        let mailer = Mailer::new(&settings)?;
        let webauthn = match crate::twofactor::webauthn::relying_party(&settings) {
            Ok(rp) => Some(Arc::new(rp)),
            Err(e) => {
                // Info, not warn: shown by `serve`, not by the other commands.
                tracing::info!(
                    "security keys and passkeys are off: {e:#} (serve under a domain name, e.g. --base-url http://localhost:8000)"
                );
                None
            }
        };
        let leak_keys = LeakKeys::load(settings.leak_report_keys.as_deref())?;
        let proxy = crate::proxy::Proxy::new(&settings)?.map(Arc::new);
        let oidc = Arc::new(crate::oidc::Issuers::new(&settings)?);
        let sso = Arc::new(crate::accounts::sso::Sso::new(&settings)?);
        Ok(AppState(Arc::new(Shared {
            db,
            storage,
            settings: Arc::new(settings),
            cache: Arc::new(PageCache::default()),
            clock: Clock::default(),
            keys: Arc::new(keys),
            mailer: Arc::new(mailer),
            webauthn,
            leak_keys: Arc::new(leak_keys),
            token_cache: Arc::default(),
            metrics: Arc::default(),
            lifecycle: Arc::default(),
            requests: Arc::default(),
            proxy,
            oidc,
            sso,
        })))
    }
}

/// The parts of the state the token functions use.
impl<'a> From<&'a AppState> for crate::tokens::Deps<'a> {
    fn from(state: &'a AppState) -> Self {
        crate::tokens::Deps {
            db: &state.db,
            keys: &state.keys,
            cache: &state.token_cache,
            mailer: &state.mailer,
            clock: &state.clock,
        }
    }
}
