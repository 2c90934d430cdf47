//! Trusted publishing end to end: a small OpenID issuer on loopback (discovery, JWKS, keys
//! made here) mints ID tokens with the claim sets GitHub Actions and GitLab CI send; wharf
//! exchanges them at `/_/oidc/mint-token` for upload tokens, and uploads with those.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use wharf::cli::publisher::{PublisherCommand, run};
use wharf::config::trusted_publishing::{GenericIssuer, Issuer, Issuers};

use crate::browser::{Browser, outbox};
use crate::proxy::Served;
use crate::util::{TestApp, TestResponse, UploadForm};

const AUDIENCE: &str = "wharf.test";

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A signing key with its id.
pub(crate) struct Key {
    kid: String,
    signer: Signer,
}

impl Key {
    pub(crate) fn rsa(kid: &str) -> Key {
        Key {
            kid: kid.to_owned(),
            signer: Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa key")),
        }
    }

    fn ec(kid: &str) -> Key {
        Key {
            kid: kid.to_owned(),
            signer: Signer::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec key"),
            ),
        }
    }

    pub(crate) fn jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match &self.signer {
            Signer::Rsa(pair) => {
                let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                       "n": b64(&public.n), "e": b64(&public.e)})
            }
            Signer::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid,
                       "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
        }
    }

    pub(crate) fn sign(&self, header_kid: &str, claims: &Value) -> String {
        let alg = match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
        };
        let header = json!({"alg": alg, "typ": "JWT", "kid": header_kid});
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match &self.signer {
            Signer::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message.as_bytes(), &mut signature)
                    .expect("sign");
                signature
            }
            Signer::Ec(pair) => pair
                .sign(&rng, message.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
        };
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Four issuers on one loopback server: `/github`, `/gitlab`, `/google` and `/forge` (a
/// generic one), each with its discovery
/// document and JWKS (which a test may change).
struct Provider {
    served: Served,
    jwks: Arc<Mutex<HashMap<String, Vec<Value>>>>,
}

impl Provider {
    async fn start() -> Provider {
        let jwks: Arc<Mutex<HashMap<String, Vec<Value>>>> = Arc::default();
        let mut router = axum::Router::new();
        for name in ["github", "gitlab", "google", "forge"] {
            let keys = jwks.clone();
            router = router
                .route(
                    &format!("/{name}/.well-known/openid-configuration"),
                    get(move |headers: axum::http::HeaderMap| async move {
                        let host = headers
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let issuer = format!("http://{host}/{name}");
                        axum::Json(json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}))
                    }),
                )
                .route(
                    &format!("/{name}/jwks"),
                    get(move || async move {
                        let keys = keys.lock().expect("keys").get(name).cloned();
                        axum::Json(json!({"keys": keys.unwrap_or_default()}))
                    }),
                );
        }
        let served = Served::start(router).await;
        Provider { served, jwks }
    }

    fn issuer(&self, name: &str) -> String {
        format!("http://{}/{name}", self.served.addr)
    }

    fn publish(&self, name: &str, keys: &[&Key]) {
        self.jwks
            .lock()
            .expect("keys")
            .insert(name.to_owned(), keys.iter().map(|k| k.jwk()).collect());
    }

    fn jwks_fetches(&self, name: &str) -> usize {
        self.served.asked(&format!("/{name}/jwks"))
    }
}

/// GitHub Actions' claims for `octo-org/octo-repo`'s release.yml on main (from GitHub's
/// documentation), issued now.
fn github_claims(issuer: &str, now: i64, jti: &str) -> Value {
    json!({
        "jti": jti, "sub": "repo:octo-org/octo-repo:environment:pypi",
        "environment": "pypi", "aud": AUDIENCE, "ref": "refs/heads/main", "sha": "d6f6e1b8c6f2a8e0a1b3",
        "repository": "octo-org/octo-repo", "repository_owner": "octo-org",
        "actor_id": "12", "repository_visibility": "public", "repository_id": "74",
        "repository_owner_id": "65", "run_id": "5555", "run_number": "10", "run_attempt": "1",
        "runner_environment": "github-hosted", "actor": "octocat", "workflow": "Release",
        "head_ref": "", "base_ref": "", "event_name": "push", "ref_protected": "true",
        "ref_type": "branch", "workflow_sha": "d6f6e1b8c6f2a8e0a1b3", "job_workflow_sha": "d6f6e1b8c6f2a8e0a1b3",
        "job_workflow_ref": "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
        "workflow_ref": "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
        "iss": issuer, "nbf": now - 5, "exp": now + 300, "iat": now
    })
}

/// GitLab CI's claims for `my-group/my-project` on main, environment production.
fn gitlab_claims(issuer: &str, now: i64, jti: &str) -> Value {
    let host = issuer.trim_start_matches("http://");
    json!({
        "namespace_id": "72", "namespace_path": "my-group", "project_id": "20",
        "project_path": "my-group/my-project", "user_id": "1", "user_login": "sample-user",
        "user_email": "sample-user@example.com", "user_access_level": "maintainer",
        "pipeline_id": "574", "pipeline_source": "push", "job_id": "302", "ref": "main",
        "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true",
        "environment": "production", "environment_protected": "true", "deployment_tier": "production",
        "environment_action": "start", "runner_id": 1, "runner_environment": "gitlab-hosted",
        "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc", "project_visibility": "public",
        "ci_config_ref_uri": format!("{host}/my-group/my-project//.gitlab-ci.yml@refs/heads/main"),
        "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "jti": jti, "iss": issuer, "iat": now, "nbf": now - 5, "exp": now + 300,
        "sub": "project_path:my-group/my-project:ref_type:branch:ref:main", "aud": AUDIENCE
    })
}

struct Setup {
    app: TestApp,
    provider: Provider,
    github_key: Key,
    gitlab_key: Key,
}

