//! The proxy of an upstream index: a real wharf (or a hostile server) on loopback as the
//! upstream, the proxy in-process. Pages point at the proxy's own files; files are checked
//! against the upstream's hash and kept; a hosted name is never asked upstream; a proxied
//! name is refused for upload until claimed; private prefixes never leave; the kept page and
//! files are served when the upstream is down; a hostile upstream gets 502 and stores nothing;
//! one fetch per file however many ask.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sha2::{Digest, Sha256};
use wharf::config::Span;

use crate::util::{TestApp, UploadForm};

const JSON: &str = "application/vnd.pypi.simple.v1+json";

/// A server on loopback: the paths it was asked for, and a switch to stop it.
pub(crate) struct Served {
    pub(crate) addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    pub(crate) async fn start(router: Router) -> Served {
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = paths.clone();
        let router = router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .expect("paths")
                        .push(request.uri().path().to_owned());
                    next.run(request).await
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        });
        Served {
            addr,
            paths,
            stop: Some(stop),
            task,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/simple/", self.addr)
    }

    pub(crate) fn asked(&self, prefix: &str) -> usize {
        self.paths
            .lock()
            .expect("paths")
            .iter()
            .filter(|p| p.starts_with(prefix))
            .count()
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// A real wharf as the upstream, with `demo` 1.0 (a wheel) and `other` 2.0 uploaded.
pub(crate) async fn upstream() -> (TestApp, Served) {
    let app = TestApp::new().await;
    for form in [
        UploadForm::wheel("demo", "1.0"),
        UploadForm::wheel("other", "2.0"),
        UploadForm::wheel("shared", "9.0"),
    ] {
        let response = app.upload(Some(&app.token), &form).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    let served = Served::start(wharf::app::router(app.state.clone())).await;
    (app, served)
}

pub(crate) async fn proxy_of(
    url: &str,
    configure: impl FnOnce(&mut wharf::config::Settings),
) -> TestApp {
    let url = url.to_owned();
    TestApp::with_settings(move |s| {
        s.upstream_url = Some(url);
        s.upstream_timeout = Span(Duration::from_secs(2));
        configure(s);
    })
    .await
}

pub(crate) async fn json_page(app: &TestApp, name: &str) -> serde_json::Value {
    let response = app
        .get_with(&format!("/simple/{name}/"), &[("accept", JSON)])
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

/// The path of the page's first file, as a client resolves it from `/simple/<name>/`.
pub(crate) fn first_file(page: &serde_json::Value) -> String {
    let url = page["files"][0]["url"].as_str().expect("url");
    format!("/{}", url.trim_start_matches("../../"))
}

pub(crate) fn stored_upstream_files(app: &TestApp) -> Vec<String> {
    app.stored_files()
        .into_iter()
        .filter(|p| p.starts_with("upstream"))
        .collect()
}

#[tokio::test]
async fn proxied_pages_point_here_and_files_are_checked_and_kept() {
    let (origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |_| {}).await;

    let page = json_page(&proxy, "demo").await;
    let file = &page["files"][0];
    assert_eq!(file["filename"], "demo-1.0-py3-none-any.whl");
    let sha256 = file["hashes"]["sha256"].as_str().expect("hash").to_owned();
    let path = first_file(&page);
    assert_eq!(
        path,
        format!("/files/upstream/demo/{sha256}/demo-1.0-py3-none-any.whl")
    );
    assert_eq!(page["versions"], serde_json::json!(["1.0"]));
    assert!(file["core-metadata"]["sha256"].is_string(), "{file}");
    // The HTML page says the same.
    let html = proxy.get("/simple/demo/").await.text();
    assert!(html.contains(&format!("{path}#sha256={sha256}").replacen("/files", "../../files", 1)));

    let downloaded = proxy.get(&path).await;
    assert_eq!(downloaded.status, StatusCode::OK);
    assert_eq!(hex::encode(Sha256::digest(&downloaded.body)), sha256);
    assert_eq!(served.asked("/files/"), 1);
    assert_eq!(
        stored_upstream_files(&proxy),
        vec![format!("upstream/demo/{sha256}/demo-1.0-py3-none-any.whl")]
    );
    // Kept: served from storage (ranges too), the upstream not asked again.
    let again = proxy.get_with(&path, &[("range", "bytes=0-9")]).await;
    assert_eq!(again.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(again.body, downloaded.body[..10].to_vec());
    assert_eq!(served.asked("/files/"), 1);
    // PEP 658 metadata, checked against its own hash.
    let metadata = proxy.get(&format!("{path}.metadata")).await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(
        hex::encode(Sha256::digest(&metadata.body)),
        file["core-metadata"]["sha256"].as_str().expect("hash")
    );
    assert!(metadata.text().contains("Name: demo"));
    // A file the page does not list is not fetched for anyone.
    let unknown = proxy
        .get(&format!(
            "/files/upstream/demo/{}/demo-1.0-py3-none-any.whl",
            "0".repeat(64)
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // The root lists hosted projects only.
    let root = proxy.get_with("/simple/", &[("accept", JSON)]).await.json();
    assert_eq!(root["projects"], serde_json::json!([]));
    let metrics = proxy.get("/metrics").await.text();
    // The wheel and its metadata file.
    assert!(
        metrics.contains("wharf_upstream_requests_total{what=\"file\",result=\"fetched\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("wharf_upstream_files_total{cache=\"hit\"} 1"));
    served.stop().await;
    drop(origin);
}

#[tokio::test]
async fn a_hosted_name_is_never_asked_upstream() {
    let (_origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |_| {}).await;
    let hosted = proxy
        .upload(Some(&proxy.token), &UploadForm::wheel("shared", "1.0"))
        .await;
    assert_eq!(hosted.status, StatusCode::OK, "{}", hosted.text());
    let page = json_page(&proxy, "shared").await;
    assert_eq!(page["versions"], serde_json::json!(["1.0"]));
    assert!(first_file(&page).starts_with("/files/") && !first_file(&page).contains("upstream"));
    // Nor are its files, by the upstream's URL scheme.
    let sneaky = proxy
        .get(&format!(
            "/files/upstream/shared/{}/shared-9.0-py3-none-any.whl",
            "a".repeat(64)
        ))
        .await;
    assert_eq!(sneaky.status, StatusCode::NOT_FOUND);
    assert_eq!(served.asked("/simple/shared/"), 0);
    served.stop().await;
}

#[tokio::test]
async fn a_name_served_from_upstream_is_refused_for_upload_until_claimed() {
    let (_origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |_| {}).await;
    json_page(&proxy, "demo").await;

    let before = proxy.snapshot().await;
    let refused = proxy
        .upload(Some(&proxy.token), &UploadForm::wheel("demo", "5.0"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.message().contains("upstream"),
        "{}",
        refused.message()
    );
    assert!(refused.message().contains("wharf project claim demo"));
    assert_eq!(
        proxy.snapshot().await,
        before,
        "a refused upload changes nothing"
    );

    let meta = wharf::events::RequestMeta::default();
    let actor = wharf::admin::actions::AdminActor::command_line(&meta, 1);
    let claimed = wharf::proxy::actions::claim(&proxy.state.db, &actor, "Demo").await;
    assert_eq!(claimed.ok().as_deref(), Some("demo"));
    proxy.state.proxy.as_ref().expect("proxy").forget("demo");
    // Claimed and not yet hosted: not the upstream's any more.
    let reserved = proxy.get("/simple/demo/").await;
    assert_eq!(reserved.status, StatusCode::NOT_FOUND);
    let asked = served.asked("/simple/demo/");

    let uploaded = proxy
        .upload(Some(&proxy.token), &UploadForm::wheel("demo", "5.0"))
        .await;
    assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.text());
    let page = json_page(&proxy, "demo").await;
    assert_eq!(page["versions"], serde_json::json!(["5.0"]));
    assert_eq!(served.asked("/simple/demo/"), asked);
    let events: Vec<(String,)> =
        sqlx::query_as("SELECT tag FROM events WHERE tag = 'admin:project:claim'")
            .fetch_all(proxy.state.db.pool())
            .await
            .expect("events");
    assert_eq!(events.len(), 1);
    // A second claim says so, and changes nothing.
    assert!(
        wharf::proxy::actions::claim(&proxy.state.db, &actor, "demo")
            .await
            .is_err()
    );
    served.stop().await;
}

#[tokio::test]
async fn private_prefixes_never_leave_the_index() {
    let (_origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |s| {
        s.private_prefixes =
            serde_json::from_value(serde_json::json!(["acme-", "Internal_"])).expect("prefixes");
    })
    .await;
    for name in [
        "acme-tools",
        "internal-demo",
        "%252e%252e%2Fsecret",
        "%2561cme-secret",
    ] {
        let response = proxy.get(&format!("/simple/{name}/")).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{name}");
    }
    assert_eq!(served.asked("/simple/"), 0);
    // Other names still are proxied.
    json_page(&proxy, "demo").await;
    assert_eq!(served.asked("/simple/demo/"), 1);
    served.stop().await;
}

#[tokio::test]
async fn kept_pages_and_files_are_served_while_the_upstream_is_down() {
    let (_origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |s| {
        s.upstream_ttl = Span(Duration::from_secs(1))
    })
    .await;
    let page = json_page(&proxy, "demo").await;
    let path = first_file(&page);
    let original = proxy.get(&path).await;
    assert_eq!(original.status, StatusCode::OK);
    // Within the TTL nothing is asked again; after it, conditionally.
    json_page(&proxy, "demo").await;
    assert_eq!(served.asked("/simple/demo/"), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    json_page(&proxy, "demo").await;
    assert_eq!(served.asked("/simple/demo/"), 2);

    served.stop().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = json_page(&proxy, "demo").await;
    assert_eq!(first_file(&stale), path);
    let file = proxy.get(&path).await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.body, original.body);
    let uncached = proxy.get("/simple/other/").await;
    assert_eq!(uncached.status, StatusCode::BAD_GATEWAY);
    assert!(
        uncached.message().contains("upstream"),
        "{}",
        uncached.message()
    );
    // Hosted projects are not held up.
    let hosted = proxy
        .upload(Some(&proxy.token), &UploadForm::wheel("mine", "1.0"))
        .await;
    assert_eq!(hosted.status, StatusCode::OK);
    assert_eq!(
        json_page(&proxy, "mine").await["versions"],
        serde_json::json!(["1.0"])
    );
    let metrics = proxy.get("/metrics").await.text();
    assert!(
        metrics.contains("wharf_upstream_stale_pages_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn min_age_hides_young_files() {
    let (_origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |s| {
        s.upstream_min_age = Span(Duration::from_secs(3 * 86_400));
    })
    .await;
    let page = json_page(&proxy, "demo").await;
    assert_eq!(page["files"], serde_json::json!([]));
    // Three days later they are offered.
    let later = proxy_of(&served.url(), |s| {
        s.upstream_min_age = Span(Duration::from_secs(3 * 86_400));
    })
    .await;
    later.state.clock.advance(3 * 86_400 + 60);
    assert_eq!(
        json_page(&later, "demo").await["files"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    served.stop().await;
}

#[tokio::test]
async fn blocked_files_are_not_served_even_from_the_cache() {
    let (_origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |_| {}).await;
    let page = json_page(&proxy, "demo").await;
    let path = first_file(&page);
    assert_eq!(proxy.get(&path).await.status, StatusCode::OK);

    let meta = wharf::events::RequestMeta::default();
    let actor = wharf::admin::actions::AdminActor::command_line(&meta, 1);
    let db = &proxy.state.db;
    assert_eq!(
        wharf::proxy::actions::block(db, &actor, "demo==1.0.0", "malware reported")
            .await
            .ok()
            .as_deref(),
        Some("demo==1.0.0")
    );
    assert!(
        wharf::proxy::actions::block(db, &actor, "demo", " ")
            .await
            .is_err()
    );
    let blocked = proxy.get(&path).await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN);
    assert!(blocked.message().contains("malware reported"));
    proxy.state.proxy.as_ref().expect("proxy").forget("demo");
    proxy.state.cache.invalidate_project("demo");
    let page = json_page(&proxy, "demo").await;
    assert_eq!(page["files"], serde_json::json!([]));
    assert_eq!(page["versions"], serde_json::json!([]));

    assert!(
        wharf::proxy::actions::unblock(db, &actor, "demo==1.0")
            .await
            .is_ok()
    );
    assert!(
        wharf::proxy::actions::unblock(db, &actor, "demo==1.0")
            .await
            .is_err()
    );
    assert_eq!(proxy.get(&path).await.status, StatusCode::OK);
    let tags: Vec<(String,)> = sqlx::query_as(
        "SELECT tag FROM events WHERE tag IN ('admin:proxy:block', 'admin:proxy:unblock') ORDER BY id",
    )
    .fetch_all(db.pool())
    .await
    .expect("events");
    assert_eq!(
        tags,
        vec![
            ("admin:proxy:block".to_owned(),),
            ("admin:proxy:unblock".to_owned(),)
        ]
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_first_requests_for_one_file_fetch_it_once() {
    let (_origin, served) = upstream().await;
    let proxy = Arc::new(proxy_of(&served.url(), |_| {}).await);
    let page = json_page(&proxy, "demo").await;
    let path = first_file(&page);
    let sha256 = page["files"][0]["hashes"]["sha256"]
        .as_str()
        .expect("hash")
        .to_owned();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (proxy, path) = (proxy.clone(), path.clone());
        tasks.push(tokio::spawn(async move { proxy.get(&path).await }));
    }
    for task in tasks {
        let response = task.await.expect("task");
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(hex::encode(Sha256::digest(&response.body)), sha256);
    }
    assert_eq!(served.asked("/files/"), 1);
    served.stop().await;
}

// ---- a hostile upstream ----

/// What the hostile upstream answers for `/simple/<name>/` and its files.
fn hostile(redirect_to: String) -> Router {
    use axum::http::header;
    use axum::routing::get;
    let json = |body: String| ([(header::CONTENT_TYPE, JSON)], body).into_response();
    let good_bytes = b"the real bytes".to_vec();
    let good_hash = hex::encode(Sha256::digest(&good_bytes));
    let page = move |name: &str, url: &str, hash: &str, size: usize| {
        serde_json::json!({
            "meta": {"api-version": "1.1"},
            "name": name,
            "files": [{"filename": format!("{name}-1.0.tar.gz"), "url": url,
                        "hashes": {"sha256": hash}, "size": size,
                        "upload-time": "2020-01-01T00:00:00Z"}],
            "versions": ["1.0"],
        })
        .to_string()
    };
    let tampered_hash = good_hash.clone();
    let long_hash = good_hash.clone();
    let outside_hash = good_hash.clone();
    let bytes = good_bytes.clone();
    Router::new()
        .route("/simple/malformed/", get(move || async move { json("{\"files\": [".to_owned()) }))
        .route(
            "/simple/huge/",
            get(move || async move { json(format!("{{\"x\": \"{}\"}}", "a".repeat(21 * 1024 * 1024))) }),
        )
        .route(
            "/simple/elsewhere/",
            get(move || async move {
                (StatusCode::FOUND, [(header::LOCATION, redirect_to)]).into_response()
            }),
        )
        .route(
            "/simple/slow/",
            get(move || async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                json("{}".to_owned())
            }),
        )
        .route(
            "/simple/tampered/",
            get(move || {
                let page = page("tampered", "/f/tampered-1.0.tar.gz", &tampered_hash, 14);
                async move { json(page) }
            }),
        )
        .route(
            "/simple/longer/",
            get(move || {
                let page = page("longer", "/f/longer-1.0.tar.gz", &long_hash, 4);
                async move { json(page) }
            }),
        )
        .route(
            "/simple/outside/",
            get(move || {
                let page = page("outside", "http://files.elsewhere.example/outside-1.0.tar.gz", &outside_hash, 14);
                async move { json(page) }
            }),
        )
        // Other bytes than the page's hash says.
        .route("/f/tampered-1.0.tar.gz", get(|| async { b"the fake bytes".to_vec() }))
        // More bytes than the page's size says (no Content-Length: chunked).
        .route(
            "/f/longer-1.0.tar.gz",
            get(move || {
                let bytes = bytes.clone();
                async move {
                    axum::body::Body::from_stream(futures_util::stream::iter(vec![
                        Ok::<_, std::io::Error>(bytes::Bytes::from(bytes)),
                    ]))
                }
            }),
        )
}

#[tokio::test]
async fn a_hostile_upstream_gets_502_and_nothing_is_kept() {
    let elsewhere = Served::start(Router::new()).await;
    let served = Served::start(hostile(format!(
        "http://localhost:{}/simple/x/",
        elsewhere.addr.port()
    )))
    .await;
    let proxy = proxy_of(&served.url(), |s| {
        s.upstream_timeout = Span(Duration::from_secs(1))
    })
    .await;
    for (name, says) in [
        ("malformed", "unusable"),
        ("huge", "larger than 20 MiB"),
        ("elsewhere", "not an upstream host"),
        ("slow", "timed out"),
    ] {
        let response = proxy.get(&format!("/simple/{name}/")).await;
        assert_eq!(response.status, StatusCode::BAD_GATEWAY, "{name}");
        assert!(
            response.message().contains(says),
            "{name}: {}",
            response.message()
        );
    }
    assert_eq!(
        elsewhere.asked("/"),
        0,
        "a redirect to another host is not followed"
    );

    // Bytes that are not the page's: the transfer is cut and nothing is kept; asked again, 502.
    // Over a real connection: the client must not get every byte (with Content-Length, that
    // would look like a whole file).
    let page = json_page(&proxy, "tampered").await;
    let path = first_file(&page);
    let listening = Served::start(wharf::app::router(proxy.state.clone())).await;
    let response = reqwest::get(format!("http://{}{path}", listening.addr))
        .await
        .expect("response");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let received = response.bytes().await;
    assert!(
        received
            .as_ref()
            .map_or(true, |b| b.as_ref() != b"the fake bytes"),
        "a tampered file must not arrive whole: {received:?}"
    );
    listening.stop().await;
    let again = proxy.get(&path).await;
    assert_eq!(again.status, StatusCode::BAD_GATEWAY);
    assert!(
        again.message().contains("does not match the SHA-256"),
        "{}",
        again.message()
    );
    assert_eq!(stored_upstream_files(&proxy), Vec::<String>::new());
    let refused: Vec<(String,)> =
        sqlx::query_as("SELECT additional FROM events WHERE tag = 'proxy:file:refused'")
            .fetch_all(proxy.state.db.pool())
            .await
            .expect("events");
    assert_eq!(refused.len(), 1);
    assert!(refused[0].0.contains("tampered-1.0.tar.gz"));

    // More bytes than the page said.
    let page = json_page(&proxy, "longer").await;
    let path = first_file(&page);
    let request = axum::http::Request::get(&path)
        .body(axum::body::Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(wharf::app::router(proxy.state.clone()), request)
        .await
        .expect("response");
    let body = http_body_util::BodyExt::collect(response.into_body()).await;
    assert!(body.is_err(), "an overlong file must not arrive");
    assert_eq!(stored_upstream_files(&proxy), Vec::<String>::new());

    // A file URL on another host is not fetched.
    let page = json_page(&proxy, "outside").await;
    let outside = proxy.get(&first_file(&page)).await;
    assert_eq!(outside.status, StatusCode::BAD_GATEWAY);
    assert!(
        outside.message().contains("not an upstream host"),
        "{}",
        outside.message()
    );
    served.stop().await;
    elsewhere.stop().await;
}

#[tokio::test]
async fn upstream_settings_are_checked() {
    let load = |pairs: &[(&str, &str)]| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wharf.toml");
        let text: String = pairs.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        std::fs::write(&path, text).expect("write");
        let args = wharf::config::SettingsArgs {
            config: Some(path),
            ..Default::default()
        };
        wharf::config::Settings::load(&args, None).map_err(|e| e.to_string())
    };
    let ok = load(&[
        ("upstream_url", "\"https://pypi.org/simple/\""),
        ("upstream_ttl", "\"5m\""),
        ("upstream_min_age", "\"3d\""),
        ("private_prefixes", "[\"acme-\"]"),
    ])
    .expect("valid");
    assert_eq!(ok.upstream_min_age.0, Duration::from_secs(259_200));
    for (pairs, says) in [
        (
            vec![("upstream_url", "\"ftp://x/simple/\"")],
            "upstream_url",
        ),
        (
            vec![("upstream_url", "\"https://u:p@x/simple/\"")],
            "credentials",
        ),
        (vec![("upstream_ttl", "\"soon\"")], "duration"),
        (
            vec![("upstream_ttl", "\"0s\"")],
            "upstream_ttl must be at least 1s",
        ),
        (vec![("private_prefixes", "[\"a/b\"]")], "private_prefixes"),
        (vec![("upstream_hosts", "[\"http://x\"]")], "upstream_hosts"),
        (
            vec![
                ("upstream_url", "\"https://x/simple/\""),
                ("upstream_token", "\"t\""),
                ("upstream_username", "\"u\""),
            ],
            "not both",
        ),
    ] {
        let error = load(&pairs).expect_err(says);
        assert!(error.contains(says), "{error}");
    }
}

#[tokio::test]
async fn an_upstream_that_needs_a_token_gets_it_and_no_one_sees_it() {
    // A private wharf as the upstream: reads need a token.
    let origin = TestApp::with_settings(|s| s.read_access = wharf::config::ReadAccess::Users).await;
    let uploaded = origin
        .upload(Some(&origin.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    assert_eq!(uploaded.status, StatusCode::OK);
    let served = Served::start(wharf::app::router(origin.state.clone())).await;

    let without = proxy_of(&served.url(), |_| {}).await;
    let refused = without.get("/simple/demo/").await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    assert!(refused.message().contains("401"), "{}", refused.message());

    let token = origin.token.clone();
    let with = proxy_of(&served.url(), |s| s.upstream_token = Some(token.clone())).await;
    let page = json_page(&with, "demo").await;
    let file = with.get(&first_file(&page)).await;
    assert_eq!(file.status, StatusCode::OK);
    // Not in what the proxy serves, nor in its errors.
    let gone = with.get("/simple/no-such-project/").await;
    for text in [
        serde_json::to_string(&page).expect("json"),
        gone.text(),
        gone.message(),
    ] {
        assert!(!text.contains(&origin.token));
    }
    served.stop().await;
}
