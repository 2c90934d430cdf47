//! Sign-in through an identity provider: a small OpenID provider on loopback (discovery,
//! JWKS, an authorization endpoint the test answers for the person, and a token endpoint that
//! checks the client's secret, the code, the redirect URI and the PKCE verifier once each),
//! and wharf's flow against it: first sign-in, linking, a forged state or nonce, `sso_only`,
//! `sso_requires_2fa`, e-mail domains and re-authentication.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wharf::config::sso::SsoProvider;
use wharf::config::trusted_publishing::Issuer;

use crate::browser::{Browser, PASSWORD};
use crate::oidc::Key;
use crate::proxy::Served;
use crate::two_factor::{enable_totp, save_recovery_codes};
use crate::util::TestApp;

const CLIENT_ID: &str = "wharf-client";
const CLIENT_SECRET: &str = "client-secret-value";

/// What the provider's authorization endpoint granted: the request's parameters and the
/// claims of the person who signed in.
#[derive(Clone)]
struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    claims: Value,
}

#[derive(Clone, Default)]
struct Issued {
    issuer: Arc<Mutex<String>>,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    tokens_issued: Arc<Mutex<usize>>,
    /// While set, the discovery document answers 503; each read of it is counted.
    down: Arc<std::sync::atomic::AtomicBool>,
    discoveries: Arc<std::sync::atomic::AtomicUsize>,
}

struct Idp {
    served: Served,
    issued: Issued,
}

async fn token(
    State((issued, key)): State<(Issued, Arc<Key>)>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let refuse = |error: &str| (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error})));
    let basic = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let expected = format!("Basic {}", STANDARD.encode(basic));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        );
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let Some(grant) = issued
        .grants
        .lock()
        .expect("ok")
        .remove(form.get("code").map(String::as_str).unwrap_or_default())
    else {
        return refuse("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge
        || form.get("redirect_uri") != Some(&grant.redirect_uri)
        || form.get("grant_type").map(String::as_str) != Some("authorization_code")
    {
        return refuse("invalid_grant");
    }
    let mut claims = grant.claims.clone();
    if claims.get("nonce").is_none() {
        claims["nonce"] = json!(grant.nonce);
    }
    *issued.tokens_issued.lock().expect("lock") += 1;
    let id_token = key.sign("idp-1", &claims);
    (
        StatusCode::OK,
        axum::Json(json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token})),
    )
}

impl Idp {
    async fn start() -> Idp {
        let issued = Issued::default();
        let key = Arc::new(Key::rsa("idp-1"));
        let jwk = key.jwk();
        let discovery_issued = issued.clone();
        let router = axum::Router::new()
            .route(
                "/idp/.well-known/openid-configuration",
                get(move || {
                    let issuer = discovery_issued.issuer.lock().expect("lock").clone();
                    let ordering = std::sync::atomic::Ordering::SeqCst;
                    discovery_issued.discoveries.fetch_add(1, ordering);
                    let down = discovery_issued.down.load(ordering);
                    async move {
                        if down {
                            return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({})));
                        }
                        let document = json!({
                            "issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
                            "authorization_endpoint": format!("{issuer}/authorize"),
                            "token_endpoint": format!("{issuer}/token"),
                        });
                        (StatusCode::OK, axum::Json(document))
                    }
                }),
            )
            .route(
                "/idp/jwks",
                get(move || {
                    let jwk = jwk.clone();
                    async move { axum::Json(json!({"keys": [jwk]})) }
                }),
            )
            .route("/idp/token", post(token))
            .with_state((issued.clone(), key.clone()));
        let served = Served::start(router).await;
        *issued.issuer.lock().expect("lock") = format!("http://{}/idp", served.addr);
        Idp { served, issued }
    }

    fn issuer(&self) -> String {
        format!("http://{}/idp", self.served.addr)
    }

    /// The authorization endpoint's answer for a person with `claims` (sub, email, …): the
    /// callback URL (a local path) with a code for them and the request's state.
    fn authorize(&self, app: &TestApp, location: &str, claims: Value) -> String {
        let url = url::Url::parse(location).expect("authorization URL");
        assert!(
            location.starts_with(&format!("{}/authorize?", self.issuer())),
            "{location}"
        );
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], CLIENT_ID);
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["code_challenge_method"], "S256");
        assert!(query["scope"].split(' ').any(|s| s == "openid"));
        let now = app.state.clock.now_secs();
        let mut claims = claims;
        for (name, value) in [
            ("iss", json!(self.issuer())),
            ("aud", json!(CLIENT_ID)),
            ("iat", json!(now)),
            ("exp", json!(now + 300)),
        ] {
            if claims.get(name).is_none() {
                claims[name] = value;
            }
        }
        let code = uuid::Uuid::new_v4().to_string();
        self.issued.grants.lock().expect("lock").insert(
            code.clone(),
            Grant {
                redirect_uri: query["redirect_uri"].clone(),
                challenge: query["code_challenge"].clone(),
                nonce: query["nonce"].clone(),
                claims,
            },
        );
        let callback = url::Url::parse(&query["redirect_uri"]).expect("redirect URI");
        format!(
            "{}?code={code}&state={}",
            callback.path(),
            url::form_urlencoded::byte_serialize(query["state"].as_bytes()).collect::<String>()
        )
    }
}

