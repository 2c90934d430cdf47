//! The route table: the index API (uploads, Simple, JSON, files, token endpoints) and the
//! pages for people, with the layers each gets. Areas that own their URLs expose `routes()`;
//! the account, two-factor and manage pages are listed here.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Router, middleware};

use crate::config::ReadAccess;
use crate::state::AppState;
use crate::{admin, api, files, forklift, simple, tokens, web};

pub fn router(state: AppState) -> Router {
    // What tools and scripts call: no CSRF check, no page headers.
    let reads = Router::new()
        .merge(simple::routes())
        .merge(api::routes())
        .merge(files::routes())
        .merge(crate::proxy::files::routes());
    // A private index: every read needs a credential, checked ahead of the page cache.
    let reads = match state.settings.read_access {
        ReadAccess::Public => reads,
        ReadAccess::Users => reads.route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::reader::require_reader,
        )),
    };
    let index = Router::new()
        .merge(forklift::routes())
        .merge(reads)
        .merge(admin::metrics_routes())
        .merge(tokens::views::routes())
        .merge(crate::oidc::views::routes())
        .route("/_health", get(health))
        .route("/_ready", get(ready));
    // One layer: axum wraps every route once per `layer` call (a service and a future per
    // request each), so everything every response gets is in this one (`observe`): request
    // id, access line, figures, `nosniff`, HSTS on an https site, a 500 for a panic.
    let every_response = crate::observe::AccessLogLayer::new(&state);
    let router = index.merge(web_router(state.clone())).layer(every_response);
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
        .route("/account/sso/{name}/login", get(account::sso::start))
        .route("/account/sso/{name}/callback", get(account::sso::callback))
        .route("/account/sso/finish", get(account::sso::finish))
        .route("/account/sso/finish/create", post(account::sso::create))
        .route("/account/sso/finish/link", post(account::sso::link))
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
        .route(
            "/manage/account/sso/unlink",
            post(manage_account::unlink_sso),
        )
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
            "/manage/account/tokens/{id}/replace",
            post(manage_tokens::replace),
        )
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
        .route(
            "/manage/project/{project}/publishing/",
            get(manage::publishing),
        )
        .route(
            "/manage/project/{project}/publishing/add",
            post(manage::add_publisher),
        )
        .route(
            "/manage/project/{project}/publishing/remove",
            post(manage::remove_publisher),
        )
        .route(
            "/manage/project/{project}/publishing/trusted-only",
            post(manage::set_trusted_only),
        )
        .route(
            "/manage/account/publishing/",
            get(crate::manage::publishing::page),
        )
        .route(
            "/manage/account/publishing/add",
            post(crate::manage::publishing::add),
        )
        .route(
            "/manage/account/publishing/remove",
            post(crate::manage::publishing::remove),
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
        .merge(admin::routes())
        .fallback(views::not_found)
        .layer(middleware::from_fn_with_state(state, web::csrf::protect))
        .layer(middleware::from_fn(web::security_headers))
}

/// The readiness probe: 503 while the process drains after SIGTERM (and, from the starting
/// router, while it migrates), so a load balancer sends it no new requests.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    if state.lifecycle.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, no_store, "draining")
    } else {
        (StatusCode::OK, no_store, "ready")
    }
}

/// What answers while the database migrates, before the state exists: 503 on every path,
/// `/_health` and `/_ready` included, so nothing that waits for a 200 starts too early.
pub fn starting() -> Router {
    Router::new().fallback(|| async {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (header::RETRY_AFTER, HeaderValue::from_static("5")),
            ],
            "wharf is starting (migrating the database): try again in a few seconds",
        )
    })
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
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
