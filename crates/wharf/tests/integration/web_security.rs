//! The web layer's defences: where `next=` may send a browser, which address a request comes
//! from behind a proxy, HSTS and `__Host-` cookies on https sites, CSRF tokens bound to the
//! session, and the headers that keep files and index pages from being run as pages.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::Request;
use wharf::config::{Settings, SettingsArgs};
use wharf::twofactor::totp;

use crate::browser::{Browser, PASSWORD};
use crate::two_factor::{enable_totp, save_recovery_codes};
use crate::util::{TestApp, TestResponse, UploadForm};

/// `next` values that must never send a browser off the site (or crash the server).
const HOSTILE_NEXT: &[&str] = &[
    "/\t/evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "//evil.example",
    "///evil.example",
    "/\u{1}",
    "/\u{7f}",
    "https://evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
    "/.//evil.example/",
    "/a/..//evil.example/",
    " //evil.example",
    "/\r\nSet-Cookie: x=1",
    "https://wharf.test.evil.example/",
    "https://wharf.test@evil.example/",
];

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The Location of a redirect, which must stay on this site.
fn local_location(response: &TestResponse, what: &str) -> String {
    assert_eq!(response.status, 303, "{what}: {}", response.text());
    let location = response.header("location").expect("a Location").to_owned();
    assert!(
        location.starts_with('/')
            && !location.starts_with("//")
            && !location.contains('\\')
            && location.bytes().all(|b| b.is_ascii_graphic()),
        "{what}: {location:?}"
    );
    location
}

/// The `next` a form carries on to the next step.
fn hidden_next(page: &TestResponse) -> String {
    let text = page.text();
    let marker = "name=\"next\" value=\"";
    let start = text.find(marker).expect("a next field") + marker.len();
    let end = start + text[start..].find('"').expect("end of the value");
    text[start..end].replace("&#x2f;", "/")
}

