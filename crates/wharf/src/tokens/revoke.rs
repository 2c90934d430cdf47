//! `POST /_/tokens/revoke`: whoever holds a token can revoke it, with the token itself as the
//! credential (as crates.io allows): the quickest fix for a secret leaked from CI.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::{Removal, leaks};
use crate::app::{AppState, request_meta};
use crate::auth::{Credential, credential, invalid_auth_message};
use crate::error::AppError;

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
