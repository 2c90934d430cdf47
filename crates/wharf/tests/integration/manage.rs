//! Projects through the web UI: public pages, yanking and deleting, collaborators and
//! invitations, and the guards around them.

use crate::browser::{Browser, outbox, tags};
use crate::util::{TestApp, UploadForm};

async fn with_project(app: &TestApp, name: &str, versions: &[&str]) {
    for version in versions {
        let response = app
            .upload(Some(&app.token), &UploadForm::wheel(name, version))
            .await;
        assert_eq!(response.status, 200, "{}", response.message());
    }
}

async fn project_id(app: &TestApp) -> String {
    let (id,): (String,) = sqlx::query_as("SELECT id FROM projects WHERE normalized_name = 'demo'")
        .fetch_one(app.state.db.pool())
        .await
        .expect("project");
    id
}

#[tokio::test]
async fn public_pages_show_projects_releases_and_users() {
    let app = TestApp::new().await;
    with_project(&app, "Demo", &["1.0", "2.0"]).await;
    let mut browser = Browser::new(&app);
    let home = browser.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.text().contains("Demo 2.0"));
    let search = browser.get("/search/?q=dem").await;
    assert!(search.text().contains("href=\"/project/demo/\""));
    assert!(
        browser
            .get("/search/?q=zzz")
            .await
            .text()
            .contains("0 projects found")
    );
    let project = browser.get("/project/demo/").await;
    assert_eq!(project.status, 200);
    let text = project.text();
    assert!(text.contains("<h1>Demo 2.0</h1>"), "{text}");
    // The commands install from this index, never PyPI's project of the same name.
    let unescaped = text.replace("&#x2f;", "/");
    assert!(
        unescaped.contains("value=\"pip install --index-url http://wharf.test/simple/ Demo\""),
        "{text}"
    );
    assert!(
        unescaped.contains("value=\"uv pip install --index-url http://wharf.test/simple/ Demo\"")
    );
    assert!(text.contains("data-copy=\"install-command-uv\""));
    assert!(text.contains("demo-2.0-py3-none-any.whl"));
    assert!(text.contains("href=\"/user/alice/\""));
    assert!(text.contains("<caption"));
    let old = browser.get("/project/demo/1.0/").await;
    assert!(
        old.text()
            .replace("&#x2f;", "/")
            .contains("pip install --index-url http://wharf.test/simple/ Demo==1.0")
    );
    assert_eq!(browser.get("/project/Demo/").await.status, 308);
    assert_eq!(browser.get("/project/nothing-here/").await.status, 404);
    assert_eq!(browser.get("/project/demo/9.9/").await.status, 404);
    assert!(
        browser
            .get("/user/alice/")
            .await
            .text()
            .contains("href=\"/project/demo/\"")
    );
    assert_eq!(browser.get("/user/nobody/").await.status, 404);
    let missing = browser.get("/no/such/page").await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("<main"), "an HTML page for people");
    let search_xss = browser
        .get("/search/?q=%3Cscript%3Ealert(1)%3C/script%3E")
        .await;
    assert!(!search_xss.text().contains("<script>alert"));
    assert!(search_xss.text().contains("&lt;script&gt;"));
}

#[tokio::test]
async fn readmes_are_rendered_and_sanitised() {
    let app = TestApp::new().await;
    let form = UploadForm::wheel("demo", "1.0")
        .set(
            "description",
            "# Hello\n\n<script>alert(1)</script><img src=x onerror=alert(1)>\n\n**bold**",
        )
        .set("description_content_type", "text/markdown");
    assert_eq!(app.upload(Some(&app.token), &form).await.status, 200);
    let page = Browser::new(&app).get("/project/demo/").await.text();
    assert!(page.contains("<h3>Hello</h3>"));
    assert!(page.contains("<strong>bold</strong>"));
    assert!(!page.contains("<script>alert") && !page.contains("onerror"));
}

