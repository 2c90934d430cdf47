//! Two-factor authentication: TOTP with replay and skew rules, recovery codes, security keys
//! with a software authenticator, the 5-minute step, limits and policies.

use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};
use wharf::twofactor::totp;

use crate::browser::{Browser, PASSWORD, outbox, tags};
use crate::util::{TestApp, UploadForm};

/// Generates recovery codes and burns one, as the pages require before TOTP or a key.
pub async fn save_recovery_codes(browser: &mut Browser<'_>) -> Vec<String> {
    let page = browser
        .post("/manage/account/recovery-codes/generate", &[])
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    let codes: Vec<String> = page
        .text()
        .split("<li><code>")
        .skip(1)
        .map(|rest| rest[..16].to_owned())
        .collect();
    assert_eq!(codes.len(), 8);
    let burned = browser
        .post(
            "/manage/account/recovery-codes/burn",
            &[("code", &codes[0])],
        )
        .await;
    assert_eq!(burned.status, 303, "{}", burned.text());
    codes
}

/// Sets up TOTP through the pages and returns the secret the page showed.
pub async fn enable_totp(app: &TestApp, browser: &mut Browser<'_>) -> Vec<u8> {
    let page = browser.get("/manage/account/totp-provision").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    let start = text.find("class=\"secret\"").expect("secret shown");
    let start = start + text[start..].find('>').expect("tag end") + 1;
    let end = start + text[start..].find('<').expect("code end");
    let base32: String = text[start..end].split_whitespace().collect();
    let secret = totp_rs::Secret::try_from_base32(&base32)
        .expect("base32")
        .as_ref()
        .to_vec();
    assert!(text.contains("svg+xml;base64,"), "a QR code");
    let code = totp::code_at(&secret, app.state.clock.now_secs());
    let enabled = browser
        .post("/manage/account/totp-provision", &[("code", &code)])
        .await;
    assert_eq!(enabled.status, 303, "{}", enabled.text());
    secret
}

pub(crate) async fn password_step<'a>(app: &'a TestApp) -> Browser<'a> {
    let mut browser = Browser::new(app);
    let response = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status, 303);
    assert_eq!(response.header("location"), Some("/account/two-factor/"));
    assert!(
        browser.signed_in_cookie().is_none(),
        "no session before the second factor"
    );
    browser
}

#[tokio::test]
async fn totp_is_set_up_then_asked_for_and_a_code_works_once() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    // Recovery codes come first.
    let early = browser.get("/manage/account/totp-provision").await;
    assert_eq!(early.status, 303);
    assert_eq!(
        early.header("location"),
        Some("/manage/account/recovery-codes/")
    );
    save_recovery_codes(&mut browser).await;
    let secret = enable_totp(&app, &mut browser).await;
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("two-factor method was added"))
    );

    let mut step = password_step(&app).await;
    let page = step.get("/account/two-factor/").await;
    assert!(page.text().contains("Six-digit code"));
    for (code, message) in [
        ("12345", "must be 6 digits"),
        ("1234567", "must be 6 digits"),
        ("abcdef", "must be 6 digits"),
    ] {
        let refused = step
            .post("/account/two-factor/totp", &[("code", code)])
            .await;
        assert_eq!(refused.status, 401);
        assert!(refused.text().contains(message), "{code}");
    }
    app.state.clock.advance(301);
    // The failures above count: wait out the window, then sign in again.
    let mut step = password_step(&app).await;
    let now = app.state.clock.now_secs();
    let skewed = step
        .post(
            "/account/two-factor/totp",
            &[("code", &totp::code_at(&secret, now + 150))],
        )
        .await;
    // A code 5 steps off answers exactly as any wrong code: no "out of sync" hint that
    // would tell a guesser they are close.
    assert_eq!(skewed.status, 401);
    assert!(skewed.text().contains("Invalid TOTP code."));
    assert!(!skewed.text().contains("out of sync"));
    let code = totp::code_at(&secret, now);
    let ok = step
        .post("/account/two-factor/totp", &[("code", &code)])
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert!(step.signed_in_cookie().is_some());
    assert!(!step.cookies.contains_key("wharf_2fa"), "the step is over");

    // The same code again is refused, even within its 30 seconds.
    let mut again = password_step(&app).await;
    let replay = again
        .post("/account/two-factor/totp", &[("code", &code)])
        .await;
    assert_eq!(replay.status, 401);
    assert!(replay.text().contains("Invalid TOTP code."));
    app.state.clock.advance(30);
    let next = totp::code_at(&secret, app.state.clock.now_secs());
    assert_eq!(
        again
            .post("/account/two-factor/totp", &[("code", &next)])
            .await
            .status,
        303
    );

    let (detail,): (String,) = sqlx::query_as(
        "SELECT additional FROM events WHERE tag = 'account:login:success' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert!(
        detail.contains("\"two_factor_method\":\"totp\""),
        "{detail}"
    );
    let user_tags = tags(&app, &app.user.id).await;
    for expected in [
        "account:recovery_codes:generated",
        "account:two_factor:method_added",
        "account:login:failure",
    ] {
        assert!(user_tags.iter().any(|t| t == expected), "{expected}");
    }
}