async fn setup() -> Setup {
    let provider = Provider::start().await;
    let (github, gitlab) = (provider.issuer("github"), provider.issuer("gitlab"));
    let github_key = Key::rsa("gh-1");
    let gitlab_key = Key::ec("gl-1");
    provider.publish("github", &[&github_key]);
    provider.publish("gitlab", &[&gitlab_key]);
    let app = TestApp::with_settings(move |s| {
        s.trusted_publishing.github_issuer = Issuer(github);
        s.trusted_publishing.gitlab_issuers = Issuers(vec![Issuer(gitlab)]);
    })
    .await;
    // alice creates the projects with a first upload, as an Owner does.
    for name in ["widget", "gadget"] {
        let response = app
            .upload(Some(&app.token), &UploadForm::wheel(name, "0.1"))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    Setup {
        app,
        provider,
        github_key,
        gitlab_key,
    }
}

async fn cli(app: &TestApp, command: PublisherCommand) -> Result<Vec<String>, String> {
    run(&app.state, command).await.map_err(|e| e.to_string())
}

fn add_github(project: &str, environment: Option<&str>) -> PublisherCommand {
    PublisherCommand::Add {
        project: project.into(),
        github: Some("octo-org/octo-repo".into()),
        workflow: Some("release.yml".into()),
        owner_id: None,
        gitlab: None,
        ci_config: None,
        gitlab_issuer: None,
        google: None,
        subject: None,
        generic: None,
        claim: Vec::new(),
        environment: environment.map(str::to_owned),
        pending: false,
        owner: None,
    }
}

/// `wharf publisher add NAME --github octo-org/octo-repo --workflow release.yml --pending
/// --owner OWNER`.
fn add_pending(project: &str, owner: &str) -> PublisherCommand {
    let mut command = add_github(project, None);
    if let PublisherCommand::Add {
        pending, owner: o, ..
    } = &mut command
    {
        *pending = true;
        *o = Some(owner.into());
    }
    command
}

fn add_gitlab(project: &str) -> PublisherCommand {
    PublisherCommand::Add {
        project: project.into(),
        github: None,
        workflow: None,
        owner_id: None,
        gitlab: Some("my-group/my-project".into()),
        ci_config: Some(".gitlab-ci.yml".into()),
        gitlab_issuer: None,
        google: None,
        subject: None,
        generic: None,
        claim: Vec::new(),
        environment: Some("production".into()),
        pending: false,
        owner: None,
    }
}

async fn mint(app: &TestApp, jwt: &str) -> TestResponse {
    let body = json!({ "token": jwt }).to_string();
    app.request(
        Request::post("/_/oidc/mint-token")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request"),
    )
    .await
}

/// The 422's single error code, with its description.
fn refusal(response: &TestResponse) -> (String, String) {
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        response.text()
    );
    let body = response.json();
    assert_eq!(body["message"], "Token request failed");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    (
        errors[0]["code"].as_str().unwrap_or_default().to_owned(),
        errors[0]["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn the_audience_is_the_base_urls_host_unless_set() {
    let app = TestApp::new().await;
    let response = app.get("/_/oidc/audience").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json(), json!({"audience": "wharf.test"}));
    let app = TestApp::with_settings(|s| s.trusted_publishing.audience = Some("pypi".into())).await;
    assert_eq!(
        app.get("/_/oidc/audience").await.json(),
        json!({"audience": "pypi"})
    );
}

#[tokio::test]
async fn a_github_workflow_mints_a_token_and_uploads_with_it() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    let added = cli(&app, add_github("widget", Some("PyPI")))
        .await
        .expect("added");
    assert_eq!(added.len(), 1);
    assert!(
        added[0].ends_with(
            "\tGitHub octo-org/octo-repo .github/workflows/release.yml (environment pypi)\towner id pinned at the first publish"
        ),
        "{added:?}"
    );
    let now = app.state.clock.now_secs();
    let jwt = github_key.sign(
        "gh-1",
        &github_claims(&provider.issuer("github"), now, "jti-1"),
    );
    let response = mint(&app, &jwt).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    assert_eq!(body["success"], true);
    let expires = body["expires"].as_i64().expect("expires");
    assert!((expires - (now + 900)).abs() <= 1, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("pypi-"));
    // Never listed with the users' tokens.
    assert_eq!(app.count("macaroons").await, 1);

    let upload = app
        .upload(Some(&token), &UploadForm::wheel("widget", "0.2"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    let added = app.events("file:add").await;
    let last = added.last().expect("file:add");
    assert_eq!(last["uploaded_via_trusted_publisher"], true);
    assert_eq!(last["submitted_by"], "OpenID created token");
    assert_eq!(last["publisher"]["publisher"], "GitHub");
    assert_eq!(last["publisher"]["claims"]["ref"], "refs/heads/main");
    assert_eq!(last["publisher"]["claims"]["sha"], "d6f6e1b8c6f2a8e0a1b3");
    assert_eq!(last["publisher"]["claims"]["run_id"], "5555");
    let minted = app.events("account:short_lived_api_token:added").await;
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0]["publisher_name"], "GitHub");
    assert_eq!(minted[0]["expires"], expires);
    assert_eq!(app.events("project:oidc:publisher-added").await.len(), 1);

    // The owner id was pinned by the first publish: the same names under another owner id
    // (a deleted and re-created account) no longer match.
    let listed = cli(
        &app,
        PublisherCommand::List {
            project: "widget".into(),
        },
    )
    .await
    .expect("list");
    assert!(listed[0].ends_with("\towner id 65"), "{listed:?}");
    let mut claims = github_claims(&provider.issuer("github"), now, "jti-2");
    claims["repository_owner_id"] = json!("66");
    let (code, description) = refusal(&mint(&app, &github_key.sign("gh-1", &claims)).await);
    assert_eq!(code, "invalid-publisher");
    assert!(
        description.starts_with("valid token, but no corresponding publisher ("),
        "{description}"
    );

    // The token is for widget only, and lives 15 minutes.
    let other = app
        .upload(Some(&token), &UploadForm::wheel("gadget", "0.2"))
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(
        other.message().starts_with("Invalid API Token: "),
        "{}",
        other.message()
    );
    let new_project = app
        .upload(Some(&token), &UploadForm::wheel("brand-new", "1.0"))
        .await;
    assert_eq!(new_project.status, StatusCode::FORBIDDEN);
    assert!(
        new_project.message().contains("does not exist"),
        "{}",
        new_project.message()
    );
    app.state.clock.advance(901);
    let late = app
        .upload(Some(&token), &UploadForm::wheel("widget", "0.3"))
        .await;
    assert_eq!(late.status, StatusCode::FORBIDDEN);
    assert_eq!(late.message(), "Invalid API Token: token is expired");
}