#[tokio::test]
async fn owners_yank_unyank_and_delete_releases_and_files() {
    let app = TestApp::new().await;
    with_project(&app, "demo", &["1.0", "2.0"]).await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let page = browser.get("/manage/project/demo/release/1.0/").await;
    assert_eq!(page.status, 200);
    let yank = browser
        .post(
            "/manage/project/demo/release/1.0/yank",
            &[("yank_reason", "<b>broken</b> build")],
        )
        .await;
    assert_eq!(yank.status, 303, "{}", yank.text());
    let json = app.get("/pypi/demo/1.0/json").await.json();
    assert_eq!(json["info"]["yanked"], true);
    assert_eq!(json["info"]["yanked_reason"], "<b>broken</b> build");
    let simple = app.get("/simple/demo/").await.text();
    assert!(simple.contains("data-yanked"), "{simple}");
    let public = browser.get("/project/demo/1.0/").await.text();
    assert!(public.contains("&lt;b&gt;broken") && !public.contains("<b>broken"));
    assert!(
        browser
            .post("/manage/project/demo/release/1.0/unyank", &[])
            .await
            .status
            == 303
    );
    assert_eq!(
        app.get("/pypi/demo/1.0/json").await.json()["info"]["yanked"],
        false
    );

    // Deleting needs the name typed; a wrong one changes nothing.
    let before = app.snapshot().await;
    let refused = browser
        .post(
            "/manage/project/demo/release/1.0/file/delete",
            &[
                ("filename", "demo-1.0-py3-none-any.whl"),
                ("confirm_filename", "demo"),
            ],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused
            .text()
            .contains("href=\"#confirm-file-demo-1.0-py3-none-any.whl\"")
    );
    let refused = browser
        .post(
            "/manage/project/demo/release/1.0/delete",
            &[("confirm_version", "2.0")],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(app.snapshot().await, before);

    let deleted = browser
        .post(
            "/manage/project/demo/release/2.0/file/delete",
            &[
                ("filename", "demo-2.0-py3-none-any.whl"),
                ("confirm_filename", "demo-2.0-py3-none-any.whl"),
            ],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.text());
    assert!(
        !app.get("/simple/demo/")
            .await
            .text()
            .contains("demo-2.0-py3")
    );
    // The name can never come back.
    let again = app
        .upload(Some(&app.token), &UploadForm::wheel("demo", "2.0"))
        .await;
    assert_eq!(again.status, 400);
    let deleted = browser
        .post(
            "/manage/project/demo/release/1.0/delete",
            &[("confirm_version", "1.0")],
        )
        .await;
    assert_eq!(deleted.status, 303);
    assert_eq!(app.get("/pypi/demo/1.0/json").await.status, 404);
    let id = project_id(&app).await;
    let project_tags = tags(&app, &id).await;
    for expected in [
        "project:release:yank",
        "project:release:unyank",
        "project:release:remove",
    ] {
        assert!(
            project_tags.iter().any(|t| t == expected),
            "{expected} in {project_tags:?}"
        );
    }
    let (removed,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM events WHERE tag = 'file:remove'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(removed, 2);
}

#[tokio::test]
async fn collaborators_are_invited_accept_and_the_last_owner_stays() {
    let app = TestApp::new().await;
    with_project(&app, "demo", &["1.0"]).await;
    let (bob, _) = app.create_user("bob").await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    let unknown = alice
        .post(
            "/manage/project/demo/collaboration/invite",
            &[("username", "nobody"), ("role", "Maintainer")],
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.text().contains("There is no user named"));
    let invited = alice
        .post(
            "/manage/project/demo/collaboration/invite",
            &[("username", "bob"), ("role", "Owner")],
        )
        .await;
    assert_eq!(invited.status, 303, "{}", invited.text());
    let again = alice
        .post(
            "/manage/project/demo/collaboration/invite",
            &[("username", "bob"), ("role", "Owner")],
        )
        .await;
    assert!(again.text().contains("pending invitation"));
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("To: bob@example.org") && m.contains("invited you"))
    );

    // The last Owner cannot leave or be demoted.
    let demote = alice
        .post(
            "/manage/project/demo/collaboration/role",
            &[("user_id", &app.user.id), ("role", "Maintainer")],
        )
        .await;
    assert_eq!(demote.status, 303);
    let page = alice
        .get("/manage/project/demo/collaboration/")
        .await
        .text();
    assert!(page.contains("must keep at least one Owner"), "{page}");
    let remove = alice
        .post(
            "/manage/project/demo/collaboration/remove",
            &[("user_id", &app.user.id)],
        )
        .await;
    assert_eq!(remove.status, 303);
    assert_eq!(app.count("roles").await, 1);

    let mut bob_browser = Browser::signed_in(&app, "bob").await;
    let list = bob_browser.get("/manage/projects/").await.text();
    assert!(list.contains("alice invited you to join"));
    // Bob cannot manage the project before accepting.
    assert_eq!(
        bob_browser
            .get("/manage/project/demo/releases/")
            .await
            .status,
        403
    );
    let (invitation,): (String,) = sqlx::query_as("SELECT id FROM role_invitations")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let accepted = bob_browser
        .post(&format!("/manage/invitations/{invitation}/accept"), &[])
        .await;
    assert_eq!(accepted.status, 303);
    assert_eq!(app.count("roles").await, 2);
    assert_eq!(
        bob_browser
            .get("/manage/project/demo/releases/")
            .await
            .status,
        200
    );
    // Roles change; invitations are declined or withdrawn.
    let promoted = alice
        .post(
            "/manage/project/demo/collaboration/role",
            &[("user_id", &bob.id), ("role", "Owner")],
        )
        .await;
    assert_eq!(promoted.status, 303);
    let demo = project_id(&app).await;
    assert_eq!(
        wharf::packaging::role_of(&app.state.db, &demo, &bob.id)
            .await
            .unwrap(),
        Some(wharf::packaging::Role::Owner)
    );
    app.create_user("carol").await;
    app.create_user("dave").await;
    for name in ["carol", "dave"] {
        alice
            .post(
                "/manage/project/demo/collaboration/invite",
                &[("username", name), ("role", "Maintainer")],
            )
            .await;
    }
    let invitations: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.id, u.username FROM role_invitations i JOIN users u ON u.id = i.user_id",
    )
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    let id_of = |name: &str| {
        invitations
            .iter()
            .find(|(_, u)| u == name)
            .unwrap()
            .0
            .clone()
    };
    let withdrawn = alice
        .post(
            "/manage/project/demo/collaboration/revoke",
            &[("invitation_id", &id_of("carol"))],
        )
        .await;
    assert_eq!(withdrawn.status, 303);
    let mut dave = Browser::signed_in(&app, "dave").await;
    dave.post(
        &format!("/manage/invitations/{}/decline", id_of("dave")),
        &[],
    )
    .await;
    assert_eq!(app.count("role_invitations").await, 0);
    assert_eq!(app.count("roles").await, 2);
    // Now Alice may step down, and Bob may upload.
    let removed = alice
        .post(
            "/manage/project/demo/collaboration/remove",
            &[("user_id", &app.user.id)],
        )
        .await;
    assert_eq!(removed.status, 303);
    assert_eq!(app.count("roles").await, 1);
    assert_eq!(
        alice.get("/manage/project/demo/releases/").await.status,
        403
    );
    let id = project_id(&app).await;
    let project_tags = tags(&app, &id).await;
    for expected in [
        "project:role:invite",
        "project:role:add",
        "project:role:remove",
    ] {
        assert!(
            project_tags.iter().any(|t| t == expected),
            "{expected} in {project_tags:?}"
        );
    }
    assert!(
        tags(&app, &bob.id)
            .await
            .contains(&"account:role:add".to_owned())
    );
}

