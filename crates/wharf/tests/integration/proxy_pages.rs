//! The proxy's web UI: `/admin/proxy/` (the upstream, its blocks with "Unblock", the forms to
//! block and claim, the names served from the upstream) with its actions behind
//! re-authentication and recorded as events, and the read-only project page of a name that
//! is served from the upstream. The upstream is a real wharf on loopback.

use std::time::Duration;

use axum::http::StatusCode;
use wharf::config::Span;

use crate::browser::Browser;
use crate::proxy::Served;
use crate::util::{TestApp, TestResponse, UploadForm};

const JSON: &str = "application/vnd.pypi.simple.v1+json";
const PAGE: &str = "/admin/proxy/";
const NOTE: &str = "this project is not hosted here; it is served read-only from the upstream.";

/// A real wharf as the upstream, with `demo` 1.0 and 2.0b1 and `other` 2.0.
async fn upstream() -> (TestApp, Served) {
    let app = TestApp::new().await;
    for form in [
        UploadForm::wheel("demo", "1.0"),
        UploadForm::wheel("demo", "2.0b1"),
        UploadForm::wheel("other", "2.0"),
    ] {
        let response = app.upload(Some(&app.token), &form).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    let served = Served::start(wharf::app::router(app.state.clone())).await;
    (app, served)
}

async fn proxy_of(url: &str, configure: impl FnOnce(&mut wharf::config::Settings)) -> TestApp {
    let url = url.to_owned();
    let app = TestApp::with_settings(move |s| {
        s.upstream_url = Some(url);
        s.upstream_timeout = Span(Duration::from_secs(2));
        configure(s);
    })
    .await;
    make_admin(&app, "alice").await;
    app
}

async fn make_admin(app: &TestApp, username: &str) {
    sqlx::query("UPDATE users SET is_admin = 1 WHERE username = $1")
        .bind(username)
        .execute(app.state.db.pool())
        .await
        .expect("admin");
}

async fn json_page(app: &TestApp, name: &str) -> serde_json::Value {
    let response = app
        .get_with(&format!("/simple/{name}/"), &[("accept", JSON)])
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

async fn blocks(app: &TestApp) -> i64 {
    app.count("upstream_blocks").await
}

/// The page as text, with minijinja's escapes of `/`, `'` and `=` undone for matching.
fn text(response: &TestResponse) -> String {
    response
        .text()
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#x3d;", "=")
}

#[tokio::test]
async fn admins_block_unblock_and_claim_from_the_proxy_page() {
    let (_origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |_| {}).await;
    let page = json_page(&proxy, "demo").await;
    let path = format!(
        "/{}",
        page["files"][0]["url"]
            .as_str()
            .expect("url")
            .trim_start_matches("../../")
    );
    assert_eq!(proxy.get(&path).await.status, StatusCode::OK);
    json_page(&proxy, "other").await;

    let mut alice = Browser::signed_in(&proxy, "alice").await;
    let shown = alice.get(PAGE).await;
    assert_eq!(shown.status, StatusCode::OK);
    let html = text(&shown);
    assert!(
        html.contains(&served.url()),
        "the upstream is named: {html}"
    );
    assert!(html.contains("Nothing is blocked."));
    assert!(
        html.contains("<a href=\"/project/demo/\">demo</a>"),
        "{html}"
    );
    assert!(html.contains("served from the upstream"));
    assert!(
        html.contains("<a href=\"/admin/proxy/\">Upstream proxy</a>"),
        "in the admin navigation"
    );

    // A block needs a reason.
    let unexplained = alice
        .post(
            PAGE,
            &[("action", "block"), ("target", "demo"), ("reason", " ")],
        )
        .await;
    assert_eq!(unexplained.status, StatusCode::SEE_OTHER);
    assert!(text(&alice.get(PAGE).await).contains("Say why demo is to be blocked"));
    assert_eq!(blocks(&proxy).await, 0);

    let blocked = alice
        .post(
            PAGE,
            &[
                ("action", "block"),
                ("target", "Demo==1.0"),
                ("reason", "malware reported"),
            ],
        )
        .await;
    assert_eq!(blocked.status, StatusCode::SEE_OTHER, "{}", blocked.text());
    assert_eq!(blocked.header("location"), Some(PAGE));
    let html = text(&alice.get(PAGE).await);
    assert!(
        html.contains("Blocked demo==1.0: its files are no longer served"),
        "{html}"
    );
    assert!(html.contains("<code>demo==1.0</code>") && html.contains("malware reported"));
    assert!(html.contains("Unblock demo==1.0</button>"), "{html}");
    assert!(html.contains("<td>alice</td>"), "who blocked it");
    let made = proxy.events("admin:proxy:block").await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["project_name"], "demo");
    assert_eq!(made[0]["version"], "1.0");
    assert_eq!(made[0]["reason"], "malware reported");
    assert_eq!(made[0]["actor"], "alice");
    assert_eq!(made[0]["via"], "web");
    // Served no more by this process at once: the file, the page, the project page.
    let refused = proxy.get(&path).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.message().contains("malware reported"));
    let page = json_page(&proxy, "demo").await;
    let names: Vec<&str> = page["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["filename"].as_str().expect("filename"))
        .collect();
    assert_eq!(names, vec!["demo-2.0b1-py3-none-any.whl"]);
    let project = text(&alice.get("/project/demo/1.0/").await);
    assert!(
        project.contains("No file of demo 1.0 is offered now"),
        "{project}"
    );
    // The same block twice is refused, and says so.
    alice
        .post(
            PAGE,
            &[
                ("action", "block"),
                ("target", "demo==1.0"),
                ("reason", "again"),
            ],
        )
        .await;
    assert!(text(&alice.get(PAGE).await).contains("Demo==1.0 is blocked already."));
    assert_eq!(blocks(&proxy).await, 1);

    let unblocked = alice
        .post(PAGE, &[("action", "unblock"), ("target", "demo==1.0")])
        .await;
    assert_eq!(unblocked.status, StatusCode::SEE_OTHER);
    let html = text(&alice.get(PAGE).await);
    assert!(
        html.contains("Unblocked demo==1.0: its files are served again."),
        "{html}"
    );
    assert!(html.contains("Nothing is blocked."));
    assert_eq!(proxy.events("admin:proxy:unblock").await.len(), 1);
    assert_eq!(proxy.get(&path).await.status, StatusCode::OK);
    assert_eq!(
        json_page(&proxy, "demo").await["files"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    alice
        .post(PAGE, &[("action", "unblock"), ("target", "demo==1.0")])
        .await;
    assert!(text(&alice.get(PAGE).await).contains("Demo==1.0 is not blocked."));

    // The projects page offers the same claim (it posts to the proxy page).
    let projects = text(&alice.get("/admin/projects/").await);
    assert!(
        projects.contains("Claim a name served from the upstream")
            && projects.contains("<form method=\"post\" action=\"/admin/proxy/\">"),
        "{projects}"
    );
    // Claimed: no longer the upstream's, here at once; a hosted project may take the name.
    let claimed = alice
        .post(PAGE, &[("action", "claim"), ("target", "Other")])
        .await;
    assert_eq!(claimed.status, StatusCode::SEE_OTHER);
    let html = text(&alice.get(PAGE).await);
    assert!(
        html.contains("Claimed other: it is never looked up upstream again"),
        "{html}"
    );
    assert!(html.contains("<td>claimed</td>"), "{html}");
    let claims = proxy.events("admin:project:claim").await;
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["project_name"], "other");
    assert_eq!(claims[0]["was_proxied"], true);
    assert_eq!(claims[0]["actor"], "alice");
    let asked = served.asked("/simple/other/");
    assert_eq!(
        proxy.get("/simple/other/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        alice.get("/project/other/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(served.asked("/simple/other/"), asked);
    alice
        .post(PAGE, &[("action", "claim"), ("target", "other")])
        .await;
    assert!(text(&alice.get(PAGE).await).contains("'other' is claimed already."));
    let uploaded = proxy
        .upload(Some(&proxy.token), &UploadForm::wheel("other", "5.0"))
        .await;
    assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.text());
    // Not a name, or a version claimed: refused with the reason.
    alice
        .post(PAGE, &[("action", "claim"), ("target", "demo==1")])
        .await;
    assert!(text(&alice.get(PAGE).await).contains("A claim is for a whole name, not a version."));
    alice
        .post(
            PAGE,
            &[("action", "block"), ("target", "no/name"), ("reason", "x")],
        )
        .await;
    assert!(text(&alice.get(PAGE).await).contains("is not a project name"));
    let odd = alice
        .post(PAGE, &[("action", "delete-everything"), ("target", "demo")])
        .await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST);
    served.stop().await;
}

#[tokio::test]
async fn the_proxy_page_is_for_admins_who_signed_in_recently() {
    let (_origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |_| {}).await;
    proxy.create_user("bob").await;
    let mut bob = Browser::signed_in(&proxy, "bob").await;
    assert_eq!(bob.get(PAGE).await.status, StatusCode::FORBIDDEN);
    for fields in [
        [("action", "block"), ("target", "demo"), ("reason", "mine")],
        [("action", "claim"), ("target", "demo"), ("reason", "")],
    ] {
        let refused = bob.post(PAGE, &fields).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(blocks(&proxy).await, 0);
    assert!(proxy.events("admin:project:claim").await.is_empty());
    let mut anonymous = Browser::new(&proxy);
    assert_eq!(anonymous.get(PAGE).await.status, StatusCode::SEE_OTHER);

    // An admin whose sign-in is old is asked for the password first.
    let mut alice = Browser::signed_in(&proxy, "alice").await;
    proxy
        .state
        .clock
        .advance(proxy.state.settings.reauth_secs + 1);
    let asked = alice
        .post(
            PAGE,
            &[("action", "block"), ("target", "demo"), ("reason", "x")],
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.text().contains("reauthenticate"), "{}", asked.text());
    assert_eq!(blocks(&proxy).await, 0);
    served.stop().await;
}

#[tokio::test]
async fn without_an_upstream_the_proxy_page_says_so() {
    let app = TestApp::new().await;
    make_admin(&app, "alice").await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    let page = alice.get(PAGE).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = text(&page);
    assert!(html.contains("This index proxies no upstream"), "{html}");
    assert!(!html.contains("name=\"action\""), "no forms");
    assert!(
        !text(&alice.get("/admin/projects/").await).contains("Claim a name"),
        "no claim form without an upstream"
    );
    let refused = alice
        .post(
            PAGE,
            &[("action", "block"), ("target", "demo"), ("reason", "x")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert!(text(&alice.get(PAGE).await).contains("nothing to block or claim"));
    assert_eq!(blocks(&app).await, 0);
    // And a name that is not hosted is simply not there.
    assert_eq!(
        app.get("/project/demo/").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_proxied_project_page_is_read_only_with_the_upstream_note() {
    let (_origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |s| {
        s.private_prefixes =
            serde_json::from_value(serde_json::json!(["acme-"])).expect("prefixes");
    })
    .await;
    let page = json_page(&proxy, "demo").await;
    let stable = page["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["filename"] == "demo-1.0-py3-none-any.whl")
        .expect("the 1.0 wheel")
        .clone();
    let sha256 = stable["hashes"]["sha256"].as_str().expect("hash");

    let mut alice = Browser::signed_in(&proxy, "alice").await;
    // The newest stable version by default, others by their page; anonymous readers too.
    for (path, shown) in [
        ("/project/demo/", "1.0"),
        ("/project/demo/1.0/", "1.0"),
        ("/project/demo/2.0b1/", "2.0b1"),
    ] {
        let response = proxy.get(path).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        let html = text(&response);
        assert!(
            html.contains(&format!("<h1>demo {shown}</h1>")),
            "{path}: {html}"
        );
        assert!(
            html.contains(&format!(
                "From the upstream index <code>{}</code>: {NOTE}",
                served.url()
            )),
            "{path}: {html}"
        );
        assert!(
            html.contains(&format!("demo-{shown}-py3-none-any.whl")),
            "{path}"
        );
        assert!(!html.contains("/manage/"), "{path}: no manage links");
        let signed_in = text(&alice.get(path).await);
        assert!(
            signed_in.contains(NOTE) && !signed_in.contains("/manage/project/"),
            "{path}"
        );
    }
    let html = text(&proxy.get("/project/demo/").await);
    assert!(html.contains(sha256), "{html}");
    assert!(
        html.contains(&format!(
            "href=\"/files/upstream/demo/{sha256}/demo-1.0-py3-none-any.whl\""
        )),
        "the files are this index's: {html}"
    );
    assert!(html.contains("pre-release"), "2.0b1 in the versions");
    assert!(html.contains("UTC"), "the upload time");
    assert!(
        !html.contains("demo-2.0b1-py3-none-any.whl"),
        "one version's files"
    );
    let missing = proxy.get("/project/demo/9.9/").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Moved to the normalised name as hosted pages are.
    let moved = proxy.get("/project/Demo/").await;
    assert_eq!(moved.status, StatusCode::PERMANENT_REDIRECT);

    // A name the upstream does not have, and one under a private prefix (never asked).
    let unknown = proxy.get("/project/nothing-here/").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.text().contains("There is no project named"));
    let private = proxy.get("/project/acme-tools/").await;
    assert_eq!(private.status, StatusCode::NOT_FOUND);
    assert_eq!(served.asked("/simple/acme-tools/"), 0);

    // Hosted projects keep their own page.
    let hosted = proxy
        .upload(Some(&proxy.token), &UploadForm::wheel("mine", "1.0"))
        .await;
    assert_eq!(hosted.status, StatusCode::OK);
    let mine = text(&proxy.get("/project/mine/").await);
    assert!(mine.contains("<h1>mine 1.0</h1>") && !mine.contains("From the upstream index"));

    // The upstream down: a name never fetched is a 502 page with the reason.
    served.stop().await;
    let down = proxy.get("/project/other/").await;
    assert_eq!(down.status, StatusCode::BAD_GATEWAY);
    assert!(down.text().contains("upstream index"), "{}", down.text());
    // The kept one is still shown.
    assert_eq!(proxy.get("/project/demo/").await.status, StatusCode::OK);
}
