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
    let recorded = async {
        let mut conn = web.state.db.pool().acquire().await?;
        crate::events::record(&mut conn, source, tag, &web.meta, web.now(), additional).await
    };
    if let Err(e) = recorded.await {
        tracing::error!(error = %e, "cannot record an event");
    }
}