#[tokio::test]
async fn invitations_expire_after_a_week() {
    let app = TestApp::new().await;
    with_project(&app, "demo", &["1.0"]).await;
    app.create_user("bob").await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    alice
        .post(
            "/manage/project/demo/collaboration/invite",
            &[("username", "bob"), ("role", "Maintainer")],
        )
        .await;
    let (invitation,): (String,) = sqlx::query_as("SELECT id FROM role_invitations")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    app.state.clock.advance(8 * 86_400);
    let mut bob = Browser::signed_in(&app, "bob").await;
    assert!(
        !bob.get("/manage/projects/")
            .await
            .text()
            .contains("invited you")
    );
    bob.post(&format!("/manage/invitations/{invitation}/accept"), &[])
        .await;
    assert!(
        bob.get("/manage/projects/")
            .await
            .text()
            .contains("expired")
    );
    assert_eq!(
        app.count("roles").await,
        1,
        "no role from an expired invitation"
    );
    // An expired invitation gives way to a new one.
    let again = alice
        .post(
            "/manage/project/demo/collaboration/invite",
            &[("username", "bob"), ("role", "Maintainer")],
        )
        .await;
    assert_eq!(again.status, 303);
}

#[tokio::test]
async fn other_peoples_projects_are_forbidden() {
    let app = TestApp::new().await;
    with_project(&app, "demo", &["1.0"]).await;
    app.create_user("mallory").await;
    let mut mallory = Browser::signed_in(&app, "mallory").await;
    let before = app.snapshot().await;
    for path in [
        "/manage/project/demo/releases/",
        "/manage/project/demo/release/1.0/",
        "/manage/project/demo/settings/",
    ] {
        assert_eq!(mallory.get(path).await.status, 403, "{path}");
    }
    assert_eq!(
        mallory
            .post(
                "/manage/project/demo/release/1.0/yank",
                &[("yank_reason", "x")]
            )
            .await
            .status,
        403
    );
    assert_eq!(
        mallory
            .post(
                "/manage/project/demo/delete",
                &[("confirm_project_name", "demo")]
            )
            .await
            .status,
        403
    );
    assert_eq!(
        mallory
            .get("/manage/project/nothing/releases/")
            .await
            .status,
        404
    );
    assert_eq!(app.snapshot().await, before);
    // Signed out: sent to sign in, and back.
    let anonymous = Browser::new(&app)
        .get("/manage/project/demo/releases/")
        .await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(
        anonymous.header("location"),
        Some("/account/login/?next=%2Fmanage%2Fproject%2Fdemo%2Freleases%2F")
    );
}