#[tokio::test]
async fn a_gitlab_pipeline_mints_with_an_es256_key_and_uploads() {
    let Setup {
        app,
        provider,
        gitlab_key,
        ..
    } = setup().await;
    cli(&app, add_gitlab("gadget")).await.expect("added");
    let now = app.state.clock.now_secs();
    let claims = gitlab_claims(&provider.issuer("gitlab"), now, "gl-jti-1");
    let response = mint(&app, &gitlab_key.sign("gl-1", &claims)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let token = response.json()["token"].as_str().expect("token").to_owned();
    let upload = app
        .upload(Some(&token), &UploadForm::sdist("gadget", "0.2"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    let added = app.events("file:add").await;
    let last = added.last().expect("file:add");
    assert_eq!(last["publisher"]["publisher"], "GitLab");
    assert_eq!(last["publisher"]["claims"]["ref_path"], "refs/heads/main");
    assert_eq!(last["publisher"]["claims"]["pipeline_id"], "574");
    // A token of the same pipeline in another environment names no publisher.
    let mut staging = gitlab_claims(&provider.issuer("gitlab"), now, "gl-jti-2");
    staging["environment"] = json!("staging");
    let (code, _) = refusal(&mint(&app, &gitlab_key.sign("gl-1", &staging)).await);
    assert_eq!(code, "invalid-publisher");
}

#[tokio::test]
async fn every_bad_token_is_refused_with_pypis_code() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    cli(&app, add_github("widget", Some("pypi")))
        .await
        .expect("added");
    let issuer = provider.issuer("github");
    let now = app.state.clock.now_secs();
    let mut n = 0;
    let mut claims_with = |changes: &[(&str, Value)]| {
        n += 1;
        let mut claims = github_claims(&issuer, now, &format!("jti-{n}"));
        for (key, value) in changes {
            claims[*key] = value.clone();
        }
        claims
    };
    let signed = |claims: &Value| github_key.sign("gh-1", claims);
    let stranger = Key::rsa("gh-1");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "wrong repository",
            signed(&claims_with(&[
                ("repository", json!("octo-org/other-repo")),
                (
                    "job_workflow_ref",
                    json!("octo-org/other-repo/.github/workflows/release.yml@refs/heads/main"),
                ),
            ])),
            "invalid-publisher",
            "Publisher with matching claims was not found",
        ),
        (
            "wrong workflow",
            signed(&claims_with(&[(
                "job_workflow_ref",
                json!("octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main"),
            )])),
            "invalid-publisher",
            "Publisher with matching claims was not found",
        ),
        (
            "wrong environment",
            signed(&claims_with(&[("environment", json!("staging"))])),
            "invalid-publisher",
            "Publisher with matching claims was not found",
        ),
        (
            "wrong audience",
            signed(&claims_with(&[("aud", json!("pypi"))])),
            "invalid-token",
            "audience",
        ),
        (
            "wrong issuer",
            signed(&claims_with(&[(
                "iss",
                json!("https://token.actions.githubusercontent.com"),
            )])),
            "invalid-payload",
            "unknown trusted publishing issuer",
        ),
        (
            "expired",
            signed(&claims_with(&[
                ("exp", json!(now - 60)),
                ("iat", json!(now - 400)),
                ("nbf", json!(now - 400)),
            ])),
            "invalid-token",
            "it has expired",
        ),
        (
            "not yet valid",
            signed(&claims_with(&[("nbf", json!(now + 120))])),
            "invalid-token",
            "not valid yet",
        ),
        (
            "bad signature",
            stranger.sign("gh-1", &claims_with(&[])),
            "invalid-token",
            "signature does not verify",
        ),
        (
            "unknown kid",
            github_key.sign("gh-unknown", &claims_with(&[])),
            "invalid-token",
            "does not publish a key \"gh-unknown\"",
        ),
        (
            "pull_request_target",
            signed(&claims_with(&[(
                "event_name",
                json!("pull_request_target"),
            )])),
            "invalid-publisher",
            "'pull_request_target' is not supported",
        ),
        (
            "not a JWT",
            "garbage".to_owned(),
            "invalid-payload",
            "malformed JWT",
        ),
    ];
    for (what, jwt, code, part) in cases {
        let (got_code, description) = refusal(&mint(&app, &jwt).await);
        assert_eq!(got_code, code, "{what}: {description}");
        assert!(description.contains(part), "{what}: {description}");
    }
    let body = app
        .request(
            Request::post("/_/oidc/mint-token")
                .body(Body::from("{\"jwt\": 1}"))
                .expect("request"),
        )
        .await;
    assert_eq!(refusal(&body).0, "invalid-payload");

    // Each token is exchanged once.
    let good = signed(&claims_with(&[]));
    assert_eq!(mint(&app, &good).await.status, StatusCode::OK);
    let (code, description) = refusal(&mint(&app, &good).await);
    assert_eq!(code, "invalid-reuse-token");
    assert_eq!(description, "invalid token: already used");
    // Nothing was minted for the refusals.
    assert_eq!(app.count("oidc_tokens").await, 1);
}

