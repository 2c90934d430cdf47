//! Who may read (`read_access = "users"`): every read surface × anonymous / session / token /
//! read-only token / disabled user / password, the 401 installers retry on, read-only tokens
//! on `/legacy/`, `last_used` written at most once a minute, and no event per read.

use axum::http::StatusCode;
use base64::Engine;
use wharf::config::ReadAccess;
use wharf::events::RequestMeta;
use wharf::tokens::{self, TokenScope};

use crate::browser::{Browser, PASSWORD};
use crate::util::{TestApp, UploadForm};

const JSON_ACCEPT: &str = "application/vnd.pypi.simple.v1+json";

async fn private_app() -> TestApp {
    let app = TestApp::with_settings(|s| s.read_access = ReadAccess::Users).await;
    let response = app
        .upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    app
}

fn basic(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

async fn read_only_token(app: &TestApp, username: &str) -> String {
    let user = wharf::accounts::find_by_username(&app.state.db, username)
        .await
        .expect("db")
        .expect("user");
    tokens::create(
        &tokens::Issuer::of(&app.state, &app.state.settings.token_location()),
        &user,
        &format!("read {}", uuid::Uuid::new_v4()),
        &TokenScope {
            projects: &[],
            expires_in: None,
            read_only: true,
        },
        &RequestMeta::default(),
        app.state.clock.now_micros(),
    )
    .await
    .expect("token")
}

/// The API read surfaces of the demo project: index, project page (HTML and JSON), the JSON
/// API, the file and its `.metadata`.
pub(crate) async fn api_paths(app: &TestApp, token: &str) -> Vec<String> {
    api_paths_of(app, token, "demo").await
}

/// The same for `project` (version 1.0).
pub(crate) async fn api_paths_of(app: &TestApp, token: &str, project: &str) -> Vec<String> {
    let auth = basic("__token__", token);
    let page = app
        .get_with(
            &format!("/simple/{project}/"),
            &[("accept", JSON_ACCEPT), ("authorization", &auth)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let url = page.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .trim_start_matches("../..")
        .to_owned();
    vec![
        "/simple/".to_owned(),
        format!("/simple/{project}/"),
        format!("/pypi/{project}/json"),
        format!("/pypi/{project}/1.0/json"),
        format!("{url}.metadata"),
        url,
    ]
}

const WEB_PAGES: [&str; 5] = [
    "/",
    "/search/?q=demo",
    "/project/demo/",
    "/project/demo/1.0/",
    "/user/alice/",
];

fn assert_refused_401(response: &crate::util::TestResponse, path: &str, message: &str) {
    assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{path}");
    assert_eq!(
        response.header("www-authenticate"),
        Some("Basic realm=\"wharf\""),
        "{path}"
    );
    assert_eq!(response.header("cache-control"), Some("no-store"), "{path}");
    // The reason phrase is what pip and twine print; the page says the same.
    assert!(
        response.message().contains(message),
        "{path}: {}",
        response.message()
    );
    let page = response.text().replace("&#x2f;", "/");
    assert!(page.contains(message), "{path}: {page}");
}

#[tokio::test]
async fn anonymous_reads_get_401_and_pages_send_people_to_sign_in() {
    let app = private_app().await;
    for path in api_paths(&app, &app.token).await {
        let response = app.get(&path).await;
        assert_refused_401(
            &response,
            &path,
            "This index is private: authenticate with an API token",
        );
        assert!(response.message().contains("/help/#private-index"));
        let json = app.get_with(&path, &[("accept", JSON_ACCEPT)]).await;
        assert_eq!(json.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in WEB_PAGES {
        let response = app.get(path).await;
        assert_eq!(response.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            response
                .header("location")
                .is_some_and(|l| l.starts_with("/account/login/")),
            "{path}: {:?}",
            response.header("location")
        );
    }
    for open in [
        "/_health",
        "/account/login/",
        "/account/register/",
        "/help/",
        "/account/reset-password/",
    ] {
        assert_eq!(app.get(open).await.status, StatusCode::OK, "{open}");
    }
    // Missing credentials are what pip sends first: nothing is recorded for them.
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM events WHERE tag = 'read:auth:failure'")
            .fetch_one(app.state.db.pool())
            .await
            .expect("count");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_public_index_answers_anonymous_reads() {
    let app = TestApp::new().await;
    let response = app
        .upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    for path in api_paths(&app, &app.token).await {
        let response = app.get(&path).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert!(response.header("www-authenticate").is_none());
    }
    for path in WEB_PAGES {
        assert_eq!(app.get(path).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn tokens_and_read_only_tokens_read_everything_privately() {
    let app = private_app().await;
    let read_only = read_only_token(&app, "alice").await;
    let (_, bob_token) = app.create_user("bob").await;
    for token in [&app.token, &read_only, &bob_token] {
        for path in api_paths(&app, token).await {
            let response = app
                .get_with(&path, &[("authorization", &basic("__token__", token))])
                .await;
            assert_eq!(
                response.status,
                StatusCode::OK,
                "{path}: {}",
                response.text()
            );
            let cache = response.header("cache-control").expect("cache-control");
            assert!(
                cache.contains("private") && !cache.contains("public"),
                "{path}: {cache}"
            );
        }
    }
    // A project-scoped token reads the whole index (its scope is about uploads).
    let scoped = app.project_token(&app.user, &["demo"], None).await;
    let response = app
        .get_with(
            "/simple/",
            &[("authorization", &basic("__token__", &scoped))],
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn a_signed_in_person_reads_pages_and_downloads() {
    let app = private_app().await;
    let paths = api_paths(&app, &app.token).await;
    let (_, _) = app.create_user("bob").await;
    let mut bob = Browser::signed_in(&app, "bob").await;
    for path in WEB_PAGES.iter().map(|p| p.to_string()).chain(paths) {
        let response = bob.get(&path).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{path}: {}",
            response.text()
        );
    }
}

#[tokio::test]
async fn passwords_unknown_and_expired_tokens_are_refused_with_reasons() {
    let app = private_app().await;
    let password = app
        .get_with("/simple/", &[("authorization", &basic("alice", PASSWORD))])
        .await;
    assert_refused_401(
        &password,
        "/simple/",
        "Username/Password authentication is not accepted: use an API token",
    );
    let unknown = app
        .get_with(
            "/simple/",
            &[("authorization", &basic("__token__", "pypi-not-a-token"))],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    let expiring = app.project_token(&app.user, &[], Some(60)).await;
    let auth = basic("__token__", &expiring);
    assert_eq!(
        app.get_with("/simple/", &[("authorization", &auth)])
            .await
            .status,
        StatusCode::OK
    );
    // The pass remembered for the first read ends with the token's caveats.
    app.state.clock.advance(61);
    let expired = app.get_with("/simple/", &[("authorization", &auth)]).await;
    assert_refused_401(&expired, "/simple/", "Invalid API Token");

    // Refused reads are recorded once per address, reason and window.
    for _ in 0..3 {
        app.get_with("/simple/", &[("authorization", &basic("alice", PASSWORD))])
            .await;
    }
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE tag = 'read:auth:failure' AND additional LIKE '%password_auth%'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .expect("count");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_read_only_token_never_uploads() {
    let app = private_app().await;
    let read_only = read_only_token(&app, "alice").await;
    let before = app.snapshot().await;
    let response = app
        .upload(Some(&read_only), &UploadForm::wheel("demo", "2.0"))
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert!(
        response.text().contains("this token is read-only"),
        "{}",
        response.text()
    );
    assert_eq!(app.snapshot().await.1, before.1, "nothing stored");
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE tag = 'account:api_token:failure' AND additional LIKE '%read-only token%'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .expect("count");
    assert_eq!(n, 1, "the refusal is recorded under the account");
    // And it is not listed among the tokens that can upload to the project.
    let project = wharf::packaging::find_project(&app.state.db, "demo")
        .await
        .expect("db")
        .expect("project");
    let uploaders = tokens::for_project(&app.state.db, &project)
        .await
        .expect("db");
    assert!(uploaders.iter().all(|t| !t.read_only));
    assert!(!uploaders.is_empty());
}

#[tokio::test]
async fn the_token_page_creates_a_read_only_token() {
    let app = private_app().await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    let created = alice
        .post(
            "/manage/account/tokens/",
            &[
                ("name", "laptop installs"),
                ("scope", "account"),
                ("kind", "read"),
                ("expires", ""),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let token = created
        .text()
        .split(|c: char| c == '<' || c == '>' || c == '"' || c.is_whitespace())
        .find(|w| w.starts_with("pypi-"))
        .expect("token shown")
        .to_owned();
    let (read_only,): (i64,) =
        sqlx::query_as("SELECT read_only FROM macaroons WHERE description = 'laptop installs'")
            .fetch_one(app.state.db.pool())
            .await
            .expect("row");
    assert_eq!(read_only, 1);
    assert!(
        created.text().contains("/simple/"),
        "the page shows the index URL"
    );
    let refused = app
        .upload(Some(&token), &UploadForm::wheel("demo", "2.0"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let wrong = alice
        .post(
            "/manage/account/tokens/",
            &[
                ("name", "odd"),
                ("scope", "account"),
                ("kind", "admin"),
                ("expires", ""),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.text().contains("Choose what the token may do."));
}

#[tokio::test]
async fn reads_record_no_event_and_last_used_at_most_once_a_minute() {
    let app = private_app().await;
    let read_only = read_only_token(&app, "alice").await;
    let auth = basic("__token__", &read_only);
    let last_used = || async {
        let (t,): (Option<i64>,) =
            sqlx::query_as("SELECT last_used FROM macaroons WHERE read_only = 1")
                .fetch_one(app.state.db.pool())
                .await
                .expect("row");
        t
    };
    let wait_for_change = |before: Option<i64>| async move {
        for _ in 0..100 {
            let now = last_used().await;
            if now != before {
                return now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        before
    };
    let events_before = app.count("events").await;
    assert_eq!(last_used().await, None);
    app.get_with("/simple/demo/", &[("authorization", &auth)])
        .await;
    let first = wait_for_change(None).await;
    assert!(first.is_some(), "the first read marks the token used");
    for _ in 0..5 {
        let response = app
            .get_with("/simple/demo/", &[("authorization", &auth)])
            .await;
        assert_eq!(response.status, StatusCode::OK);
    }
    app.state.clock.advance(30);
    app.get_with("/simple/demo/", &[("authorization", &auth)])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(last_used().await, first, "not again within the minute");
    app.state.clock.advance(31);
    app.get_with("/simple/demo/", &[("authorization", &auth)])
        .await;
    let later = wait_for_change(first).await;
    assert!(later > first, "{later:?} after {first:?}");
    assert_eq!(
        app.count("events").await,
        events_before,
        "reads record no event"
    );
}

#[tokio::test]
async fn a_token_sent_as_the_username_is_refused_and_never_recorded() {
    let app = private_app().await;
    let slip = basic(&app.token, "");
    let refused = app.get_with("/simple/", &[("authorization", &slip)]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused.message().contains("username __token__"),
        "{}",
        refused.message()
    );
    let upload = app
        .request(
            axum::http::Request::post("/legacy/")
                .header("authorization", &slip)
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(upload.status, StatusCode::FORBIDDEN);
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE additional LIKE $1")
        .bind(format!("%{}%", &app.token[5..40]))
        .fetch_one(app.state.db.pool())
        .await
        .expect("count");
    assert_eq!(stored, 0, "the token is in no event");
    let (noted,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE additional LIKE '%sent as the username: not recorded%'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .expect("count");
    assert_eq!(
        noted, 2,
        "the read and the upload refusals, with the username left out"
    );
}

/// A flood of reads with a token that is not ours costs one write per window, not one per
/// request, and the next logged refusal still reports every one left out.
#[tokio::test]
async fn a_flood_of_refused_reads_is_counted_in_memory() {
    let app = private_app().await;
    // A well-formed token of no row here.
    let auth = basic(
        "__token__",
        "pypi-AgEIcHlwaS5vcmcCJDAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMAAABiD0cF6x2Ta6sLg4ZzE8hXx0dG9rZW4tdGhhdC1pcy1ub3Qtb3Vycw",
    );
    for _ in 0..30 {
        let response = app
            .get_with("/simple/demo/", &[("authorization", &auth)])
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    }
    let rows = app.count("rate_limit_hits").await;
    assert!(rows <= 2, "{rows} rows for 30 refusals");
    let logged = |app: &TestApp| {
        let pool = app.state.db.pool().clone();
        async move {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT additional FROM events WHERE tag = 'read:auth:failure' ORDER BY id",
            )
            .fetch_all(&pool)
            .await
            .expect("events");
            rows.into_iter().map(|(a,)| a).collect::<Vec<_>>()
        }
    };
    assert_eq!(logged(&app).await.len(), 1);
    app.state.clock.advance(601);
    app.get_with("/simple/demo/", &[("authorization", &auth)])
        .await;
    let events = logged(&app).await;
    assert_eq!(events.len(), 2);
    assert!(
        events[1].contains("\"similar_failures_not_logged\":29"),
        "{}",
        events[1]
    );
}