#[tokio::test]
async fn next_stays_on_this_site_after_signing_in() {
    let app = TestApp::new().await;
    // An ordinary `next` is followed, with its query.
    let mut browser = Browser::new(&app);
    let ok = browser
        .post(
            "/account/login/",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", "/search/?q=demo"),
            ],
        )
        .await;
    assert_eq!(local_location(&ok, "plain"), "/search/?q=demo");
    let absolute = browser
        .get("/account/login/?next=http%3A%2F%2Fwharf.test%2Fmanage%2Faccount%2F")
        .await;
    assert_eq!(
        local_location(&absolute, "absolute, same origin"),
        "/manage/account/"
    );
    // `/%2F%2Fevil` is a path here (the slashes stay encoded), not another host.
    let encoded = browser.get("/account/login/?next=%2F%252F%252Fevil").await;
    assert_eq!(local_location(&encoded, "encoded"), "/%2F%2Fevil");

    for next in HOSTILE_NEXT {
        // Signed out: the form carries a harmless `next`, and signing in ends on the default.
        let mut visitor = Browser::new(&app);
        let page = visitor
            .get(&format!("/account/login/?next={}", encode(next)))
            .await;
        assert_eq!(page.status, 200, "{next:?}: {}", page.text());
        assert_eq!(hidden_next(&page), "/manage/projects/", "{next:?}");
        let signed_in = visitor
            .post(
                "/account/login/",
                &[
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(
            local_location(&signed_in, next),
            "/manage/projects/",
            "{next:?}"
        );
        // Signed in already: the sign-in page sends the visitor on at once.
        let again = visitor
            .get(&format!("/account/login/?next={}", encode(next)))
            .await;
        assert_eq!(local_location(&again, next), "/manage/projects/");
        // Re-authentication.
        let reauth = visitor
            .post(
                "/account/reauthenticate/",
                &[("password", PASSWORD), ("next", next)],
            )
            .await;
        assert_eq!(local_location(&reauth, next), "/");
        let wrong = visitor
            .post(
                "/account/reauthenticate/",
                &[("password", "not the password at all"), ("next", next)],
            )
            .await;
        assert_eq!(wrong.status, 401, "{next:?}");
        assert_eq!(hidden_next(&wrong), "/", "{next:?}");
        // (Out of the failed-password window, so the loop is not locked out.)
        app.state.clock.advance(301);
    }
}

#[tokio::test]
async fn next_stays_on_this_site_after_the_two_factor_step() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    save_recovery_codes(&mut browser).await;
    let secret = enable_totp(&app, &mut browser).await;
    let mut nexts: Vec<&str> = HOSTILE_NEXT.to_vec();
    nexts.push("/manage/account/");
    for next in nexts {
        app.state.clock.advance(30);
        let mut step = Browser::new(&app);
        let password = step
            .post(
                "/account/login/",
                &[
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(
            local_location(&password, next),
            "/account/two-factor/",
            "{next:?}"
        );
        let code = totp::code_at(&secret, app.state.clock.now_secs());
        let done = step
            .post("/account/two-factor/totp", &[("code", &code)])
            .await;
        let expected = if next.starts_with("/manage/") {
            next
        } else {
            "/manage/projects/"
        };
        assert_eq!(local_location(&done, next), expected, "{next:?}");
    }
}

/// A failed sign-in for a made-up name from `peer` with extra headers; returns the address
/// the audit log recorded for it.
async fn recorded_address(app: &TestApp, peer: &str, headers: &[(&str, &str)]) -> String {
    let mut browser = Browser::new(app);
    browser.peer = Some(peer.parse().expect("socket address"));
    browser.headers = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let refused = browser
        .post(
            "/account/login/",
            &[("username", "nobody-here"), ("password", "some password")],
        )
        .await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    let (ip,): (Option<String>,) = sqlx::query_as(
        "SELECT ip_address FROM events WHERE tag = 'account:login:failure' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(app.state.db.pool())
    .await
    .expect("event");
    ip.expect("an address")
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let app = TestApp::with_settings(|s| {
        s.trusted_proxies =
            wharf::config::TrustedProxies::parse(["10.0.0.0/8", "2001:db8:ffff::1"]).unwrap();
    })
    .await;
    let xff = "x-forwarded-for";
    // From anyone else, the headers are ignored.
    assert_eq!(
        recorded_address(&app, "203.0.113.9:5000", &[(xff, "198.51.100.7")]).await,
        "203.0.113.9"
    );
    assert_eq!(
        recorded_address(
            &app,
            "203.0.113.9:5000",
            &[("forwarded", "for=198.51.100.7")]
        )
        .await,
        "203.0.113.9"
    );
    // From a proxy: the right-most address that is not a proxy; what the client wrote to
    // the left of it is not believed.
    assert_eq!(
        recorded_address(
            &app,
            "10.0.0.5:5000",
            &[(xff, "1.2.3.4, 198.51.100.7, 10.1.2.3")]
        )
        .await,
        "198.51.100.7"
    );
    assert_eq!(
        recorded_address(&app, "[2001:db8:ffff::1]:443", &[(xff, "198.51.100.8")]).await,
        "198.51.100.8"
    );
    assert_eq!(
        recorded_address(&app, "[::ffff:10.0.0.5]:443", &[(xff, "198.51.100.10")]).await,
        "198.51.100.10",
        "an IPv4-mapped peer is the IPv4 proxy"
    );
    assert_eq!(
        recorded_address(
            &app,
            "10.0.0.5:5000",
            &[(
                "forwarded",
                "for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.9"
            )]
        )
        .await,
        "2001:db8:cafe::17"
    );
    // A garbled hop ends what can be believed: the proxy that wrote it is the client.
    assert_eq!(
        recorded_address(&app, "10.0.0.5:5000", &[(xff, "198.51.100.7, garbage")]).await,
        "10.0.0.5"
    );
    assert_eq!(
        recorded_address(&app, "10.0.0.5:5000", &[]).await,
        "10.0.0.5"
    );
}

#[tokio::test]
async fn ipv6_clients_are_limited_by_their_64() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let mut add = async |peer: &str, email: &str| {
        browser.peer = Some(peer.parse::<SocketAddr>().expect("address"));
        browser
            .post("/manage/account/email/add", &[("new_email", email)])
            .await
    };
    // EMAIL_ADD allows 2 per network and day; the third from the same /64 is refused.
    assert_eq!(
        add("[2001:db8:1:2::1]:1", "a1@example.net").await.status,
        303
    );
    assert_eq!(
        add("[2001:db8:1:2::2]:1", "a2@example.net").await.status,
        303
    );
    let refused = add("[2001:db8:1:2:ffff::9]:1", "a3@example.net").await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(
        refused.text().contains("2001:db8:1:2::&#x2f;64"),
        "{}",
        refused.text()
    );
    // Another /64 is another network.
    assert_eq!(
        add("[2001:db8:1:3::1]:1", "a4@example.net").await.status,
        303
    );
}

#[tokio::test]
async fn https_sites_send_hsts_and_host_only_cookies() {
    let app = TestApp::with_settings(|s| s.base_url = Some("https://wharf.test".to_owned())).await;
    app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    for path in [
        "/",
        "/account/login/",
        "/simple/",
        "/simple/demo/",
        "/pypi/demo/json",
        "/files/aa/bb/cc/missing.whl",
        "/no/such/page",
        "/_health",
    ] {
        let response = app.get(path).await;
        assert_eq!(
            response.header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains"),
            "{path}"
        );
    }
    let mut browser = Browser::signed_in(&app, "alice").await;
    assert!(browser.cookies.contains_key("__Host-wharf_session"));
    assert!(browser.cookies.contains_key("__Host-wharf_csrf"));
    assert!(!browser.cookies.contains_key("wharf_session"));
    let account = browser.get("/manage/account/").await;
    assert_eq!(account.status, 200, "signed in with the __Host- cookies");
    // Every cookie we set is one a browser accepts under `__Host-`.
    let response = browser.post("/account/logout/", &[]).await;
    let set: Vec<&str> = response
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(!set.is_empty());
    for cookie in set {
        assert!(cookie.starts_with("__Host-wharf_"), "{cookie}");
        assert!(
            cookie.contains("Secure") && cookie.contains("Path=/"),
            "{cookie}"
        );
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
    // A cookie without the prefix (which any subdomain could have set) is not ours.
    let mut tossed = Browser::new(&app);
    let session = browser.cookies.get("__Host-wharf_session").cloned();
    let fresh = Browser::signed_in(&app, "alice").await;
    let value = fresh.cookies["__Host-wharf_session"].clone();
    assert_ne!(Some(&value), session.as_ref());
    tossed.cookies.insert("wharf_session".to_owned(), value);
    let page = tossed.get("/manage/account/").await;
    assert_eq!(page.status, 303, "not signed in by an unprefixed cookie");

    // The two-factor step's cookie too.
    let mut twofa = Browser::signed_in(&app, "alice").await;
    save_recovery_codes(&mut twofa).await;
    enable_totp(&app, &mut twofa).await;
    let mut step = Browser::new(&app);
    step.post(
        "/account/login/",
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await;
    assert!(
        step.cookies.contains_key("__Host-wharf_2fa"),
        "{:?}",
        step.cookies
    );
    assert_eq!(step.get("/account/two-factor/").await.status, 200);
    // Plain http sites: no HSTS, plain names.
    let plain = TestApp::new().await;
    assert!(
        plain
            .get("/")
            .await
            .header("strict-transport-security")
            .is_none()
    );
    let browser = Browser::signed_in(&plain, "alice").await;
    assert!(browser.cookies.contains_key("wharf_session"));
}

fn form_post(cookies: &str, fields: &[(&str, &str)], uri: &str) -> Request<Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookies)
        .body(Body::from(body))
        .expect("request")
}

#[tokio::test]
async fn csrf_tokens_are_bound_to_the_session_and_cookies_checked() {
    let app = TestApp::new().await;
    let mut mine = Browser::signed_in(&app, "alice").await;
    let token = mine.csrf().await;
    let secret = mine.cookies["wharf_csrf"].clone();
    let session = mine.cookies["wharf_session"].clone();
    let other = Browser::signed_in(&app, "alice").await;
    let other_session = other.cookies["wharf_session"].clone();

    // The token with its own secret and session works (a harmless form: sign out).
    let with = |session: &str| format!("wharf_csrf={secret}; wharf_session={session}");
    // With another session (the same secret), or the token of the secret alone: refused.
    let stolen = app
        .request(form_post(
            &with(&other_session),
            &[("csrf_token", &token)],
            "/account/logout/",
        ))
        .await;
    assert_eq!(stolen.status, 403, "{}", stolen.text());
    let unbound = wharf::web::csrf::token(&app.state.keys, &secret, None);
    let refused = app
        .request(form_post(
            &with(&session),
            &[("csrf_token", &unbound)],
            "/account/logout/",
        ))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(app.count("sessions").await, 2, "nobody was signed out");
    let ok = app
        .request(form_post(
            &with(&session),
            &[("csrf_token", &token)],
            "/account/logout/",
        ))
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(app.count("sessions").await, 1);

    // Malformed secrets: the form is refused with the usual message, the page gets a new one.
    for bad in [
        "x",
        "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%",
        "ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ",
        &"A".repeat(5000),
        &format!("{secret}A"),
    ] {
        let token = app.state.keys.tag("csrf", bad);
        let response = app
            .request(form_post(
                &format!("wharf_csrf={bad}"),
                &[
                    ("csrf_token", &token),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ],
                "/account/login/",
            ))
            .await;
        assert_eq!(response.status, 403, "{bad}: {}", response.text());
        assert!(
            response.text().contains("did not come from this site"),
            "{bad}"
        );
        let page = app
            .get_with(
                "/account/login/",
                &[("cookie", &format!("wharf_csrf={bad}"))],
            )
            .await;
        assert_eq!(page.status, 200, "{bad}");
        assert!(
            page.headers
                .get_all("set-cookie")
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("wharf_csrf=")),
            "a new secret for {bad}"
        );
    }
}

#[tokio::test]
async fn files_and_index_pages_are_never_run_as_pages() {
    let app = TestApp::new().await;
    let uploaded = app
        .upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    let json = app.get("/pypi/demo/json").await;
    let url = json.json()["urls"][0]["url"]
        .as_str()
        .expect("url")
        .replace("http://wharf.test", "");
    let file = app.get(&url).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        file.header("content-security-policy"),
        Some("default-src 'none'; sandbox")
    );
    assert_eq!(
        file.header("content-disposition"),
        Some("attachment; filename=\"demo-1.0-py3-none-any.whl\"")
    );
    let metadata = app.get(&format!("{url}.metadata")).await;
    assert_eq!(metadata.status, 200);
    assert_eq!(
        metadata.header("content-disposition"),
        Some("attachment; filename=\"demo-1.0-py3-none-any.whl.metadata\"")
    );
    for response in [
        json,
        app.get("/simple/").await,
        app.get("/simple/demo/").await,
        app.get("/simple/nothing-here/").await,
        app.get("/pypi/nothing-here/json").await,
        app.get("/files/aa/bb/cc/missing.whl").await,
        app.upload(None, &UploadForm::wheel("demo", "2.0")).await,
        app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
            .await,
    ] {
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{} {}",
            response.status,
            response.text()
        );
    }
}