#[tokio::test]
async fn a_publisher_of_another_project_cannot_upload_here() {
    let Setup {
        app,
        provider,
        github_key,
        gitlab_key,
    } = setup().await;
    cli(&app, add_github("widget", None)).await.expect("github");
    cli(&app, add_gitlab("gadget")).await.expect("gitlab");
    let now = app.state.clock.now_secs();
    let jwt = gitlab_key.sign(
        "gl-1",
        &gitlab_claims(&provider.issuer("gitlab"), now, "x-1"),
    );
    let token = mint(&app, &jwt).await.json()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let refused = app
        .upload(Some(&token), &UploadForm::wheel("widget", "0.2"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.message().contains("not valid for project"),
        "{}",
        refused.message()
    );
    // Removing the publisher stops its tokens at once.
    let jwt = github_key.sign(
        "gh-1",
        &github_claims(&provider.issuer("github"), now, "x-2"),
    );
    let token = mint(&app, &jwt).await.json()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let listed = cli(
        &app,
        PublisherCommand::List {
            project: "widget".into(),
        },
    )
    .await
    .expect("list");
    let id = listed[0].split('\t').next().expect("id").to_owned();
    let removed = cli(
        &app,
        PublisherCommand::Remove {
            project: "widget".into(),
            id,
        },
    )
    .await
    .expect("removed");
    assert_eq!(
        removed,
        ["removed GitHub octo-org/octo-repo .github/workflows/release.yml from widget"]
    );
    assert_eq!(app.events("project:oidc:publisher-removed").await.len(), 1);
    let after = app
        .upload(Some(&token), &UploadForm::wheel("widget", "0.3"))
        .await;
    assert_eq!(after.status, StatusCode::FORBIDDEN);
    assert!(
        cli(
            &app,
            PublisherCommand::List {
                project: "widget".into()
            }
        )
        .await
        .expect("list")
        .is_empty()
    );
}

#[tokio::test]
async fn the_command_line_refuses_bad_publishers_in_one_line() {
    let app = TestApp::new().await;
    let response = app
        .upload(Some(&app.token), &UploadForm::wheel("widget", "0.1"))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let mut bad_workflow = add_github("widget", None);
    if let PublisherCommand::Add { workflow, .. } = &mut bad_workflow {
        *workflow = Some(".github/workflows/release.yml".into());
    }
    for (command, expected) in [
        (
            add_github("nothing-here", None),
            "no project named 'nothing-here'",
        ),
        (
            bad_workflow,
            "the workflow is a file name in .github/workflows/",
        ),
    ] {
        let error = cli(&app, command).await.unwrap_err();
        assert!(error.contains(expected), "{error}");
        assert_eq!(error.lines().count(), 1);
    }
    cli(&app, add_github("widget", None)).await.expect("added");
    let again = cli(&app, add_github("widget", None)).await.unwrap_err();
    assert_eq!(again, "this publisher is already registered for 'widget'");
    let error = cli(
        &app,
        PublisherCommand::Remove {
            project: "widget".into(),
            id: "nope".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(
        error.starts_with("no publisher nope on 'widget'"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unknown_key_refetches_the_keys_at_most_once_a_minute() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    cli(&app, add_github("widget", None)).await.expect("added");
    let issuer = provider.issuer("github");
    let now = app.state.clock.now_secs();
    let first = github_key.sign("gh-1", &github_claims(&issuer, now, "k-1"));
    assert_eq!(mint(&app, &first).await.status, StatusCode::OK);
    assert_eq!(provider.jwks_fetches("github"), 1);
    // Cached: the next exchange costs no fetch.
    let second = github_key.sign("gh-1", &github_claims(&issuer, now, "k-2"));
    assert_eq!(mint(&app, &second).await.status, StatusCode::OK);
    assert_eq!(provider.jwks_fetches("github"), 1);
    // The issuer rotates its key: an unknown kid fetches the set again, once the last fetch
    // is a minute old.
    let rotated = Key::rsa("gh-2");
    provider.publish("github", &[&github_key, &rotated]);
    let early = rotated.sign("gh-2", &github_claims(&issuer, now, "k-early"));
    assert_eq!(refusal(&mint(&app, &early).await).0, "invalid-token");
    assert_eq!(provider.jwks_fetches("github"), 1);
    app.state.clock.advance(61);
    let now = app.state.clock.now_secs();
    let signed = rotated.sign("gh-2", &github_claims(&issuer, now, "k-3"));
    assert_eq!(mint(&app, &signed).await.status, StatusCode::OK);
    assert_eq!(provider.jwks_fetches("github"), 2);
    // Unknown kids within the minute do not.
    for (i, kid) in ["junk-1", "junk-2", "junk-3"].iter().enumerate() {
        let jwt = rotated.sign(kid, &github_claims(&issuer, now, &format!("j-{i}")));
        assert_eq!(refusal(&mint(&app, &jwt).await).0, "invalid-token");
    }
    assert_eq!(provider.jwks_fetches("github"), 2);
    app.state.clock.advance(60);
    let now = app.state.clock.now_secs();
    let jwt = rotated.sign("junk-4", &github_claims(&issuer, now, "j-9"));
    assert_eq!(refusal(&mint(&app, &jwt).await).0, "invalid-token");
    assert_eq!(provider.jwks_fetches("github"), 3);
}

#[tokio::test]
async fn failed_exchanges_are_rate_limited_per_address() {
    let app = TestApp::new().await;
    for _ in 0..60 {
        assert_eq!(refusal(&mint(&app, "garbage").await).0, "invalid-payload");
    }
    let limited = mint(&app, "garbage").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json()["errors"][0]["code"], "rate-limited");
    assert!(limited.header("retry-after").is_some());
}

/// Minting costs no network round trip once the keys are cached: measured here (debug
/// build, so only an upper bound), printed for the note.
#[tokio::test]
async fn minting_with_cached_keys_is_quick() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    cli(&app, add_github("widget", None)).await.expect("added");
    let issuer = provider.issuer("github");
    let now = app.state.clock.now_secs();
    let warm = github_key.sign("gh-1", &github_claims(&issuer, now, "w-0"));
    assert_eq!(mint(&app, &warm).await.status, StatusCode::OK);
    let tokens: Vec<String> = (1..=20)
        .map(|i| github_key.sign("gh-1", &github_claims(&issuer, now, &format!("w-{i}"))))
        .collect();
    let started = std::time::Instant::now();
    for jwt in &tokens {
        assert_eq!(mint(&app, jwt).await.status, StatusCode::OK);
    }
    let each = started.elapsed() / 20;
    eprintln!("mint latency with cached keys: {each:?} per exchange (debug build)");
    assert_eq!(provider.jwks_fetches("github"), 1);
}

#[tokio::test]
async fn a_token_exchanged_twice_at_once_is_accepted_once_and_its_jti_kept_until_it_expires() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    cli(&app, add_github("widget", None)).await.expect("added");
    let now = app.state.clock.now_secs();
    let jwt = github_key.sign(
        "gh-1",
        &github_claims(&provider.issuer("github"), now, "once"),
    );
    let (a, b) = tokio::join!(mint(&app, &jwt), mint(&app, &jwt));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::UNPROCESSABLE_ENTITY],
        "{} / {}",
        a.text(),
        b.text()
    );
    assert_eq!(app.count("oidc_jwt_ids").await, 1);
    // Kept while the token could still be presented (exp + leeway), swept after.
    app.state.clock.advance(300 + 30 - 5);
    sweep(&app).await;
    assert_eq!(app.count("oidc_jwt_ids").await, 1);
    assert_eq!(app.count("oidc_tokens").await, 1);
    app.state.clock.advance(15);
    sweep(&app).await;
    assert_eq!(app.count("oidc_jwt_ids").await, 0);
    // The minted token's row goes a day after it expired (15 minutes after the exchange).
    app.state.clock.advance(900 + 86_400 - 340 - 10);
    sweep(&app).await;
    assert_eq!(app.count("oidc_tokens").await, 1);
    app.state.clock.advance(20);
    sweep(&app).await;
    assert_eq!(app.count("oidc_tokens").await, 0);
}

async fn sweep(app: &TestApp) {
    wharf::oidc::replay::sweep(&app.state.db, app.state.clock.now_micros())
        .await
        .expect("sweep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_first_exchanges_with_different_owners_mint_once() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    // No owner id given: the first exchange pins it, and only that one may mint.
    cli(&app, add_github("widget", None)).await.expect("added");
    let now = app.state.clock.now_secs();
    let mut ours = github_claims(&provider.issuer("github"), now, "ours");
    let mut theirs = github_claims(&provider.issuer("github"), now, "theirs");
    ours["repository_owner_id"] = json!("1111");
    theirs["repository_owner_id"] = json!("2222");
    let (a, b) = (
        github_key.sign("gh-1", &ours),
        github_key.sign("gh-1", &theirs),
    );
    let (a, b) = tokio::join!(mint(&app, &a), mint(&app, &b));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::UNPROCESSABLE_ENTITY],
        "{} / {}",
        a.text(),
        b.text()
    );
    assert_eq!(app.count("oidc_tokens").await, 1);
}

/// The project's Owners, by username.
async fn owners(app: &TestApp, project: &str) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT u.username FROM roles r JOIN users u ON u.id = r.user_id \
         JOIN projects p ON p.id = r.project_id WHERE p.normalized_name = $1 AND r.role_name = 'Owner' \
         ORDER BY u.username",
    )
    .bind(project)
    .fetch_all(app.state.db.pool())
    .await
    .expect("owners");
    rows.into_iter().map(|(u,)| u).collect()
}