#[tokio::test]
async fn the_totp_secret_is_encrypted_at_rest() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    save_recovery_codes(&mut browser).await;
    let secret = enable_totp(&app, &mut browser).await;
    let (stored,): (Vec<u8>,) = sqlx::query_as("SELECT totp_secret FROM users WHERE id = $1")
        .bind(&app.user.id)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));
    let base32 = totp::base32(&secret);
    for file in ["wharf.db", "wharf.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.dir.path().join(file)) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
                "raw secret in {file}"
            );
            assert!(
                !bytes.windows(base32.len()).any(|w| w == base32.as_bytes()),
                "base32 secret in {file}"
            );
        }
    }
}

#[tokio::test]
async fn the_two_factor_step_expires_and_is_limited() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    save_recovery_codes(&mut browser).await;
    let secret = enable_totp(&app, &mut browser).await;

    let mut step = password_step(&app).await;
    app.state.clock.advance(301);
    let late = step
        .post(
            "/account/two-factor/totp",
            &[("code", &totp::code_at(&secret, app.state.clock.now_secs()))],
        )
        .await;
    assert_eq!(late.status, 303);
    assert!(
        late.header("location")
            .unwrap()
            .starts_with("/account/login/")
    );
    assert!(step.signed_in_cookie().is_none());

    let mut step = password_step(&app).await;
    for _ in 0..5 {
        assert_eq!(
            step.post("/account/two-factor/totp", &[("code", "000000")])
                .await
                .status,
            401
        );
    }
    let code = totp::code_at(&secret, app.state.clock.now_secs());
    let limited = step
        .post("/account/two-factor/totp", &[("code", &code)])
        .await;
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
    assert!(step.signed_in_cookie().is_none());
}

#[tokio::test]
async fn recovery_codes_sign_in_once_each() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let codes = save_recovery_codes(&mut browser).await;
    enable_totp(&app, &mut browser).await;
    let mut step = password_step(&app).await;
    let burned = step
        .post("/account/recovery-code/", &[("code", &codes[0])])
        .await;
    assert_eq!(burned.status, 401);
    assert!(burned.text().contains("previously used"));
    let wrong = step
        .post("/account/recovery-code/", &[("code", "0000000000000000")])
        .await;
    assert!(wrong.text().contains("Invalid recovery code."));
    let spaced = format!("{} {}", &codes[1][..8], &codes[1][8..].to_uppercase());
    let ok = step
        .post("/account/recovery-code/", &[("code", &spaced)])
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert!(step.signed_in_cookie().is_some());
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("A recovery code was used"))
    );
    let (burned_reason,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE tag = 'account:login:failure' AND additional LIKE '%burned_recovery_code%'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(burned_reason, 1);
    let user_tags = tags(&app, &app.user.id).await;
    assert!(user_tags.contains(&"account:recovery_codes:used".to_owned()));
    // Regenerating invalidates the old set.
    let mut manage = step;
    let page = manage
        .post(
            "/manage/account/recovery-codes/generate",
            &[("regenerate", "yes")],
        )
        .await;
    assert_eq!(page.status, 200);
    let mut step = password_step(&app).await;
    let old = step
        .post("/account/recovery-code/", &[("code", &codes[2])])
        .await;
    assert!(old.text().contains("Invalid recovery code."));
}

