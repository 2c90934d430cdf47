//! `GET /_/oidc/audience`, `POST /_/oidc/mint-token` (also at `/_/oidc/github/mint-token`,
//! Warehouse's older path) and `POST /_/oidc/burn-token`: what `pypa/gh-action-pypi-publish`, `uv publish
//! --trusted-publishing` and GitLab's PyPI templates call. Failures are 422 with PyPI's body,
//! `{"message": "Token request failed", "errors": [{"code", "description"}]}`.

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};

use super::mint::{self, Exchange, Refusal};
use crate::error::AppError;
use crate::ratelimit;
use crate::request::{rate_key, request_meta};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_/oidc/audience", get(audience))
        .route("/_/oidc/mint-token", post(mint_token))
        .route("/_/oidc/github/mint-token", post(mint_token))
        .route("/_/oidc/burn-token", post(burn_token))
}

/// An ID token is a few kilobytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub async fn audience(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({"audience": state.settings.oidc_audience()})).into_response()
}

fn refused(status: StatusCode, errors: &[Refusal]) -> Response {
    let errors: Vec<serde_json::Value> = errors
        .iter()
        .map(|e| serde_json::json!({"code": e.code, "description": e.description}))
        .collect();
    let body = serde_json::json!({"message": "Token request failed", "errors": errors});
    (status, Json(body)).into_response()
}

pub async fn mint_token(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let meta = request_meta(&parts, &state.settings);
    let now_secs = state.clock.now_secs();
    // Failures are counted per address; a success gives its attempt back.
    let key = rate_key(&meta);
    let reservation = match ratelimit::OIDC_MINT_IP
        .reserve(&state.db, &key, now_secs)
        .await
    {
        Ok(Ok(reservation)) => reservation,
        Ok(Err(limited)) => {
            let description = format!(
                "too many failed token requests from this address: try again in {}",
                ratelimit::humanize(limited.retry_after_secs)
            );
            let mut response = refused(
                StatusCode::TOO_MANY_REQUESTS,
                &[Refusal {
                    code: "rate-limited",
                    description,
                }],
            );
            if let Ok(value) = HeaderValue::from_str(&limited.retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Err(e) => return AppError::from(e).render(&parts.headers),
    };
    let Ok(body) = to_bytes(body, MAX_BODY_BYTES).await else {
        let refusal = Refusal {
            code: "invalid-payload",
            description: format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        };
        return refused(StatusCode::UNPROCESSABLE_ENTITY, &[refusal]);
    };
    let audience = state.settings.oidc_audience();
    let location = state.settings.token_location();
    let exchange = Exchange {
        db: &state.db,
        keys: &state.keys,
        issuers: &state.oidc,
        audience: &audience,
        location: &location,
        meta: &meta,
        now_micros: state.clock.now_micros(),
        proxying: state.proxy.is_some(),
        require_2fa: state.settings.require_2fa,
    };
    match mint::mint(&exchange, &body).await {
        Ok(Ok(minted)) => {
            if let Err(e) = reservation.release(&state.db).await {
                tracing::warn!(error = %e, "cannot release a rate-limit reservation");
            }
            Json(serde_json::json!({
                "success": true,
                "token": minted.token,
                "expires": minted.expires,
            }))
            .into_response()
        }
        Ok(Err(refusal)) => {
            tracing::info!(code = refusal.code, reason = %refusal.description, "trusted publishing exchange refused");
            refused(StatusCode::UNPROCESSABLE_ENTITY, &[refusal])
        }
        Err(e) => AppError::from(e).render(&parts.headers),
    }
}

/// `POST /_/oidc/burn-token` with `{"token": "pypi-…"}`: the minted token stops working now
/// (uv calls it once its uploads are done). The token itself is the credential.
pub async fn burn_token(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let invalid = || {
        refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            &[Refusal {
                code: "invalid-token",
                description:
                    "the body must be {\"token\": \"<a token minted by this index>\"}, a live one"
                        .to_owned(),
            }],
        )
    };
    let Ok(body) = to_bytes(body, MAX_BODY_BYTES).await else {
        return invalid();
    };
    let Some(token) = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(str::to_owned))
    else {
        return invalid();
    };
    match super::tokens::burn(&state.db, &state.keys, &token).await {
        Ok(true) => Json(serde_json::json!({"success": true})).into_response(),
        Ok(false) => invalid(),
        Err(e) => AppError::from(e).render(&parts.headers),
    }
}
