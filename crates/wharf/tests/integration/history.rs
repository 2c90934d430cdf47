//! Security history pages and the admin figures.

use wharf::accounts::{self, NewUser};
use wharf::events::RequestMeta;

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
    let stats = wharf::admin::stats::compute(&app.state.db)
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