async fn setup(
    configure: impl FnOnce(&mut wharf::config::Settings) + Send + 'static,
) -> (TestApp, Idp) {
    let idp = Idp::start().await;
    let issuer = idp.issuer();
    let app = TestApp::with_settings(move |s| {
        s.sso = vec![SsoProvider {
            name: "corp".into(),
            display_name: "Corp SSO".into(),
            issuer: Issuer(issuer),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            email_domains: vec![],
            required_claims: Default::default(),
            emails_verified: false,
        }];
        configure(s);
    })
    .await;
    (app, idp)
}

/// Starts a sign-in: the redirect to the provider.
async fn begin(browser: &mut Browser<'_>, query: &str) -> String {
    let response = browser
        .get(&format!("/account/sso/corp/login{query}"))
        .await;
    assert_eq!(
        response.status,
        StatusCode::SEE_OTHER,
        "{}",
        response.text()
    );
    response.header("location").expect("location").to_owned()
}

fn jane() -> Value {
    json!({"sub": "u-1", "email": "jane@acme.example", "email_verified": true, "preferred_username": "jane"})
}

async fn signed_in_as(browser: &mut Browser<'_>) -> Option<String> {
    let page = browser.get("/manage/account/").await;
    if page.status != StatusCode::OK {
        return None;
    }
    let text = page.text();
    let marker = "Sign out <span class=\"visually-hidden\">(";
    let start = text.find(marker)? + marker.len();
    Some(text[start..].split(')').next()?.trim().to_owned())
}

#[tokio::test]
async fn a_first_sign_in_creates_the_account_and_the_next_one_signs_it_in() {
    let (app, idp) = setup(|_| {}).await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/account/login/").await.text();
    assert!(page.contains("Sign in with Corp SSO"), "{page}");
    let location = begin(&mut browser, "?next=/manage/account/").await;
    let callback = browser.get(&idp.authorize(&app, &location, jane())).await;
    assert_eq!(
        callback.status,
        StatusCode::SEE_OTHER,
        "{}",
        callback.text()
    );
    assert_eq!(callback.header("location"), Some("/account/sso/finish"));
    let finish = browser.get("/account/sso/finish").await;
    assert_eq!(finish.status, StatusCode::OK);
    assert!(
        finish.text().contains("value=\"jane\""),
        "{}",
        finish.text()
    );
    assert!(!finish.text().contains("Or use your existing account"));
    // A taken username is refused on the form; another is accepted.
    let taken = browser
        .post("/account/sso/finish/create", &[("username", "alice")])
        .await;
    assert_eq!(taken.status, StatusCode::BAD_REQUEST, "{}", taken.text());
    let created = browser
        .post("/account/sso/finish/create", &[("username", "jane")])
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text());
    assert_eq!(created.header("location"), Some("/manage/account/"));
    let jane_user = wharf::accounts::find_by_username(&app.state.db, "jane")
        .await
        .expect("ok")
        .expect("jane");
    assert!(
        wharf::accounts::has_verified_primary_email(&app.state.db, &jane_user.id)
            .await
            .expect("ok")
    );
    let created_events = app.events("account:create").await;
    assert_eq!(created_events.last().expect("ok")["via"], "sso:corp");
    assert_eq!(app.events("account:sso:linked").await.len(), 1);
    let logins = app.events("account:login:success").await;
    assert_eq!(logins.last().expect("ok")["login_method"], "sso:corp");

    // The next sign-in goes straight in.
    let mut other = Browser::new(&app);
    let location = begin(&mut other, "").await;
    let callback = other.get(&idp.authorize(&app, &location, jane())).await;
    assert_eq!(
        callback.status,
        StatusCode::SEE_OTHER,
        "{}",
        callback.text()
    );
    assert_eq!(callback.header("location"), Some("/manage/projects/"));
    assert!(other.get("/manage/projects/").await.status == StatusCode::OK);
    assert_eq!(app.events("account:login:success").await.len(), 2);
    assert_eq!(*idp.issued.tokens_issued.lock().expect("lock"), 2);
    // jane has no password of her own: her only provider cannot be unlinked.
    let kept = other
        .post("/manage/account/sso/unlink", &[("provider", "corp")])
        .await;
    assert_eq!(kept.status, StatusCode::SEE_OTHER);
    assert_eq!(app.count("sso_identities").await, 1);
}

