//! API tokens through the web UI and the token endpoints: creation with scopes and expiry,
//! listing, deletion, the project view, self-revocation, leak reports, failure coalescing,
//! the usage trail and expiry notices.

use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;

use crate::browser::{Browser, PASSWORD, outbox, tags};
use crate::util::{TestApp, TestResponse, UploadForm};
use wharf::tokens;

async fn with_projects(app: &TestApp, names: &[&str]) {
    for name in names {
        let response = app
            .upload(Some(&app.token), &UploadForm::wheel(name, "1.0"))
            .await;
        assert_eq!(response.status, 200, "{}", response.message());
    }
}

/// Creates a token through the page and returns it, read from the page that shows it once.
async fn create(
    browser: &mut Browser<'_>,
    fields: &[(&str, &str)],
) -> Result<String, TestResponse> {
    let response = browser.post("/manage/account/tokens/", fields).await;
    if response.status != 200 || !response.text().contains("Your new API token") {
        return Err(response);
    }
    let text = response.text();
    let start = text.find("pypi-").expect("token shown");
    let end = start + text[start..].find('<').expect("end");
    Ok(text[start..end].to_owned())
}

#[tokio::test]
async fn tokens_are_created_for_the_account_or_several_projects_and_shown_once() {
    let app = TestApp::new().await;
    with_projects(&app, &["alpha", "beta", "gamma"]).await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let token = create(
        &mut browser,
        &[
            ("name", "CI for alpha and beta"),
            ("scope", "projects"),
            ("projects", "alpha"),
            ("projects", "beta"),
            ("expires", "30"),
        ],
    )
    .await
    .expect("created");
    for (name, status) in [("alpha", 200), ("beta", 200), ("gamma", 403)] {
        let response = app
            .upload(Some(&token), &UploadForm::wheel(name, "2.0"))
            .await;
        assert_eq!(response.status, status, "{name}: {}", response.message());
    }
    let list = browser.get("/manage/account/tokens/").await;
    let text = list.text();
    assert!(text.contains("CI for alpha and beta") && text.contains("alpha, beta"));
    assert!(!text.contains(&token), "never shown again");
    assert_eq!(list.header("cache-control"), Some("no-store"));
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("A new API token was created") && m.contains("alpha, beta"))
    );
    let (project_added,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM events WHERE tag = 'project:api_token:added'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(project_added, 2);

    // Refusals change nothing.
    let (bob, _) = app.create_user("bob").await;
    let before = app.count("macaroons").await;
    let long = "n".repeat(101);
    for (fields, message) in [
        (
            vec![("name", "CI for alpha and beta"), ("scope", "account")],
            "already in use",
        ),
        (
            vec![("name", long.as_str()), ("scope", "account")],
            "1 to 100 characters",
        ),
        (
            vec![("name", "x"), ("scope", "projects")],
            "at least one project",
        ),
        (
            vec![
                ("name", "x"),
                ("scope", "projects"),
                ("projects", "nothing"),
            ],
            "no project named",
        ),
        (
            vec![("name", "x"), ("scope", "account"), ("expires", "-5")],
            "expiries offered",
        ),
    ] {
        let refused = create(&mut browser, &fields).await.expect_err("refused");
        assert_eq!(refused.status, 400);
        assert!(
            refused.text().contains(message),
            "{message}: {}",
            refused.text()
        );
    }
    let mut bob_browser = Browser::signed_in(&app, "bob").await;
    let foreign = create(
        &mut bob_browser,
        &[("name", "x"), ("scope", "projects"), ("projects", "alpha")],
    )
    .await;
    assert!(
        foreign
            .expect_err("refused")
            .text()
            .contains("not a collaborator")
    );
    assert_eq!(app.count("macaroons").await, before);
    let _ = bob;
}

#[tokio::test]
async fn an_unverified_address_cannot_create_tokens() {
    let app = TestApp::new().await;
    sqlx::query("UPDATE user_emails SET verified = 0")
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let mut browser = Browser::signed_in(&app, "alice").await;
    let refused = create(&mut browser, &[("name", "x"), ("scope", "account")])
        .await
        .expect_err("refused");
    assert!(
        refused
            .text()
            .contains("Verify your e-mail address to create an API token.")
    );
}

