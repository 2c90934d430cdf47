//! Rate limits under parallel attempts (of many requests at once, at most the limit are
//! evaluated: argon2 runs, codes checked), argon2 off the async runtime, and anonymous
//! failures coalesced per address. SQLite, and PostgreSQL with `WHARF_TEST_DATABASE_URL`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use wharf::accounts::{argon2_peak, argon2_permits, argon2_runs};
use wharf::twofactor::totp;

use crate::browser::{Browser, PASSWORD};
use crate::two_factor::{enable_totp, password_step, save_recovery_codes};
use crate::util::{TestApp, TestResponse};

/// POSTs every form in `forms` to `uri` at once, each from its own task on the multi-thread
/// runtime, with the browser's cookies and CSRF token; released together by a barrier.
async fn parallel_posts(
    app: &Arc<TestApp>,
    browser: &mut Browser<'_>,
    uri: &str,
    forms: Vec<Vec<(&'static str, String)>>,
) -> Vec<TestResponse> {
    let token = browser.csrf().await;
    let cookie = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let barrier = Arc::new(tokio::sync::Barrier::new(forms.len()));
    let mut tasks = Vec::new();
    for fields in forms {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf_token", &token)
            .extend_pairs(fields)
            .finish();
        let (app, barrier, cookie, uri) =
            (app.clone(), barrier.clone(), cookie.clone(), uri.to_owned());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let request = Request::post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", cookie)
                .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0")
                .body(Body::from(body))
                .expect("request");
            app.request(request).await
        }));
    }
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.expect("task"));
    }
    responses
}

fn statuses(responses: &[TestResponse]) -> (usize, usize) {
    let refused = responses.iter().filter(|r| r.status == 401).count();
    let limited = responses.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        refused + limited,
        responses.len(),
        "only 401 and 429: {:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    (refused, limited)
}

async fn failures(app: &TestApp, reason: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE tag = 'account:login:failure' AND source_id = $1 \
         AND additional LIKE $2",
    )
    .bind(&app.user.id)
    .bind(format!("%\"{reason}\"%"))
    .fetch_one(app.state.db.pool())
    .await
    .expect("count");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_are_evaluated_at_most_the_limit() {
    let app = Arc::new(TestApp::new().await);
    let mut browser = Browser::new(&app);
    browser.csrf().await;
    let before = argon2_runs();
    let guesses = (0..60)
        .map(|i| {
            vec![
                ("username", "alice".to_owned()),
                ("password", format!("wrong guess {i}")),
            ]
        })
        .collect();
    let responses = parallel_posts(&app, &mut browser, "/account/login/", guesses).await;
    let evaluated = argon2_runs() - before;
    let (refused, limited) = statuses(&responses);
    eprintln!(
        "{evaluated} of 60 parallel wrong passwords evaluated (limit 10); {refused} × 401, {limited} × 429"
    );
    assert!(
        (1..=10).contains(&evaluated),
        "{evaluated} argon2 runs for 60 parallel guesses"
    );
    assert_eq!(failures(&app, "invalid_password").await, evaluated as i64);
    // The account's window is full: even the right password waits.
    let locked = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(locked.status, 429);
}

