//! The token lifecycle (issue 13 §3): bulk invalidation from the command line and
//! `/admin/tokens/` (by user, project, creation date, or all; a dry run changes nothing; one
//! event per token; one mail per owner; refused at once here and, through the revocation
//! log, in another process), and rotation from the token's page (grace none, 1 h, 24 h).

use axum::http::StatusCode;
use base64::Engine;
use clap::Parser;
use wharf::accounts::User;
use wharf::admin::actions::TokenFilters;
use wharf::cli::admin::invalidate_tokens;
use wharf::config::ReadAccess;
use wharf::events::RequestMeta;
use wharf::tokens::{self, TokenScope};

use crate::browser::{Browser, outbox};
use crate::util::{TestApp, UploadForm};

async fn make_admin(app: &TestApp, username: &str) {
    sqlx::query("UPDATE users SET is_admin = 1 WHERE username = $1")
        .bind(username)
        .execute(app.state.db.pool())
        .await
        .expect("admin");
}

/// The details of every event with `tag`, oldest first, with their source.
async fn events_tagged(app: &TestApp, tag: &str) -> Vec<(String, serde_json::Value)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT source_id, additional FROM events WHERE tag = $1 ORDER BY id")
            .bind(tag)
            .fetch_all(app.state.db.pool())
            .await
            .expect("events");
    rows.into_iter()
        .map(|(source, a)| (source, serde_json::from_str(&a).expect("json")))
        .collect()
}

/// The messages to `address` whose text contains `subject`.
async fn mails_to(app: &TestApp, address: &str, subject: &str) -> Vec<String> {
    app.state.mailer.idle().await;
    outbox(app)
        .into_iter()
        .filter(|m| m.contains(&format!("To: {address}")) && m.contains(subject))
        .collect()
}

/// A token named `name` for `user`: account-wide, or limited to `projects`.
async fn token(
    app: &TestApp,
    user: &User,
    name: &str,
    projects: &[&str],
    read_only: bool,
) -> String {
    let mut found = Vec::new();
    for project in projects {
        found.push(
            wharf::packaging::find_project(&app.state.db, project)
                .await
                .expect("db")
                .expect("project"),
        );
    }
    tokens::create(
        &tokens::Issuer::of(&app.state, &app.state.settings.token_location()),
        user,
        name,
        &TokenScope {
            projects: &found,
            expires_in: None,
            read_only,
        },
        &RequestMeta::default(),
        app.state.clock.now_micros(),
    )
    .await
    .expect("token")
}

async fn token_id(app: &TestApp, user: &User, name: &str) -> String {
    tokens::list_for_user(&app.state.db, &user.id)
        .await
        .expect("db")
        .into_iter()
        .find(|t| t.description == name)
        .unwrap_or_else(|| panic!("no token {name}"))
        .id
}

fn filters(user: &str, project: &str, created_before: &str, all: bool) -> TokenFilters {
    TokenFilters {
        user: user.to_owned(),
        project: project.to_owned(),
        created_before: created_before.to_owned(),
        all,
    }
}

async fn uploads(app: &TestApp, token: &str, project: &str, version: &str) -> StatusCode {
    app.upload(Some(token), &UploadForm::wheel(project, version))
        .await
        .status
}