#[tokio::test]
async fn deleting_a_token_needs_the_password_and_later_uses_are_shown_to_the_owner() {
    let app = TestApp::new().await;
    with_projects(&app, &["alpha"]).await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let token = create(
        &mut browser,
        &[
            ("name", "doomed"),
            ("scope", "projects"),
            ("projects", "alpha"),
        ],
    )
    .await
    .expect("created");
    let info = wharf::tokens::list_for_user(&app.state.db, &app.user.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.description == "doomed")
        .unwrap();
    let wrong = browser
        .post(
            "/manage/account/tokens/delete",
            &[
                ("token_id", &info.id),
                ("confirm_password", "not my password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(
        wharf::tokens::find(&app.state.db, &info.id)
            .await
            .unwrap()
            .is_some()
    );
    let deleted = browser
        .post(
            "/manage/account/tokens/delete",
            &[("token_id", &info.id), ("confirm_password", PASSWORD)],
        )
        .await;
    assert_eq!(deleted.status, 303);
    assert!(
        wharf::tokens::find(&app.state.db, &info.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("An API token was deleted"))
    );
    let refused = app
        .upload(Some(&token), &UploadForm::wheel("alpha", "2.0"))
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .message()
            .contains("Invalid or non-existent authentication information")
    );
    let logged: Vec<(String,)> = sqlx::query_as(
        "SELECT additional FROM events WHERE tag = 'account:api_token:failure' AND source_id = $1",
    )
    .bind(&app.user.id)
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(
        logged.len(),
        1,
        "the owner sees that the deleted token was used"
    );
    assert!(logged[0].0.contains("deleted"));
    let user_tags = tags(&app, &app.user.id).await;
    assert!(user_tags.contains(&"account:api_token:removed".to_owned()));
    // Another user's token cannot be deleted by id.
    app.create_user("bob").await;
    let mut bob = Browser::signed_in(&app, "bob").await;
    let alice_token = wharf::tokens::list_for_user(&app.state.db, &app.user.id)
        .await
        .unwrap()
        .remove(0);
    bob.post(
        "/manage/account/tokens/delete",
        &[
            ("token_id", &alice_token.id),
            ("confirm_password", PASSWORD),
        ],
    )
    .await;
    assert!(
        wharf::tokens::find(&app.state.db, &alice_token.id)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn owners_see_every_token_that_can_upload_to_their_project() {
    let app = TestApp::new().await;
    with_projects(&app, &["alpha", "beta"]).await;
    let (bob, _) = app.create_user("bob").await;
    let (carol, _) = app.create_user("carol").await;
    let alpha = wharf::packaging::find_project(&app.state.db, "alpha")
        .await
        .unwrap()
        .unwrap();
    let mut tx = app.state.db.begin().await.unwrap();
    wharf::packaging::insert_role(
        &mut tx,
        &alpha.id,
        &bob.id,
        wharf::packaging::Role::Maintainer,
        0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let bob_token = app.project_token(&bob, &[], None).await;
    let _carol_token = app.project_token(&carol, &[], None).await;
    let beta_only = app.project_token(&app.user, &["beta"], None).await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let page = browser.get("/manage/project/alpha/tokens/").await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("test token"), "alice's account-wide token");
    assert!(
        text.contains("href=\"/user/bob/\""),
        "a collaborator's account-wide token"
    );
    assert!(!text.contains("/user/carol/"), "not a collaborator");
    let beta_name = wharf::tokens::list_for_user(&app.state.db, &app.user.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.projects == ["beta"])
        .unwrap()
        .description;
    assert!(!text.contains(&beta_name), "a token for another project");
    assert!(!text.contains("pypi-"), "no secrets");
    let _ = (bob_token, beta_only);
    let mut bob_browser = Browser::signed_in(&app, "bob").await;
    assert_eq!(
        bob_browser
            .get("/manage/project/alpha/tokens/")
            .await
            .status,
        403
    );
}

async fn revoke(app: &TestApp, authorization: &str) -> TestResponse {
    app.request(
        Request::post("/_/tokens/revoke")
            .header("authorization", authorization)
            .body(Body::empty())
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn a_token_revokes_itself() {
    let app = TestApp::new().await;
    assert_eq!(revoke(&app, "token pypi-garbage").await.status, 403);
    assert_eq!(revoke(&app, "Basic bm90OmF0b2tlbg==").await.status, 403);
    let response = revoke(&app, &format!("token {}", app.token)).await;
    assert_eq!(response.status, 204);
    assert_eq!(app.count("macaroons").await, 0);
    assert_eq!(
        revoke(&app, &format!("token {}", app.token)).await.status,
        403
    );
    assert_eq!(
        app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
            .await
            .status,
        403
    );
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("revoked by a request made with the token itself"))
    );
}

fn leak_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).expect("key")
}

fn sign(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

async fn report(app: &TestApp, headers: &[(&str, String)], body: &str) -> TestResponse {
    let mut request =
        Request::post("/_/secrets/disclose-token").header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    app.request(request.body(Body::from(body.to_owned())).expect("request"))
        .await
}

#[tokio::test]
async fn signed_leak_reports_revoke_tokens_and_tell_their_owners() {
    let dir = tempfile::tempdir().unwrap();
    let key = leak_key(7);
    let pem = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    let keys_file = dir.path().join("keys.pem");
    std::fs::write(&keys_file, pem).unwrap();
    let app =
        TestApp::with_settings(|s| s.leak_report_keys = Some(keys_file.display().to_string()))
            .await;
    let body = serde_json::json!([{"token": app.token, "type": "pypi_api_token", "url": "https://example.com/leak", "source": "content"}]).to_string();
    let headers = |signature: String| {
        vec![
            ("github-public-key-identifier", "key-1".to_owned()),
            ("github-public-key-signature", signature),
        ]
    };

    assert_eq!(
        report(&app, &[], &body).await.status,
        404,
        "without the headers"
    );
    assert_eq!(
        report(&app, &headers("garbage".to_owned()), &body)
            .await
            .status,
        400,
        "unsigned"
    );
    assert_eq!(
        report(&app, &headers(sign(&leak_key(8), body.as_bytes())), &body)
            .await
            .status,
        400,
        "another key"
    );
    let tampered = body.replace("example.com", "example.org");
    assert_eq!(
        report(&app, &headers(sign(&key, body.as_bytes())), &tampered)
            .await
            .status,
        400,
        "another body"
    );
    assert_eq!(
        report(&app, &headers(sign(&key, b"{}")), "{}").await.status,
        400,
        "not a list"
    );
    assert_eq!(app.count("macaroons").await, 1, "nothing revoked yet");

    let unknown = serde_json::json!([{"token": "pypi-AgEIcHlwaS5vcmcCJGJhZA", "type": "pypi_api_token", "url": "x"}]).to_string();
    assert_eq!(
        report(&app, &headers(sign(&key, unknown.as_bytes())), &unknown)
            .await
            .status,
        204
    );
    let done = report(&app, &headers(sign(&key, body.as_bytes())), &body).await;
    assert_eq!(done.status, 204);
    assert_eq!(app.count("macaroons").await, 0);
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("found the API token") && m.contains("https://example.com/leak"))
    );
    let (leaks,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM events WHERE tag = 'account:api_token:removed_leak'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(leaks, 1);
    // The deprecated GitHub path is the same endpoint.
    let github = app
        .request(
            Request::post("/_/github/disclose-token")
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await;
    assert_eq!(github.status, 404);
}

#[tokio::test]
async fn leak_report_keys_can_come_from_a_url() {
    let key = leak_key(9);
    let pem = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    let keys = serde_json::json!({"public_keys": [{"key_identifier": "abc", "key": pem, "is_current": true}]}).to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served =
        axum::Router::new().route("/keys", axum::routing::get(move || async move { keys }));
    tokio::spawn(async move { axum::serve(listener, served).await });
    let app =
        TestApp::with_settings(|s| s.leak_report_keys = Some(format!("http://{address}/keys")))
            .await;
    let body = serde_json::json!([{"token": app.token, "type": "pypi_api_token", "url": "https://example.com/x"}]).to_string();
    let wrong_id = vec![
        ("github-public-key-identifier", "other".to_owned()),
        ("github-public-key-signature", sign(&key, body.as_bytes())),
    ];
    assert_eq!(report(&app, &wrong_id, &body).await.status, 400);
    let right = vec![
        ("github-public-key-identifier", "abc".to_owned()),
        ("github-public-key-signature", sign(&key, body.as_bytes())),
    ];
    assert_eq!(report(&app, &right, &body).await.status, 204);
    assert_eq!(app.count("macaroons").await, 0);
}

#[tokio::test]
async fn repeated_failures_are_coalesced_on_the_owners_log() {
    let app = TestApp::new().await;
    with_projects(&app, &["alpha"]).await;
    let expired = app.project_token(&app.user, &["alpha"], Some(60)).await;
    app.state.clock.advance(61);
    for _ in 0..5 {
        assert_eq!(
            app.upload(Some(&expired), &UploadForm::wheel("alpha", "2.0"))
                .await
                .status,
            403
        );
    }
    let count = || async {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT additional FROM events WHERE tag = 'account:api_token:failure' ORDER BY id",
        )
        .fetch_all(app.state.db.pool())
        .await
        .unwrap();
        rows
    };
    assert_eq!(count().await.len(), 1, "one event for five refusals");
    app.state.clock.advance(601);
    app.upload(Some(&expired), &UploadForm::wheel("alpha", "2.0"))
        .await;
    let rows = count().await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows[1].0.contains("\"similar_failures_not_logged\":4"),
        "{}",
        rows[1].0
    );
}