#[tokio::test]
async fn a_pending_publisher_creates_its_project_with_its_owner_at_the_first_publish() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    let (bob, _) = app.create_user("bob").await;
    let added = cli(&app, add_pending("Fresh_Tool", "alice"))
        .await
        .expect("pending");
    assert!(
        added[0].ends_with("\tpending: creates Fresh_Tool owned by alice"),
        "{added:?}"
    );
    // Names a new project could not take are refused, in one line.
    for (name, owner, expected) in [
        ("widget", "alice", "exists already"),
        ("asyncio", "alice", "Standard Library"),
        ("not a name!", "alice", "not a valid project name"),
        ("other-tool", "nobody", "no user named 'nobody'"),
    ] {
        let error = cli(&app, add_pending(name, owner)).await.expect_err(name);
        assert!(error.contains(expected), "{name}: {error}");
        assert!(!error.contains('\n'), "{error}");
    }
    // One CI identity is pending for one name; bob's other workflow may wait for the same.
    let again = cli(&app, add_pending("other-tool", "alice")).await;
    assert!(
        again
            .expect_err("twice")
            .contains("pending for a project already")
    );
    let by_bob = cli(
        &app,
        PublisherCommand::Add {
            project: "fresh-tool".into(),
            github: Some("bobs/fork".into()),
            workflow: Some("ci.yml".into()),
            owner_id: None,
            gitlab: None,
            ci_config: None,
            gitlab_issuer: None,
            google: None,
            subject: None,
            generic: None,
            claim: Vec::new(),
            environment: None,
            pending: true,
            owner: Some("bob".into()),
        },
    )
    .await
    .expect("bob's pending");
    let listed = cli(
        &app,
        PublisherCommand::List {
            project: "fresh_tool".into(),
        },
    )
    .await
    .expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(app.count("oidc_pending_publishers").await, 2);
    assert!(
        wharf::packaging::find_project(&app.state.db, "fresh-tool")
            .await
            .unwrap()
            .is_none()
    );

    let now = app.state.clock.now_secs();
    let jwt = github_key.sign(
        "gh-1",
        &github_claims(&provider.issuer("github"), now, "p-1"),
    );
    let response = mint(&app, &jwt).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let token = response.json()["token"].as_str().expect("token").to_owned();
    // The project exists, owned by alice, with the publisher registered; no pending is left.
    assert_eq!(owners(&app, "fresh-tool").await, ["alice"]);
    assert_eq!(app.count("oidc_pending_publishers").await, 0);
    let registered = app.events("project:oidc:publisher-added").await;
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["reified_from_pending_publisher"], true);
    assert_eq!(registered[0]["submitted_by"], "alice");
    assert_eq!(
        app.events("account:oidc:pending-publisher-added")
            .await
            .len(),
        2
    );
    let dropped: Vec<(String, String)> = sqlx::query_as(
        "SELECT source_id, additional FROM events WHERE tag = 'account:oidc:pending-publisher-removed'",
    )
    .fetch_all(app.state.db.pool())
    .await
    .expect("events");
    assert_eq!(dropped.len(), 1, "bob's is dropped: {dropped:?}");
    assert_eq!(dropped[0].0, bob.id);
    assert!(dropped[0].1.contains(by_bob[0].split('\t').next().unwrap()));
    let created = app.events("project:create").await;
    assert_eq!(created.last().expect("create")["created_by"], "alice");

    let upload = app
        .upload(Some(&token), &UploadForm::wheel("fresh-tool", "1.0"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    let listed = cli(
        &app,
        PublisherCommand::List {
            project: "fresh-tool".into(),
        },
    )
    .await
    .expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains("owner id 65"), "{listed:?}");
}

#[tokio::test]
async fn a_pending_publisher_goes_when_its_name_is_created_by_an_upload() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    cli(&app, add_pending("late-tool", "alice"))
        .await
        .expect("pending");
    let upload = app
        .upload(Some(&app.token), &UploadForm::wheel("late-tool", "0.1"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    assert_eq!(app.count("oidc_pending_publishers").await, 0);
    let dropped = app.events("account:oidc:pending-publisher-removed").await;
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["project"], "late-tool");
    // Its workflow no longer matches anything: an Owner registers it on the project.
    let now = app.state.clock.now_secs();
    let jwt = github_key.sign(
        "gh-1",
        &github_claims(&provider.issuer("github"), now, "l-1"),
    );
    let (code, _) = refusal(&mint(&app, &jwt).await);
    assert_eq!(code, "invalid-publisher");
}

