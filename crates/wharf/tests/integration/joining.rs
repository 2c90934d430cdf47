//! Who may join: `registration` (open, invite, closed), `registration_email_domains`, and the
//! invitations admins send (`/admin/invitations/`), with their refusals, events and mail.

use crate::browser::{Browser, PASSWORD, link, outbox};
use crate::util::TestApp;
use wharf::config::{EmailDomains, Registration};

async fn users_and_mail(app: &TestApp) -> (i64, usize) {
    app.state.mailer.idle().await;
    (app.count("users").await, outbox(app).len())
}

async fn tag_count(app: &TestApp, tag: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE tag = $1")
        .bind(tag)
        .fetch_one(app.state.db.pool())
        .await
        .expect("count");
    n
}

fn form<'a>(username: &'a str, email: &'a str, invitation: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("username", username),
        ("email", email),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
        ("invitation", invitation),
    ]
}

async fn admin_browser(app: &TestApp) -> Browser<'_> {
    sqlx::query("UPDATE users SET is_admin = 1 WHERE username = 'alice'")
        .execute(app.state.db.pool())
        .await
        .expect("admin");
    Browser::signed_in(app, "alice").await
}

/// Sends an invitation from the admin page and returns its link (a local path).
async fn invite(app: &TestApp, email: &str) -> String {
    let mut admin = admin_browser(app).await;
    let response = admin
        .post("/admin/invitations/send", &[("email", email)])
        .await;
    assert_eq!(response.status, 303, "{}", response.text());
    let message = outbox(app)
        .into_iter()
        .rev()
        .find(|m| m.contains(email))
        .expect("invitation mail");
    assert!(
        message.contains("You are invited to create an account"),
        "{message}"
    );
    link(&message, "http://wharf.test/account/register/?invitation=")
}

#[tokio::test]
async fn open_registration_says_so_and_domains_limit_who_registers() {
    let app = TestApp::with_settings(|s| {
        s.registration_email_domains = EmailDomains::parse(["example.org"]).expect("domains");
    })
    .await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/account/register/").await.text();
    assert!(
        page.contains("Anyone may register on this index."),
        "{page}"
    );
    assert!(
        page.contains("Only addresses in example.org are accepted."),
        "{page}"
    );
    let before = users_and_mail(&app).await;
    for email in ["bob@mail.example.org", "bob@example.com"] {
        let response = browser
            .post("/account/register/", &form("bob", email, ""))
            .await;
        assert_eq!(response.status, 400, "{email}");
        assert!(
            response
                .text()
                .contains("This index accepts only addresses in example.org.")
        );
    }
    assert_eq!(users_and_mail(&app).await, before);
    let response = browser
        .post("/account/register/", &form("bob", "Bob@EXAMPLE.org.", ""))
        .await;
    // A trailing dot is no valid address to send to; the plain form is.
    assert_eq!(response.status, 400);
    let response = browser
        .post("/account/register/", &form("bob", "Bob@EXAMPLE.org", ""))
        .await;
    assert_eq!(response.status, 303, "{}", response.text());
    assert_eq!(app.count("users").await, before.0 + 1);
    // The same rule when an address is added to an account.
    let mut alice = Browser::signed_in(&app, "alice").await;
    let emails = app.count("user_emails").await;
    let response = alice
        .post(
            "/manage/account/email/add",
            &[("new_email", "alice@elsewhere.test")],
        )
        .await;
    assert_eq!(response.status, 400);
    assert!(
        response
            .text()
            .contains("This index accepts only addresses in example.org.")
    );
    assert_eq!(app.count("user_emails").await, emails);
    let response = alice
        .post(
            "/manage/account/email/add",
            &[("new_email", "alice2@example.org")],
        )
        .await;
    assert_eq!(response.status, 303);
    assert_eq!(app.count("user_emails").await, emails + 1);
}

