//! Security history pages and the admin figures.

use serde_json::json;
use wharf::accounts::{self, NewUser};
use wharf::events::{self, EventTag, RequestMeta, Source};

use crate::browser::{Browser, PASSWORD};
use crate::util::{TestApp, UploadForm};

async fn make_admin(app: &TestApp) {
    let new = NewUser {
        username: "root",
        email: "root@example.org",
        password: PASSWORD,
        is_admin: true,
        email_verified: true,
    };
    accounts::create_user(
        &app.state.db,
        &new,
        &RequestMeta::default(),
        app.state.clock.now_micros(),
    )
    .await
    .expect("admin");
}

#[tokio::test]
async fn the_account_history_shows_the_users_own_events_by_pages() {
    let app = TestApp::new().await;
    let mut stranger = Browser::new(&app);
    for _ in 0..3 {
        stranger
            .post(
                "/account/login/",
                &[("username", "alice"), ("password", "wrong guess here")],
            )
            .await;
    }
    let mut browser = Browser::signed_in(&app, "alice").await;
    let page = browser.get("/manage/account/history/").await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("account:login:failure") && text.contains("account:login:success"));
    assert!(text.contains("reason: invalid_password"));
    assert!(text.contains("<caption>"));
    // Another user's events are not there.
    app.create_user("bob").await;
    Browser::signed_in(&app, "bob").await;
    let bob = accounts::find_by_username(&app.state.db, "bob")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !browser
            .get("/manage/account/history/")
            .await
            .text()
            .contains(&bob.id)
    );
    // Many more events: pages of 25.
    for i in 0..30 {
        app.upload(
            Some(&app.token),
            &UploadForm::wheel(&format!("p{i}"), "1.0"),
        )
        .await;
    }
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM events WHERE source_type = 'user' AND source_id = $1")
            .bind(&app.user.id)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    let pages = (total + 24) / 25;
    assert!(pages >= 2);
    let first = browser.get("/manage/account/history/").await.text();
    assert!(
        first.contains(&format!("{total} events, page 1 of {pages}"))
            && first.contains("Next page"),
        "{first}"
    );
    let last = browser
        .get(&format!(
            "/manage/account/history/?sort=newest&page={pages}"
        ))
        .await
        .text();
    assert!(last.contains(&format!("page {pages} of {pages}")) && last.contains("Previous page"));
    let by_tag = browser
        .get("/manage/account/history/?sort=tag")
        .await
        .text();
    assert!(by_tag.contains("sorted by event"));
}

#[tokio::test]
async fn a_projects_history_is_for_its_owners_and_admins() {
    let app = TestApp::new().await;
    app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    let page = alice.get("/manage/project/demo/history/").await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(
        text.contains("project:create")
            && text.contains("file:add")
            && text.contains("project:release:add")
    );
    assert!(text.contains("twine 7.0.0"), "the client, parsed");
    app.create_user("mallory").await;
    let mut mallory = Browser::signed_in(&app, "mallory").await;
    assert_eq!(
        mallory.get("/manage/project/demo/history/").await.status,
        403
    );
    make_admin(&app).await;
    let mut root = Browser::signed_in(&app, "root").await;
    assert_eq!(root.get("/manage/project/demo/history/").await.status, 200);
}

#[tokio::test]
async fn admins_filter_every_event() {
    let app = TestApp::new().await;
    app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    let mut stranger = Browser::new(&app);
    stranger
        .post(
            "/account/login/",
            &[("username", "nobody"), ("password", "anything at all")],
        )
        .await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    assert_eq!(alice.get("/admin/events/").await.status, 403);
    assert_eq!(alice.get("/admin/stats/").await.status, 403);
    make_admin(&app).await;
    let mut root = Browser::signed_in(&app, "root").await;
    let all = root.get("/admin/events/").await.text();
    assert!(all.contains("anonymous") && all.contains("username: nobody"));
    let by_tag = root.get("/admin/events/?tag=file%3Aadd").await.text();
    assert!(by_tag.contains("1 event,"), "{by_tag}");
    let by_project = root.get("/admin/events/?project=demo").await.text();
    assert!(
        by_project.contains("<code>project:create</code>")
            && !by_project.contains("<code>account:login")
    );
    let by_user = root
        .get("/admin/events/?user=alice&tag=account%3Alogin%3Asuccess")
        .await
        .text();
    assert!(by_user.contains("1 event,"), "{by_user}");
    let future = root.get("/admin/events/?since=2999-01-01").await.text();
    assert!(future.contains("No events."));
    let bad = root
        .get("/admin/events/?since=yesterday&user=ghost")
        .await
        .text();
    assert!(
        bad.contains("is not a date")
            && bad.contains("no user named")
            && bad.contains("No events.")
    );
}

