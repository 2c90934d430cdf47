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
        AppError::internal(e)
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> AppError {
        AppError::internal(format!("{e:#}"))
    }
}

pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(ch),
        }
    }
    out
}

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