/// WebAuthn needs a secure origin: these tests run the app as https://wharf.test.
fn origin() -> Url {
    Url::parse("https://wharf.test").expect("test setup")
}

async fn register_key(
    browser: &mut Browser<'_>,
    authenticator: &mut SoftPasskey,
    label: &str,
) -> axum::http::StatusCode {
    let options = browser
        .post(
            "/manage/account/webauthn-provision/options",
            &[("label", label), ("kind", "security_key")],
        )
        .await;
    assert_eq!(options.status, 200, "{}", options.text());
    let body = options.json();
    let ccr: CreationChallengeResponse =
        serde_json::from_value(body["options"].clone()).expect("test setup");
    let credential = authenticator
        .do_registration(origin(), ccr)
        .expect("test setup");
    let credential = serde_json::to_string(&credential).expect("test setup");
    let ceremony = body["ceremony"].as_str().expect("test setup").to_owned();
    browser
        .post(
            "/manage/account/webauthn-provision/validate",
            &[
                ("ceremony", &ceremony),
                ("credential", &credential),
                ("kind", "security_key"),
            ],
        )
        .await
        .status
}

async fn key_options(step: &mut Browser<'_>) -> (String, RequestChallengeResponse) {
    let options = step.post("/account/two-factor/webauthn/options", &[]).await;
    assert_eq!(options.status, 200, "{}", options.text());
    let body = options.json();
    let rcr = serde_json::from_value(body["options"].clone()).expect("options");
    (body["ceremony"].as_str().expect("ceremony").to_owned(), rcr)
}

async fn answer(
    step: &mut Browser<'_>,
    authenticator: &mut SoftPasskey,
    (ceremony, rcr): (String, RequestChallengeResponse),
    forge: bool,
) -> crate::util::TestResponse {
    let credential = authenticator
        .do_authentication(origin(), rcr)
        .expect("assertion");
    let mut credential = serde_json::to_value(credential).expect("json");
    if forge {
        // Another signature: what a forged answer looks like.
        credential["response"]["signature"] = serde_json::json!("AAAA");
    }
    step.post(
        "/account/two-factor/webauthn",
        &[
            ("ceremony", &ceremony),
            ("credential", &credential.to_string()),
        ],
    )
    .await
}

async fn assert_with_key(
    step: &mut Browser<'_>,
    authenticator: &mut SoftPasskey,
    forge: bool,
) -> crate::util::TestResponse {
    let options = key_options(step).await;
    answer(step, authenticator, options, forge).await
}