#[tokio::test]
async fn a_forged_state_a_replayed_code_or_another_nonce_signs_no_one_in() {
    let (app, idp) = setup(|_| {}).await;
    let mut browser = Browser::new(&app);
    let location = begin(&mut browser, "").await;
    let callback = idp.authorize(&app, &location, jane());
    let (path, _) = callback.split_once("&state=").expect("state");
    let forged = browser.get(&format!("{path}&state=forged")).await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER);
    assert_eq!(forged.header("location"), Some("/account/login/"));
    assert!(signed_in_as(&mut browser).await.is_none());
    // The flow was used up by the forged attempt: the real answer is refused too.
    let late = browser.get(&callback).await;
    assert_eq!(late.header("location"), Some("/account/login/"));
    assert_eq!(*idp.issued.tokens_issued.lock().expect("lock"), 0);

    // Another browser's flow: its callback in this browser has no flow cookie.
    let mut other = Browser::new(&app);
    let location = begin(&mut other, "").await;
    let stolen = idp.authorize(&app, &location, jane());
    let mut thief = Browser::new(&app);
    let refused = thief.get(&stolen).await;
    assert_eq!(refused.header("location"), Some("/account/login/"));

    // An ID token with another nonce (a token injected from another sign-in).
    let location = begin(&mut browser, "").await;
    let mut claims = jane();
    claims["nonce"] = json!("someone-elses");
    let injected = browser.get(&idp.authorize(&app, &location, claims)).await;
    assert_eq!(injected.header("location"), Some("/account/login/"));
    assert_eq!(app.count("sso_identities").await, 0);
    let failures = app.events("account:login:failure").await;
    assert!(
        failures.iter().any(|f| f["reason"] == "sso_invalid"),
        "{failures:?}"
    );
    assert!(failures.iter().all(|f| f["login_method"] == "sso:corp"));
}