/// Six digits that are not alice's code at any step near now.
fn wrong_codes(secret: &[u8], now: i64, n: usize) -> Vec<String> {
    let near: Vec<String> = (-2..=2)
        .map(|s| totp::code_at(secret, now + s * 30))
        .collect();
    (0..)
        .map(|i: u32| format!("{:06}", (i * 7919) % 1_000_000))
        .filter(|c| !near.contains(c))
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_totp_codes_are_evaluated_at_most_the_limit() {
    let app = Arc::new(TestApp::new().await);
    let mut browser = Browser::signed_in(&app, "alice").await;
    save_recovery_codes(&mut browser).await;
    let secret = enable_totp(&app, &mut browser).await;
    let mut step = password_step(&app).await;
    let codes = wrong_codes(&secret, app.state.clock.now_secs(), 40)
        .into_iter()
        .map(|code| vec![("code", code)])
        .collect();
    let responses = parallel_posts(&app, &mut step, "/account/two-factor/totp", codes).await;
    let (refused, limited) = statuses(&responses);
    let evaluated = failures(&app, "invalid_totp").await;
    eprintln!(
        "{evaluated} of 40 parallel TOTP codes evaluated (limit 5); {refused} × 401, {limited} × 429"
    );
    assert!((1..=5).contains(&evaluated), "{evaluated} codes checked");
    assert_eq!(refused as i64, evaluated);
    // Used up: the right code is refused too.
    let code = totp::code_at(&secret, app.state.clock.now_secs());
    let late = step
        .post("/account/two-factor/totp", &[("code", &code)])
        .await;
    assert_eq!(late.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_recovery_codes_are_evaluated_at_most_the_limit() {
    let app = Arc::new(TestApp::new().await);
    let mut browser = Browser::signed_in(&app, "alice").await;
    save_recovery_codes(&mut browser).await;
    enable_totp(&app, &mut browser).await;
    let mut step = password_step(&app).await;
    step.csrf().await;
    let before = argon2_runs();
    let codes = (0..20)
        .map(|i| vec![("code", format!("{:016x}", 0xdead_0000_u64 + i))])
        .collect();
    let responses = parallel_posts(&app, &mut step, "/account/recovery-code/", codes).await;
    let runs = argon2_runs() - before;
    let (refused, limited) = statuses(&responses);
    let evaluated = failures(&app, "invalid_recovery_code").await;
    eprintln!(
        "{evaluated} of 20 parallel recovery codes evaluated (limit 5, {runs} argon2 runs); {refused} × 401, {limited} × 429"
    );
    assert!((1..=5).contains(&evaluated), "{evaluated} codes checked");
    assert_eq!(refused as i64, evaluated);
    // Each evaluated guess is compared with the 7 unused codes and the burned one.
    assert!(runs <= 5 * 8, "{runs} argon2 runs");
}

/// argon2 runs on the blocking pool under a semaphore of one permit per core: however many
/// run at once, and however many runtime workers ask, at most that many compute together.
#[test]
fn argon2_runs_at_most_one_per_core() {
    let permits = argon2_permits();
    // More workers than permits: computing on the workers themselves would exceed it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(permits + 2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tasks: Vec<_> = (0..(permits * 4 + 8))
            .map(|i| {
                tokio::spawn(async move {
                    let hash = wharf::accounts::hash_password(&format!("password {i}")).await;
                    wharf::accounts::verify_password(&format!("password {i}"), &hash).await
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.expect("task"));
        }
    });
    let peak = argon2_peak();
    assert!(
        (1..=permits).contains(&peak),
        "{peak} argon2 computations at once with {permits} permits"
    );
}

/// A right password is not refused because other people behind the same address got theirs
/// wrong; wrong passwords and unknown names from it are, and the refusals are logged once
/// per address and 10 minutes.
#[tokio::test]
async fn the_address_limit_alone_never_refuses_a_right_password() {
    let app = TestApp::new().await;
    let (bob, _) = app.create_user("bob").await;
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
    }
    for (username, password) in [("nobody", "whatever"), ("bob", "not bob's password")] {
        let refused = browser
            .post(
                "/account/login/",
                &[("username", username), ("password", password)],
            )
            .await;
        assert_eq!(refused.status, 429, "{username}");
    }
    // bob's wrong password was checked and counted on his account.
    let (bob_failures,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE tag = 'account:login:failure' AND source_id = $1",
    )
    .bind(&bob.id)
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(bob_failures, 1);
    let ok = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert!(browser.signed_in_cookie().is_some());

    // Two refusals so far, one event.
    let refusals = |app: &TestApp| {
        let pool = app.state.db.pool().clone();
        async move {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT additional FROM events WHERE tag = 'ratelimit:refused' \
                 AND source_type = 'anonymous' ORDER BY id",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            rows.into_iter().map(|(a,)| a).collect::<Vec<_>>()
        }
    };
    let logged = refusals(&app).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains("\"similar_failures_not_logged\":0"));
    // Ten minutes later the address is limited again: the next refusal reports the one left out.
    app.state.clock.advance(601);
    let mut anonymous = Browser::new(&app);
    for i in 0..11 {
        let name = format!("later{i}");
        anonymous
            .post(
                "/account/login/",
                &[("username", &name), ("password", "whatever it is")],
            )
            .await;
    }
    let logged = refusals(&app).await;
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(
        logged[1].contains("\"similar_failures_not_logged\":1"),
        "{}",
        logged[1]
    );
}

/// A reset request answers without waiting on the mail server, and does the same work and
/// counts against the same limit for an address no account has.
#[tokio::test]
async fn a_reset_request_answers_alike_for_known_and_unknown_addresses() {
    // A "mail server" that accepts and never speaks: a request waiting on it would hang.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app =
        TestApp::with_settings(|s| s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    let mut browser = Browser::new(&app);
    browser.wait_for_mail = false;
    let hits = app.count("rate_limit_hits").await;
    let known = browser
        .post(
            "/account/reset-password/",
            &[("login", "alice@example.org")],
        )
        .await;
    assert_eq!(known.status, 200);
    assert_eq!(
        app.state.mailer.queued(),
        1,
        "the message waits in the queue"
    );
    assert_eq!(app.count("rate_limit_hits").await, hits + 1);
    let unknown = browser
        .post(
            "/account/reset-password/",
            &[("login", "nobody@example.org")],
        )
        .await;
    assert_eq!(unknown.status, 200);
    assert_eq!(app.count("rate_limit_hits").await, hits + 2);
    let message = |r: &TestResponse| {
        let text = r.text();
        let start = text.find("<main").expect("main");
        let end = text.find("</main>").expect("main end");
        text[start..end].to_owned()
    };
    assert_eq!(message(&known), message(&unknown));
    // The unknown address is limited like a known one.
    for _ in 0..4 {
        browser
            .post(
                "/account/reset-password/",
                &[("login", "nobody@example.org")],
            )
            .await;
    }
    let limited = browser
        .post(
            "/account/reset-password/",
            &[("login", "NOBODY@example.org")],
        )
        .await;
    assert_eq!(limited.status, 429);
    // The server hangs up: the queued message fails (logged), the request event is there.
    let (socket, _) = listener.accept().await.unwrap();
    drop(socket);
    app.state.mailer.idle().await;
    let tags = crate::browser::tags(&app, &app.user.id).await;
    assert!(
        tags.contains(&"account:password:reset:request".to_owned()),
        "{tags:?}"
    );
}

/// Anonymous passkey ceremonies store a row each: an address may begin 30 per 5 minutes.
#[tokio::test]
async fn anonymous_passkey_ceremonies_are_limited_per_address() {
    let app = TestApp::with_settings(|s| s.base_url = Some("https://wharf.test".to_owned())).await;
    let mut browser = Browser::new(&app);
    browser
        .headers
        .push(("origin".to_owned(), "https://wharf.test".to_owned()));
    for _ in 0..30 {
        let begun = browser.post("/account/passkey/options", &[]).await;
        assert_eq!(begun.status, 200, "{}", begun.text());
    }
    let ceremonies = app.count("webauthn_ceremonies").await;
    let refused = browser.post("/account/passkey/options", &[]).await;
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        app.count("webauthn_ceremonies").await,
        ceremonies,
        "no row stored"
    );
}

/// Every form that asks for the password again counts its wrong passwords against the
/// account's failure limit, the one sign-in uses: 10 wrong passwords spread over deleting
/// the account, changing the password and deleting a token, then the 11th (even the right
/// one) is refused with 429 and nothing is deleted.
#[tokio::test]
async fn password_confirmations_share_the_account_failure_limit() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let created = browser
        .post(
            "/manage/account/tokens/",
            &[("name", "kept"), ("scope", "account")],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text());
    let token = wharf::tokens::list_for_user(&app.state.db, &app.user.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.description == "kept")
        .expect("created")
        .id;
    let wrong = "not alice's password";
    let forms: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/manage/account/delete", vec![("confirm_password", wrong)]),
        (
            "/manage/account/password",
            vec![
                ("password", wrong),
                ("new_password", "a much better passphrase"),
                ("new_password_confirm", "a much better passphrase"),
            ],
        ),
        (
            "/manage/account/tokens/delete",
            vec![("token_id", &token), ("confirm_password", wrong)],
        ),
    ];
    for i in 0..10 {
        let (uri, fields) = &forms[i % forms.len()];
        let response = browser.post(uri, fields).await;
        assert_eq!(
            response.status,
            400,
            "{uri} attempt {i}: {}",
            response.text()
        );
    }
    for (uri, fields) in &forms {
        let limited = browser.post(uri, fields).await;
        assert_eq!(limited.status, 429, "{uri}");
        assert!(limited.header("retry-after").is_some(), "{uri}");
    }
    let right = browser
        .post("/manage/account/delete", &[("confirm_password", PASSWORD)])
        .await;
    assert_eq!(right.status, 429);
    assert!(
        wharf::accounts::find_by_id(&app.state.db, &app.user.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        wharf::tokens::find(&app.state.db, &token)
            .await
            .unwrap()
            .is_some()
    );
    let (failures,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events WHERE tag = 'account:reauthenticate:failure' AND source_id = $1",
    )
    .bind(&app.user.id)
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(failures, 10, "each wrong password is recorded once");
}
