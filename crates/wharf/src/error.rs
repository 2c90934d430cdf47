//! The one error type of the HTTP layer. It renders itself as clients expect (§1.7 of
//! `spec/index-protocols.md`): the message in the HTTP reason phrase, which twine prints, and in
//! a JSON body with `code`, which uv reads (HTTP/2 has no reason phrase); people get a page.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
    /// Extra headers, such as `Retry-After` or `Location`.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> AppError {
        AppError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found() -> AppError {
        AppError::new(StatusCode::NOT_FOUND, "Not Found")
    }

    pub fn conflict(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::CONFLICT, message)
    }

    pub fn gone(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::GONE, message)
    }

    /// A failure of ours. The cause is logged; the client learns only that it happened.
    pub fn internal(cause: impl std::fmt::Display) -> AppError {
        tracing::error!(error = %cause, "internal error");
        AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> AppError {
        self.headers.push((name, value));
        self
    }

    /// Renders for the client that sent `request_headers`: JSON when it asks for JSON,
    /// otherwise a small accessible HTML page.
    pub fn render(self, request_headers: &HeaderMap) -> Response {
        let accept = request_headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let prefers_json = accept.contains("json") && !accept.starts_with("text/html");
        let mut response = if prefers_json {
            self.json_response()
        } else {
            self.into_response()
        };
        if prefers_json {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        response
    }

    fn code(&self) -> String {
        format!("{} {}", self.status.as_u16(), self.message)
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    fn json_response(self) -> Response {
        let body = serde_json::json!({
            "message": format!("{}\n\n\n{}\n\n", self.title(), self.message),
            "code": self.code(),
            "title": self.title(),
        });
        self.finish(body.to_string())
    }

    fn finish(self, body: String) -> Response {
        let mut response = (self.status, body).into_response();
        if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason_phrase(&self.message)) {
            response.extensions_mut().insert(reason);
        }
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The message as a legal reason phrase: printable ISO-8859-1, other characters replaced.
fn reason_phrase(message: &str) -> Vec<u8> {
    message
        .chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u8,
            '\t' | '\n' | '\r' => b' ',
            _ => b'?',
        })
        .collect()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = crate::templates::error_page(self.status, &self.message).unwrap_or_else(|| {
            let code = html_escape(&self.code());
            let message = html_escape(&self.message);
            format!(
                "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{code}</title></head>\n\
                 <body><main><h1>{}</h1><p>{message}</p></main></body>\n</html>\n",
                self.title()
            )
        });
        let mut response = self.finish(body);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> AppError {
        AppError::failed(&e)
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> AppError {
        match Fault::of(e.chain()) {
            Some(fault) => fault.answer(&format!("{e:#}")),
            None => AppError::internal(format!("{e:#}")),
        }
    }
}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> AppError {
        AppError::failed(&e)
    }
}

impl AppError {
    /// What an error of any type answers: a failing part when it is an error that can name
    /// one (`sqlx`, `anyhow`, I/O), else a 500 that logs it.
    pub fn of<E: std::fmt::Display + 'static>(error: E) -> AppError {
        let any: &dyn std::any::Any = &error;
        if let Some(e) = any.downcast_ref::<sqlx::Error>() {
            return AppError::failed(e);
        }
        if let Some(e) = any.downcast_ref::<std::io::Error>() {
            return AppError::failed(e);
        }
        if let Some(e) = any.downcast_ref::<anyhow::Error>()
            && let Some(fault) = Fault::of(e.chain())
        {
            return fault.answer(&format!("{e:#}"));
        }
        AppError::internal(error)
    }

    /// What a failure of ours answers: 503 with `Retry-After` when a part the index depends
    /// on is away (the database, the file store), 507 when the disk is full, else 500.
    pub fn failed(error: &(dyn std::error::Error + 'static)) -> AppError {
        let chain = std::iter::successors(Some(error), |e| e.source());
        match Fault::of(chain) {
            Some(fault) => fault.answer(&error.to_string()),
            None => AppError::internal(error),
        }
    }
}

/// A failing part, told apart from a bug: the client may try again (503) or the operator must
/// free space (507). Nothing was changed either way: the failed statement or write is undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    DatabaseAway,
    FileStoreAway,
    DiskFull,
}

/// Seconds a client is told to wait when a part is away: PostgreSQL restarts and S3 hiccups
/// take seconds, and the pool reconnects by itself.
const RETRY_AFTER_SECS: &str = "5";

impl Fault {
    /// The fault behind an error: a full disk anywhere in its causes (a local store reports
    /// one as its own error), else the first cause that is a database or file store failure.
    pub fn of<'a>(
        chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>,
    ) -> Option<Fault> {
        let causes: Vec<_> = chain.collect();
        let full = causes.iter().any(|cause| {
            cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            })
        });
        if full {
            return Some(Fault::DiskFull);
        }
        causes.iter().find_map(|cause| {
            if let Some(db) = cause.downcast_ref::<sqlx::Error>() {
                return database_fault(db);
            }
            cause
                .downcast_ref::<object_store::Error>()
                .filter(|store| {
                    matches!(
                        store,
                        object_store::Error::Generic { .. }
                            | object_store::Error::JoinError { .. }
                            | object_store::Error::PermissionDenied { .. }
                            | object_store::Error::Unauthenticated { .. }
                    )
                })
                .map(|_| Fault::FileStoreAway)
        })
    }

    fn answer(self, cause: &str) -> AppError {
        let retry = (
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
        match self {
            Fault::DatabaseAway => {
                tracing::warn!(error = %cause, "the database is unavailable");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The index's database is unavailable right now; nothing was changed. Try again in a few seconds.",
                )
                .with_header(retry.0, retry.1)
            }
            Fault::FileStoreAway => {
                tracing::warn!(error = %cause, "the file store is unavailable");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The index's file store is unavailable right now; nothing was stored. Try again in a few seconds.",
                )
                .with_header(retry.0, retry.1)
            }
            Fault::DiskFull => {
                tracing::error!(error = %cause, "the disk is full");
                AppError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "The index's disk is full; nothing was stored. Try again later, or tell the index's operator.",
                )
            }
        }
    }
}

/// Connection-level failures (PostgreSQL class 08, a server shutting down or starting,
/// a pool that cannot reach it) and SQLite's full disk.
fn database_fault(error: &sqlx::Error) -> Option<Fault> {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => Some(Fault::DatabaseAway),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            if code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03") {
                Some(Fault::DatabaseAway)
            } else if code == "13" {
                // SQLITE_FULL: the database or its journal could not grow.
                Some(Fault::DiskFull)
            } else {
                None
            }
        }
        _ => None,
    }
}

pub use wharf_packaging::readme::html_escape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_phrases_are_latin1_without_line_breaks() {
        assert_eq!(reason_phrase("File already exists"), b"File already exists");
        assert_eq!(reason_phrase("a\r\nb"), b"a  b");
        assert_eq!(reason_phrase("caf\u{e9} \u{2603}"), b"caf\xe9 ?");
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
        );
    }
}