#[tokio::test]
async fn invalidating_a_users_tokens_revokes_them_at_once_with_an_event_each_and_one_mail() {
    let app = TestApp::new().await;
    let (bob, bob_token) = app.create_user("bob").await;
    let bob_ci = token(&app, &bob, "bob's CI", &[], false).await;
    let (_carol, carol_token) = app.create_user("carol").await;
    // Bob's tokens are in this process's cache, and in another process's.
    assert_eq!(
        uploads(&app, &bob_token, "bobs-tool", "1.0").await,
        StatusCode::OK
    );
    let other = wharf::app::AppState::open((*app.state.settings).clone())
        .await
        .expect("second process");
    let presented = tokens::lookup(&other.db, &other.keys, &other.token_cache, &bob_ci)
        .await
        .expect("db")
        .expect("live");
    assert!(other.token_cache.get(&presented.id).is_some());
    let tokens_before = app.count("macaroons").await;
    let mails_before = outbox(&app).len();

    // A dry run counts and changes nothing.
    let line = invalidate_tokens(&app.state, &filters("bob", "", "", false), "rotation", true)
        .await
        .expect("dry run");
    assert_eq!(
        line,
        "would invalidate 2 tokens of 1 owner (dry run: nothing changed)"
    );
    assert_eq!(app.count("macaroons").await, tokens_before);
    assert!(
        events_tagged(&app, "account:api_token:invalidated")
            .await
            .is_empty()
    );
    app.state.mailer.idle().await;
    assert_eq!(outbox(&app).len(), mails_before, "no mail on a dry run");
    assert_eq!(
        uploads(&app, &bob_token, "bobs-tool", "1.1").await,
        StatusCode::OK
    );

    let line = invalidate_tokens(
        &app.state,
        &filters("bob", "", "", false),
        "The CI server was compromised.",
        false,
    )
    .await
    .expect("invalidate");
    assert_eq!(
        line,
        "invalidated 2 tokens of 1 owner; each owner was told by e-mail"
    );
    assert_eq!(app.count("macaroons").await, tokens_before - 2);
    // Refused at once, here; others' tokens still work.
    for token in [&bob_token, &bob_ci] {
        assert_eq!(
            uploads(&app, token, "bobs-tool", "2.0").await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        uploads(&app, &carol_token, "carols-tool", "1.0").await,
        StatusCode::OK
    );
    assert_eq!(
        uploads(&app, &app.token, "alices-tool", "1.0").await,
        StatusCode::OK
    );
    // The other process drops its copy with its next refresh of the revocation log.
    other.token_cache.refresh(&other.db).await.expect("refresh");
    assert!(other.token_cache.get(&presented.id).is_none());
    let again = tokens::lookup(&other.db, &other.keys, &other.token_cache, &bob_ci)
        .await
        .expect("db");
    assert!(
        matches!(again, Err(tokens::Rejection::Deleted { .. })),
        "{again:?}"
    );
    other.db.close().await;

    // One event per token, on bob's log, with the reason and the actor.
    let recorded = events_tagged(&app, "account:api_token:invalidated").await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let mut names: Vec<&str> = recorded
        .iter()
        .map(|(source, details)| {
            assert_eq!(source, &bob.id);
            assert_eq!(details["reason"], "The CI server was compromised.");
            assert_eq!(details["actor"], "(command line)");
            assert_eq!(details["via"], "cli");
            details["description"].as_str().expect("name")
        })
        .collect();
    names.sort();
    assert_eq!(names, ["bob's CI", "test token"]);

    // One mail to bob listing both tokens and the reason, never a secret; none to others.
    let mails = mails_to(&app, "bob@example.org", "invalidated").await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(mail.contains("2 API tokens were invalidated"), "{mail}");
    assert!(
        mail.contains("\"bob's CI\", for the whole account, created on 20"),
        "{mail}"
    );
    assert!(
        mail.contains("\"test token\", for the whole account"),
        "{mail}"
    );
    assert!(
        mail.contains("Reason: The CI server was compromised."),
        "{mail}"
    );
    assert!(!mail.contains(&bob_token) && !mail.contains(&bob_ci) && !mail.contains("pypi-"));
    assert!(
        mails_to(&app, "carol@example.org", "invalidated")
            .await
            .is_empty()
    );
    assert!(
        mails_to(&app, "alice@example.org", "invalidated")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn invalidating_by_project_takes_the_tokens_that_can_upload_to_it() {
    let app = TestApp::new().await;
    let (bob, bob_token) = app.create_user("bob").await;
    assert_eq!(
        uploads(&app, &app.token, "alpha", "1.0").await,
        StatusCode::OK
    );
    assert_eq!(
        uploads(&app, &bob_token, "beta", "1.0").await,
        StatusCode::OK
    );
    let alpha_ci = token(&app, &app.user, "alpha CI", &["alpha"], false).await;
    let alpha_reader = token(&app, &app.user, "alpha reader", &["alpha"], true).await;
    let mirror = token(&app, &app.user, "mirror", &[], true).await;
    let bob_beta = token(&app, &bob, "beta CI", &["beta"], false).await;

    let line = invalidate_tokens(
        &app.state,
        &filters("", "Alpha", "", false),
        "alpha leaked",
        true,
    )
    .await
    .expect("dry run");
    assert_eq!(
        line,
        "would invalidate 3 tokens of 1 owner (dry run: nothing changed)"
    );
    invalidate_tokens(
        &app.state,
        &filters("", "alpha", "", false),
        "alpha leaked",
        false,
    )
    .await
    .expect("invalidate");
    // Limited to alpha (either kind), and alice's account-wide upload token: gone.
    let left: Vec<String> = tokens::list_for_user(&app.state.db, &app.user.id)
        .await
        .expect("db")
        .into_iter()
        .map(|t| t.description)
        .collect();
    assert_eq!(
        left,
        ["mirror"],
        "an account-wide read-only token cannot upload"
    );
    assert_eq!(
        uploads(&app, &alpha_ci, "alpha", "2.0").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        uploads(&app, &app.token, "alpha", "2.0").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        uploads(&app, &bob_beta, "beta", "2.0").await,
        StatusCode::OK
    );
    assert_eq!(
        uploads(&app, &bob_token, "beta", "3.0").await,
        StatusCode::OK
    );
    let _ = (alpha_reader, mirror);
    let alpha = wharf::packaging::find_project(&app.state.db, "alpha")
        .await
        .expect("db")
        .expect("alpha");
    let removed = events_tagged(&app, "project:api_token:removed").await;
    let on_alpha: Vec<_> = removed
        .iter()
        .filter(|(source, _)| source == &alpha.id)
        .collect();
    assert_eq!(
        on_alpha.len(),
        2,
        "the two tokens limited to alpha: {removed:?}"
    );
    let mails = mails_to(&app, "alice@example.org", "invalidated").await;
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("\"alpha CI\", for the projects alpha, created on"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("\"alpha reader\", for the projects alpha, read-only"),
        "{}",
        mails[0]
    );
    assert!(!mails[0].contains("\"mirror\""));
    assert!(
        mails_to(&app, "bob@example.org", "invalidated")
            .await
            .is_empty()
    );
    let _ = bob;
}

#[tokio::test]
async fn invalidating_by_creation_date_or_all_and_the_refusals() {
    let app = TestApp::new().await;
    let (bob, _) = app.create_user("bob").await;
    let old = token(&app, &bob, "old", &[], false).await;
    app.state.clock.advance(3 * 86_400);
    let cutoff = wharf::clock::iso8601_seconds(app.state.clock.now_micros()) + "Z";
    app.state.clock.advance(60);
    let (carol, carol_token) = app.create_user("carol").await;
    let recent = token(&app, &bob, "recent", &[], false).await;

    // Refusals, one line each, change nothing.
    let before = app.count("macaroons").await;
    for (asked, reason, expected) in [
        (
            filters("", "", "", false),
            "x",
            "choose the tokens: --user, --project or --created-before",
        ),
        (
            filters("bob", "", "", true),
            "x",
            "--all takes every token: not with",
        ),
        (
            filters("", "", "last week", false),
            "x",
            "\"last week\" is not a date: use YYYY-MM-DD or RFC 3339",
        ),
        (filters("", "", "2026-02-30", false), "x", "is not a date"),
        (
            filters("nobody", "", "", false),
            "x",
            "no user named 'nobody'",
        ),
        (
            filters("", "nothing", "", false),
            "x",
            "no project named 'nothing'",
        ),
        (filters("bob", "", "", false), "  ", "give --reason TEXT"),
    ] {
        let error = invalidate_tokens(&app.state, &asked, reason, false)
            .await
            .expect_err("refused");
        let line = format!("{error:#}");
        assert!(line.contains(expected), "{expected}: {line}");
        assert!(!line.contains('\n'), "{line}");
    }
    assert_eq!(app.count("macaroons").await, before);

    // Created before the cutoff (RFC 3339): alice's and bob's first tokens, not carol's.
    let line = invalidate_tokens(
        &app.state,
        &filters("", "", &cutoff, false),
        "old format",
        false,
    )
    .await
    .expect("invalidate");
    assert_eq!(
        line,
        "invalidated 3 tokens of 2 owners; each owner was told by e-mail"
    );
    assert_eq!(
        uploads(&app, &old, "bobs-tool", "1.0").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        uploads(&app, &app.token, "alices-tool", "1.0").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        uploads(&app, &recent, "bobs-tool", "1.0").await,
        StatusCode::OK
    );
    // A date is its midnight UTC: nothing was created before the day of the first tokens.
    let first_day =
        &wharf::clock::iso8601_seconds(app.state.clock.now_micros() - 4 * 86_400_000_000)[..10];
    let line = invalidate_tokens(&app.state, &filters("", "", first_day, false), "x", true)
        .await
        .expect("dry run");
    assert!(
        line.starts_with("would invalidate 0 tokens of 0 owners"),
        "{line}"
    );

    // --all: every token left, whoever owns it.
    let line = invalidate_tokens(
        &app.state,
        &filters("", "", "", true),
        "new server key",
        false,
    )
    .await
    .expect("all");
    assert_eq!(
        line,
        "invalidated 2 tokens of 2 owners; each owner was told by e-mail"
    );
    assert_eq!(app.count("macaroons").await, 0);
    assert_eq!(
        uploads(&app, &carol_token, "carols-tool", "1.0").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        events_tagged(&app, "account:api_token:invalidated")
            .await
            .len(),
        5
    );
    let bob_mails = mails_to(&app, "bob@example.org", "invalidated").await;
    assert_eq!(
        bob_mails.len(),
        2,
        "one per invalidation that took bob's tokens"
    );
    let first = &bob_mails[0];
    assert!(first.contains("2 API tokens were invalidated"), "{first}");
    assert!(
        first.contains("\"old\"") && first.contains("\"test token\""),
        "{first}"
    );
    assert!(!first.contains("\"recent\"") && first.contains("Reason: old format"));
    let second = &bob_mails[1];
    assert!(second.contains("An API token was invalidated"), "{second}");
    assert!(second.contains("\"recent\"") && second.contains("Reason: new server key"));
    let _ = carol;

    // The command line's flags.
    let cli = wharf::cli::Cli::try_parse_from([
        "wharf",
        "token",
        "invalidate",
        "--user",
        "bob",
        "--created-before",
        "2026-12-01",
        "--reason",
        "why",
        "--dry-run",
    ])
    .expect("parses");
    assert!(
        format!("{:?}", cli.command).contains("Invalidate { user: Some(\"bob\"), project: None, created_before: Some(\"2026-12-01\"), all: false, reason: Some(\"why\"), dry_run: true }"),
        "{:?}",
        cli.command
    );
}

#[tokio::test]
async fn admins_preview_then_confirm_an_invalidation_on_the_page() {
    let app = TestApp::new().await;
    make_admin(&app, "alice").await;
    let (bob, bob_token) = app.create_user("bob").await;
    let bob_ci = token(&app, &bob, "bob's CI", &[], false).await;
    let mut bob_browser = Browser::signed_in(&app, "bob").await;
    assert_eq!(
        bob_browser.get("/admin/tokens/").await.status,
        StatusCode::FORBIDDEN
    );
    let refused = bob_browser
        .post(
            "/admin/tokens/",
            &[("user", "bob"), ("reason", "x"), ("action", "confirm")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let mut alice = Browser::signed_in(&app, "alice").await;
    let page = alice.get("/admin/tokens/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text()
            .contains("<a href=\"/admin/tokens/\">Tokens</a>"),
        "in the admin nav"
    );
    let users = alice.get("/admin/users/").await.text();
    assert!(users.contains("<a href=\"/admin/tokens/\">Tokens</a>"));

    // A form that chooses nothing, or a bad date, says so.
    let empty = alice.post("/admin/tokens/", &[("reason", "x")]).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(
        empty
            .text()
            .contains("Choose the tokens: by user, project or creation date, or all of them.")
    );
    let bad = alice
        .post(
            "/admin/tokens/",
            &[("created_before", "soon"), ("reason", "x")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.text().contains("href=\"#created_before\""),
        "{}",
        bad.text()
    );

    let preview = alice
        .post(
            "/admin/tokens/",
            &[("user", "bob"), ("reason", "Bob left the company.")],
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK);
    let text = preview.text();
    assert!(
        text.contains("2 tokens of 1 owner match. Nothing has changed yet."),
        "{text}"
    );
    assert!(
        text.contains("bob&#x27;s CI") || text.contains("bob's CI"),
        "{text}"
    );
    assert!(text.contains("name=\"expected\" value=\"2\""), "{text}");
    assert!(!text.contains(&bob_token) && !text.contains(&bob_ci));
    assert_eq!(
        uploads(&app, &bob_ci, "bobs-tool", "1.0").await,
        StatusCode::OK,
        "nothing changed"
    );

    // The selection changed since the preview: refused, nothing revoked.
    let newer = token(&app, &bob, "newer", &[], false).await;
    let stale = alice
        .post(
            "/admin/tokens/",
            &[
                ("user", "bob"),
                ("reason", "Bob left the company."),
                ("action", "confirm"),
                ("expected", "2"),
            ],
        )
        .await;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST);
    assert!(
        stale
            .text()
            .contains("3 tokens match now, not the 2 of the preview"),
        "{}",
        stale.text()
    );
    assert_eq!(
        uploads(&app, &newer, "bobs-tool", "1.1").await,
        StatusCode::OK
    );

    // Re-authentication, as on the other admin pages.
    app.state.clock.advance(app.state.settings.reauth_secs + 1);
    let asked = alice
        .post(
            "/admin/tokens/",
            &[
                ("user", "bob"),
                ("reason", "Bob left the company."),
                ("action", "confirm"),
                ("expected", "3"),
            ],
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.text().contains("reauthenticate"), "{}", asked.text());
    assert!(
        events_tagged(&app, "account:api_token:invalidated")
            .await
            .is_empty()
    );
    let again = alice
        .post(
            "/account/reauthenticate/",
            &[
                ("password", crate::browser::PASSWORD),
                ("next", "/admin/tokens/"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text());

    let done = alice
        .post(
            "/admin/tokens/",
            &[
                ("user", "bob"),
                ("reason", "Bob left the company."),
                ("action", "confirm"),
                ("expected", "3"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let flash = alice.get("/admin/tokens/").await.text();
    assert!(
        flash.contains("Invalidated 3 tokens of 1 owner."),
        "{flash}"
    );
    for token in [&bob_token, &bob_ci, &newer] {
        assert_eq!(
            uploads(&app, token, "bobs-tool", "2.0").await,
            StatusCode::FORBIDDEN
        );
    }
    let recorded = events_tagged(&app, "account:api_token:invalidated").await;
    assert_eq!(recorded.len(), 3);
    for (source, details) in &recorded {
        assert_eq!(source, &bob.id);
        assert_eq!(details["actor"], "alice");
        assert_eq!(details["via"], "web");
        assert_eq!(details["reason"], "Bob left the company.");
    }
    let mails = mails_to(&app, "bob@example.org", "invalidated").await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("3 API tokens were invalidated") && mails[0].contains("\"newer\""));
}

/// Creates a token through the page; returns its secret and id.
async fn create_on_page(
    app: &TestApp,
    browser: &mut Browser<'_>,
    fields: &[(&str, &str)],
) -> (String, String) {
    let response = browser.post("/manage/account/tokens/", fields).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let secret = shown_secret(&response.text());
    let name = fields.iter().find(|(k, _)| *k == "name").expect("name").1;
    (secret, token_id(app, &app.user, name).await)
}

fn shown_secret(page: &str) -> String {
    let start = page.find("pypi-").expect("token shown");
    let end = start + page[start..].find('<').expect("end");
    page[start..end].to_owned()
}

#[tokio::test]
async fn replacing_a_token_without_grace_revokes_the_old_one_at_once() {
    let app = TestApp::new().await;
    assert_eq!(
        uploads(&app, &app.token, "alpha", "1.0").await,
        StatusCode::OK
    );
    assert_eq!(
        uploads(&app, &app.token, "beta", "1.0").await,
        StatusCode::OK
    );
    let mut browser = Browser::signed_in(&app, "alice").await;
    let (old, old_id) = create_on_page(
        &app,
        &mut browser,
        &[
            ("name", "CI"),
            ("scope", "projects"),
            ("projects", "alpha"),
            ("expires", "30"),
        ],
    )
    .await;
    assert_eq!(uploads(&app, &old, "alpha", "1.1").await, StatusCode::OK);
    let page = browser
        .get(&format!("/manage/account/tokens/{old_id}/"))
        .await
        .text();
    assert!(
        page.contains("Replace this token") && page.contains("value=\"none\""),
        "{page}"
    );

    let replaced = browser
        .post(
            &format!("/manage/account/tokens/{old_id}/replace"),
            &[("grace", "none")],
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    let text = replaced.text();
    assert!(
        text.contains("Your new API token") && text.contains("was revoked and no longer works"),
        "{text}"
    );
    let new = shown_secret(&text);
    assert_ne!(new, old);
    // The old one is refused at once; the new one has its name, scope and lifetime.
    assert_eq!(
        uploads(&app, &old, "alpha", "2.0").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(uploads(&app, &new, "alpha", "2.0").await, StatusCode::OK);
    assert_eq!(
        uploads(&app, &new, "beta", "2.0").await,
        StatusCode::FORBIDDEN,
        "still limited to alpha"
    );
    let listed = tokens::list_for_user(&app.state.db, &app.user.id)
        .await
        .expect("db");
    let ci: Vec<_> = listed
        .iter()
        .filter(|t| t.description.starts_with("CI"))
        .collect();
    assert_eq!(ci.len(), 1, "{listed:?}");
    assert_eq!(ci[0].description, "CI");
    assert_eq!(ci[0].projects, ["alpha"]);
    assert_ne!(ci[0].id, old_id);
    let lifetime = ci[0].expires.expect("expires") - ci[0].created;
    assert!(
        (lifetime - 30 * 86_400_000_000).abs() < 2_000_000,
        "{lifetime}"
    );

    let rotated = events_tagged(&app, "account:api_token:rotated").await;
    assert_eq!(rotated.len(), 1);
    let (source, details) = &rotated[0];
    assert_eq!(source, &app.user.id);
    assert_eq!(details["macaroon_id"], old_id.as_str());
    assert_eq!(details["new_macaroon_id"], ci[0].id.as_str());
    assert_eq!(details["grace"], "none");
    assert_eq!(details["old_revoked"], true);
    let added = events_tagged(&app, "account:api_token:added").await;
    assert_eq!(added.last().expect("added").1["replaces"], old_id.as_str());
    let alpha = wharf::packaging::find_project(&app.state.db, "alpha")
        .await
        .expect("db")
        .expect("alpha");
    let removed = events_tagged(&app, "project:api_token:removed").await;
    assert!(
        removed
            .iter()
            .any(|(s, d)| s == &alpha.id && d["reason"] == "replaced"),
        "{removed:?}"
    );
    let mail = mails_to(&app, "alice@example.org", "An API token was replaced").await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("The old token was revoked") && !mail[0].contains("pypi-"));

    // Someone else's token, an unknown grace: nothing happens.
    let (bob, _) = app.create_user("bob").await;
    let bobs = token_id(&app, &bob, "test token").await;
    let foreign = browser
        .post(
            &format!("/manage/account/tokens/{bobs}/replace"),
            &[("grace", "none")],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::SEE_OTHER);
    let odd = browser
        .post(
            &format!("/manage/account/tokens/{}/replace", ci[0].id),
            &[("grace", "7d")],
        )
        .await;
    assert_eq!(odd.status, StatusCode::SEE_OTHER);
    assert_eq!(
        events_tagged(&app, "account:api_token:rotated").await.len(),
        1
    );
    assert!(
        tokens::find(&app.state.db, &bobs)
            .await
            .expect("db")
            .is_some()
    );
}

#[tokio::test]
async fn a_replaced_token_works_during_its_grace_period_and_not_after() {
    let app = TestApp::with_settings(|s| s.read_access = ReadAccess::Users).await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let (old, old_id) = create_on_page(
        &app,
        &mut browser,
        &[("name", "deploy"), ("scope", "account")],
    )
    .await;
    let auth = |token: &str| {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("__token__:{token}"));
        format!("Basic {encoded}")
    };
    // Cached: its row, and a read pass valid for ever.
    assert_eq!(uploads(&app, &old, "alpha", "1.0").await, StatusCode::OK);
    let read = app
        .get_with("/simple/", &[("authorization", &auth(&old))])
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let other = wharf::app::AppState::open((*app.state.settings).clone())
        .await
        .expect("second process");
    tokens::lookup(&other.db, &other.keys, &other.token_cache, &old)
        .await
        .expect("db")
        .expect("live");

    // Re-authentication first, as for creating a token.
    app.state.clock.advance(app.state.settings.reauth_secs + 1);
    let asked = browser
        .post(
            &format!("/manage/account/tokens/{old_id}/replace"),
            &[("grace", "1h")],
        )
        .await;
    assert!(asked.text().contains("reauthenticate"), "{}", asked.text());
    assert!(
        events_tagged(&app, "account:api_token:rotated")
            .await
            .is_empty()
    );
    let again = browser
        .post(
            "/account/reauthenticate/",
            &[
                ("password", crate::browser::PASSWORD),
                ("next", "/manage/account/tokens/"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text());

    let replaced = browser
        .post(
            &format!("/manage/account/tokens/{old_id}/replace"),
            &[("grace", "1h")],
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    let text = replaced.text();
    let short = &old_id[..8];
    assert!(
        text.contains("keeps working until")
            && text.contains(&format!("deploy (replaced, {short})")),
        "{text}"
    );
    let new = shown_secret(&text);
    let info = tokens::find(&app.state.db, &old_id)
        .await
        .expect("db")
        .expect("old kept");
    assert_eq!(info.description, format!("deploy (replaced, {short})"));
    let until = info.expires.expect("expires now");
    let expected = app.state.clock.now_micros() + 3_600_000_000;
    assert!((until - expected).abs() < 2_000_000, "{until} {expected}");
    let list = browser.get("/manage/account/tokens/").await.text();
    assert!(
        list.contains(&format!("deploy (replaced, {short})")) && list.contains(">deploy<"),
        "{list}"
    );

    // Within the grace period both work, for uploads and reads.
    assert_eq!(uploads(&app, &old, "alpha", "2.0").await, StatusCode::OK);
    assert_eq!(uploads(&app, &new, "alpha", "3.0").await, StatusCode::OK);
    app.state.clock.advance(3_500);
    let read = app
        .get_with("/simple/", &[("authorization", &auth(&old))])
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(uploads(&app, &old, "alpha", "4.0").await, StatusCode::OK);
    // After it, only the new one.
    app.state.clock.advance(101);
    let refused = app
        .upload(Some(&old), &UploadForm::wheel("alpha", "5.0"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.message().contains("expired"),
        "{}",
        refused.message()
    );
    let read = app
        .get_with("/simple/", &[("authorization", &auth(&old))])
        .await;
    assert_eq!(read.status, StatusCode::UNAUTHORIZED);
    assert_eq!(uploads(&app, &new, "alpha", "5.0").await, StatusCode::OK);
    let read = app
        .get_with("/simple/", &[("authorization", &auth(&new))])
        .await;
    assert_eq!(read.status, StatusCode::OK);
    // Another process reloads the row (new caveats included) after its refresh.
    other.token_cache.refresh(&other.db).await.expect("refresh");
    let presented = tokens::lookup(&other.db, &other.keys, &other.token_cache, &old)
        .await
        .expect("db")
        .expect("still a row");
    assert!(presented.verify(None, app.state.clock.now_secs()).is_err());
    assert!(
        presented
            .verify(None, app.state.clock.now_secs() - 3_700)
            .is_ok()
    );
    other.db.close().await;

    let rotated = events_tagged(&app, "account:api_token:rotated").await;
    assert_eq!(rotated.len(), 1);
    let details = &rotated[0].1;
    assert_eq!(details["grace"], "1h");
    assert_eq!(details["old_revoked"], false);
    assert_eq!(details["old_expires"], until / 1_000_000);
    assert_eq!(
        details["old_description"],
        format!("deploy (replaced, {short})")
    );
    let mail = mails_to(&app, "alice@example.org", "An API token was replaced").await;
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("The old token keeps working until"),
        "{}",
        mail[0]
    );
}

#[tokio::test]
async fn a_grace_period_never_lengthens_the_old_tokens_life() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let (old, old_id) = create_on_page(
        &app,
        &mut browser,
        &[
            ("name", "weekly"),
            ("scope", "account"),
            ("expires", "7"),
            ("kind", "read"),
        ],
    )
    .await;
    // Six days and 23 hours later, replaced with 24 hours of grace: the old one ends on time.
    app.state.clock.advance(7 * 86_400 - 3_600);
    let mut browser = Browser::signed_in(&app, "alice").await;
    let replaced = browser
        .post(
            &format!("/manage/account/tokens/{old_id}/replace"),
            &[("grace", "24h")],
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    assert!(replaced.text().contains("Read-only token"), "the same kind");
    let info = tokens::find(&app.state.db, &old_id)
        .await
        .expect("db")
        .expect("old");
    let own_end = info.created + 7 * 86_400_000_000;
    assert!((info.expires.expect("expires") - own_end).abs() < 2_000_000);
    let new = tokens::list_for_user(&app.state.db, &app.user.id)
        .await
        .expect("db")
        .into_iter()
        .find(|t| t.description == "weekly")
        .expect("new");
    assert!(new.read_only);
    let lifetime = new.expires.expect("expires") - new.created;
    assert!(
        (lifetime - 7 * 86_400_000_000).abs() < 2_000_000,
        "{lifetime}"
    );
    assert_eq!(
        events_tagged(&app, "account:api_token:rotated").await[0].1["grace"],
        "24h"
    );
    let _ = old;
}

#[tokio::test]
async fn a_token_limited_to_a_deleted_project_cannot_be_replaced() {
    let app = TestApp::new().await;
    assert_eq!(
        uploads(&app, &app.token, "gamma", "1.0").await,
        StatusCode::OK
    );
    let mut browser = Browser::signed_in(&app, "alice").await;
    let (secret, id) = create_on_page(
        &app,
        &mut browser,
        &[
            ("name", "gamma CI"),
            ("scope", "projects"),
            ("projects", "gamma"),
        ],
    )
    .await;
    let meta = RequestMeta::default();
    let actor =
        wharf::admin::actions::AdminActor::command_line(&meta, app.state.clock.now_micros());
    wharf::admin::actions::delete_project((&app.state).into(), &actor, "gamma")
        .await
        .expect("deleted");
    let refused = browser
        .post(
            &format!("/manage/account/tokens/{id}/replace"),
            &[("grace", "1h")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let page = browser
        .get(&format!("/manage/account/tokens/{id}/"))
        .await
        .text();
    assert!(
        page.contains("A project this token is limited to no longer exists"),
        "{page}"
    );
    let kept = tokens::find(&app.state.db, &id)
        .await
        .expect("db")
        .expect("kept");
    assert_eq!(
        (kept.description.as_str(), kept.expires),
        ("gamma CI", None)
    );
    assert!(
        events_tagged(&app, "account:api_token:rotated")
            .await
            .is_empty()
    );
    assert!(!secret.is_empty());
}
