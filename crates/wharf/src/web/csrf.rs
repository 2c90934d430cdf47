//! CSRF protection for every state-changing form: a signed double-submit token. The browser
//! holds a random secret in an HttpOnly cookie; each form carries its MAC under the server key
//! (`csrf_token`). A request that changes state must bring both, and must not come from
//! another site (`Sec-Fetch-Site`, `Origin`). The check runs as middleware on the web routes,
//! so no form can forget it.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;
use crate::error::AppError;

pub const COOKIE: &str = "wharf_csrf";
pub const PURPOSE: &str = "csrf";
pub const FIELD: &str = "csrf_token";
/// Forms are small; anything larger is not one of ours.
const MAX_FORM_BYTES: usize = 256 * 1024;

const REFUSED: &str = "This form could not be accepted: it has expired or did not come from this \
                       site. Go back, reload the page and send the form again.";

pub async fn protect(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let refuse = |status: StatusCode, message: &str| {
        let error = AppError::new(status, message);
        error.render(&parts.headers)
    };
    if !same_site(&parts.headers) {
        return refuse(StatusCode::FORBIDDEN, REFUSED);
    }
    let bytes = match to_bytes(body, MAX_FORM_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is too large to be accepted.",
            );
        }
    };
    let token = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == FIELD)
        .map(|(_, value)| value.into_owned());
    let secret = super::cookies(&parts.headers)
        .into_iter()
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned());
    let valid = match (token, secret) {
        (Some(token), Some(secret)) => state.keys.check_tag(PURPOSE, &secret, &token),
        _ => false,
    };
    if !valid {
        return refuse(StatusCode::FORBIDDEN, REFUSED);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// False when the browser tells us the request comes from another site.
fn same_site(headers: &axum::http::HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value(header::HeaderName::from_static("sec-fetch-site"))
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (value(header::ORIGIN), value(header::HOST)) {
        (Some("null"), _) => false,
        (Some(origin), Some(host)) => url::Url::parse(origin).is_ok_and(|o| {
            let origin_host = match (o.host_str(), o.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => return false,
            };
            origin_host.eq_ignore_ascii_case(host)
        }),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(same_site(&headers(&[])));
        assert!(same_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_site(&headers(&[
            ("origin", "http://127.0.0.1:8000"),
            ("host", "127.0.0.1:8000")
        ])));
        assert!(!same_site(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8000")
        ])));
        assert!(!same_site(&headers(&[("origin", "null"), ("host", "x")])));
    }
}
