//! A browser for the web UI tests: keeps cookies, sends each form with the CSRF token the
//! last page carried, and reads the outbox.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::Request;

use crate::util::{TestApp, TestResponse};

pub const PASSWORD: &str = "correct horse battery";

pub struct Browser<'a> {
    app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
    csrf_token: Option<String>,
    /// Extra headers sent with every request (e.g. `Origin`).
    pub headers: Vec<(String, String)>,
    /// The socket address the requests come from (as the server's `ConnectInfo`).
    pub peer: Option<std::net::SocketAddr>,
    /// Whether each request waits for the mail it queued (on by default).
    pub wait_for_mail: bool,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            cookies: BTreeMap::new(),
            csrf_token: None,
            headers: Vec::new(),
            peer: None,
            wait_for_mail: true,
        }
    }

    /// A browser signed in as `username` (password [`PASSWORD`]).
    pub async fn signed_in(app: &'a TestApp, username: &str) -> Browser<'a> {
        let mut browser = Browser::new(app);
        let response = browser
            .post(
                "/account/login/",
                &[("username", username), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(
            response.status,
            303,
            "sign-in of {username}: {}",
            response.text()
        );
        browser
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, builder: axum::http::request::Builder, body: Body) -> TestResponse {
        let mut builder = builder.header("cookie", self.cookie_header()).header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36",
        );
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut request = builder.body(body).expect("request");
        if let Some(peer) = self.peer {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        let response = self.app.request(request).await;
        // Mail queued by the request is in the outbox before the test reads it.
        if self.wait_for_mail {
            self.app.state.mailer.idle().await;
        }
        for set in response.headers.get_all("set-cookie") {
            let set = set.to_str().expect("ascii cookie");
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').expect("cookie pair");
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            // (`__Host-wharf_csrf` on https sites.)
            if name.ends_with("wharf_csrf") {
                self.csrf_token = None;
            }
        }
        if let Some(token) = csrf_in(&response.text()) {
            self.csrf_token = Some(token);
        }
        response
    }

    /// Sends a body-less request built by the caller (a HEAD, say) with the cookies.
    pub async fn send_raw(&mut self, builder: axum::http::request::Builder) -> TestResponse {
        self.send(builder, Body::empty()).await
    }

    pub async fn get(&mut self, uri: &str) -> TestResponse {
        self.send(Request::get(uri), Body::empty()).await
    }

    /// The CSRF token a page would carry now.
    pub async fn csrf(&mut self) -> String {
        // Signed in, every page has the sign-out form; signed out, the sign-in page has one.
        if self.csrf_token.is_none() {
            self.get("/help/").await;
        }
        if self.csrf_token.is_none() {
            self.get("/account/login/").await;
        }
        self.csrf_token.clone().expect("a page with a form token")
    }

    /// Submits a form the way a browser does, with the page's CSRF token.
    pub async fn post(&mut self, uri: &str, fields: &[(&str, &str)]) -> TestResponse {
        let token = self.csrf().await;
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", &token)];
        all.extend_from_slice(fields);
        self.post_raw(uri, &all).await
    }

    /// Submits exactly these fields (no token added).
    pub async fn post_raw(&mut self, uri: &str, fields: &[(&str, &str)]) -> TestResponse {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            Request::post(uri).header("content-type", "application/x-www-form-urlencoded"),
            Body::from(body),
        )
        .await
    }

    pub fn signed_in_cookie(&self) -> Option<&String> {
        self.cookies
            .get("wharf_session")
            .or_else(|| self.cookies.get("__Host-wharf_session"))
    }
}

fn csrf_in(html: &str) -> Option<String> {
    let start = html.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// The messages in the outbox, oldest first, as decoded text (headers and plain-text part).
pub fn outbox(app: &TestApp) -> Vec<String> {
    let dir = app.dir.path().join("outbox");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|path| {
            let message = std::fs::read_to_string(path).expect("eml");
            // Links stand whole on their lines: no quoted-printable soft breaks to undo.
            assert!(
                !message.contains("quoted-printable") && !message.contains("base64"),
                "{message}"
            );
            message
        })
        .collect()
}

/// The first link in `message` that starts with `prefix`, as a local path.
pub fn link(message: &str, prefix: &str) -> String {
    let start = message
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {message}"));
    let rest = &message[start..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest[..end].replace("http://wharf.test", "")
}

/// The tags recorded for a source, oldest first.
pub async fn tags(app: &TestApp, source_id: &str) -> Vec<String> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT tag FROM events WHERE source_id = $1 ORDER BY id")
            .bind(source_id)
            .fetch_all(app.state.db.pool())
            .await
            .expect("events");
    rows.into_iter().map(|(t,)| t).collect()
}
