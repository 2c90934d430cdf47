//! Application state, the router, and the request helpers every handler shares.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{get, post};

use crate::cache::PageCache;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Db;
use crate::events::RequestMeta;
use crate::storage::Storage;
use crate::{api, files, forklift, packaging, simple};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub storage: Storage,
    pub settings: Arc<Settings>,
    pub cache: Arc<PageCache>,
    pub clock: Clock,
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
        Ok(AppState {
            db,
            storage,
            settings: Arc::new(settings),
            cache: Arc::new(PageCache::default()),
            clock: Clock::default(),
        })
    }
}

/// The IP address and user agent of a request, for the audit log.
pub fn request_meta(parts: &Parts) -> RequestMeta {
    let ip_address = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    RequestMeta {
        ip_address,
        user_agent,
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/legacy/",
            post(forklift::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/legacy",
            post(|| async { Redirect::permanent("/legacy/") }),
        )
        .route("/simple/", get(simple::index))
        .route("/simple", get(simple::index_redirect))
        .route("/simple/{project}/", get(simple::project))
        .route("/simple/{project}", get(simple::project_redirect))
        .route("/pypi/{project}/json", get(api::project))
        .route("/pypi/{project}/json/", get(api::project))
        .route("/pypi/{project}/{version}/json", get(api::release))
        .route("/pypi/{project}/{version}/json/", get(api::release))
        .route("/files/{*path}", get(files::serve))
        .route("/help/", get(help))
        .route("/_health", get(health))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(headers: axum::http::HeaderMap) -> axum::response::Response {
    crate::error::AppError::not_found().render(&headers)
}

async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    match sqlx::query("SELECT 1").execute(state.db.pool()).await {
        Ok(_) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            "OK",
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            "database unavailable",
        ),
    }
}

async fn help() -> Html<&'static str> {
    Html(include_str!("help.html"))
}

/// Keeps this process's caches in step with writes made by other processes: polls the
/// journal's newest serial and drops the pages of the projects that changed.
pub fn spawn_cache_refresher(state: AppState) {
    let period = Duration::from_millis(state.settings.cache_refresh_ms.max(50));
    tokio::spawn(async move {
        match packaging::last_serial(&state.db).await {
            Ok(serial) => state.cache.set_seen_serial(serial),
            Err(e) => tracing::warn!(error = %e, "cannot read the journal"),
        }
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            let seen = state.cache.seen_serial();
            let newest = match packaging::last_serial(&state.db).await {
                Ok(serial) => serial,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the journal");
                    continue;
                }
            };
            if newest <= seen {
                continue;
            }
            match packaging::changed_since(&state.db, seen).await {
                Ok(names) => {
                    for name in names {
                        state
                            .cache
                            .invalidate_project(&wharf_packaging::name::normalize(&name));
                    }
                    state.cache.set_seen_serial(newest);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the journal"),
            }
        }
    });
}
