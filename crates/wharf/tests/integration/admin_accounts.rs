//! Admins run the accounts and projects: `/admin/users/` and `/admin/projects/` with their
//! actions (admin flag, disable/enable, 2FA reset, delete, transfer, upload limit), each
//! behind re-authentication, recorded with the admin as actor and e-mailed to the people it
//! affects; the command line's versions; names on the admin events page.

use axum::http::StatusCode;
use base64::Engine;
use wharf::admin::actions::{self, AdminActor};
use wharf::cli::admin::{ProjectCommand, UserAdminCommand, run_project, run_user};
use wharf::config::ReadAccess;
use wharf::events::RequestMeta;

use crate::browser::{Browser, PASSWORD, outbox};
use crate::two_factor::{enable_totp, save_recovery_codes};
use crate::util::{TestApp, UploadForm};

async fn make_admin(app: &TestApp, username: &str) {
    sqlx::query("UPDATE users SET is_admin = 1 WHERE username = $1")
        .bind(username)
        .execute(app.state.db.pool())
        .await
        .expect("admin");
}

/// The details of the newest event with `tag`, or `None`.
async fn newest(app: &TestApp, tag: &str) -> Option<serde_json::Value> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT additional FROM events WHERE tag = $1 ORDER BY id DESC LIMIT 1")
            .bind(tag)
            .fetch_optional(app.state.db.pool())
            .await
            .expect("event");
    row.map(|(a,)| serde_json::from_str(&a).expect("json"))
}

/// The newest mail to `address`.
async fn mail_to(app: &TestApp, address: &str) -> String {
    app.state.mailer.idle().await;
    outbox(app)
        .into_iter()
        .rev()
        .find(|m| m.contains(address))
        .unwrap_or_default()
}

fn basic_token(token: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("__token__:{token}"));
    format!("Basic {encoded}")
}

