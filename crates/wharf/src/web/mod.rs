//! The web UI's machinery: templates, the `Web` extractor every page handler takes (session,
//! CSRF token, flash messages), redirects, form errors, security headers and error pages.
//! Pages are server-rendered and work without JavaScript.

pub mod csrf;
mod flash;
pub mod forms;
mod page;
pub mod views;

pub use page::{OrPage, Page};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::borrow::Cow;

use cookie::{Cookie, SameSite};
use minijinja::{Value, context};

pub use flash::Flash;
pub use forms::FormErrors;

use crate::accounts::User;
use crate::accounts::session::{self, Session};
use crate::actor::Actor;
use crate::error::AppError;
use crate::events::RequestMeta;
use crate::request::request_meta;
use crate::state::AppState;

// Kept here for the page modules that name them as `web::…`; they live in `crate::site` and
// `crate::templates` so that domain modules need not import `web`.
pub use crate::site::{SITE_NAME, urlencode};
pub use crate::templates;
pub use crate::templates::error_page;

/// What every page handler starts from: who is signed in, the CSRF token for its forms, the
/// flash messages to show, and the request's IP and user agent for the audit log.
pub struct Web {
    pub state: AppState,
    pub session: Option<Session>,
    pub meta: RequestMeta,
    /// The path and query of this request (where to come back to after signing in).
    pub here: String,
    csrf_cookie: String,
    /// The session cookie, when it names a live session (CSRF tokens are bound to it).
    session_cookie: Option<String>,
    flashes: Vec<Flash>,
    had_flash_cookie: bool,
    /// Cookies to set on the response.
    cookies: Vec<Cookie<'static>>,
    request_headers: HeaderMap,
}

impl FromRequestParts<AppState> for Web {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Web, Response> {
        let jar = cookies(&parts.headers);
        let get = |name: &'static str| {
            let name = cookie_name(&state.settings, name);
            jar.iter()
                .find(|c| c.name() == name)
                .map(|c| c.value().to_owned())
        };
        let now = state.clock.now_micros();
        let mut web = Web {
            state: state.clone(),
            session: None,
            meta: request_meta(parts, &state.settings),
            here: parts
                .uri
                .path_and_query()
                .map_or("/".to_owned(), |p| p.as_str().to_owned()),
            csrf_cookie: String::new(),
            session_cookie: None,
            flashes: Vec::new(),
            had_flash_cookie: false,
            cookies: Vec::new(),
            request_headers: parts.headers.clone(),
        };
        if let Some(value) = get(session::COOKIE) {
            web.session = session::load(&state.db, &value, now)
                .await
                .map_err(|e| AppError::from(e).render(&parts.headers))?;
            if web.session.is_none() {
                // A stale cookie: drop it so the browser stops sending it.
                web.cookies.push(web.removal(session::COOKIE));
            } else {
                web.session_cookie = Some(value);
            }
        }
        // A missing or malformed secret is replaced (the form it came with, if any, has been
        // refused by the CSRF check already).
        match get(csrf::COOKIE).filter(|v| csrf::well_formed(v)) {
            Some(value) => web.csrf_cookie = value,
            None => web.rotate_csrf(),
        }
        if let Some(value) = get(flash::COOKIE) {
            web.had_flash_cookie = true;
            web.flashes = flash::decode(&state.keys, &value);
        }
        if let Some(response) = web.two_factor_first().await {
            return Err(response);
        }
        Ok(web)
    }
}

/// The request's cookies, leniently parsed.
pub fn cookies(headers: &HeaderMap) -> Vec<Cookie<'static>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()).filter_map(Result::ok))
        .map(Cookie::into_owned)
        .collect()
}

