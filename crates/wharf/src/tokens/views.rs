//! The token endpoints that are not pages: a secret scanner's leak reports
//! (`POST /_/secrets/disclose-token`, `/_/github/disclose-token`) and `POST /_/tokens/revoke`,
//! where whoever holds a token can revoke it with the token itself as the credential (as
//! crates.io allows): the quickest fix for a secret leaked from CI.

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use minijinja::context;
use serde::Deserialize;

use super::{Removal, leaks};
use crate::auth::{Credential, credential, invalid_auth_message};
use crate::error::AppError;
use crate::request::request_meta;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_/tokens/revoke", post(revoke))
        .route("/_/secrets/disclose-token", post(disclose))
        .route("/_/github/disclose-token", post(disclose))
}

/// A scanner's batch of findings is small.
const MAX_REPORT_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
struct Report {
    token: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    url: String,
}

/// `POST /_/secrets/disclose-token` and `/_/github/disclose-token`: 204 whatever the outcome
/// (the scanner learns nothing about our tokens), 400 for a bad signature or body, 404
/// without the signature headers.
pub async fn disclose(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let Ok(body) = to_bytes(body, MAX_REPORT_BYTES).await else {
        return AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "The report is too large.")
            .render(headers);
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (origin, identifier, signature) = match (
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
        header("gosst-public-key-identifier"),
        header("gosst-public-key-signature"),
    ) {
        (Some(id), Some(sig), _, _) => ("GitHub", id, sig),
        (_, _, Some(id), Some(sig)) => ("Deps.dev", id, sig),
        _ => return AppError::not_found().render(headers),
    };
    let bad = |message: &str| AppError::bad_request(message).render(headers);
    if let Err(message) = leaks::verify(&state.leak_keys, identifier, signature, &body).await {
        return bad(message);
    }
    let Ok(reports) = serde_json::from_slice::<Vec<serde_json::Value>>(&body) else {
        return bad("The body must be a JSON list of reports.");
    };
    let meta = request_meta(&parts, &state.settings);
    for report in reports {
        let Ok(report) = serde_json::from_value::<Report>(report) else {
            continue;
        };
        if report.kind != "pypi_api_token" {
            continue;
        }
        let leaked =
            leaks::revoke_leaked((&state).into(), &report.token, &report.url, origin, &meta);
        if let Err(e) = leaked.await {
            tracing::error!(error = %e, "cannot revoke a leaked token");
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /_/tokens/revoke`, with the token to revoke as the credential.
pub async fn revoke(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let refuse = || AppError::forbidden(invalid_auth_message(&state)).render(&parts.headers);
    let Credential::Token(token) = credential(&parts.headers) else {
        return refuse();
    };
    let presented = match super::lookup(&state.db, &state.keys, &state.token_cache, &token).await {
        Ok(Ok(presented)) if presented.check_signature().is_ok() => presented,
        Ok(_) => return refuse(),
        Err(e) => return AppError::from(e).render(&parts.headers),
    };
    let info = match super::find(&state.db, &presented.id).await {
        Ok(Some(info)) => info,
        Ok(None) => return refuse(),
        Err(e) => return AppError::from(e).render(&parts.headers),
    };
    let meta = request_meta(&parts, &state.settings);
    match super::delete(
        &state,
        &info,
        Removal::SelfRevoked,
        &meta,
        state.clock.now_micros(),
    )
    .await
    {
        Ok(true) => {
            leaks::notify(
                &state,
                &info,
                "token-deleted",
                context! { revoked_by_itself => true },
                &meta,
            )
            .await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => refuse(),
        Err(e) => AppError::from(e).render(&parts.headers),
    }
}
