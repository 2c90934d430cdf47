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

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::signing::ServerKey;
use crate::state::AppState;

pub const COOKIE: &str = "wharf_csrf";
pub const PURPOSE: &str = "csrf";
pub const FIELD: &str = "csrf_token";
const SECRET_BYTES: usize = 32;
const SECRET_CHARS: usize = 43;
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
    let jar = super::cookies(&parts.headers);
    let cookie = |name: &'static str| {
        let name = super::cookie_name(&state.settings, name);
        jar.iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    };
    let secret = cookie(COOKIE).filter(|secret| well_formed(secret));
    let session = cookie(crate::accounts::session::COOKIE);
    let valid = match (token, secret) {
        (Some(token), Some(secret)) => {
            let expected = self::token(&state.keys, &secret, session.as_deref());
            expected.as_bytes().ct_eq(token.as_bytes()).into()
        }
        _ => false,
    };
    if !valid {
        return refuse(StatusCode::FORBIDDEN, REFUSED);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A new random secret for the CSRF cookie.
pub fn new_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; SECRET_BYTES]>())
}

/// Whether a CSRF cookie is one of ours in form: 32 bytes, URL-safe base64 without padding.
pub fn well_formed(secret: &str) -> bool {
    secret.len() == SECRET_CHARS
        && URL_SAFE_NO_PAD
            .decode(secret)
            .is_ok_and(|bytes| bytes.len() == SECRET_BYTES)
}

/// The token a form carries: a MAC of the browser's secret and, when signed in, of the session
/// cookie too, so a token from before signing in or from another session is refused.
pub fn token(keys: &ServerKey, secret: &str, session: Option<&str>) -> String {
    match session {
        // The secret is base64 (no `.`), so the two parts cannot be confused.
        Some(session) => keys.tag(PURPOSE, &format!("{secret}.{session}")),
        None => keys.tag(PURPOSE, secret),
    }
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
    fn secrets_are_checked_and_tokens_bound_to_the_session() {
        let secret = new_secret();
        assert!(well_formed(&secret));
        for bad in [
            "",
            "short",
            &"A".repeat(42),
            &"A".repeat(44),
            &format!("{}!", &secret[..42]),
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
        let keys = ServerKey::from_bytes([7; 32]);
        let signed_out = token(&keys, &secret, None);
        let signed_in = token(&keys, &secret, Some("session-a"));
        assert_ne!(signed_out, signed_in);
        assert_ne!(signed_in, token(&keys, &secret, Some("session-b")));
        assert_eq!(signed_in, token(&keys, &secret, Some("session-a")));
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