#[tokio::test]
async fn readme_links_to_private_pages_are_dropped_and_images_described() {
    let app = TestApp::new().await;
    let description = "# Demo\n\n[settings](/manage/projects/) [home](https://wharf.test/account/) \
                       [docs](https://docs.example/)\n\n<img src=\"https://img.example/diagram.png\">\n\n\
                       ![](/./manage/account/)";
    let form = UploadForm::wheel("demo", "1.0")
        .set("description", description)
        .set("description_content_type", "text/markdown");
    assert_eq!(app.upload(Some(&app.token), &form).await.status, 200);
    let page = app.get("/project/demo/").await.text();
    let readme = &page[page.find("<h3>Demo</h3>").expect("readme")..];
    assert!(
        readme.contains("href=\"https://docs.example/\""),
        "{readme}"
    );
    assert!(!readme.contains("/manage/"), "{readme}");
    assert!(!readme.contains("/account/"), "{readme}");
    assert!(readme.contains("alt=\"diagram\""), "{readme}");
}

/// Settings from a config file with `toml` in it.
fn load_config(toml: &str) -> Result<Settings, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("wharf.toml");
    std::fs::write(&path, toml).map_err(|e| e.to_string())?;
    let args = SettingsArgs {
        config: Some(path),
        ..SettingsArgs::default()
    };
    Settings::load(&args, None).map_err(|e| e.to_string())
}