#[tokio::test]
async fn owners_manage_publishers_and_can_allow_only_them_to_upload() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let page = browser.get("/manage/project/widget/publishing/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("No publisher is registered"));

    // A bad workflow name is refused on the form, naming the field; nothing is added.
    let refused = browser
        .post(
            "/manage/project/widget/publishing/add",
            &[
                ("kind", "github"),
                ("owner", "octo-org"),
                ("repository", "octo-repo"),
                ("workflow", "release"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.text().contains("href=\"#github-workflow\""),
        "{}",
        refused.text()
    );
    assert_eq!(app.count("oidc_publishers").await, 0);
    let added = browser
        .post(
            "/manage/project/widget/publishing/add",
            &[
                ("kind", "github"),
                ("owner", "octo-org"),
                ("repository", "octo-repo"),
                ("workflow", "release.yml"),
                ("environment", "pypi"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text());
    let page = browser
        .get("/manage/project/widget/publishing/")
        .await
        .text();
    // Escaped as the page escapes it.
    assert!(
        page.contains("GitHub octo-org&#x2f;octo-repo .github&#x2f;workflows&#x2f;release.yml (environment pypi)"),
        "{page}"
    );
    let recorded = app.events("project:oidc:publisher-added").await;
    assert_eq!(recorded[0]["via"], "web");
    app.state.mailer.idle().await;
    let told = outbox(&app)
        .into_iter()
        .filter(|m| m.contains("A trusted publisher was added to widget"))
        .count();
    assert_eq!(told, 1, "the Owners are told");
    assert_eq!(recorded[0]["submitted_by"], "alice");

    // An API token uploading to a project with a publisher tells its Owners.
    let upload = app
        .upload(Some(&app.token), &UploadForm::wheel("widget", "0.2"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    app.state.mailer.idle().await;
    let told: Vec<String> = outbox(&app)
        .into_iter()
        .filter(|m| {
            m.contains("To: alice@example.org") && m.contains("which has a trusted publisher")
        })
        .collect();
    assert_eq!(told.len(), 1);
    assert!(
        told[0].contains("widget-0.2-py3-none-any.whl"),
        "{}",
        told[0]
    );
    assert!(!told[0].contains(&app.token));

    // Only trusted publishers: API tokens are refused, saying why; the publisher uploads.
    let switched = browser
        .post(
            "/manage/project/widget/publishing/trusted-only",
            &[("only", "yes")],
        )
        .await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.events("project:trusted_publishing_only:enabled")
            .await
            .len(),
        1
    );
    let refused = app
        .upload(Some(&app.token), &UploadForm::wheel("widget", "0.3"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .message()
            .starts_with("Only trusted publishers may upload to 'widget'"),
        "{}",
        refused.message()
    );
    let mut claims = github_claims(
        &provider.issuer("github"),
        app.state.clock.now_secs(),
        "t-1",
    );
    claims["environment"] = json!("pypi");
    let minted = mint(&app, &github_key.sign("gh-1", &claims)).await;
    assert_eq!(minted.status, StatusCode::OK, "{}", minted.text());
    let token = minted.json()["token"].as_str().expect("token").to_owned();
    let upload = app
        .upload(Some(&token), &UploadForm::wheel("widget", "0.3"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    // Switched back off, tokens upload again.
    browser
        .post(
            "/manage/project/widget/publishing/trusted-only",
            &[("only", "no")],
        )
        .await;
    assert_eq!(
        app.events("project:trusted_publishing_only:disabled")
            .await
            .len(),
        1
    );
    let upload = app
        .upload(Some(&app.token), &UploadForm::wheel("widget", "0.4"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());

    // Removing it stops its tokens.
    let id: (String,) = sqlx::query_as("SELECT id FROM oidc_publishers")
        .fetch_one(app.state.db.pool())
        .await
        .expect("publisher");
    let removed = browser
        .post(
            "/manage/project/widget/publishing/remove",
            &[("publisher_id", &id.0)],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(app.count("oidc_publishers").await, 0);
    let late = app
        .upload(Some(&token), &UploadForm::wheel("widget", "0.5"))
        .await;
    assert_eq!(late.status, StatusCode::FORBIDDEN, "{}", late.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_adds_never_give_a_user_more_pending_publishers_than_the_limit() {
    let Setup { app, .. } = setup().await;
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let mut tasks = Vec::new();
    for n in 0..12 {
        let mut command = add_pending(&format!("parallel-tool-{n}"), "alice");
        if let PublisherCommand::Add { workflow, .. } = &mut command {
            *workflow = Some(format!("release-{n}.yml"));
        }
        let (state, barrier) = (app.state.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            run(&state, command).await.map_err(|e| e.to_string())
        }));
    }
    let mut added = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => added += 1,
            Err(e) => assert!(e.contains("the most one account may have"), "{e}"),
        }
    }
    assert_eq!(added, wharf::oidc::pending::PER_USER);
    assert_eq!(
        app.count("oidc_pending_publishers").await,
        wharf::oidc::pending::PER_USER
    );
}

#[tokio::test]
async fn a_user_registers_and_removes_pending_publishers_on_the_account_page() {
    let Setup { app, .. } = setup().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    let page = browser.get("/manage/account/publishing/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("You have no pending publishers."));
    let fields = |name: &'static str| {
        vec![
            ("kind", "gitlab"),
            ("project_name", name),
            ("owner", "my-group"),
            ("repository", "my-project"),
            ("workflow", ".gitlab-ci.yml"),
        ]
    };
    let taken = browser
        .post("/manage/account/publishing/add", &fields("gadget"))
        .await;
    assert_eq!(taken.status, StatusCode::BAD_REQUEST);
    assert!(
        taken.text().contains("href=\"#gitlab-project_name\""),
        "{}",
        taken.text()
    );
    let added = browser
        .post("/manage/account/publishing/add", &fields("web-tool"))
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text());
    let page = browser.get("/manage/account/publishing/").await.text();
    assert!(page.contains("web-tool"), "{page}");
    let pending = wharf::oidc::pending::for_user(&app.state.db, &app.user.id)
        .await
        .expect("pending");
    assert_eq!(pending.len(), 1);
    // Another user cannot remove it.
    let mut bob = {
        app.create_user("bob").await;
        Browser::signed_in(&app, "bob").await
    };
    bob.post(
        "/manage/account/publishing/remove",
        &[("publisher_id", &pending[0].publisher.id)],
    )
    .await;
    assert_eq!(app.count("oidc_pending_publishers").await, 1);
    let removed = browser
        .post(
            "/manage/account/publishing/remove",
            &[("publisher_id", &pending[0].publisher.id)],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(app.count("oidc_pending_publishers").await, 0);
    assert_eq!(
        app.events("account:oidc:pending-publisher-removed")
            .await
            .len(),
        1
    );
}

fn add_other(
    project: &str,
    google: Option<&str>,
    generic: Option<&str>,
    claim: &[&str],
) -> PublisherCommand {
    let mut command = add_github(project, None);
    if let PublisherCommand::Add {
        github,
        workflow,
        google: g,
        generic: x,
        claim: c,
        ..
    } = &mut command
    {
        (*github, *workflow) = (None, None);
        *g = google.map(str::to_owned);
        *x = generic.map(str::to_owned);
        *c = claim.iter().map(|s| s.to_string()).collect();
    }
    command
}

/// An index trusting the provider's Google and generic ("Forge", its own audience) issuers.
async fn other_issuers() -> (TestApp, Provider, Key) {
    let provider = Provider::start().await;
    let key = Key::rsa("k-1");
    provider.publish("google", &[&key]);
    provider.publish("forge", &[&key]);
    let (google, forge) = (provider.issuer("google"), provider.issuer("forge"));
    let app = TestApp::with_settings(move |s| {
        s.trusted_publishing.google_issuer = Issuer(google);
        s.trusted_publishing.generic_issuers = vec![GenericIssuer {
            name: "Forge".into(),
            issuer: Issuer(forge),
            audience: Some("forge-aud".into()),
            claims: vec!["repository".into(), "workflow".into()],
        }];
    })
    .await;
    for name in ["widget", "gadget"] {
        let response = app
            .upload(Some(&app.token), &UploadForm::wheel(name, "0.1"))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    (app, provider, key)
}

#[tokio::test]
async fn a_google_service_account_publishes_and_its_token_without_jti_is_accepted_once() {
    let (app, provider, key) = other_issuers().await;
    let added = cli(
        &app,
        add_other(
            "widget",
            Some("Publisher@Proj.iam.gserviceaccount.com"),
            None,
            &[],
        ),
    )
    .await
    .expect("added");
    assert!(
        added[0].ends_with("\tGoogle service account publisher@proj.iam.gserviceaccount.com"),
        "{added:?}"
    );
    let now = app.state.clock.now_secs();
    // Google's ID token for a service account (no jti).
    let claims = json!({
        "iss": provider.issuer("google"), "aud": AUDIENCE, "azp": "1122",
        "email": "publisher@proj.iam.gserviceaccount.com", "email_verified": true,
        "sub": "1122334455", "iat": now, "exp": now + 300
    });
    let jwt = key.sign("k-1", &claims);
    let response = mint(&app, &jwt).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let token = response.json()["token"].as_str().expect("token").to_owned();
    let upload = app
        .upload(Some(&token), &UploadForm::wheel("widget", "0.2"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    let added = app.events("file:add").await;
    assert_eq!(
        added.last().expect("file:add")["publisher"]["claims"]["sub"],
        "1122334455"
    );
    // The same token again: its digest was kept in place of a jti.
    let (code, _) = refusal(&mint(&app, &jwt).await);
    assert_eq!(code, "invalid-reuse-token");
    let mut unverified = claims.clone();
    unverified["email_verified"] = json!(false);
    unverified["iat"] = json!(now - 1);
    let (code, description) = refusal(&mint(&app, &key.sign("k-1", &unverified)).await);
    assert_eq!(code, "invalid-publisher");
    assert!(description.contains("email_verified"), "{description}");
}

#[tokio::test]
async fn a_generic_issuers_publisher_matches_its_claims_and_its_own_audience() {
    let (app, provider, key) = other_issuers().await;
    // Every claim the issuer names must be given, and no other.
    let missing = cli(
        &app,
        add_other("gadget", None, Some("forge"), &["repository=acme/gadget"]),
    )
    .await;
    assert!(
        missing
            .expect_err("missing")
            .contains("give --claim workflow=VALUE")
    );
    let unknown = cli(
        &app,
        add_other(
            "gadget",
            None,
            Some("Forge"),
            &["repository=acme/gadget", "workflow=r.yml", "ref=main"],
        ),
    )
    .await;
    assert!(
        unknown
            .expect_err("unknown")
            .contains("'ref' is not one of them")
    );
    let nothing = cli(
        &app,
        add_other("gadget", None, Some("Nope"), &["repository=x"]),
    )
    .await;
    assert!(
        nothing
            .expect_err("nope")
            .contains("no generic issuer named 'Nope'")
    );
    cli(
        &app,
        add_other(
            "gadget",
            None,
            Some("Forge"),
            &["repository=acme/gadget", "workflow=release.yml"],
        ),
    )
    .await
    .expect("added");

    let now = app.state.clock.now_secs();
    let claims = |aud: &str, workflow: &str, jti: &str| {
        json!({
            "iss": provider.issuer("forge"), "aud": aud, "sub": "repo:acme/gadget",
            "repository": "acme/gadget", "workflow": workflow, "run_id": 9, "jti": jti,
            "iat": now, "exp": now + 300
        })
    };
    let (code, description) = refusal(
        &mint(
            &app,
            &key.sign("k-1", &claims(AUDIENCE, "release.yml", "a")),
        )
        .await,
    );
    assert_eq!(code, "invalid-token", "{description}");
    let (code, _) = refusal(
        &mint(
            &app,
            &key.sign("k-1", &claims("forge-aud", "other.yml", "b")),
        )
        .await,
    );
    assert_eq!(code, "invalid-publisher");
    let response = mint(
        &app,
        &key.sign("k-1", &claims("forge-aud", "release.yml", "c")),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let token = response.json()["token"].as_str().expect("token").to_owned();
    let upload = app
        .upload(Some(&token), &UploadForm::wheel("gadget", "0.2"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    let elsewhere = app
        .upload(Some(&token), &UploadForm::wheel("widget", "0.2"))
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);

    // The publishing page offers the issuer's form, one field per claim.
    let mut browser = Browser::signed_in(&app, "alice").await;
    let page = browser
        .get("/manage/project/widget/publishing/")
        .await
        .text();
    assert!(page.contains("Add a Forge publisher"), "{page}");
    assert!(page.contains("id=\"generic-0-claim-workflow\""), "{page}");
    let refused = browser
        .post(
            "/manage/project/widget/publishing/add",
            &[
                ("kind", "generic"),
                ("generic", "Forge"),
                ("claim.repository", "acme/widget"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .contains("href=\"#generic-0-claim-workflow\""),
        "{}",
        refused.text()
    );
    let added = browser
        .post(
            "/manage/project/widget/publishing/add",
            &[
                ("kind", "generic"),
                ("generic", "Forge"),
                ("claim.repository", "acme/widget"),
                ("claim.workflow", "release.yml"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text());
    let google = browser
        .post(
            "/manage/project/widget/publishing/add",
            &[
                ("kind", "google"),
                ("owner", "ci@proj.iam.gserviceaccount.com"),
                ("subject", "42"),
            ],
        )
        .await;
    assert_eq!(google.status, StatusCode::SEE_OTHER, "{}", google.text());
    let listed = cli(
        &app,
        PublisherCommand::List {
            project: "widget".into(),
        },
    )
    .await
    .expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed.iter().any(|l| l.contains("(subject 42)")),
        "{listed:?}"
    );
}

/// SQLite widens `oidc_publishers`' kinds by rebuilding the table (20261203000700): an index
/// upgraded with publishers, their projects' links and minted tokens keeps every row, and the
/// links still cascade from the rebuilt table.
#[tokio::test]
async fn rebuilding_the_publishers_table_on_sqlite_keeps_its_links_and_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = dir.path().join("before");
    std::fs::create_dir(&before).expect("dir");
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&all).expect("migrations").flatten() {
        let name = entry.file_name().into_string().expect("name");
        if name.as_str() < "20261203000700" {
            std::fs::copy(entry.path(), before.join(&name)).expect("copy");
        }
    }
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("w.db").display());
    let db = wharf::db::Db::connect(&url).await.expect("sqlite");
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .expect("migrator")
        .run(db.pool())
        .await
        .expect("the migrations before");
    for statement in [
        "INSERT INTO projects (id, name, normalized_name, ultranormalized_name, created) VALUES ('p1', 'demo', 'demo', 'demo', 1)",
        "INSERT INTO oidc_publishers (id, kind, issuer, owner, repository, workflow, environment, owner_id, created) \
         VALUES ('pub1', 'github', 'https://token.actions.githubusercontent.com', 'acme', 'demo', 'release.yml', '', '65', 1)",
        "INSERT INTO oidc_publisher_projects (publisher_id, project_id, added_by, created) VALUES ('pub1', 'p1', NULL, 1)",
        "INSERT INTO oidc_tokens (id, publisher_id, created, expires, caveats, claims, key) VALUES ('t1', 'pub1', 1, 2, '[]', '{}', x'00')",
    ] {
        sqlx::query(statement)
            .execute(db.pool())
            .await
            .expect(statement);
    }
    db.migrate().await.expect("the rebuild");
    for (table, expected) in [
        ("oidc_publishers", 1),
        ("oidc_publisher_projects", 1),
        ("oidc_tokens", 1),
    ] {
        let (count,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(db.pool())
                .await
                .expect("count");
        assert_eq!(count, expected, "{table}");
    }
    let (claims, owner_id): (String, Option<String>) =
        sqlx::query_as("SELECT claims, owner_id FROM oidc_publishers WHERE id = 'pub1'")
            .fetch_one(db.pool())
            .await
            .expect("row");
    assert_eq!((claims.as_str(), owner_id.as_deref()), ("", Some("65")));
    // The new kinds are accepted; foreign keys are on again and point at the new table.
    sqlx::query(
        "INSERT INTO oidc_publishers (id, kind, issuer, owner, repository, workflow, created, claims) \
         VALUES ('pub2', 'google', 'https://accounts.google.com', 'a@b.iam.gserviceaccount.com', '', '', 1, '')",
    )
    .execute(db.pool())
    .await
    .expect("google");
    let orphan = sqlx::query(
        "INSERT INTO oidc_publisher_projects (publisher_id, project_id, created) VALUES ('missing', 'p1', 1)",
    )
    .execute(db.pool())
    .await;
    assert!(orphan.is_err(), "foreign keys are enforced");
    sqlx::query("DELETE FROM oidc_publishers WHERE id = 'pub1'")
        .execute(db.pool())
        .await
        .expect("delete");
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM oidc_publisher_projects")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(left, 0, "the link cascades from the rebuilt table");
}

/// `wharf publisher add PROJECT --github octo-org/octo-repo --workflow release.yml` with the
/// owner id and environment given.
fn add_github_with(
    project: &str,
    owner_id: Option<&str>,
    environment: Option<&str>,
) -> PublisherCommand {
    let mut command = add_github(project, environment);
    if let PublisherCommand::Add { owner_id: o, .. } = &mut command {
        *o = owner_id.map(str::to_owned);
    }
    command
}

#[tokio::test]
async fn another_projects_registration_of_the_same_workflow_cannot_lock_it_out() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    // alice registers her workflow for widget; bob registers the same names for his project
    // with a made-up owner id, and again with the environment her workflow uses.
    cli(&app, add_github("widget", None))
        .await
        .expect("alice's");
    let (bob, bob_token) = app.create_user("bob").await;
    let upload = app
        .upload(Some(&bob_token), &UploadForm::wheel("bobs-thing", "0.1"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    cli(&app, add_github_with("bobs-thing", Some("1"), None))
        .await
        .expect("bob's pinned");
    cli(&app, add_github_with("bobs-thing", None, Some("pypi")))
        .await
        .expect("bob's env");
    assert_eq!(app.count("oidc_publishers").await, 3);
    let now = app.state.clock.now_secs();
    let jwt = github_key.sign(
        "gh-1",
        &github_claims(&provider.issuer("github"), now, "u-1"),
    );
    let response = mint(&app, &jwt).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let token = response.json()["token"].as_str().expect("token").to_owned();
    // alice's upload goes through: her row was neither pinned by bob nor shadowed by his
    // more specific one (the token covers every publisher the claims satisfy).
    let upload = app
        .upload(Some(&token), &UploadForm::wheel("widget", "0.2"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    let pinned: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT owner_id FROM oidc_publishers ORDER BY created, id")
            .fetch_all(app.state.db.pool())
            .await
            .expect("rows");
    assert!(
        pinned.iter().any(|(id,)| id.as_deref() == Some("1")),
        "{pinned:?}"
    );
    assert!(
        pinned.iter().any(|(id,)| id.as_deref() == Some("65")),
        "{pinned:?}"
    );
    let _ = bob;
}

#[tokio::test]
async fn a_pending_publisher_that_cannot_create_its_project_is_dropped_and_stands_in_no_way() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    cli(&app, add_github("widget", None))
        .await
        .expect("alice's");
    app.create_user("mallory").await;
    cli(&app, add_pending("mallorys-name", "mallory"))
        .await
        .expect("pending");
    sqlx::query("UPDATE users SET is_active = 0 WHERE username = 'mallory'")
        .execute(app.state.db.pool())
        .await
        .expect("disable");
    let now = app.state.clock.now_secs();
    let jwt = github_key.sign(
        "gh-1",
        &github_claims(&provider.issuer("github"), now, "d-1"),
    );
    let response = mint(&app, &jwt).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(app.count("oidc_pending_publishers").await, 0);
    let dropped = app.events("account:oidc:pending-publisher-removed").await;
    assert!(
        dropped[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("disabled"),
        "{dropped:?}"
    );
    assert!(
        wharf::packaging::find_project(&app.state.db, "mallorys-name")
            .await
            .expect("db")
            .is_none()
    );

    // A name that became confusable with a project since the registration is refused at
    // the exchange (and with no registered publisher left, so is the token).
    cli(&app, add_pending("f00bar", "alice"))
        .await
        .expect("pending");
    let upload = app
        .upload(Some(&app.token), &UploadForm::wheel("foobar", "1.0"))
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    let mut claims = github_claims(&provider.issuer("github"), now, "d-2");
    claims["repository"] = json!("octo-org/other");
    claims["job_workflow_ref"] =
        json!("octo-org/other/.github/workflows/release.yml@refs/heads/main");
    cli(
        &app,
        PublisherCommand::Add {
            project: "f00bar".into(),
            github: Some("octo-org/other".into()),
            workflow: Some("release.yml".into()),
            owner_id: None,
            gitlab: None,
            ci_config: None,
            gitlab_issuer: None,
            google: None,
            subject: None,
            generic: None,
            claim: Vec::new(),
            environment: None,
            pending: true,
            owner: Some("alice".into()),
        },
    )
    .await
    .expect_err("confusable at registration already");
}

#[tokio::test]
async fn a_pending_publisher_needs_a_verified_address() {
    let Setup { app, .. } = setup().await;
    sqlx::query("UPDATE user_emails SET verified = 0")
        .execute(app.state.db.pool())
        .await
        .expect("unverify");
    let refused = cli(&app, add_pending("new-thing", "alice")).await;
    assert!(
        refused
            .expect_err("unverified")
            .contains("no verified primary e-mail address"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_of_first_exchanges_all_mint_once_the_pending_publisher_made_the_project() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    cli(&app, add_pending("matrix-tool", "alice"))
        .await
        .expect("pending");
    let now = app.state.clock.now_secs();
    let tokens: Vec<String> = (0..4)
        .map(|i| {
            github_key.sign(
                "gh-1",
                &github_claims(&provider.issuer("github"), now, &format!("m-{i}")),
            )
        })
        .collect();
    let (a, b, c, d) = tokio::join!(
        mint(&app, &tokens[0]),
        mint(&app, &tokens[1]),
        mint(&app, &tokens[2]),
        mint(&app, &tokens[3])
    );
    for response in [&a, &b, &c, &d] {
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    assert_eq!(owners(&app, "matrix-tool").await, ["alice"]);
    assert_eq!(
        app.events("project:create")
            .await
            .iter()
            .filter(|e| e["created_by"] == "alice")
            .count(),
        3
    );
}

#[tokio::test]
async fn a_burned_token_stops_working_at_once() {
    let Setup {
        app,
        provider,
        github_key,
        ..
    } = setup().await;
    cli(&app, add_github("widget", None)).await.expect("added");
    let now = app.state.clock.now_secs();
    let jwt = github_key.sign(
        "gh-1",
        &github_claims(&provider.issuer("github"), now, "burn"),
    );
    let token = mint(&app, &jwt).await.json()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let burn = |token: String| {
        let body = json!({ "token": token }).to_string();
        app.request(
            Request::post("/_/oidc/burn-token")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request"),
        )
    };
    let burned = burn(token.clone()).await;
    assert_eq!(burned.status, StatusCode::OK, "{}", burned.text());
    assert_eq!(burned.json(), json!({"success": true}));
    let upload = app
        .upload(Some(&token), &UploadForm::wheel("widget", "0.2"))
        .await;
    assert_eq!(upload.status, StatusCode::FORBIDDEN);
    let (code, _) = refusal(&burn(token).await);
    assert_eq!(code, "invalid-token");
    let (code, _) = refusal(&burn("pypi-not-a-token".into()).await);
    assert_eq!(code, "invalid-token");
}