#[tokio::test]
async fn the_admin_pages_are_for_admins_only() {
    let app = TestApp::new().await;
    app.create_user("bob").await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    for path in ["/admin/users/", "/admin/users/bob/", "/admin/projects/"] {
        assert_eq!(
            alice.get(path).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let refused = alice
        .post("/admin/users/bob/", &[("action", "disable")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let (active,): (i64,) = sqlx::query_as("SELECT is_active FROM users WHERE username = 'bob'")
        .fetch_one(app.state.db.pool())
        .await
        .expect("row");
    assert_eq!(active, 1, "nothing changed");
    let mut anonymous = Browser::new(&app);
    let response = anonymous.get("/admin/users/").await;
    assert_eq!(response.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_users_list_searches_and_the_user_page_shows_the_account() {
    let app = TestApp::new().await;
    make_admin(&app, "alice").await;
    let (_bob, bob_token) = app.create_user("bob").await;
    app.create_user("carol").await;
    let upload = app
        .upload(Some(&bob_token), &UploadForm::wheel("bobs-tool", "1.0"))
        .await;
    assert_eq!(upload.status, StatusCode::OK);
    let mut alice = Browser::signed_in(&app, "alice").await;

    let all = alice.get("/admin/users/").await;
    assert_eq!(all.status, StatusCode::OK);
    let text = all.text();
    assert!(text.contains("3 users."), "{text}");
    for name in ["alice", "bob", "carol"] {
        assert!(text.contains(&format!("<a href=\"/admin/users/{name}/\">{name}</a>")));
    }
    let found = alice.get("/admin/users/?q=carol%40example").await.text();
    assert!(found.contains("1 user match"), "{found}");
    assert!(found.contains("carol@example.org") && !found.contains("bob@example.org"));
    let admins = alice.get("/admin/users/?admins=1").await.text();
    assert!(admins.contains("1 user.") && admins.contains("/admin/users/alice/"));
    let none = alice.get("/admin/users/?q=%25").await.text();
    assert!(
        none.contains("0 users match"),
        "a % is taken literally: {none}"
    );

    let page = alice.get("/admin/users/bob/").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    assert!(text.contains("<h1>User bob</h1>"));
    assert!(text.contains("bob@example.org (primary)"));
    assert!(text.contains("bobs-tool</a> (Owner)"), "{text}");
    assert!(
        text.contains("Disable bob&#x27;s account") || text.contains("Disable bob's account"),
        "{text}"
    );
    assert!(!text.contains(&bob_token), "never a token's secret");
    assert!(
        text.contains("account:api_token:used") || text.contains("<code>"),
        "events listed"
    );
    assert_eq!(
        alice.get("/admin/users/nobody/").await.status,
        StatusCode::NOT_FOUND
    );
    // Your own page offers neither disabling nor taking the rights away.
    let own = alice.get("/admin/users/alice/").await.text();
    assert!(!own.contains("value=\"disable\"") && !own.contains("value=\"revoke-admin\""));
}

#[tokio::test]
async fn disabling_ends_sessions_refuses_tokens_and_enabling_restores_them() {
    let app = TestApp::with_settings(|s| s.read_access = ReadAccess::Users).await;
    make_admin(&app, "alice").await;
    let (_, bob_token) = app.create_user("bob").await;
    let upload = app
        .upload(Some(&bob_token), &UploadForm::wheel("bobs-tool", "1.0"))
        .await;
    assert_eq!(upload.status, StatusCode::OK);
    let auth = basic_token(&bob_token);
    assert_eq!(
        app.get_with("/simple/", &[("authorization", &auth)])
            .await
            .status,
        StatusCode::OK,
        "the read pass is cached now"
    );
    let paths = crate::private_index::api_paths_of(&app, &bob_token, "bobs-tool").await;
    let mut bob = Browser::signed_in(&app, "bob").await;
    assert_eq!(bob.get("/manage/account/").await.status, StatusCode::OK);

    let mut alice = Browser::signed_in(&app, "alice").await;
    let done = alice
        .post("/admin/users/bob/", &[("action", "disable")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let page = alice.get("/admin/users/bob/").await.text();
    assert!(page.contains("account is disabled"), "{page}");

    let details = newest(&app, "admin:user:disabled").await.expect("event");
    assert_eq!(details["actor"], "alice");
    assert_eq!(details["via"], "web");
    assert_eq!(details["username"], "bob");
    assert!(
        mail_to(&app, "bob@example.org")
            .await
            .contains("Your account was disabled")
    );

    // The session is gone, sign-in is refused, tokens are refused on read and upload.
    assert_eq!(
        bob.get("/manage/account/").await.status,
        StatusCode::SEE_OTHER
    );
    let mut again = Browser::new(&app);
    let sign_in = again
        .post(
            "/account/login/",
            &[("username", "bob"), ("password", PASSWORD)],
        )
        .await;
    assert_ne!(
        sign_in.status,
        StatusCode::SEE_OTHER,
        "a disabled account cannot sign in"
    );
    for path in &paths {
        let read = app.get_with(path, &[("authorization", &auth)]).await;
        assert_eq!(read.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            read.message().contains("account is disabled"),
            "{path}: {}",
            read.message()
        );
    }
    let refused = app
        .upload(Some(&bob_token), &UploadForm::wheel("bobs-tool", "2.0"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.text().to_lowercase().contains("account disabled"),
        "{}",
        refused.text()
    );
    // Refused reads and the upload: one event per token, reason and window.
    let (failures,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE tag = 'account:api_token:failure' AND additional LIKE '%account disabled%'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .expect("count");
    assert_eq!(failures, 1);
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM macaroons m JOIN users u ON u.id = m.user_id WHERE u.username = 'bob'")
        .fetch_one(app.state.db.pool())
        .await
        .expect("count");
    assert_eq!(rows, 1, "nothing is deleted");

    // Disabling twice says so; enabling brings the tokens back.
    let twice = alice
        .post("/admin/users/bob/", &[("action", "disable")])
        .await;
    assert_eq!(twice.status, StatusCode::SEE_OTHER);
    assert!(
        alice
            .get("/admin/users/bob/")
            .await
            .text()
            .contains("disabled already")
    );
    let enabled = alice
        .post("/admin/users/bob/", &[("action", "enable")])
        .await;
    assert_eq!(enabled.status, StatusCode::SEE_OTHER);
    assert!(newest(&app, "admin:user:enabled").await.is_some());
    assert_eq!(
        app.get_with("/simple/", &[("authorization", &auth)])
            .await
            .status,
        StatusCode::OK
    );
    assert!(
        mail_to(&app, "bob@example.org")
            .await
            .contains("Your account was enabled")
    );
}

#[tokio::test]
async fn admin_rights_are_granted_and_taken_but_never_from_oneself() {
    let app = TestApp::new().await;
    make_admin(&app, "alice").await;
    app.create_user("bob").await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    let granted = alice
        .post("/admin/users/bob/", &[("action", "grant-admin")])
        .await;
    assert_eq!(granted.status, StatusCode::SEE_OTHER);
    let details = newest(&app, "admin:user:admin_granted")
        .await
        .expect("event");
    assert_eq!(details["actor"], "alice");
    assert!(
        mail_to(&app, "bob@example.org")
            .await
            .contains("You are now an administrator")
    );
    let mut bob = Browser::signed_in(&app, "bob").await;
    assert_eq!(bob.get("/admin/users/").await.status, StatusCode::OK);

    let revoked = alice
        .post("/admin/users/bob/", &[("action", "revoke-admin")])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert!(newest(&app, "admin:user:admin_revoked").await.is_some());
    assert_eq!(bob.get("/admin/users/").await.status, StatusCode::FORBIDDEN);

    let own = alice
        .post("/admin/users/alice/", &[("action", "revoke-admin")])
        .await;
    assert_eq!(own.status, StatusCode::SEE_OTHER);
    assert!(
        alice
            .get("/admin/users/alice/")
            .await
            .text()
            .contains("You cannot take your own admin rights away")
    );
    let (is_admin,): (i64,) = sqlx::query_as("SELECT is_admin FROM users WHERE username = 'alice'")
        .fetch_one(app.state.db.pool())
        .await
        .expect("row");
    assert_eq!(is_admin, 1);
    let odd = alice
        .post("/admin/users/bob/", &[("action", "delete-everything")])
        .await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn admin_actions_ask_for_the_password_again_and_for_2fa_when_required() {
    let app = TestApp::new().await;
    make_admin(&app, "alice").await;
    app.create_user("bob").await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    app.state.clock.advance(app.state.settings.reauth_secs + 1);
    let asked = alice
        .post("/admin/users/bob/", &[("action", "disable")])
        .await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.text().contains("reauthenticate"), "{}", asked.text());
    assert!(
        newest(&app, "admin:user:disabled").await.is_none(),
        "nothing done"
    );

    let strict = TestApp::with_settings(|s| s.require_2fa = true).await;
    make_admin(&strict, "alice").await;
    strict.create_user("bob").await;
    let mut admin = Browser::signed_in(&strict, "alice").await;
    let refused = admin
        .post("/admin/users/bob/", &[("action", "disable")])
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert_eq!(
        refused.header("location"),
        Some("/manage/account/two-factor/")
    );
    assert!(newest(&strict, "admin:user:disabled").await.is_none());
}

#[tokio::test]
async fn resetting_two_factor_removes_every_method_and_says_so() {
    let app = TestApp::new().await;
    make_admin(&app, "alice").await;
    app.create_user("bob").await;
    let mut bob = Browser::signed_in(&app, "bob").await;
    save_recovery_codes(&mut bob).await;
    enable_totp(&app, &mut bob).await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    assert!(
        alice
            .get("/admin/users/bob/")
            .await
            .text()
            .contains("totp, 7 recovery codes")
    );
    let reset = alice
        .post("/admin/users/bob/", &[("action", "reset-2fa")])
        .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);
    let details = newest(&app, "admin:user:two_factor_reset")
        .await
        .expect("event");
    assert_eq!(details["sensitive"], true);
    assert_eq!(details["totp"], true);
    assert_eq!(details["recovery_codes"], 8, "used ones too");
    assert_eq!(details["actor"], "alice");
    let (totp, codes): (Option<Vec<u8>>, i64) = sqlx::query_as(
        "SELECT u.totp_secret, (SELECT COUNT(*) FROM recovery_codes r WHERE r.user_id = u.id) FROM users u WHERE u.username = 'bob'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .expect("row");
    assert!(totp.is_none() && codes == 0);
    assert!(
        mail_to(&app, "bob@example.org")
            .await
            .contains("Your two-factor authentication was reset")
    );
    // Bob signs in with the password alone now.
    Browser::signed_in(&app, "bob").await;
    let again = alice
        .post("/admin/users/bob/", &[("action", "reset-2fa")])
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert!(
        alice
            .get("/admin/users/bob/")
            .await
            .text()
            .contains("has no two-factor methods")
    );
}

#[tokio::test]
async fn projects_are_deleted_transferred_and_given_a_limit() {
    let app = TestApp::new().await;
    make_admin(&app, "alice").await;
    let (_, bob_token) = app.create_user("bob").await;
    app.create_user("carol").await;
    for name in ["spam-pkg", "good-pkg"] {
        let upload = app
            .upload(Some(&bob_token), &UploadForm::wheel(name, "1.0"))
            .await;
        assert_eq!(upload.status, StatusCode::OK);
    }
    let mut alice = Browser::signed_in(&app, "alice").await;
    let list = alice.get("/admin/projects/").await.text();
    assert!(
        list.contains("2 projects.") && list.contains("Manage spam-pkg"),
        "{list}"
    );
    assert!(
        alice
            .get("/admin/projects/?q=spam")
            .await
            .text()
            .contains("1 project match")
    );

    // Deleting asks for the name again.
    let wrong = alice
        .post(
            "/admin/projects/",
            &[
                ("action", "delete"),
                ("project", "spam-pkg"),
                ("confirm", "good-pkg"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::SEE_OTHER);
    assert!(
        alice
            .get("/admin/projects/")
            .await
            .text()
            .contains("Nothing was deleted")
    );
    assert_eq!(app.get("/simple/spam-pkg/").await.status, StatusCode::OK);
    let deleted = alice
        .post(
            "/admin/projects/",
            &[
                ("action", "delete"),
                ("project", "spam-pkg"),
                ("confirm", "Spam_Pkg"),
            ],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("/simple/spam-pkg/").await.status,
        StatusCode::NOT_FOUND
    );
    let details = newest(&app, "admin:project:delete").await.expect("event");
    assert_eq!(details["project"], "spam-pkg");
    assert_eq!(details["actor"], "alice");
    assert!(
        mail_to(&app, "bob@example.org")
            .await
            .contains("A project of yours was deleted")
    );

    // Transfer to carol: bob's role ends, both are told.
    let transferred = alice
        .post(
            "/admin/projects/",
            &[
                ("action", "transfer"),
                ("project", "good-pkg"),
                ("to", "carol"),
            ],
        )
        .await;
    assert_eq!(transferred.status, StatusCode::SEE_OTHER);
    let details = newest(&app, "admin:project:transfer").await.expect("event");
    assert_eq!(details["to"], "carol");
    assert_eq!(details["roles_removed"], serde_json::json!(["bob"]));
    assert!(
        mail_to(&app, "carol@example.org")
            .await
            .contains("A project was transferred to you")
    );
    assert!(
        mail_to(&app, "bob@example.org")
            .await
            .contains("you are no longer its Owner")
    );
    let nobody = alice
        .post(
            "/admin/projects/",
            &[
                ("action", "transfer"),
                ("project", "good-pkg"),
                ("to", "nobody"),
            ],
        )
        .await;
    assert_eq!(nobody.status, StatusCode::SEE_OTHER);
    assert!(
        alice
            .get("/admin/projects/")
            .await
            .text()
            .contains("No user named")
    );

    // The upload limit: validated, then set and cleared.
    for bad in ["lots", "1", "5000"] {
        alice
            .post(
                "/admin/projects/",
                &[
                    ("action", "upload-limit"),
                    ("project", "good-pkg"),
                    ("limit_mb", bad),
                ],
            )
            .await;
        let (limit,): (Option<i64>,) =
            sqlx::query_as("SELECT upload_limit FROM projects WHERE normalized_name = 'good-pkg'")
                .fetch_one(app.state.db.pool())
                .await
                .expect("row");
        assert_eq!(limit, None, "{bad} refused");
    }
    let set = alice
        .post(
            "/admin/projects/",
            &[
                ("action", "upload-limit"),
                ("project", "good-pkg"),
                ("limit_mb", "300"),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER);
    let (limit,): (Option<i64>,) =
        sqlx::query_as("SELECT upload_limit FROM projects WHERE normalized_name = 'good-pkg'")
            .fetch_one(app.state.db.pool())
            .await
            .expect("row");
    assert_eq!(limit, Some(300 * 1024 * 1024));
    let details = newest(&app, "admin:project:upload_limit")
        .await
        .expect("event");
    assert_eq!(details["upload_limit"], 300 * 1024 * 1024);
    assert!(
        alice
            .get("/admin/projects/")
            .await
            .text()
            .contains("300 MB")
    );
}

#[tokio::test]
async fn the_command_line_runs_the_same_actions() {
    let app = TestApp::new().await;
    let (_, bob_token) = app.create_user("bob").await;
    let upload = app
        .upload(Some(&bob_token), &UploadForm::wheel("bobs-tool", "1.0"))
        .await;
    assert_eq!(upload.status, StatusCode::OK);
    let lines = run_user(
        &app.state,
        UserAdminCommand::List {
            admins: false,
            disabled: false,
        },
    )
    .await
    .expect("list");
    assert_eq!(lines.len(), 2);
    assert!(lines[1].starts_with("bob\tbob@example.org\t"), "{lines:?}");
    assert!(lines[1].ends_with("\tnone\t-"), "{lines:?}");

    let out = run_user(
        &app.state,
        UserAdminCommand::SetAdmin {
            username: "bob".into(),
            off: false,
        },
    )
    .await
    .expect("set-admin");
    assert_eq!(out, ["bob is an admin"]);
    let details = newest(&app, "admin:user:admin_granted")
        .await
        .expect("event");
    assert_eq!(details["via"], "cli");
    let admins = run_user(
        &app.state,
        UserAdminCommand::List {
            admins: true,
            disabled: false,
        },
    )
    .await
    .expect("list");
    assert_eq!(admins.len(), 1);
    assert!(admins[0].ends_with("\tadmin"), "{admins:?}");

    let out = run_user(
        &app.state,
        UserAdminCommand::Disable {
            username: "bob".into(),
        },
    )
    .await
    .expect("disable");
    assert_eq!(out, ["bob is disabled"]);
    let again = run_user(
        &app.state,
        UserAdminCommand::Disable {
            username: "bob".into(),
        },
    )
    .await
    .expect_err("twice");
    assert_eq!(again.to_string(), "user 'bob' is disabled already");
    let missing = run_user(
        &app.state,
        UserAdminCommand::Show {
            username: "nobody".into(),
        },
    )
    .await
    .expect_err("missing");
    assert_eq!(missing.to_string(), "no user named 'nobody'");
    let shown = run_user(
        &app.state,
        UserAdminCommand::Show {
            username: "bob".into(),
        },
    )
    .await
    .expect("show");
    assert!(
        shown.contains(&"flags: admin,disabled".to_owned()),
        "{shown:?}"
    );
    assert!(
        shown.contains(&"project: bobs-tool (Owner)".to_owned()),
        "{shown:?}"
    );
    run_user(
        &app.state,
        UserAdminCommand::Enable {
            username: "bob".into(),
        },
    )
    .await
    .expect("enable");

    let out = run_project(
        &app.state,
        ProjectCommand::Transfer {
            name: "bobs-tool".into(),
            to: "alice".into(),
        },
    )
    .await
    .expect("transfer");
    assert_eq!(
        out,
        ["bobs-tool is owned by alice alone (roles removed: bob)"]
    );
    let out = run_project(
        &app.state,
        ProjectCommand::Delete {
            name: "bobs-tool".into(),
        },
    )
    .await
    .expect("delete");
    assert_eq!(out, ["deleted bobs-tool"]);
    let gone = run_project(
        &app.state,
        ProjectCommand::Delete {
            name: "bobs-tool".into(),
        },
    )
    .await
    .expect_err("gone");
    assert_eq!(gone.to_string(), "no project named 'bobs-tool'");
    let details = newest(&app, "admin:project:delete").await.expect("event");
    assert_eq!(details["actor"], "(command line)");
}

#[tokio::test]
async fn the_admin_events_page_names_users_and_projects() {
    let app = TestApp::new().await;
    make_admin(&app, "alice").await;
    let upload = app
        .upload(Some(&app.token), &UploadForm::wheel("named-pkg", "1.0"))
        .await;
    assert_eq!(upload.status, StatusCode::OK);
    let meta = RequestMeta::default();
    let actor = AdminActor::command_line(&meta, app.state.clock.now_micros());
    let (_, _) = app.create_user("bob").await;
    actions::set_admin((&app.state).into(), &actor, "bob", true)
        .await
        .expect("grant");
    let mut alice = Browser::signed_in(&app, "alice").await;
    let page = alice.get("/admin/events/").await.text();
    assert!(
        page.contains("user <a href=\"/admin/users/bob/\">bob</a>"),
        "{page}"
    );
    assert!(page.contains("project named-pkg"), "{page}");
    assert!(
        !page.contains(&format!("user {}", app.user.id)),
        "sources are named, not ids: {page}"
    );
}

#[tokio::test]
async fn the_projects_list_pages_by_fifty() {
    let app = TestApp::new().await;
    make_admin(&app, "alice").await;
    for i in 0..51 {
        let upload = app
            .upload(
                Some(&app.token),
                &UploadForm::wheel(&format!("paged-{i:02}"), "1.0"),
            )
            .await;
        assert_eq!(upload.status, StatusCode::OK);
    }
    let mut alice = Browser::signed_in(&app, "alice").await;
    let first = alice.get("/admin/projects/").await.text();
    assert!(first.contains("Page 1 of 2"), "{first}");
    assert!(
        first.contains("href=\"&#x2f;admin&#x2f;projects&#x2f;?q=&amp;page=2\" rel=\"next\"")
            || first.contains("page=2\" rel=\"next\""),
        "{first}"
    );
    assert!(first.contains("Manage paged-49") && !first.contains("Manage paged-50"));
    let second = alice.get("/admin/projects/?q=&page=2").await.text();
    assert!(second.contains("Manage paged-50") && !second.contains("Manage paged-00"));
    assert!(second.contains("rel=\"prev\"") && !second.contains("rel=\"next\""));
}