#[tokio::test]
async fn owners_delete_a_project_by_typing_its_name() {
    let app = TestApp::new().await;
    with_project(&app, "demo", &["1.0"]).await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    let refused = alice
        .post(
            "/manage/project/demo/delete",
            &[("confirm_project_name", "dem")],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(app.count("projects").await, 1);
    let deleted = alice
        .post(
            "/manage/project/demo/delete",
            &[("confirm_project_name", "demo")],
        )
        .await;
    assert_eq!(deleted.status, 303);
    assert_eq!(app.count("projects").await, 0);
    assert_eq!(app.get("/simple/demo/").await.status, 404);
    assert!(!app.get("/simple/").await.text().contains("demo"));
    let (removed,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM events WHERE tag = 'project:remove'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(removed, 1);
}

/// "Latest version" is PyPI's everywhere: the highest final release by PEP 440 that is not
/// yanked — not the last upload (0.0.9 after 0.2.0), not a yanked 0.3.0, not 0.4rc1.
#[tokio::test]
async fn the_latest_version_is_the_highest_final_release_not_yanked() {
    let app = TestApp::new().await;
    with_project(&app, "demo", &["0.2.0", "0.3.0", "0.4rc1", "0.0.9"]).await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let yank = browser
        .post(
            "/manage/project/demo/release/0.3.0/yank",
            &[("yank_reason", "broken")],
        )
        .await;
    assert_eq!(yank.status, 303, "{}", yank.text());
    let shows_latest = |text: &str, page: &str| {
        assert!(text.contains("0.2.0"), "{page}: {text}");
        assert!(
            !text.contains("0.0.9") || page == "project",
            "{page} shows 0.0.9"
        );
    };
    let json = app.get("/pypi/demo/json").await.json();
    assert_eq!(json["info"]["version"], "0.2.0");
    let project = browser.get("/project/demo/").await.text();
    assert!(project.contains("demo 0.2.0"), "{project}");
    let search = browser.get("/search/?q=demo").await.text();
    shows_latest(&search, "search");
    let user = browser.get("/user/alice/").await.text();
    shows_latest(&user, "user");
    let manage = browser.get("/manage/projects/").await.text();
    shows_latest(&manage, "manage");
}