#[tokio::test]
async fn an_existing_account_is_linked_only_with_a_verified_address_and_its_password() {
    let (app, idp) = setup(|_| {}).await;
    let alice = json!({"sub": "a-1", "email": "alice@example.org", "email_verified": true});
    let mut browser = Browser::new(&app);
    let location = begin(&mut browser, "").await;
    browser
        .get(&idp.authorize(&app, &location, alice.clone()))
        .await;
    let finish = browser.get("/account/sso/finish").await.text();
    assert!(
        finish.contains("The account alice has this address"),
        "{finish}"
    );
    let wrong = browser
        .post("/account/sso/finish/link", &[("password", "not it at all")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.count("sso_identities").await, 0);
    let right = browser
        .post("/account/sso/finish/link", &[("password", PASSWORD)])
        .await;
    assert_eq!(right.status, StatusCode::SEE_OTHER, "{}", right.text());
    assert_eq!(signed_in_as(&mut browser).await.as_deref(), Some("alice"));
    let linked = app.events("account:sso:linked").await;
    assert_eq!(linked[0]["subject"], "a-1");
    app.state.mailer.idle().await;
    let told = crate::browser::outbox(&app)
        .into_iter()
        .filter(|m| {
            m.contains("To: alice@example.org")
                && m.contains("was linked to an account of Corp SSO")
        })
        .count();
    assert_eq!(
        told,
        1,
        "alice is told of the link: {:?}",
        crate::browser::outbox(&app)
    );
    // The account page lists the link; alice (who has a password) can unlink it.
    let page = browser.get("/manage/account/").await.text();
    assert!(page.contains("Unlink Corp SSO"), "{page}");
    let unlinked = browser
        .post("/manage/account/sso/unlink", &[("provider", "corp")])
        .await;
    assert_eq!(unlinked.status, StatusCode::SEE_OTHER);
    assert_eq!(app.events("account:sso:unlinked").await.len(), 1);
    assert_eq!(app.count("sso_identities").await, 0);

    // An address the provider has not verified is never a reason to link, nor taken over.
    let mut unverified = Browser::new(&app);
    let (bob, _) = app.create_user("bob").await;
    let location = begin(&mut unverified, "").await;
    let claims = json!({"sub": "b-1", "email": "bob@example.org", "email_verified": false});
    unverified
        .get(&idp.authorize(&app, &location, claims))
        .await;
    let finish = unverified.get("/account/sso/finish").await.text();
    assert!(!finish.contains("Or use your existing account"), "{finish}");
    let link = unverified
        .post("/account/sso/finish/link", &[("password", PASSWORD)])
        .await;
    assert_eq!(link.status, StatusCode::SEE_OTHER);
    assert_eq!(link.header("location"), Some("/account/sso/finish"));
    let create = unverified
        .post("/account/sso/finish/create", &[("username", "bob2")])
        .await;
    assert_eq!(create.status, StatusCode::BAD_REQUEST);
    assert!(
        create.text().contains("An account already has the address"),
        "{}",
        create.text()
    );
    let links: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sso_identities WHERE user_id = $1")
        .bind(&bob.id)
        .fetch_one(app.state.db.pool())
        .await
        .expect("ok");
    assert_eq!(links.0, 0);
}

#[tokio::test]
async fn sso_only_keeps_passwords_for_administrators() {
    let (app, _idp) = setup(|s| s.sso_only = true).await;
    let mut browser = Browser::new(&app);
    let refused = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused
            .text()
            .contains("Password sign-in is for administrators")
    );
    // A wrong password reads the same: the page tells nothing about the password.
    let wrong = browser
        .post(
            "/account/login/",
            &[("username", "alice"), ("password", "wrong wrong wrong")],
        )
        .await;
    assert!(
        wrong
            .text()
            .contains("Password sign-in is for administrators")
    );
    sqlx::query("UPDATE users SET is_admin = 1 WHERE username = 'alice'")
        .execute(app.state.db.pool())
        .await
        .expect("ok");
    let admin = Browser::signed_in(&app, "alice").await;
    drop(admin);
    // Nor can anyone make a password account.
    let mut visitor = Browser::new(&app);
    let page = visitor.get("/account/register/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let made = visitor
        .post(
            "/account/register/",
            &[
                ("username", "newbie"),
                ("email", "newbie@example.org"),
                ("password", "a long new password here"),
                ("password_confirm", "a long new password here"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER);
    assert!(
        wharf::accounts::find_by_username(&app.state.db, "newbie")
            .await
            .expect("db")
            .is_none()
    );
}

#[tokio::test]
async fn wharfs_second_factor_is_asked_unless_the_provider_checked_one() {
    let (app, idp) = setup(|_| {}).await;
    // alice has TOTP and links her provider account.
    let mut alice = Browser::signed_in(&app, "alice").await;
    save_recovery_codes(&mut alice).await;
    enable_totp(&app, &mut alice).await;
    let mut conn = app.state.db.pool().acquire().await.expect("ok");
    let identity = wharf::accounts::sso::Identity {
        provider: "corp".into(),
        issuer: idp.issuer(),
        subject: "a-1".into(),
        email: "alice@example.org".into(),
        email_verified: true,
        proposed_username: "alice".into(),
        mfa: false,
        auth_time: None,
    };
    assert!(
        wharf::accounts::sso::link(
            &mut conn,
            &identity,
            &app.user.id,
            "admin",
            &Default::default(),
            1
        )
        .await
        .expect("ok")
    );
    drop(conn);
    let mut browser = Browser::new(&app);
    let location = begin(&mut browser, "").await;
    let plain = browser
        .get(&idp.authorize(
            &app,
            &location,
            json!({"sub": "a-1", "email": "alice@example.org", "email_verified": true}),
        ))
        .await;
    assert_eq!(plain.header("location"), Some("/account/two-factor/"));
    assert!(signed_in_as(&mut browser).await.is_none());
    let mut with_mfa = Browser::new(&app);
    let location = begin(&mut with_mfa, "").await;
    let checked = with_mfa
        .get(&idp.authorize(&app, &location, json!({"sub": "a-1", "email": "alice@example.org", "email_verified": true, "amr": ["pwd", "mfa"]})))
        .await;
    assert_eq!(checked.header("location"), Some("/manage/projects/"));
    assert_eq!(signed_in_as(&mut with_mfa).await.as_deref(), Some("alice"));
}

#[tokio::test]
async fn a_first_sign_in_is_linked_only_once_the_accounts_second_factor_is_given() {
    let (app, idp) = setup(|_| {}).await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    save_recovery_codes(&mut alice).await;
    let secret = enable_totp(&app, &mut alice).await;
    let mut browser = Browser::new(&app);
    let location = begin(&mut browser, "").await;
    let claims = json!({"sub": "a-1", "email": "alice@example.org", "email_verified": true});
    browser.get(&idp.authorize(&app, &location, claims)).await;
    let proven = browser
        .post("/account/sso/finish/link", &[("password", PASSWORD)])
        .await;
    assert_eq!(proven.header("location"), Some("/account/two-factor/"));
    // The password alone links nothing: whoever knows it still lacks the second factor.
    assert_eq!(app.count("sso_identities").await, 0);
    assert!(app.events("account:sso:linked").await.is_empty());
    app.state.clock.advance(30);
    let code = wharf::twofactor::totp::code_at(&secret, app.state.clock.now_secs());
    let done = browser
        .post("/account/two-factor/totp", &[("code", &code)])
        .await;
    assert_eq!(done.header("location"), Some("/manage/projects/"));
    assert_eq!(signed_in_as(&mut browser).await.as_deref(), Some("alice"));
    assert_eq!(app.count("sso_identities").await, 1);
    let linked = app.events("account:sso:linked").await;
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0]["subject"], "a-1");
    let signed = app.events("account:login:success").await;
    assert_eq!(
        signed.last().map(|e| e["login_method"].clone()),
        Some(json!("sso:corp"))
    );
}

#[tokio::test]
async fn a_link_asks_for_the_accounts_second_factor_whatever_the_provider_checked() {
    // Even where wharf's 2FA is never asked after the provider's, and the provider says it
    // checked a second factor: that factor is the provider account's, not this account's.
    let (app, idp) = setup(|s| s.sso_requires_2fa = Some(false)).await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    save_recovery_codes(&mut alice).await;
    enable_totp(&app, &mut alice).await;
    let mut browser = Browser::new(&app);
    let location = begin(&mut browser, "").await;
    let claims = json!({"sub": "a-1", "email": "alice@example.org", "email_verified": true, "amr": ["pwd", "mfa"]});
    browser.get(&idp.authorize(&app, &location, claims)).await;
    let proven = browser
        .post("/account/sso/finish/link", &[("password", PASSWORD)])
        .await;
    assert_eq!(proven.header("location"), Some("/account/two-factor/"));
    assert_eq!(app.count("sso_identities").await, 0);
}

#[tokio::test]
async fn only_verified_addresses_of_the_listed_domains_sign_in() {
    let (app, idp) = setup(|s| s.sso[0].email_domains = vec!["acme.example".into()]).await;
    let mut browser = Browser::new(&app);
    let location = begin(&mut browser, "").await;
    let outsider = json!({"sub": "x-1", "email": "x@elsewhere.example", "email_verified": true});
    let refused = browser.get(&idp.authorize(&app, &location, outsider)).await;
    assert_eq!(refused.header("location"), Some("/account/login/"));
    let location = begin(&mut browser, "").await;
    let mut unverified = jane();
    unverified["email_verified"] = json!(false);
    let refused = browser
        .get(&idp.authorize(&app, &location, unverified))
        .await;
    assert_eq!(refused.header("location"), Some("/account/login/"));
    let location = begin(&mut browser, "").await;
    let accepted = browser.get(&idp.authorize(&app, &location, jane())).await;
    assert_eq!(accepted.header("location"), Some("/account/sso/finish"));
}

#[tokio::test]
async fn accounts_made_through_a_provider_count_against_the_registration_limit() {
    let (app, idp) = setup(|_| {}).await;
    let max = wharf::ratelimit::REGISTER_IP.max;
    let before = app.count("users").await;
    for n in 0..=max {
        let mut browser = Browser::new(&app);
        let location = begin(&mut browser, "").await;
        let person = json!({"sub": format!("n-{n}"), "email": format!("n{n}@example.org"), "email_verified": true});
        browser.get(&idp.authorize(&app, &location, person)).await;
        // A refused username is not an account made: it uses no slot.
        let taken = browser
            .post(
                "/account/sso/finish/create",
                &[("username", "no spaces allowed")],
            )
            .await;
        // The limit is checked first: at the limit, even a refused name gets 429.
        let expected = if n < max {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(taken.status, expected);
        let made = browser
            .post(
                "/account/sso/finish/create",
                &[("username", &format!("person{n}"))],
            )
            .await;
        if n < max {
            assert_eq!(
                made.header("location"),
                Some("/manage/projects/"),
                "account {n}"
            );
        } else {
            assert_eq!(made.status, StatusCode::TOO_MANY_REQUESTS);
            assert!(made.text().contains("Too many accounts"), "{}", made.text());
        }
    }
    assert_eq!(app.count("users").await, before + max);
}

#[tokio::test]
async fn a_provider_shared_by_many_organizations_signs_in_only_its_tenant() {
    // Azure AD: the tenant in `tid`, and no `email_verified` (the tenant assigns addresses).
    let (app, idp) = setup(|s| {
        let azure = &mut s.sso[0];
        azure
            .required_claims
            .insert("tid".into(), "9188040d-6c67".into());
        azure.emails_verified = true;
        azure.email_domains = vec!["acme.example".into()];
    })
    .await;
    let mut browser = Browser::new(&app);
    let location = begin(&mut browser, "").await;
    let stranger = json!({"sub": "s-1", "tid": "another-tenant", "email": "jane@acme.example"});
    let refused = browser.get(&idp.authorize(&app, &location, stranger)).await;
    assert_eq!(refused.header("location"), Some("/account/login/"));
    let page = browser.get("/account/login/").await.text();
    assert!(
        page.contains("an account of another organization"),
        "{page}"
    );
    let failures = app.events("account:login:failure").await;
    assert_eq!(
        failures.last().map(|f| f["reason"].clone()),
        Some(json!("sso_claims"))
    );
    let location = begin(&mut browser, "").await;
    let ours = json!({"sub": "s-2", "tid": "9188040d-6c67", "email": "jane@acme.example"});
    let accepted = browser.get(&idp.authorize(&app, &location, ours)).await;
    assert_eq!(accepted.header("location"), Some("/account/sso/finish"));
    assert_eq!(app.count("sso_identities").await, 0);
}

#[tokio::test]
async fn an_account_without_a_link_is_not_offered_the_provider_to_confirm() {
    let (app, _idp) = setup(|_| {}).await;
    let mut alice = Browser::signed_in(&app, "alice").await;
    app.state.clock.advance(app.state.settings.reauth_secs + 1);
    let asked = alice.get("/manage/account/publishing/").await.text();
    assert!(asked.contains("Confirm your password"), "{asked}");
    assert!(!asked.contains("Confirm with Corp SSO"), "{asked}");
    let refused = alice
        .get("/account/sso/corp/login?reauth=1&next=/manage/account/publishing/")
        .await;
    assert_eq!(
        refused.header("location"),
        Some("/manage/account/publishing/")
    );
    let page = alice.get("/manage/account/publishing/").await.text();
    assert!(page.contains("not linked to Corp SSO"), "{page}");
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_is_said_so_at_once_and_retried_later() {
    let (app, idp) = setup(|_| {}).await;
    let ordering = std::sync::atomic::Ordering::SeqCst;
    idp.issued.down.store(true, ordering);
    let before = idp.issued.discoveries.load(ordering);
    let mut browser = Browser::new(&app);
    for _ in 0..3 {
        let refused = browser.get("/account/sso/corp/login").await;
        assert_eq!(refused.header("location"), Some("/account/login/"));
        let page = browser.get("/account/login/").await.text();
        assert!(
            page.contains("Corp SSO cannot be reached just now"),
            "{page}"
        );
    }
    // One read of the discovery document for the three: the failure is held 15 seconds.
    assert_eq!(idp.issued.discoveries.load(ordering), before + 1);
    idp.issued.down.store(false, ordering);
    app.state.clock.advance(16);
    let location = begin(&mut browser, "").await;
    assert!(location.contains("code_challenge="), "{location}");
    assert_eq!(idp.issued.discoveries.load(ordering), before + 2);
}

#[tokio::test]
async fn a_linked_user_re_authenticates_through_the_provider() {
    let (app, idp) = setup(|_| {}).await;
    let mut browser = Browser::new(&app);
    let location = begin(&mut browser, "").await;
    browser.get(&idp.authorize(&app, &location, jane())).await;
    browser
        .post("/account/sso/finish/create", &[("username", "jane")])
        .await;
    // Half an hour later the session is stale: the settings page asks again, offering the
    // provider; the provider is asked to authenticate the person again.
    app.state.clock.advance(app.state.settings.reauth_secs + 1);
    let asked = browser.get("/manage/account/publishing/").await.text();
    assert!(asked.contains("Confirm with Corp SSO"), "{asked}");
    let location = begin(&mut browser, "?reauth=1&next=/manage/account/publishing/").await;
    assert!(
        location.contains("prompt=login") && location.contains("max_age=0"),
        "{location}"
    );
    // A provider that answers from its own session (no new auth_time) does not count.
    let stale = browser.get(&idp.authorize(&app, &location, jane())).await;
    assert_eq!(
        stale.header("location"),
        Some("/manage/account/publishing/")
    );
    let page = browser.get("/manage/account/publishing/").await;
    assert!(
        page.text().contains("Confirm your password"),
        "{}",
        page.text()
    );
    let location = begin(&mut browser, "?reauth=1&next=/manage/account/publishing/").await;
    let mut again = jane();
    again["auth_time"] = json!(app.state.clock.now_secs());
    let done = browser.get(&idp.authorize(&app, &location, again)).await;
    assert_eq!(done.header("location"), Some("/manage/account/publishing/"));
    let page = browser.get("/manage/account/publishing/").await;
    assert!(
        page.text().contains("Pending publishers"),
        "{}",
        page.text()
    );
    // Someone else's provider account cannot confirm for jane.
    app.state.clock.advance(app.state.settings.reauth_secs + 1);
    let location = begin(&mut browser, "?reauth=1&next=/manage/account/publishing/").await;
    let other = json!({"sub": "u-2", "email": "joe@acme.example", "email_verified": true, "auth_time": app.state.clock.now_secs()});
    browser.get(&idp.authorize(&app, &location, other)).await;
    let page = browser.get("/manage/account/publishing/").await;
    assert!(
        page.text().contains("Confirm your password"),
        "{}",
        page.text()
    );
}

#[tokio::test]
async fn an_admin_links_an_account_from_the_shell_and_it_signs_in() {
    let (app, idp) = setup(|_| {}).await;
    use wharf::cli::admin::UserAdminCommand;
    let link = |provider: &str| UserAdminCommand::LinkSso {
        username: "alice".into(),
        provider: provider.into(),
        subject: "a-9".into(),
    };
    let unknown = wharf::cli::admin::run_user(&app.state, link("other")).await;
    assert!(
        unknown
            .expect_err("unknown")
            .to_string()
            .contains("no provider named 'other'")
    );
    let done = wharf::cli::admin::run_user(&app.state, link("corp"))
        .await
        .expect("linked");
    assert_eq!(done, ["linked a-9 of corp to alice"]);
    let again = wharf::cli::admin::run_user(&app.state, link("corp")).await;
    assert!(again.is_err());
    let mut browser = Browser::new(&app);
    let location = begin(&mut browser, "").await;
    let claims = json!({"sub": "a-9", "email": "someone@else.example", "email_verified": false});
    let signed = browser.get(&idp.authorize(&app, &location, claims)).await;
    assert_eq!(signed.header("location"), Some("/manage/projects/"));
    assert_eq!(signed_in_as(&mut browser).await.as_deref(), Some("alice"));
}