#[tokio::test]
async fn closed_and_invite_only_registration_refuse_and_change_nothing() {
    for (mode, says) in [
        (
            Registration::Closed,
            "Registration on this index is <strong>closed</strong>",
        ),
        (
            Registration::Invite,
            "Registration on this index is <strong>by invitation only</strong>",
        ),
    ] {
        let app = TestApp::with_settings(|s| s.registration = mode).await;
        let mut browser = Browser::new(&app);
        let page = browser.get("/account/register/").await;
        assert_eq!(page.status, 200);
        assert!(page.text().contains(says), "{}", page.text());
        assert!(!page.text().contains("Create account</button>"));
        let before = users_and_mail(&app).await;
        let response = browser
            .post("/account/register/", &form("bob", "bob@example.org", ""))
            .await;
        assert_eq!(response.status, 403, "{mode:?}");
        assert_eq!(users_and_mail(&app).await, before);
        assert_eq!(tag_count(&app, "account:create").await, 1, "only alice");
    }
}

#[tokio::test]
async fn an_invitation_admits_its_address_once_and_records_its_events() {
    let app = TestApp::with_settings(|s| s.registration = Registration::Invite).await;
    let path = invite(&app, "bob@example.org").await;
    assert_eq!(tag_count(&app, "registration:invitation:sent").await, 1);
    let mut browser = Browser::new(&app);
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains("You were invited to register with the address bob@example.org.")
    );
    let token = path.split("invitation=").nth(1).expect("token");
    // Another address with bob's link: refused, nothing made.
    let before = users_and_mail(&app).await;
    let response = browser
        .post(
            "/account/register/",
            &form("carol", "carol@example.org", token),
        )
        .await;
    assert_eq!(response.status, 400);
    assert!(
        response
            .text()
            .contains("This invitation is for bob@example.org")
    );
    assert_eq!(users_and_mail(&app).await, before);
    // Bob's address: the account, its address verified, no verification mail.
    let response = browser
        .post("/account/register/", &form("bob", "bob@example.org", token))
        .await;
    assert_eq!(response.status, 303, "{}", response.text());
    assert_eq!(users_and_mail(&app).await, (before.0 + 1, before.1));
    let bob = wharf::accounts::find_by_username(&app.state.db, "bob")
        .await
        .expect("db")
        .expect("bob");
    assert!(
        wharf::accounts::has_verified_primary_email(&app.state.db, &bob.id)
            .await
            .expect("db")
    );
    assert_eq!(tag_count(&app, "registration:invitation:accepted").await, 1);
    // Reused: a clear page, 410, nothing made.
    let mut other = Browser::new(&app);
    let page = other.get(&path).await;
    assert_eq!(page.status, 410);
    assert!(
        page.text()
            .contains("This invitation has been used already")
    );
    let response = other
        .post(
            "/account/register/",
            &form("bob2", "bob@example.org", token),
        )
        .await;
    assert_eq!(response.status, 410);
    assert_eq!(app.count("users").await, before.0 + 1);
    // The admin page lists it as accepted, by bob.
    let mut admin = Browser::signed_in(&app, "alice").await;
    let list = admin.get("/admin/invitations/").await.text();
    assert!(
        list.contains("bob@example.org")
            && list.contains("accepted")
            && list.contains("/user/bob/"),
        "{list}"
    );
}