#[test]
fn trusted_proxies_are_parsed_and_validated() {
    let list = load_config("trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::1\"]").unwrap();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert!(list.trusted_proxies.contains(ip("10.200.0.1")));
    assert!(list.trusted_proxies.contains(ip("::ffff:10.0.0.1")));
    assert!(list.trusted_proxies.contains(ip("2001:db8::1")));
    assert!(!list.trusted_proxies.contains(ip("2001:db8::2")));
    assert!(!list.trusted_proxies.contains(ip("11.0.0.1")));
    // One comma-separated string, as `WHARF_TRUSTED_PROXIES` gives it.
    let text = load_config("trusted_proxies = \"192.0.2.0/24, 198.51.100.7\"").unwrap();
    assert!(text.trusted_proxies.contains(ip("192.0.2.99")));
    assert!(text.trusted_proxies.contains(ip("198.51.100.7")));
    assert!(load_config("").unwrap().trusted_proxies.is_empty());
    for bad in [
        "trusted_proxies = \"10.0.0.0/33\"",
        "trusted_proxies = [\"proxy.internal\"]",
        "trusted_proxies = \"10.0.0.1,,nonsense\"",
        "trusted_proxies = 5",
    ] {
        let error = load_config(bad).unwrap_err();
        assert!(error.contains("trusted_proxies"), "{bad}: {error}");
        assert!(!error.contains('\n'), "{bad}: {error}");
    }
}
