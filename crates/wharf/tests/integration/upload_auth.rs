use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;

use crate::util::{TestApp, UploadForm};

async fn refused(app: &TestApp, token: Option<&str>, form: &UploadForm, expected: &str) {
    let before = app.snapshot().await;
    let response = app.upload(token, form).await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );
    assert!(
        response.message().contains(expected),
        "expected {expected:?} in {}",
        response.message()
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused upload stored something"
    );
}

async fn events_with_tag(app: &TestApp, tag: &str) -> Vec<(Option<String>, String)> {
    sqlx::query_as("SELECT source_id, additional FROM events WHERE tag = $1 ORDER BY id")
        .bind(tag)
        .fetch_all(app.state.db.pool())
        .await
        .expect("events")
}

#[tokio::test]
async fn no_credentials_or_an_unknown_token_are_refused() {
    let app = TestApp::new().await;
    let form = UploadForm::wheel("demo", "1.0");
    refused(
        &app,
        None,
        &form,
        "Invalid or non-existent authentication information.",
    )
    .await;
    refused(
        &app,
        Some("pypi-AgEIcHlwaS5vcmcCJGJhZA"),
        &form,
        "Invalid or non-existent authentication information.",
    )
    .await;
    refused(
        &app,
        Some("not-a-token"),
        &form,
        "Invalid or non-existent authentication information.",
    )
    .await;
    let truncated = &app.token[..app.token.len() - 10];
    refused(
        &app,
        Some(truncated),
        &form,
        "Invalid or non-existent authentication information.",
    )
    .await;
    let anonymous = events_with_tag(&app, "upload:auth:failure").await;
    // One event per address, reason and 10 minutes: the three unknown tokens are one.
    assert_eq!(anonymous.len(), 2, "{anonymous:?}");
    assert!(anonymous[0].1.contains("no_credentials"));
    assert!(anonymous[1].1.contains("unknown_token"));
    assert!(anonymous.iter().all(|(source, _)| source.is_none()));
    for _ in 0..5 {
        assert_eq!(app.upload(None, &form).await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(events_with_tag(&app, "upload:auth:failure").await.len(), 2);
    app.state.clock.advance(601);
    assert_eq!(app.upload(None, &form).await.status, StatusCode::FORBIDDEN);
    let anonymous = events_with_tag(&app, "upload:auth:failure").await;
    assert_eq!(anonymous.len(), 3);
    assert!(
        anonymous[2].1.contains("\"similar_failures_not_logged\":5"),
        "the left-out refusals are counted: {}",
        anonymous[2].1
    );
    assert!(
        !anonymous
            .iter()
            .any(|(_, additional)| additional.contains("pypi-")),
        "no secret in the log"
    );
}

#[tokio::test]
async fn passwords_are_refused_on_upload() {
    let app = TestApp::new().await;
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:correct horse battery");
    let request = Request::post("/legacy/")
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "multipart/form-data; boundary=b")
        .body(Body::from("--b--\r\n"))
        .expect("request");
    let response = app.request(request).await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert!(
        response
            .message()
            .contains("Username/Password authentication is no longer supported."),
        "{}",
        response.text()
    );
    assert!(
        !response.message().contains("correct horse"),
        "the password is never echoed"
    );
}

#[tokio::test]
async fn a_forged_token_fails_its_signature_and_is_logged_for_its_owner() {
    let app = TestApp::new().await;
    // Add a caveat without knowing the key: the signature no longer matches.
    let mut macaroon = wharf_macaroon::Macaroon::from_token(&app.token).expect("token");
    let signature = *macaroon.signature();
    macaroon.add_first_party_caveat(br#"[1,["demo"]]"#);
    let mut bytes = macaroon.serialize();
    let at = bytes.len() - 32;
    bytes[at..].copy_from_slice(&signature);
    let forged = format!(
        "pypi-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    refused(
        &app,
        Some(&forged),
        &UploadForm::wheel("demo", "1.0"),
        "Invalid API Token: signatures do not match",
    )
    .await;
    let logged = events_with_tag(&app, "account:api_token:failure").await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].0.as_deref(), Some(app.user.id.as_str()));
    assert!(logged[0].1.contains("signatures do not match"));
}

#[tokio::test]
async fn a_deleted_token_is_refused() {
    let app = TestApp::new().await;
    sqlx::query("DELETE FROM macaroons")
        .execute(app.state.db.pool())
        .await
        .expect("delete");
    refused(
        &app,
        Some(&app.token),
        &UploadForm::wheel("demo", "1.0"),
        "Invalid or non-existent authentication information.",
    )
    .await;
}

#[tokio::test]
async fn project_scoped_tokens_upload_only_to_their_projects() {
    let app = TestApp::new().await;
    for name in ["demo", "other"] {
        assert_eq!(
            app.upload(Some(&app.token), &UploadForm::wheel(name, "1.0"))
                .await
                .status,
            StatusCode::OK
        );
    }
    let scoped = app.project_token(&app.user, &["demo"], None).await;
    let response = app
        .upload(Some(&scoped), &UploadForm::wheel("demo", "1.1"))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    refused(
        &app,
        Some(&scoped),
        &UploadForm::wheel("other", "1.1"),
        "Invalid API Token: project-scoped token is not valid for project: 'other'",
    )
    .await;
    // Nor can it create a new project.
    refused(
        &app,
        Some(&scoped),
        &UploadForm::wheel("brand-new", "1.0"),
        "project-scoped token is not valid for project: 'brand-new'",
    )
    .await;

    let both = app.project_token(&app.user, &["demo", "other"], None).await;
    assert_eq!(
        app.upload(Some(&both), &UploadForm::wheel("other", "1.2"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = TestApp::new().await;
    assert_eq!(
        app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
            .await
            .status,
        StatusCode::OK
    );
    let short = app.project_token(&app.user, &["demo"], Some(60)).await;
    assert_eq!(
        app.upload(Some(&short), &UploadForm::wheel("demo", "1.1"))
            .await
            .status,
        StatusCode::OK
    );
    app.state.clock.advance(61);
    refused(
        &app,
        Some(&short),
        &UploadForm::wheel("demo", "1.2"),
        "Invalid API Token: token is expired",
    )
    .await;
}

#[tokio::test]
async fn bearer_and_token_schemes_are_accepted() {
    let app = TestApp::new().await;
    for (i, scheme) in ["Bearer", "token"].iter().enumerate() {
        let form = UploadForm::wheel("demo", &format!("1.{i}"));
        let request = Request::post("/legacy/")
            .header("authorization", format!("{scheme} {}", app.token))
            .header(
                "content-type",
                "multipart/form-data; boundary=wharf-test-boundary-7d1e",
            )
            .body(Body::from(form.encode()))
            .expect("request");
        let response = app.request(request).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{scheme}: {}",
            response.text()
        );
    }
}

#[tokio::test]
async fn an_unverified_email_blocks_uploads() {
    let app = TestApp::new().await;
    sqlx::query("UPDATE user_emails SET verified = 0")
        .execute(app.state.db.pool())
        .await
        .expect("update");
    refused(
        &app,
        Some(&app.token),
        &UploadForm::wheel("demo", "1.0"),
        "does not have a verified primary email address",
    )
    .await;
}