#[tokio::test]
async fn forged_expired_and_revoked_links_admit_no_one() {
    let app = TestApp::with_settings(|s| s.registration = Registration::Invite).await;
    let path = invite(&app, "bob@example.org").await;
    let token = path.split("invitation=").nth(1).expect("token").to_owned();
    let mut browser = Browser::new(&app);
    let before = users_and_mail(&app).await;
    // Forged: altered, or signed by another key.
    for forged in [format!("{token}x"), "e30.AAAA".to_owned()] {
        let page = browser
            .get(&format!("/account/register/?invitation={forged}"))
            .await;
        assert_eq!(page.status, 400);
        assert!(page.text().contains("This invitation link is not valid."));
        let response = browser
            .post(
                "/account/register/",
                &form("bob", "bob@example.org", &forged),
            )
            .await;
        assert_eq!(response.status, 400);
    }
    assert_eq!(users_and_mail(&app).await, before);
    // Expired: after 7 days the link is refused and the invitation expires once.
    app.state.clock.advance(7 * 86_400 + 1);
    let page = browser.get(&path).await;
    assert_eq!(page.status, 410);
    assert!(page.text().contains("This invitation has expired"));
    browser.get(&path).await;
    assert_eq!(
        wharf::accounts::invitations::expire_due(&app.state.db, app.state.clock.now_micros())
            .await
            .expect("sweep"),
        0
    );
    assert_eq!(tag_count(&app, "registration:invitation:expired").await, 1);
    assert_eq!(users_and_mail(&app).await, before);
    // The sweep expires the ones no one opened, one event each.
    let _ = invite(&app, "carol@example.org").await;
    let _ = invite(&app, "dave@example.org").await;
    app.state.clock.advance(7 * 86_400 + 1);
    assert_eq!(
        wharf::accounts::invitations::expire_due(&app.state.db, app.state.clock.now_micros())
            .await
            .expect("sweep"),
        2
    );
    assert_eq!(tag_count(&app, "registration:invitation:expired").await, 3);
    // Revoked from the admin page.
    let path = invite(&app, "erin@example.org").await;
    let (id,): (String,) =
        sqlx::query_as("SELECT id FROM registration_invitations WHERE email = 'erin@example.org'")
            .fetch_one(app.state.db.pool())
            .await
            .expect("row");
    let mut admin = Browser::signed_in(&app, "alice").await;
    let response = admin
        .post("/admin/invitations/revoke", &[("id", &id)])
        .await;
    assert_eq!(response.status, 303);
    assert_eq!(tag_count(&app, "registration:invitation:revoked").await, 1);
    let page = Browser::new(&app).get(&path).await;
    assert_eq!(page.status, 410);
    assert!(page.text().contains("withdrawn"));
}

#[tokio::test]
async fn the_invitations_page_is_for_admins_and_checks_what_it_sends() {
    let app = TestApp::with_settings(|s| {
        s.registration = Registration::Invite;
        s.registration_email_domains = EmailDomains::parse(["example.org"]).expect("domains");
    })
    .await;
    app.create_user("mallory").await;
    let mut mallory = Browser::signed_in(&app, "mallory").await;
    assert_eq!(mallory.get("/admin/invitations/").await.status, 403);
    let response = mallory
        .post("/admin/invitations/send", &[("email", "x@example.org")])
        .await;
    assert_eq!(response.status, 403);
    assert_eq!(app.count("registration_invitations").await, 0);
    assert_eq!(
        Browser::new(&app).get("/admin/invitations/").await.status,
        303
    );
    let mut admin = admin_browser(&app).await;
    for (email, says) in [
        (
            "bob@elsewhere.test",
            "This index accepts only addresses in example.org",
        ),
        (
            "mallory@example.org",
            "An account with this address exists already.",
        ),
        ("not an address", "Enter a valid e-mail address"),
    ] {
        let response = admin
            .post("/admin/invitations/send", &[("email", email)])
            .await;
        assert_eq!(response.status, 400, "{email}");
        assert!(response.text().contains(says), "{email}");
    }
    assert_eq!(app.count("registration_invitations").await, 0);
    // A form without the CSRF token is refused.
    let response = admin
        .post_raw("/admin/invitations/send", &[("email", "bob@example.org")])
        .await;
    assert_eq!(response.status, 403);
    assert_eq!(app.count("registration_invitations").await, 0);
    // After reauth_secs the password is asked again before sending.
    app.state.clock.advance(app.state.settings.reauth_secs + 1);
    let response = admin
        .post("/admin/invitations/send", &[("email", "bob@example.org")])
        .await;
    assert!(
        response.text().contains("reauthenticate"),
        "{}",
        response.text()
    );
    assert_eq!(app.count("registration_invitations").await, 0);
}