#[tokio::test]
async fn security_keys_register_and_sign_in_with_a_software_authenticator() {
    let app = TestApp::with_settings(|s| s.base_url = Some(origin().to_string())).await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let mut authenticator = SoftPasskey::new(true);
    // Not before recovery codes are saved.
    let early = browser
        .post(
            "/manage/account/webauthn-provision/options",
            &[("label", "Blue"), ("kind", "security_key")],
        )
        .await;
    assert_eq!(early.status, 400);
    save_recovery_codes(&mut browser).await;
    assert_eq!(
        register_key(&mut browser, &mut authenticator, "Blue").await,
        200
    );
    let dup = browser
        .post(
            "/manage/account/webauthn-provision/options",
            &[("label", "Blue"), ("kind", "security_key")],
        )
        .await;
    assert!(dup.text().contains("already in use"));
    let mut second = SoftPasskey::new(true);
    assert_eq!(register_key(&mut browser, &mut second, "Green").await, 200);
    assert_eq!(app.count("webauthn_credentials").await, 2);

    let mut step = password_step(&app).await;
    let forged = assert_with_key(&mut step, &mut authenticator, true).await;
    assert_eq!(forged.status, 400);
    assert!(step.signed_in_cookie().is_none());
    // Either key works; the credential is looked up by its id.
    let ok = assert_with_key(&mut step, &mut second, false).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["location"], "/manage/projects/");
    assert!(step.signed_in_cookie().is_some());
    let (last_used,): (Option<i64>,) =
        sqlx::query_as("SELECT last_used FROM webauthn_credentials WHERE label = 'Green'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert!(last_used.is_some());

    // A removed key no longer signs in.
    let (id,): (String,) =
        sqlx::query_as("SELECT id FROM webauthn_credentials WHERE label = 'Green'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    let mut manage = step;
    let mut step = password_step(&app).await;
    let options = key_options(&mut step).await;
    let wrong_label = manage
        .post(
            "/manage/account/webauthn/delete",
            &[("credential", &id), ("confirm_label", "Gren")],
        )
        .await;
    assert_eq!(wrong_label.status, 303);
    assert_eq!(app.count("webauthn_credentials").await, 2);
    manage
        .post(
            "/manage/account/webauthn/delete",
            &[("credential", &id), ("confirm_label", "Green")],
        )
        .await;
    assert_eq!(app.count("webauthn_credentials").await, 1);
    // An answer made with the removed key, for a ceremony begun before it was removed.
    let removed = answer(&mut step, &mut second, options, false).await;
    assert_eq!(removed.status, 400);
    assert!(step.signed_in_cookie().is_none());
    let ok = assert_with_key(&mut step, &mut authenticator, false).await;
    assert_eq!(ok.status, 200);
    let user_tags = tags(&app, &app.user.id).await;
    assert!(user_tags.contains(&"account:two_factor:method_removed".to_owned()));
}

#[tokio::test]
async fn the_last_method_stays_while_two_factor_is_required() {
    let app = TestApp::with_settings(|s| s.require_2fa = true).await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    // Without 2FA, everything but the account pages sends the user to set it up.
    let sent = browser.get("/manage/projects/").await;
    assert_eq!(sent.status, 303);
    assert_eq!(sent.header("location"), Some("/manage/account/two-factor/"));
    assert_eq!(browser.get("/manage/account/two-factor/").await.status, 200);
    // Uploads too need the token's owner to have 2FA.
    let refused = app
        .upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .message()
            .contains("does not have two-factor authentication enabled")
    );

    save_recovery_codes(&mut browser).await;
    enable_totp(&app, &mut browser).await;
    assert_eq!(browser.get("/manage/projects/").await.status, 200);
    assert_eq!(
        app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
            .await
            .status,
        200
    );
    let removed = browser
        .post(
            "/manage/account/totp/delete",
            &[("confirm_password", PASSWORD)],
        )
        .await;
    assert_eq!(removed.status, 303);
    let (still,): (Option<Vec<u8>>,) =
        sqlx::query_as("SELECT totp_secret FROM users WHERE id = $1")
            .bind(&app.user.id)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert!(still.is_some(), "the last method was kept");
}

