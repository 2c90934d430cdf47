//! The management pages of a signed-in user: their account, and the projects they own.

pub mod account;
pub mod history;
pub mod projects;
pub mod tokens;

use axum::response::Response;

use crate::error::AppError;
use crate::web::Web;

fn internal(web: &Web, e: impl std::fmt::Display) -> Response {
    web.error(AppError::internal(e))
}

/// Records an event outside a transaction of its own (for changes that are one statement).
async fn record(
    web: &Web,
    source: crate::events::Source<'_>,
    tag: crate::events::EventTag,
    additional: serde_json::Value,
) {
    web.record_event(source, tag, additional).await;
}
