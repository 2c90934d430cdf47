//! Application state, the router, and the request helpers every handler shares.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Router, middleware};

use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::cache::PageCache;
use crate::clock::Clock;
use crate::config::{Settings, TrustedProxies};
use crate::db::Db;
use crate::email::Mailer;
use crate::error::AppError;
use crate::events::RequestMeta;
use crate::signing::ServerKey;
use crate::storage::Storage;
use crate::{api, files, forklift, packaging, simple, web};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub storage: Storage,
    pub settings: Arc<Settings>,
    pub cache: Arc<PageCache>,
    pub clock: Clock,
    pub keys: Arc<ServerKey>,
    pub mailer: Arc<Mailer>,
    /// `None` when the base URL has no domain name: WebAuthn is then unavailable.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    pub leak_keys: Arc<crate::tokens::leaks::LeakKeys>,
    pub token_cache: Arc<crate::tokens::cache::TokenCache>,
    pub metrics: Arc<crate::admin::stats::MetricsCache>,
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
        let leak_keys = crate::tokens::leaks::LeakKeys::load(settings.leak_report_keys.as_deref())?;
        Ok(AppState {
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
        })
    }
}

/// The IP address and user agent of a request, for the audit log and the rate limits.
pub fn request_meta(parts: &Parts, settings: &Settings) -> RequestMeta {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let ip_address =
        client_ip(peer, &parts.headers, &settings.trusted_proxies).map(|ip| ip.to_string());
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

/// The client's address: the socket peer, unless the peer is one of our trusted proxies; then
/// the right-most address in `X-Forwarded-For` (or, without it, `Forwarded: for=`) that is not
/// a trusted proxy itself. Everything left of that was written by the client and may be
/// forged. A proxy that writes `Forwarded` only must drop a client's `X-Forwarded-For`.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let hops: Vec<Option<IpAddr>> = if headers.contains_key(X_FORWARDED_FOR) {
        headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
            .map(forwarded_address)
            .collect()
    } else {
        headers
            .get_all(header::FORWARDED)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
            .map(|element| {
                let value = element.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("for").then_some(value)
                });
                value.and_then(forwarded_address)
            })
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        // An entry that is no address (`unknown`, garbage) ends the chain we can believe.
        let Some(hop) = hop else { break };
        client = hop;
        if !trusted.contains(hop) {
            break;
        }
    }
    Some(client)
}

const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");

/// One address of a forwarding header: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `"[2001:db8::1]:4711"`.
fn forwarded_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let inner = text.strip_prefix('[')?.split(']').next()?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|ip| IpAddr::V6(ip).to_canonical())
}

/// The key a request's address is counted under by the per-IP rate limits: the address, or
/// for IPv6 its /64 network (one subscriber usually has a whole /64 to pick addresses from).
pub fn rate_key(meta: &RequestMeta) -> String {
    match meta.ip_address.as_deref().map(str::parse::<IpAddr>) {
        Some(Ok(IpAddr::V6(ip))) => ipnet::Ipv6Net::new(ip, 64)
            .map(|net| net.trunc().to_string())
            .unwrap_or_else(|_| ip.to_string()),
        Some(Ok(IpAddr::V4(ip))) => ip.to_string(),
        Some(Err(_)) | None => meta.ip_address.clone().unwrap_or_default(),
    }
}

pub fn router(state: AppState) -> Router {
    let index = Router::new()
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
        .route("/_health", get(health))
        .route("/metrics", get(crate::admin::stats::metrics))
        .route("/_/tokens/revoke", post(crate::tokens::revoke::revoke))
        .route(
            "/_/secrets/disclose-token",
            post(crate::tokens::leaks::disclose),
        )
        .route(
            "/_/github/disclose-token",
            post(crate::tokens::leaks::disclose),
        );
    let https = state.settings.is_https();
    let router = index
        .merge(web_router(state.clone()))
        .layer(CatchPanicLayer::custom(|_| {
            AppError::internal("a request handler panicked").into_response()
        }))
        // Every response, pages or not (index, files, errors): no content sniffing. The
        // value is static, so this costs no allocation on the read path.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    // On an https site, browsers must never come back over plain http.
    let router = if https {
        router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ))
    } else {
        router
    };
    router.with_state(state)
}