#[tokio::test]
async fn admin_figures_count_sign_ins_two_factor_tokens_and_failures() {
    let app = TestApp::new().await;
    make_admin(&app).await;
    // Three sign-ins without 2FA (alice twice, root once), one failed.
    Browser::signed_in(&app, "alice").await;
    Browser::signed_in(&app, "alice").await;
    let mut failed = Browser::new(&app);
    failed
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", "not the password")],
        )
        .await;
    app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    app.project_token(&app.user, &["demo"], None).await;
    let mut root = Browser::signed_in(&app, "root").await;
    let stats = wharf::admin::store::compute(&app.state.db)
        .await
        .expect("figures");
    assert_eq!(stats.total.sign_ins, 3);
    assert_eq!(stats.total.with_2fa, 0);
    assert_eq!(stats.total.failed_sign_ins, 1);
    assert_eq!(stats.total.tokens_project, 1);
    assert_eq!(stats.total.tokens_account, 1);
    assert_eq!(stats.total.uploads_by_token, 1);
    assert_eq!(stats.accounts, 2);
    assert_eq!(stats.accounts_with_2fa, 0);
    let page = root.get("/admin/stats/").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<svg") && page.text().contains("role=\"img\""));
    let metrics = app.get("/metrics").await.text();
    assert!(
        metrics.contains("wharf_sign_ins_total{two_factor_method=\"none\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("wharf_api_tokens_created_total{scope=\"project\"} 1"));
    assert!(metrics.contains("wharf_failed_sign_ins_total 1"));
}