#[tokio::test]
async fn a_project_can_require_two_factor_of_its_owners_and_maintainers() {
    let app = TestApp::new().await;
    assert_eq!(
        app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
            .await
            .status,
        200
    );
    let mut browser = Browser::signed_in(&app, "alice").await;
    let refused = browser
        .post("/manage/project/demo/settings/2fa", &[("require", "yes")])
        .await;
    assert_eq!(refused.status, 303);
    assert!(
        !wharf::twofactor::project_requires(&app.state.db, &project_id(&app).await)
            .await
            .unwrap()
    );
    save_recovery_codes(&mut browser).await;
    enable_totp(&app, &mut browser).await;
    browser
        .post("/manage/project/demo/settings/2fa", &[("require", "yes")])
        .await;
    assert!(
        wharf::twofactor::project_requires(&app.state.db, &project_id(&app).await)
            .await
            .unwrap()
    );
    assert!(
        tags(&app, &project_id(&app).await)
            .await
            .contains(&"project:owners_require_2fa:enabled".to_owned())
    );
    // Bob, a Maintainer without 2FA, can no longer upload.
    let (bob, bob_token) = app.create_user("bob").await;
    let mut tx = app.state.db.begin().await.unwrap();
    wharf::packaging::insert_role(
        &mut tx,
        &project_id(&app).await,
        &bob.id,
        wharf::packaging::Role::Maintainer,
        0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let upload = app
        .upload(Some(&bob_token), &UploadForm::wheel("demo", "2.0"))
        .await;
    assert_eq!(upload.status, 403);
    assert!(upload.message().contains("'demo' requires it"));
    assert_eq!(
        app.upload(Some(&app.token), &UploadForm::wheel("demo", "2.0"))
            .await
            .status,
        200
    );
    browser
        .post("/manage/project/demo/settings/2fa", &[("require", "no")])
        .await;
    let id = project_id(&app).await;
    assert!(
        !wharf::twofactor::project_requires(&app.state.db, &id)
            .await
            .unwrap()
    );
    assert!(
        tags(&app, &id)
            .await
            .contains(&"project:owners_require_2fa:disabled".to_owned())
    );
    assert_eq!(
        app.upload(Some(&bob_token), &UploadForm::wheel("demo", "3.0"))
            .await
            .status,
        200
    );
}

async fn project_id(app: &TestApp) -> String {
    let (id,): (String,) = sqlx::query_as("SELECT id FROM projects WHERE normalized_name = 'demo'")
        .fetch_one(app.state.db.pool())
        .await
        .expect("project");
    id
}

#[tokio::test]
async fn showing_the_totp_set_up_page_changes_nothing_on_the_server() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    save_recovery_codes(&mut browser).await;
    let row = |app: &TestApp| {
        let pool = app.state.db.pool().clone();
        let id = app.user.id.clone();
        async move {
            let row: (Option<Vec<u8>>, Option<Vec<u8>>) =
                sqlx::query_as("SELECT totp_secret, totp_pending_secret FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            row
        }
    };
    let before = row(&app).await;
    let events = app.count("events").await;
    // A GET or HEAD (a link, a prefetch, a cross-site image) stores no secret.
    assert_eq!(
        browser.get("/manage/account/totp-provision").await.status,
        200
    );
    let head = browser
        .send_raw(axum::http::Request::head("/manage/account/totp-provision"))
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(row(&app).await, before);
    assert_eq!(app.count("events").await, events);
    assert_eq!(before, (None, None));
    // The secret of the page shown last is the one a code turns on.
    let secret = enable_totp(&app, &mut browser).await;
    let (stored, pending) = row(&app).await;
    let stored = stored.expect("stored");
    assert_eq!(totp::open(&app.state.keys, &stored).expect("opens"), secret);
    assert_eq!(pending, None);
    assert!(
        !browser.cookies.contains_key("wharf_totp_setup"),
        "the set-up cookie is removed"
    );
}

#[tokio::test]
async fn a_two_factor_step_signs_in_once() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let codes = save_recovery_codes(&mut browser).await;
    let secret = enable_totp(&app, &mut browser).await;
    let mut step = password_step(&app).await;
    let cookie = step.cookies.get("wharf_2fa").expect("step cookie").clone();
    // The set-up used this step's code.
    app.state.clock.advance(30);
    let code = totp::code_at(&secret, app.state.clock.now_secs());
    let ok = step
        .post("/account/two-factor/totp", &[("code", &code)])
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text());
    let sessions = app.count("sessions").await;
    // The same step cookie, replayed with another good factor, signs nobody in.
    let mut replay = Browser::new(&app);
    replay.cookies.insert("wharf_2fa".to_owned(), cookie);
    let page = replay.get("/account/recovery-code/").await;
    assert_eq!(page.status, 303);
    assert!(
        page.header("location")
            .unwrap()
            .starts_with("/account/login/")
    );
    let refused = replay
        .post("/account/recovery-code/", &[("code", &codes[1])])
        .await;
    assert_eq!(refused.status, 303);
    assert!(
        refused
            .header("location")
            .unwrap()
            .starts_with("/account/login/")
    );
    assert!(replay.signed_in_cookie().is_none());
    assert_eq!(app.count("sessions").await, sessions);
}