#[tokio::test]
async fn the_owner_reads_a_tokens_usage_trail() {
    let app = TestApp::new().await;
    with_projects(&app, &["alpha"]).await;
    let info = wharf::tokens::list_for_user(&app.state.db, &app.user.id)
        .await
        .unwrap()
        .remove(0);
    let mut browser = Browser::signed_in(&app, "alice").await;
    let page = browser
        .get(&format!("/manage/account/tokens/{}/", info.id))
        .await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(
        text.contains("Accepted") && text.contains("alpha") && text.contains("twine&#x2f;7.0.0"),
        "{text}"
    );
    app.create_user("bob").await;
    let mut bob = Browser::signed_in(&app, "bob").await;
    assert_eq!(
        bob.get(&format!("/manage/account/tokens/{}/", info.id))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn owners_are_told_a_week_before_a_token_expires_once() {
    let app = TestApp::new().await;
    app.project_token(&app.user, &[], Some(30 * 86_400)).await;
    assert_eq!(wharf::tokens::notify_expiring(&app.state).await.unwrap(), 0);
    app.state.clock.advance(24 * 86_400);
    assert_eq!(wharf::tokens::notify_expiring(&app.state).await.unwrap(), 1);
    assert_eq!(wharf::tokens::notify_expiring(&app.state).await.unwrap(), 0);
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("An API token expires soon"))
    );
}