impl Web {
    /// Where every account must have 2FA, a signed-in user without it is sent to set it up
    /// before anything else (as PyPI does); account pages stay reachable.
    async fn two_factor_first(&self) -> Option<Response> {
        let session = self.session.as_ref()?;
        if !self.state.settings.require_2fa {
            return None;
        }
        let path = self.here.split('?').next().unwrap_or_default();
        let exempt = ["/manage/account/", "/account/", "/static/", "/help/"];
        if exempt.iter().any(|prefix| path.starts_with(prefix)) {
            return None;
        }
        match crate::twofactor::methods(&self.state.db, &session.user.id).await {
            Ok(methods) if methods.any() => None,
            Ok(_) => Some(self.redirect_with(
                "/manage/account/two-factor/",
                Flash::error(
                    "This index requires two-factor authentication: set it up before you go on.",
                ),
            )),
            Err(e) => Some(AppError::internal(e).into_response()),
        }
    }

    /// Records an event of this request on its own (best effort: the change it describes has
    /// happened already, so a failure is logged, not raised).
    pub async fn record_event(
        &self,
        source: crate::events::Source<'_>,
        tag: crate::events::EventTag,
        additional: serde_json::Value,
    ) {
        let recorded = async {
            let mut conn = self.state.db.pool().acquire().await?;
            crate::events::record(
                &mut conn,
                source,
                tag,
                &self.meta,
                self.now_micros(),
                additional,
            )
            .await
        };
        if let Err(e) = recorded.await {
            tracing::error!(error = %e, "cannot record an event");
        }
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.request_headers
    }

    pub fn user(&self) -> Option<&User> {
        self.session.as_ref().map(|s| &s.user)
    }

    pub fn now_micros(&self) -> i64 {
        self.state.clock.now_micros()
    }

    /// Who makes a change through this request, with the request's address and time, for
    /// the store functions that record events on someone's behalf.
    pub fn actor<'a>(&'a self, user: &'a User) -> Actor<'a> {
        Actor {
            user,
            meta: &self.meta,
            now_micros: self.now_micros(),
        }
    }

    pub fn now_secs(&self) -> i64 {
        self.state.clock.now_secs()
    }

    /// The signed-in session, or a redirect to the sign-in page that comes back here.
    pub fn require_session(&self) -> Result<&Session, Response> {
        match &self.session {
            Some(session) => Ok(session),
            None => Err(
                Redirect::to(&format!("/account/login/?next={}", urlencode(&self.here)))
                    .into_response(),
            ),
        }
    }

    /// The index's own pages (projects, releases, search, users, home): on a private index
    /// (`read_access = "users"`) for signed-in people only, others go to the sign-in page.
    pub fn require_reader(&self) -> Result<(), Response> {
        if self.state.settings.read_access == crate::config::ReadAccess::Users {
            self.require_session()?;
        }
        Ok(())
    }

    /// For sensitive pages and actions: the session, if the password was entered in the last
    /// 30 minutes; otherwise the page that asks for it again and then goes to `back_to`.
    pub fn require_recent_auth(&self, back_to: &str) -> Result<&Session, Response> {
        let session = self.require_session()?;
        if session.recently_authenticated(self.now_micros(), self.state.settings.reauth_secs) {
            return Ok(session);
        }
        Err(self.render(
            "reauthenticate.html",
            context! {
                next => self.next_or(back_to, "/"),
                errors => FormErrors::default(),
                sso => crate::accounts::views::sso::reauth_buttons(self, session),
            },
        ))
    }

    pub fn csrf_token(&self) -> String {
        csrf::token(
            &self.state.keys,
            &self.csrf_cookie,
            self.session_cookie.as_deref(),
        )
    }

    /// A new CSRF secret (at sign-in and sign-out, so tokens do not outlive the session).
    pub fn rotate_csrf(&mut self) {
        self.csrf_cookie = csrf::new_secret();
        let cookie = self.cookie(csrf::COOKIE, self.csrf_cookie.clone());
        self.cookies.push(cookie);
    }