async fn record_at(app: &TestApp, tag: EventTag, month: &str, additional: serde_json::Value) {
    let time = time::OffsetDateTime::parse(
        &format!("{month}-15T12:00:00Z"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time")
    .unix_timestamp()
        * 1_000_000;
    let mut conn = app.state.db.pool().acquire().await.expect("connection");
    events::record(
        &mut conn,
        Source::Anonymous,
        tag,
        &RequestMeta::default(),
        time,
        additional,
    )
    .await
    .expect("record");
}

#[tokio::test]
async fn admin_figures_are_counted_by_month_and_detail_in_the_database() {
    let app = TestApp::new().await;
    let success = EventTag::AccountLoginSuccess;
    record_at(
        &app,
        success,
        "2026-01",
        json!({"two_factor_method": "totp"}),
    )
    .await;
    record_at(
        &app,
        success,
        "2026-01",
        json!({"two_factor_method": "totp"}),
    )
    .await;
    record_at(&app, success, "2026-01", json!({})).await;
    record_at(
        &app,
        success,
        "2026-02",
        json!({"two_factor_method": "webauthn"}),
    )
    .await;
    record_at(
        &app,
        success,
        "2026-02",
        json!({"two_factor_method": "passkey"}),
    )
    .await;
    record_at(
        &app,
        success,
        "2026-02",
        json!({"two_factor_method": "recovery-code"}),
    )
    .await;
    let added = EventTag::AccountApiTokenAdded;
    record_at(
        &app,
        added,
        "2026-01",
        json!({"caveats": [[3, "u"], [1, ["demo"]]]}),
    )
    .await;
    // An expiry caveat [0, expires, not_before] is not a project scope.
    record_at(&app, added, "2026-01", json!({"caveats": [[0, 1, 0]]})).await;
    record_at(&app, added, "2026-02", json!({"caveats": "not a list"})).await;
    let failure = EventTag::AccountApiTokenFailure;
    record_at(
        &app,
        failure,
        "2026-02",
        json!({"similar_failures_not_logged": 4}),
    )
    .await;
    record_at(&app, failure, "2026-02", json!({})).await;
    let upload = EventTag::UploadAuthFailure;
    record_at(&app, upload, "2026-02", json!({"reason": "unknown_token"})).await;
    record_at(&app, upload, "2026-02", json!({"reason": "no_credentials"})).await;
    record_at(&app, EventTag::RateLimitRefused, "2026-01", json!({})).await;
    let figures = wharf::admin::store::compute(&app.state.db)
        .await
        .expect("figures");
    let months: Vec<_> = figures
        .months
        .iter()
        .filter(|m| m.month.starts_with("2026-0"))
        .map(|m| {
            (
                m.month.as_str(),
                [
                    m.sign_ins,
                    m.totp,
                    m.security_key,
                    m.passkey,
                    m.recovery_code,
                    m.tokens_project,
                    m.tokens_account,
                    m.failed_token_uses,
                    m.rate_limit_refusals,
                ],
            )
        })
        .collect();
    assert_eq!(
        months,
        [
            ("2026-01", [3, 2, 0, 0, 0, 1, 1, 0, 1]),
            ("2026-02", [3, 0, 1, 1, 1, 0, 1, 7, 0]),
        ]
    );
    assert_eq!(figures.months[0].share_2fa, 66.7);
}

#[tokio::test]
async fn metrics_need_the_bearer_token_when_one_is_set() {
    let app = TestApp::with_settings(|s| s.metrics_token = Some("scrape-me-0123".to_owned())).await;
    for headers in [
        vec![],
        vec![("authorization", "Bearer scrape-me-0124")],
        vec![("authorization", "Bearer scrape-me-012")],
        vec![("authorization", "Basic c2NyYXBlLW1lLTAxMjM=")],
        vec![("authorization", "scrape-me-0123")],
    ] {
        let response = app.get_with("/metrics", &headers).await;
        assert_eq!(response.status, 401, "{headers:?}");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer realm=\"metrics\"")
        );
        assert!(!response.text().contains("scrape-me-0123"));
        assert!(!response.text().contains("wharf_accounts"));
    }
    let response = app
        .get_with("/metrics", &[("authorization", "Bearer scrape-me-0123")])
        .await;
    assert_eq!(response.status, 200);
    assert!(
        response.text().contains("wharf_accounts 1"),
        "{}",
        response.text()
    );
    // Without the setting, /metrics is open.
    let open = TestApp::new().await;
    assert_eq!(open.get("/metrics").await.status, 200);
}

#[tokio::test]
async fn metrics_are_served_from_memory_for_a_minute() {
    let app = TestApp::new().await;
    let failed_sign_ins = |text: String| {
        text.lines()
            .find_map(|l| l.strip_prefix("wharf_failed_sign_ins_total "))
            .map(str::to_owned)
    };
    let first = app.get("/metrics").await;
    assert_eq!(first.status, 200);
    assert_eq!(failed_sign_ins(first.text()).as_deref(), Some("0"));
    record_at(&app, EventTag::AccountLoginFailure, "2026-03", json!({})).await;
    app.state
        .clock
        .advance(wharf::admin::metrics::METRICS_TTL_SECS - 1);
    let cached = app.get("/metrics").await;
    assert_eq!(
        failed_sign_ins(cached.text()).as_deref(),
        Some("0"),
        "not computed again"
    );
    app.state.clock.advance(1);
    let fresh = app.get("/metrics").await;
    assert_eq!(failed_sign_ins(fresh.text()).as_deref(), Some("1"));
}

#[test]
fn an_empty_metrics_token_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("wharf.toml");
    std::fs::write(&config, "metrics_token = \"  \"\n").expect("config");
    let args = wharf::config::SettingsArgs {
        config: Some(config),
        ..Default::default()
    };
    let error = wharf::config::Settings::load(&args, None).expect_err("refused");
    assert!(error.to_string().contains("metrics_token"), "{error}");
}