#[tokio::test]
async fn ten_megabytes_of_junk_in_the_password_field_is_refused_cleanly() {
    let app = TestApp::new().await;
    let junk = "x".repeat(10 * 1024 * 1024);
    let response = app
        .upload(Some(&junk), &UploadForm::wheel("demo", "1.0"))
        .await;
    assert_eq!(response.status, 403);
    assert!(
        response
            .message()
            .contains("Invalid or non-existent authentication information")
    );
    assert_eq!(app.count("projects").await, 0);
}

#[tokio::test]
async fn the_token_path_runs_no_password_hash() {
    let app = TestApp::new().await;
    // Other tests in this process may hash passwords meanwhile: retry until a quiet window.
    for _ in 0..20 {
        let before = wharf::accounts::argon2_runs();
        let response = app
            .upload(
                Some(&app.token),
                &UploadForm::wheel(&format!("quiet-{before}"), "1.0"),
            )
            .await;
        assert_eq!(response.status, 200);
        if wharf::accounts::argon2_runs() == before {
            return;
        }
    }
    panic!("every upload ran argon2");
}

/// The project's token page matches tokens by project id: a project deleted and re-created
/// under the same name by someone else lists none of the old project's tokens, and they cannot
/// upload to it.
#[tokio::test]
async fn a_recreated_project_name_shows_and_accepts_none_of_the_old_tokens() {
    let app = TestApp::new().await;
    let first = app
        .upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    assert_eq!(first.status, 200, "{}", first.message());
    let scoped = app.project_token(&app.user, &["demo"], None).await;
    let (scoped_name,): (String,) = sqlx::query_as(
        "SELECT description FROM macaroons WHERE user_id = $1 AND permissions_caveat LIKE '%demo%'",
    )
    .bind(&app.user.id)
    .fetch_one(app.state.db.pool())
    .await
    .expect("scoped token");
    let mut alice = Browser::signed_in(&app, "alice").await;
    let before = alice.get("/manage/project/demo/tokens/").await.text();
    assert!(before.contains(&scoped_name), "{before}");
    let deleted = alice
        .post(
            "/manage/project/demo/delete",
            &[("confirm_project_name", "demo")],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.text());

    let (_, bob_token) = app.create_user("bob").await;
    let again = app
        .upload(Some(&bob_token), &UploadForm::wheel("demo", "1.1"))
        .await;
    assert_eq!(again.status, 200, "{}", again.message());
    let mut bob = Browser::signed_in(&app, "bob").await;
    let page = bob.get("/manage/project/demo/tokens/").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert!(text.contains("test token"), "bob's own token: {text}");
    assert!(
        !text.contains(&scoped_name),
        "the old project's token: {text}"
    );
    assert!(!text.contains("/user/alice/"), "{text}");

    // Its ProjectId caveat names the old project: refused, and so is alice's account token.
    let refused = app
        .upload(Some(&scoped), &UploadForm::wheel("demo", "1.2"))
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.message().contains("not valid for project"),
        "{}",
        refused.message()
    );
    let refused = app
        .upload(Some(&app.token), &UploadForm::wheel("demo", "1.2"))
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.message().contains("isn't allowed to upload"));
}