    /// The value of one of our cookies in this request (by its name on this site).
    pub fn cookie_value(&self, name: &'static str) -> Option<String> {
        let name = cookie_name(&self.state.settings, name);
        cookies(&self.request_headers)
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    /// A cookie with our flags: HttpOnly, SameSite=Lax, Secure on https sites, whole site,
    /// and under https the `__Host-` name.
    pub fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build((cookie_name(&self.state.settings, name), value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.state.settings.is_https())
            .path("/")
            .build()
    }

    fn removal(&self, name: &'static str) -> Cookie<'static> {
        let mut cookie = self.cookie(name, String::new());
        cookie.make_removal();
        cookie
    }

    pub fn set_cookie(&mut self, cookie: Cookie<'static>) {
        // A new session (signing in): the tokens on this response's page are bound to it.
        if cookie.name() == cookie_name(&self.state.settings, session::COOKIE) {
            self.session_cookie = Some(cookie.value().to_owned());
        }
        self.cookies.push(cookie);
    }

    pub fn remove_cookie(&mut self, name: &'static str) {
        if name == session::COOKIE {
            self.session_cookie = None;
        }
        let cookie = self.removal(name);
        self.cookies.push(cookie);
    }

    /// Renders a page with status 200.
    pub fn render(&self, template: &str, page: Value) -> Response {
        self.render_status(StatusCode::OK, template, page)
    }

    pub fn render_status(&self, status: StatusCode, template: &str, page: Value) -> Response {
        let user = self.user().map(|u| {
            context! { username => u.username.clone(), is_admin => u.is_admin }
        });
        let base = context! {
            site_name => SITE_NAME,
            user => user,
            csrf_token => self.csrf_token(),
            flashes => self.flashes.clone(),
            here => self.here.clone(),
            base_url => self.state.settings.base_url(),
            webauthn_available => self.state.webauthn.is_some(),
        };
        let html = match templates::render(template, context! { ..page, ..base }) {
            Ok(html) => html,
            Err(e) => return AppError::internal(e).into_response(),
        };
        let mut response = (status, html).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        // Pages may show personal data: never kept by shared caches.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.finish(response, self.had_flash_cookie)
    }

    /// `next` when it stays on this site (see [`local_path`]), else `default`.
    pub fn next_or(&self, next: &str, default: &str) -> String {
        local_path(&self.state.settings.base_url(), next).unwrap_or_else(|| default.to_owned())
    }

    /// 303 to `to` (a local path) after a form, with a message for the next page.
    pub fn redirect_with(&self, to: &str, flash: Flash) -> Response {
        let mut response = Redirect::to(&self.next_or(to, "/")).into_response();
        let mut cookie = self.cookie(flash::COOKIE, flash::encode(&self.state.keys, &[flash]));
        cookie.set_max_age(cookie::time::Duration::seconds(60));
        response
            .headers_mut()
            .append(header::SET_COOKIE, header_value(&cookie));
        self.finish(response, false)
    }

    /// 303 to another site's page (an identity provider's, built by the caller), with this
    /// response's cookies.
    pub fn redirect_away(&self, url: &str) -> Response {
        self.finish(Redirect::to(url).into_response(), false)
    }

    pub fn redirect(&self, to: &str) -> Response {
        let response = Redirect::to(&self.next_or(to, "/")).into_response();
        self.finish(response, false)
    }

    /// An error page for a person, with this visitor's navigation.
    pub fn error(&self, error: AppError) -> Response {
        let accept = self
            .request_headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if accept.contains("json") && !accept.starts_with("text/html") {
            return error.render(&self.request_headers);
        }
        let status = error.status;
        let mut response = self.render_status(
            status,
            "error.html",
            context! {
                status => status.as_u16(),
                title => status.canonical_reason().unwrap_or("Error"),
                message => error.message.clone(),
            },
        );
        for (name, value) in error.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }

    fn finish(&self, mut response: Response, clear_flash: bool) -> Response {
        for cookie in &self.cookies {
            response
                .headers_mut()
                .append(header::SET_COOKIE, header_value(cookie));
        }
        if clear_flash {
            response.headers_mut().append(
                header::SET_COOKIE,
                header_value(&self.removal(flash::COOKIE)),
            );
        }
        response
    }
}

/// The name one of our cookies has on this site. Under https it is `__Host-` prefixed: browsers
/// then accept it only with `Secure`, `Path=/` and no `Domain`, so no other host (a sibling
/// subdomain) can set or overwrite it.
pub fn cookie_name(settings: &crate::config::Settings, name: &'static str) -> Cow<'static, str> {
    if settings.is_https() {
        Cow::Owned(format!("__Host-{name}"))
    } else {
        Cow::Borrowed(name)
    }
}

fn header_value(cookie: &Cookie<'_>) -> HeaderValue {
    HeaderValue::from_str(&cookie.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Where a redirect (`next=` after signing in, re-authenticating, the 2FA step) may send a
/// browser: the target resolved against the base URL, only on this origin, as path and query.
/// Control characters, spaces and backslashes are refused outright: browsers drop or rewrite
/// them (`/\t/evil.example/` becomes `//evil.example/`), so no check of the text is safe.
pub fn local_path(base_url: &str, to: &str) -> Option<String> {
    if to.is_empty()
        || to
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    let base = url::Url::parse(base_url).ok()?;
    let target = base.join(to).ok()?;
    if target.origin() != base.origin()
        || !target.username().is_empty()
        || target.password().is_some()
    {
        return None;
    }
    let path = target.path();
    // `/.//evil` resolves to the path `//evil`, which a browser reads as another host.
    if !path.starts_with('/') || path.starts_with("//") {
        return None;
    }
    let mut local = path.to_owned();
    if let Some(query) = target.query() {
        local.push('?');
        local.push_str(query);
    }
    Some(local)
}

/// The headers every page carries: a Content-Security-Policy without inline script, no
/// framing, no sniffing, and a referrer policy that keeps paths to ourselves.
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    response
}

/// The help page (its anchors are linked from upload error messages).
pub async fn help(web: Web) -> Response {
    web.render("help.html", context! {})
}

/// The stylesheet and scripts, compiled in.
pub async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, content_type): (&'static str, &'static str) = match file.as_str() {
        "wharf.css" => (include_str!("static/wharf.css"), "text/css; charset=utf-8"),
        "copy.js" => (
            include_str!("static/copy.js"),
            "text/javascript; charset=utf-8",
        ),
        "webauthn.js" => (
            include_str!("static/webauthn.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return AppError::not_found().into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        let base = "https://wharf.test";
        let ok = |to: &str| local_path(base, to);
        assert_eq!(ok("/manage/").as_deref(), Some("/manage/"));
        assert_eq!(ok("/search/?q=a%20b").as_deref(), Some("/search/?q=a%20b"));
        assert_eq!(ok("/a#frag").as_deref(), Some("/a"));
        assert_eq!(ok("https://wharf.test/x?y").as_deref(), Some("/x?y"));
        assert_eq!(ok("/%2F%2Fevil").as_deref(), Some("/%2F%2Fevil"));
        assert_eq!(ok("/caf\u{e9}/").as_deref(), Some("/caf%C3%A9/"));
        for hostile in [
            "",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "http://wharf.test/",
            "https://wharf.test:8443/",
            "https://user@wharf.test/",
            "/\t/evil.example/",
            "/\u{1}",
            "/\u{7f}",
            "/\u{85}x",
            "/a\r\nSet-Cookie: x",
            "/ /evil",
            "/\u{a0}/evil",
            "/.//evil.example/",
            "/a/..//evil.example/",
            "javascript:alert(1)",
            "data:text/html,x",
        ] {
            assert_eq!(ok(hostile), None, "{hostile:?}");
        }
    }
}