/// The pages for people: CSRF-checked forms and security headers on every response.
fn web_router(state: AppState) -> Router<AppState> {
    use crate::accounts::views as account;
    use crate::manage::{account as manage_account, projects as manage, tokens as manage_tokens};
    use crate::twofactor::views as twofa;
    use crate::web::views;
    Router::new()
        .route("/", get(views::home))
        .route("/search/", get(views::search))
        .route("/project/{project}/", get(views::project))
        .route("/project/{project}/{version}/", get(views::release))
        .route("/user/{username}/", get(views::user))
        .route("/help/", get(web::help))
        .route("/static/{file}", get(web::static_file))
        .route(
            "/account/register/",
            get(account::register_page).post(account::register),
        )
        .route(
            "/account/login/",
            get(account::login_page).post(account::login),
        )
        .route("/account/logout/", post(account::logout))
        .route("/account/verify-email/", get(account::verify_email))
        .route(
            "/account/reset-password/",
            get(account::reset_request_page).post(account::reset_request),
        )
        .route(
            "/account/reset-password/confirm/",
            get(account::reset_page).post(account::reset),
        )
        .route("/account/reauthenticate/", post(account::reauthenticate))
        .route("/account/two-factor/", get(twofa::step_page))
        .route("/account/two-factor/totp", post(twofa::totp_submit))
        .route(
            "/account/two-factor/webauthn/options",
            post(twofa::webauthn_options),
        )
        .route("/account/two-factor/webauthn", post(twofa::webauthn_submit))
        .route(
            "/account/recovery-code/",
            get(twofa::recovery_page).post(twofa::recovery_submit),
        )
        .route("/account/passkey/options", post(twofa::passkey_options))
        .route("/account/passkey", post(twofa::passkey_submit))
        .route("/manage/account/two-factor/", get(twofa::manage_page))
        .route(
            "/manage/account/totp-provision",
            get(twofa::totp_provision_page).post(twofa::totp_provision),
        )
        .route("/manage/account/totp/delete", post(twofa::totp_remove))
        .route(
            "/manage/account/recovery-codes/",
            get(twofa::recovery_codes_page),
        )
        .route(
            "/manage/account/recovery-codes/generate",
            post(twofa::recovery_codes_generate),
        )
        .route(
            "/manage/account/recovery-codes/burn",
            get(twofa::recovery_burn_page).post(twofa::recovery_burn),
        )
        .route(
            "/manage/account/webauthn-provision",
            get(twofa::webauthn_provision_page),
        )
        .route(
            "/manage/account/webauthn-provision/options",
            post(twofa::webauthn_register_options),
        )
        .route(
            "/manage/account/webauthn-provision/validate",
            post(twofa::webauthn_register),
        )
        .route(
            "/manage/account/webauthn/delete",
            post(twofa::webauthn_remove),
        )
        .route("/manage/account/", get(manage_account::page))
        .route("/manage/account/email/add", post(manage_account::add_email))
        .route(
            "/manage/account/email/remove",
            post(manage_account::remove_email),
        )
        .route(
            "/manage/account/email/primary",
            post(manage_account::make_primary),
        )
        .route(
            "/manage/account/email/verify",
            post(manage_account::resend_verification),
        )
        .route(
            "/manage/account/password",
            post(manage_account::change_password),
        )
        .route("/manage/account/delete", post(manage_account::delete))
        .route(
            "/manage/account/tokens/",
            get(manage_tokens::page).post(manage_tokens::create),
        )
        .route("/manage/account/tokens/delete", post(manage_tokens::delete))
        .route("/manage/account/tokens/{id}/", get(manage_tokens::detail))
        .route(
            "/manage/project/{project}/tokens/",
            get(manage_tokens::for_project),
        )
        .route(
            "/manage/account/history/",
            get(crate::manage::history::account),
        )
        .route(
            "/manage/project/{project}/history/",
            get(crate::manage::history::project),
        )
        .route("/admin/events/", get(crate::admin::events))
        .route("/admin/stats/", get(crate::admin::stats::page))
        .route("/manage/projects/", get(manage::list))
        .route(
            "/manage/invitations/{id}/{answer}",
            post(manage::answer_invitation),
        )
        .route("/manage/project/{project}/releases/", get(manage::releases))
        .route(
            "/manage/project/{project}/release/{version}/",
            get(manage::release),
        )
        .route(
            "/manage/project/{project}/release/{version}/yank",
            post(manage::yank),
        )
        .route(
            "/manage/project/{project}/release/{version}/unyank",
            post(manage::unyank),
        )
        .route(
            "/manage/project/{project}/release/{version}/delete",
            post(manage::delete_release),
        )
        .route(
            "/manage/project/{project}/release/{version}/file/delete",
            post(manage::delete_file),
        )
        .route(
            "/manage/project/{project}/collaboration/",
            get(manage::collaboration),
        )
        .route(
            "/manage/project/{project}/collaboration/invite",
            post(manage::invite),
        )
        .route(
            "/manage/project/{project}/collaboration/role",
            post(manage::change_role),
        )
        .route(
            "/manage/project/{project}/collaboration/remove",
            post(manage::remove_role),
        )
        .route(
            "/manage/project/{project}/collaboration/revoke",
            post(manage::revoke_invitation),
        )
        .route("/manage/project/{project}/settings/", get(manage::settings))
        .route(
            "/manage/project/{project}/settings/2fa",
            post(manage::set_requires_2fa),
        )
        .route(
            "/manage/project/{project}/delete",
            post(manage::delete_project),
        )
        .fallback(views::not_found)
        .layer(middleware::from_fn_with_state(state, web::csrf::protect))
        .layer(middleware::from_fn(web::security_headers))
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
            if let Err(e) = state.token_cache.refresh(&state.db).await {
                tracing::warn!(error = %e, "cannot read the token revocations");
            }
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
