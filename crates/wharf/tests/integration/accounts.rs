//! Accounts and sessions through the web UI: register, verify, sign in and out, rate limits,
//! CSRF, re-authentication, password change and reset, e-mail addresses, account deletion.

use crate::browser::{Browser, PASSWORD, link, outbox, tags};
use crate::util::TestApp;

const NEW_PASSWORD: &str = "violet tangerine submarine";

async fn register<'a>(app: &'a TestApp, username: &str) -> Browser<'a> {
    let mut browser = Browser::new(app);
    let email = format!("{username}@example.net");
    let response = browser
        .post(
            "/account/register/",
            &[
                ("username", username),
                ("email", &email),
                ("password", NEW_PASSWORD),
                ("password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status, 303, "{}", response.text());
    browser
}

#[tokio::test]
async fn register_verify_sign_out_and_in() {
    let app = TestApp::new().await;
    let mut browser = register(&app, "carol").await;
    assert!(
        browser.signed_in_cookie().is_some(),
        "signed in after registering"
    );
    let page = browser.get("/manage/account/").await;
    assert!(page.text().contains("carol@example.net"));
    assert!(page.text().contains("not verified"));

    let mail = outbox(&app);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("To: carol@example.net"));
    let verify = link(&mail[0], "http://wharf.test/account/verify-email/");
    let verified = browser.get(&verify).await;
    assert_eq!(verified.status, 200, "{}", verified.text());
    assert!(verified.text().contains("is verified"));
    let user = wharf::accounts::find_by_username(&app.state.db, "carol")
        .await
        .unwrap()
        .unwrap();
    assert!(
        wharf::accounts::has_verified_primary_email(&app.state.db, &user.id)
            .await
            .unwrap()
    );
    // A link works once.
    assert_eq!(browser.get(&verify).await.status, 400);

    let old_session = browser.signed_in_cookie().cloned();
    let out = browser.post("/account/logout/", &[]).await;
    assert_eq!(out.status, 303);
    assert!(browser.signed_in_cookie().is_none());
    assert_eq!(app.count("sessions").await, 0);

    let refused = browser
        .post(
            "/account/login/",
            &[("username", "carol"), ("password", "wrong password here")],
        )
        .await;
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .text()
            .contains("The username or password is incorrect.")
    );
    assert!(
        refused.text().contains("href=\"#username\""),
        "error summary links to the field"
    );

    let ok = browser
        .post(
            "/account/login/",
            &[
                ("username", "carol"),
                ("password", NEW_PASSWORD),
                ("next", "/manage/account/"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.header("location"), Some("/manage/account/"));
    assert_ne!(
        browser.signed_in_cookie().cloned(),
        old_session,
        "a new session id"
    );
    let tags = tags(&app, &user.id).await;
    for expected in [
        "account:create",
        "account:email:sent",
        "account:email:verified",
        "account:logout",
        "account:login:failure",
        "account:login:success",
    ] {
        assert!(tags.iter().any(|t| t == expected), "{expected} in {tags:?}");
    }
}

#[tokio::test]
async fn registration_refuses_bad_input_and_changes_nothing() {
    let app = TestApp::new().await;
    let users = app.count("users").await;
    let mut browser = Browser::new(&app);
    let long = "x".repeat(300);
    for (username, email, password, message) in [
        (
            "bad name",
            "a@example.net",
            NEW_PASSWORD,
            "The username must be",
        ),
        (
            "dave",
            "not-an-address",
            NEW_PASSWORD,
            "Enter a valid e-mail address",
        ),
        ("dave", "d@example.net", "password", "too easy to guess"),
        ("dave", "d@example.net", "short", "at least 8 characters"),
        (
            &long,
            "d@example.net",
            NEW_PASSWORD,
            "at most 50 characters",
        ),
        ("alice", "d@example.net", NEW_PASSWORD, "already taken"),
        ("dave", "alice@example.org", NEW_PASSWORD, "already used"),
        (
            "<script>x</script>",
            "d@example.net",
            NEW_PASSWORD,
            "&lt;script&gt;",
        ),
    ] {
        let response = browser
            .post(
                "/account/register/",
                &[
                    ("username", username),
                    ("email", email),
                    ("password", password),
                    ("password_confirm", password),
                ],
            )
            .await;
        assert_eq!(response.status, 400, "{username}");
        assert!(
            response.text().contains(message),
            "{message}: {}",
            response.text()
        );
        assert!(!response.text().contains("<script>x"), "escaped");
    }
    assert_eq!(app.count("users").await, users);
    assert!(outbox(&app).is_empty());
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused() {
    let app = TestApp::new().await;
    let mut browser = Browser::new(&app);
    let fields = [("username", "alice"), ("password", PASSWORD)];
    // No token at all.
    let response = browser.post_raw("/account/login/", &fields).await;
    assert_eq!(response.status, 403);
    // A token made for another browser's secret.
    let mut other = Browser::new(&app);
    let foreign = other.csrf().await;
    browser.csrf().await;
    let mut forged = vec![("csrf_token", foreign.as_str())];
    forged.extend_from_slice(&fields);
    assert_eq!(
        browser.post_raw("/account/login/", &forged).await.status,
        403
    );
    // The right token, sent from another site.
    browser
        .headers
        .push(("origin".to_owned(), "http://evil.example".to_owned()));
    browser
        .headers
        .push(("host".to_owned(), "wharf.test".to_owned()));
    assert_eq!(browser.post("/account/login/", &fields).await.status, 403);
    browser.headers.clear();
    browser
        .headers
        .push(("sec-fetch-site".to_owned(), "cross-site".to_owned()));
    assert_eq!(browser.post("/account/login/", &fields).await.status, 403);
    assert_eq!(app.count("sessions").await, 0, "no sign-in happened");
    browser.headers.clear();
    assert_eq!(browser.post("/account/login/", &fields).await.status, 303);
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_user_and_ip() {
    let app = TestApp::new().await;
    let mut browser = Browser::new(&app);
    for _ in 0..10 {
        let response = browser
            .post(
                "/account/login/",
                &[("username", "alice"), ("password", "not the password")],
            )
            .await;
        assert_eq!(response.status, 401);
    }
    // Locked out, even with the right password.
    let locked = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(locked.status, 429);
    assert!(
        locked
            .text()
            .contains("too many unsuccessful sign-in attempts")
    );
    let retry: i64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    app.state.clock.advance(301);
    let ok = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text());
}

#[tokio::test]
async fn unknown_usernames_are_logged_for_admins_and_limited_per_ip() {
    let app = TestApp::new().await;
    let mut browser = Browser::new(&app);
    for i in 0..10 {
        let name = format!("nobody{i}");
        let response = browser
            .post(
                "/account/login/",
                &[("username", &name), ("password", "whatever it is")],
            )
            .await;
        assert_eq!(response.status, 401);
        assert!(
            response
                .text()
                .contains("The username or password is incorrect.")
        );
    }
    let (anonymous,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE source_type = 'anonymous' AND tag = 'account:login:failure'",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(anonymous, 10);
    // The address's failures refuse a wrong password (a right one still signs in: see
    // limits::the_address_limit_alone_never_refuses_a_right_password).
    let limited = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", "not the password")],
        )
        .await;
    assert_eq!(limited.status, 429);
}

#[tokio::test]
async fn sensitive_pages_ask_for_the_password_after_30_minutes() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    assert!(
        browser
            .get("/manage/account/")
            .await
            .text()
            .contains("Change your password")
    );
    app.state.clock.advance(31 * 60);
    let page = browser.get("/manage/account/").await;
    assert!(
        page.text().contains("Confirm your password"),
        "{}",
        page.text()
    );
    assert!(!page.text().contains("Change your password"));
    // Changes are refused too until the password is entered.
    let change = browser
        .post(
            "/manage/account/email/add",
            &[("new_email", "other@example.net")],
        )
        .await;
    assert!(change.text().contains("Confirm your password"));
    assert_eq!(app.count("user_emails").await, 1);
    let wrong = browser
        .post(
            "/account/reauthenticate/",
            &[("password", "not it at all"), ("next", "/manage/account/")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let right = browser
        .post(
            "/account/reauthenticate/",
            &[("password", PASSWORD), ("next", "/manage/account/")],
        )
        .await;
    assert_eq!(right.status, 303);
    assert_eq!(right.header("location"), Some("/manage/account/"));
    assert!(
        browser
            .get("/manage/account/")
            .await
            .text()
            .contains("Change your password")
    );
    assert!(
        tags(&app, &app.user.id)
            .await
            .contains(&"account:reauthenticate:failure".to_owned())
    );
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions() {
    let app = TestApp::new().await;
    let mut laptop = Browser::signed_in(&app, "alice").await;
    let mut phone = Browser::signed_in(&app, "alice").await;
    let weak = laptop
        .post(
            "/manage/account/password",
            &[
                ("password", PASSWORD),
                ("new_password", "12345678"),
                ("new_password_confirm", "12345678"),
            ],
        )
        .await;
    assert_eq!(weak.status, 400);
    assert!(weak.text().contains("too easy to guess"));
    let wrong = laptop
        .post(
            "/manage/account/password",
            &[
                ("password", "not my password"),
                ("new_password", NEW_PASSWORD),
                ("new_password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.text().contains("Your current password is incorrect."));
    let changed = laptop
        .post(
            "/manage/account/password",
            &[
                ("password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("new_password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.text());
    assert!(
        laptop
            .get("/manage/account/")
            .await
            .text()
            .contains("Change your password")
    );
    let signed_out = phone.get("/manage/account/").await;
    assert_eq!(signed_out.status, 303);
    assert!(
        signed_out
            .header("location")
            .unwrap()
            .starts_with("/account/login/")
    );
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("Your password has changed"))
    );
    assert!(
        tags(&app, &app.user.id)
            .await
            .contains(&"account:password:change".to_owned())
    );
    let mut fresh = Browser::new(&app);
    let old = fresh
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(old.status, 401);
}

#[tokio::test]
async fn a_forgotten_password_is_reset_by_an_e_mailed_link_once() {
    let app = TestApp::new().await;
    let mut other_session = Browser::signed_in(&app, "alice").await;
    let mut browser = Browser::new(&app);
    let unknown = browser
        .post("/account/reset-password/", &[("login", "nobody")])
        .await;
    assert_eq!(unknown.status, 200);
    assert!(outbox(&app).is_empty());
    let known = browser
        .post(
            "/account/reset-password/",
            &[("login", "alice@example.org")],
        )
        .await;
    assert_eq!(
        unknown.text().replace("nobody", ""),
        known.text().replace("alice@example.org", ""),
        "same answer"
    );
    let mail = outbox(&app);
    assert_eq!(mail.len(), 1);
    let reset = link(
        &mail[0],
        "http://wharf.test/account/reset-password/confirm/",
    );
    let page = browser.get(&reset).await;
    assert_eq!(page.status, 200);
    let token = reset.split("token=").nth(1).unwrap().to_owned();
    let mismatch = browser
        .post(
            "/account/reset-password/confirm/",
            &[
                ("token", &token),
                ("password", NEW_PASSWORD),
                ("password_confirm", "something else"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, 400);
    let done = browser
        .post(
            "/account/reset-password/confirm/",
            &[
                ("token", &token),
                ("password", NEW_PASSWORD),
                ("password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.text());
    assert_eq!(browser.get(&reset).await.status, 400, "the link works once");
    assert_eq!(
        other_session.get("/manage/account/").await.status,
        303,
        "old sessions end"
    );
    let signed_in = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(signed_in.status, 303);
    let tags = tags(&app, &app.user.id).await;
    assert!(tags.contains(&"account:password:reset:request".to_owned()));
    assert!(tags.contains(&"account:password:reset".to_owned()));
    // A forged token is refused.
    assert_eq!(
        browser
            .get("/account/reset-password/confirm/?token=abc.def")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn password_reset_requests_are_limited() {
    let app = TestApp::new().await;
    let mut browser = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(
            browser
                .post("/account/reset-password/", &[("login", "alice")])
                .await
                .status,
            200
        );
    }
    let limited = browser
        .post("/account/reset-password/", &[("login", "alice")])
        .await;
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
    assert_eq!(outbox(&app).len(), 5);
}

#[tokio::test]
async fn e_mail_addresses_are_added_verified_made_primary_and_removed() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let added = browser
        .post(
            "/manage/account/email/add",
            &[("new_email", "alice@work.example")],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.text());
    let mail = outbox(&app);
    assert!(
        mail.iter()
            .any(|m| m.contains("To: alice@example.org") && m.contains("was added"))
    );
    let verify_mail = mail
        .iter()
        .find(|m| m.contains("To: alice@work.example"))
        .unwrap();
    let emails = wharf::accounts::emails(&app.state.db, &app.user.id)
        .await
        .unwrap();
    let work = emails
        .iter()
        .find(|e| e.email == "alice@work.example")
        .unwrap()
        .clone();
    // Not verified yet: cannot become primary.
    browser
        .post("/manage/account/email/primary", &[("email_id", &work.id)])
        .await;
    assert_eq!(
        wharf::accounts::primary_email(&app.state.db, &app.user.id)
            .await
            .unwrap()
            .unwrap()
            .email,
        "alice@example.org"
    );
    // A new link on request (then the first one still works too).
    let resent = browser
        .post("/manage/account/email/verify", &[("email_id", &work.id)])
        .await;
    assert_eq!(resent.status, 303);
    assert!(
        tags(&app, &app.user.id)
            .await
            .contains(&"account:email:reverify".to_owned())
    );
    browser
        .get(&link(
            verify_mail,
            "http://wharf.test/account/verify-email/",
        ))
        .await;
    browser
        .post("/manage/account/email/primary", &[("email_id", &work.id)])
        .await;
    assert_eq!(
        wharf::accounts::primary_email(&app.state.db, &app.user.id)
            .await
            .unwrap()
            .unwrap()
            .email,
        "alice@work.example"
    );
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("primary e-mail address has changed"))
    );
    // The primary address cannot be removed; the other one can.
    browser
        .post("/manage/account/email/remove", &[("email_id", &work.id)])
        .await;
    assert_eq!(app.count("user_emails").await, 2);
    let old = emails
        .iter()
        .find(|e| e.email == "alice@example.org")
        .unwrap();
    browser
        .post("/manage/account/email/remove", &[("email_id", &old.id)])
        .await;
    assert_eq!(app.count("user_emails").await, 1);
    assert!(outbox(&app).iter().any(|m| m.contains("was removed")));
    let tags = tags(&app, &app.user.id).await;
    for expected in [
        "account:email:add",
        "account:email:verified",
        "account:email:primary:change",
        "account:email:remove",
    ] {
        assert!(tags.iter().any(|t| t == expected), "{expected}");
    }
    // Someone else's address is refused, with nothing changed.
    let taken = browser
        .post(
            "/manage/account/email/add",
            &[("new_email", "ALICE@work.example")],
        )
        .await;
    assert_eq!(taken.status, 400);
    // Two additions a day per IP.
    browser
        .post(
            "/manage/account/email/add",
            &[("new_email", "a3@example.net")],
        )
        .await;
    let limited = browser
        .post(
            "/manage/account/email/add",
            &[("new_email", "a4@example.net")],
        )
        .await;
    assert_eq!(limited.status, 429);
}

#[tokio::test]
async fn deleting_an_account_needs_the_password_and_no_sole_owned_project() {
    let app = TestApp::new().await;
    let upload = app
        .upload(
            Some(&app.token),
            &crate::util::UploadForm::wheel("solo-project", "1.0"),
        )
        .await;
    assert_eq!(upload.status, 200);
    let mut browser = Browser::signed_in(&app, "alice").await;
    let wrong = browser
        .post(
            "/manage/account/delete",
            &[("confirm_password", "not the password")],
        )
        .await;
    assert_eq!(wrong.status, 400);
    let blocked = browser
        .post("/manage/account/delete", &[("confirm_password", PASSWORD)])
        .await;
    assert_eq!(blocked.status, 409);
    assert!(blocked.text().contains("sole Owner of: solo-project"));
    assert_eq!(app.count("users").await, 1);

    let (bob, _) = app.create_user("bob").await;
    let mut bob_browser = Browser::signed_in(&app, "bob").await;
    let deleted = bob_browser
        .post("/manage/account/delete", &[("confirm_password", PASSWORD)])
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.text());
    assert!(
        wharf::accounts::find_by_id(&app.state.db, &bob.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(bob_browser.signed_in_cookie().is_none());
    assert!(
        outbox(&app)
            .iter()
            .any(|m| m.contains("To: bob@example.org") && m.contains("has been deleted"))
    );
    assert!(
        tags(&app, &bob.id)
            .await
            .contains(&"account:delete".to_owned())
    );
}

#[tokio::test]
async fn pages_carry_security_headers_and_cookies_their_flags() {
    let app = TestApp::with_settings(|s| s.base_url = Some("https://wharf.test".to_owned())).await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/account/login/").await;
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline")
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(page.header("referrer-policy").is_some());
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-wharf_csrf="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Secure"),
        "{cookie}"
    );
    let signed_in = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    let session = signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-wharf_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Lax")
            && session.contains("Secure"),
        "{session}"
    );
    // Only a hash of the session id is stored.
    let value = browser.signed_in_cookie().unwrap().clone();
    let (stored,): (String,) = sqlx::query_as("SELECT id_hash FROM sessions")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_ne!(stored, value);
    assert_eq!(stored.len(), 64);
}

#[tokio::test]
async fn next_never_leaves_the_site() {
    let app = TestApp::new().await;
    let mut browser = Browser::new(&app);
    let response = browser
        .post(
            "/account/login/",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(response.status, 303);
    assert_eq!(response.header("location"), Some("/manage/projects/"));
}

#[tokio::test]
async fn odd_form_input_is_refused_cleanly() {
    let app = TestApp::new().await;
    let mut browser = Browser::new(&app);
    let token = browser.csrf().await;
    let cookie = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    // Bytes that are not UTF-8, percent-encoded and raw.
    for body in [
        format!("csrf_token={token}&username=%FF%FE&password=%C3%28").into_bytes(),
        [
            format!("csrf_token={token}&username=").into_bytes(),
            vec![0xff, 0xfe],
            b"&password=x".to_vec(),
        ]
        .concat(),
    ] {
        let response = app
            .request(
                axum::http::Request::post("/account/login/")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("cookie", &cookie)
                    .body(axum::body::Body::from(body))
                    .unwrap(),
            )
            .await;
        assert!(
            response.status == 401 || response.status == 400,
            "{}: {}",
            response.status,
            response.text()
        );
    }
    // Overlong fields.
    let long = "p".repeat(5000);
    let response = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", &long)],
        )
        .await;
    assert_eq!(response.status, 401);
    let response = browser
        .post("/account/reset-password/", &[("login", &long)])
        .await;
    assert_eq!(response.status, 400);
    let huge = "x".repeat(300 * 1024);
    let response = browser
        .post("/account/login/", &[("username", &huge)])
        .await;
    assert_eq!(response.status, 413);
    assert_eq!(app.count("sessions").await, 0);
}

#[tokio::test]
async fn unverified_address_claims_expire_after_24_hours() {
    use wharf::accounts::{self as domain, AccountError, NewUser};
    use wharf::events::RequestMeta;
    let app = TestApp::new().await;
    let db = &app.state.db;
    let meta = RequestMeta::default();
    let now = |app: &TestApp| app.state.clock.now_micros();
    let (bob, _) = app.create_user("bob").await;
    // alice claims an address (secondary) and carol registers with one (primary), unverified.
    domain::add_email(db, &app.user.id, "Claimed@example.org", &meta, now(&app))
        .await
        .expect("added");
    let carol = domain::create_user(
        db,
        &NewUser {
            username: "carol",
            email: "carol@example.org",
            password: PASSWORD,
            is_admin: false,
            email_verified: false,
        },
        &meta,
        now(&app),
    )
    .await
    .expect("carol");
    // Within 24 hours the claims hold.
    app.state.clock.advance(86_400 - 60);
    assert!(matches!(
        domain::add_email(db, &bob.id, "claimed@example.org", &meta, now(&app)).await,
        Err(AccountError::EmailTaken(_))
    ));
    assert!(matches!(
        domain::add_email(db, &bob.id, "carol@example.org", &meta, now(&app)).await,
        Err(AccountError::EmailTaken(_))
    ));
    // After 24 hours they neither verify nor block anyone.
    app.state.clock.advance(61);
    assert!(
        !domain::verify_email(db, &app.user.id, "claimed@example.org", &meta, now(&app))
            .await
            .unwrap()
    );
    assert!(
        !domain::verify_email(db, &carol.id, "carol@example.org", &meta, now(&app))
            .await
            .unwrap()
    );
    let added = domain::add_email(db, &bob.id, "claimed@example.org", &meta, now(&app))
        .await
        .expect("the expired claim is released");
    assert!(
        domain::verify_email(db, &bob.id, &added.email, &meta, now(&app))
            .await
            .unwrap()
    );
    let dave = domain::create_user(
        db,
        &NewUser {
            username: "dave",
            email: "CAROL@example.org",
            password: PASSWORD,
            is_admin: false,
            email_verified: false,
        },
        &meta,
        now(&app),
    )
    .await
    .expect("carol's expired primary is released");
    // carol keeps her (unverified) primary row; alice's expired secondary is gone.
    let carol_emails = domain::emails(db, &carol.id).await.unwrap();
    assert_eq!(carol_emails.len(), 1);
    assert!(carol_emails[0].primary && !carol_emails[0].verified);
    assert!(
        !domain::emails(db, &app.user.id)
            .await
            .unwrap()
            .iter()
            .any(|e| e.email == "Claimed@example.org")
    );
    assert!(
        domain::verify_email(db, &dave.id, "carol@example.org", &meta, now(&app))
            .await
            .unwrap()
    );
    // carol cannot take it back while dave has it.
    assert!(
        !domain::renew_email_claim(db, &carol.id, &carol_emails[0].id, now(&app))
            .await
            .unwrap()
    );
}