/// The bytes of the SQLite database and its write-ahead log (empty on PostgreSQL).
fn database_bytes(app: &TestApp) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["wharf.db", "wharf.db-wal"] {
        if let Ok(read) = std::fs::read(app.dir.path().join(name)) {
            bytes.extend(read);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn stored_key(app: &TestApp, table: &str, id: &str) -> Vec<u8> {
    let (key,): (Vec<u8>,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT key FROM {table} WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(app.state.db.pool())
    .await
    .expect("key");
    key
}

/// Root keys are sealed with the server key: never in the database in clear, including the
/// keys of earlier versions, which start-up seals.
#[tokio::test]
async fn token_root_keys_are_sealed_at_rest() {
    let app = TestApp::new().await;
    let gone = app.project_token(&app.user, &[], None).await;
    let ids: Vec<(String, String)> =
        sqlx::query_as("SELECT id, description FROM macaroons ORDER BY description")
            .fetch_all(app.state.db.pool())
            .await
            .expect("ids");
    let live = ids
        .iter()
        .find(|(_, d)| d == "test token")
        .expect("live")
        .0
        .clone();
    let deleted = ids
        .iter()
        .find(|(_, d)| d != "test token")
        .expect("other")
        .0
        .clone();
    let info = tokens::find(&app.state.db, &deleted)
        .await
        .expect("db")
        .expect("token");
    tokens::delete(
        &app.state,
        &info,
        tokens::Removal::ByOwner,
        &Default::default(),
        app.state.clock.now_micros(),
    )
    .await
    .expect("delete");

    let mut raw = Vec::new();
    for (table, id) in [("macaroons", &live), ("deleted_macaroons", &deleted)] {
        let sealed = stored_key(&app, table, id).await;
        let key = tokens::open_key(&app.state.keys, id, &sealed).expect("opens");
        assert_eq!(key.len(), 32);
        assert!(!contains(&sealed, &key));
        // Bound to its row: another token's id does not open it.
        assert!(tokens::open_key(&app.state.keys, "other", &sealed).is_none());
        raw.push((table, id.clone(), key));
    }
    let bytes = database_bytes(&app);
    for (_, _, key) in &raw {
        assert!(!contains(&bytes, key), "a root key in the database file");
    }

    // Rows as an earlier version wrote them: keys in clear. Start-up seals them.
    for (table, id, key) in &raw {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET key = $1 WHERE id = $2"
        )))
        .bind(key.clone())
        .bind(id)
        .execute(app.state.db.pool())
        .await
        .expect("clear key");
    }
    let bytes = database_bytes(&app);
    if !bytes.is_empty() {
        // The search below does find a clear key where there is one.
        assert!(raw.iter().all(|(_, _, key)| contains(&bytes, key)));
    }
    let reopened = wharf::app::AppState::open((*app.state.settings).clone())
        .await
        .expect("reopen");
    for (table, id, key) in &raw {
        let sealed = stored_key(&app, table, id).await;
        assert_ne!(&sealed, key);
        assert_eq!(
            tokens::open_key(&reopened.keys, id, &sealed).as_ref(),
            Some(key)
        );
    }
    let bytes = database_bytes(&app);
    for (table, _, key) in &raw {
        assert!(!contains(&bytes, key), "a clear key of {table} left behind");
    }
    // The sealed keys still verify: the live token authenticates, the deleted one is known.
    let presented = tokens::lookup(
        &reopened.db,
        &reopened.keys,
        &reopened.token_cache,
        &app.token,
    )
    .await
    .expect("db")
    .expect("live token");
    assert_eq!(presented.check_signature(), Ok(()));
    let rejection = tokens::lookup(&reopened.db, &reopened.keys, &reopened.token_cache, &gone)
        .await
        .expect("db");
    assert!(
        matches!(rejection, Err(tokens::Rejection::Deleted { .. })),
        "{rejection:?}"
    );
    reopened.db.close().await;
}
