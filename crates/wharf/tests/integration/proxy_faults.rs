//! The proxy when its upstream fails or its clients are slow: failures and unknown names are
//! shared by those asking at once and remembered briefly (not one fetch each), a transient
//! failure is not a refusal, a slow first client does not hold up the fetch, kept files do not
//! wait on a hanging upstream, a changed metadata file is fetched again, credentials go to the
//! upstream's origin only, and a name once hosted never becomes the upstream's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use wharf::config::Span;

use crate::proxy::{Served, first_file, json_page, proxy_of, stored_upstream_files, upstream};
use crate::util::{TestApp, UploadForm};

const JSON: &str = "application/vnd.pypi.simple.v1+json";

#[derive(Clone, Copy, Default, PartialEq)]
enum Mode {
    #[default]
    Good,
    /// 503.
    Unavailable,
    /// Half the bytes, then the connection fails.
    Reset,
    /// In 64 KiB chunks, 100 ms apart.
    Slow,
}

struct Dist {
    filename: String,
    bytes: Vec<u8>,
    metadata: Option<Vec<u8>>,
    /// Served instead of `metadata` (whose hash the page gives).
    metadata_served: Option<Vec<u8>>,
    /// Where the page says the file is (default: this server).
    base: String,
}

#[derive(Default)]
struct ScriptState {
    dists: HashMap<String, Vec<Dist>>,
    file_mode: Mode,
    page_status: Option<u16>,
    page_hangs: bool,
    /// The Authorization header of each request, by path.
    authorizations: Vec<(String, Option<String>)>,
}

/// An upstream whose answers the test changes as it goes.
#[derive(Clone, Default)]
struct Script(Arc<Mutex<ScriptState>>);

impl Script {
    fn with<R>(&self, f: impl FnOnce(&mut ScriptState) -> R) -> R {
        f(&mut self.0.lock().expect("script"))
    }

    fn add(&self, name: &str, filename: &str, bytes: Vec<u8>, metadata: Option<Vec<u8>>) {
        self.with(|s| {
            s.dists.entry(name.to_owned()).or_default().push(Dist {
                filename: filename.to_owned(),
                bytes,
                metadata,
                metadata_served: None,
                base: String::new(),
            })
        });
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/simple/{name}/", get(page))
            .route("/f/{file}", get(file))
            .with_state(self.clone())
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn page(
    State(script): State<Script>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (hangs, status, page) = script.with(|s| {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        s.authorizations.push((format!("/simple/{name}/"), auth));
        let page = s.dists.get(&name).map(|dists| {
            let files: Vec<serde_json::Value> = dists
                .iter()
                .map(|d| {
                    let mut file = serde_json::json!({
                        "filename": d.filename,
                        "url": format!("{}/f/{}", d.base, d.filename),
                        "hashes": {"sha256": sha(&d.bytes)},
                        "size": d.bytes.len(),
                        "upload-time": "2020-01-01T00:00:00Z",
                    });
                    if let Some(metadata) = &d.metadata {
                        file["core-metadata"] = serde_json::json!({"sha256": sha(metadata)});
                    }
                    file
                })
                .collect();
            serde_json::json!({"meta": {"api-version": "1.1"}, "name": name, "files": files, "versions": ["1.0"]})
                .to_string()
        });
        (s.page_hangs, s.page_status, page)
    });
    if hangs {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    if let Some(status) = status {
        return StatusCode::from_u16(status)
            .expect("status")
            .into_response();
    }
    match page {
        Some(page) => ([(header::CONTENT_TYPE, JSON)], page).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn file(
    State(script): State<Script>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (mode, bytes) = script.with(|s| {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        s.authorizations.push((format!("/f/{file}"), auth));
        let bytes = s.dists.values().flatten().find_map(|d| {
            if d.filename == file {
                Some(d.bytes.clone())
            } else if format!("{}.metadata", d.filename) == file {
                d.metadata_served.clone().or_else(|| d.metadata.clone())
            } else {
                None
            }
        });
        (s.file_mode, bytes)
    });
    let Some(bytes) = bytes else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match mode {
        Mode::Good => bytes.into_response(),
        Mode::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Mode::Reset => {
            let half = bytes::Bytes::from(bytes[..bytes.len() / 2].to_vec());
            let chunks = vec![
                Ok(half),
                Err(std::io::Error::other("connection reset by the test")),
            ];
            let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
            ([(header::CONTENT_LENGTH, bytes.len().to_string())], body).into_response()
        }
        Mode::Slow => {
            let size = bytes.len();
            let chunks: Vec<bytes::Bytes> = bytes
                .chunks(64 * 1024)
                .map(|c| bytes::Bytes::from(c.to_vec()))
                .collect();
            let stream = futures_util::stream::unfold(chunks.into_iter(), |mut rest| async move {
                let chunk = rest.next()?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Ok::<_, std::io::Error>(chunk), rest))
            });
            let body = axum::body::Body::from_stream(stream);
            ([(header::CONTENT_LENGTH, size.to_string())], body).into_response()
        }
    }
}

async fn refusals(app: &TestApp) -> usize {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT tag FROM events WHERE tag = 'proxy:file:refused'")
            .fetch_all(app.state.db.pool())
            .await
            .expect("events");
    rows.len()
}

/// What a client reading the whole body gets: the status and the bytes, or None when the
/// transfer failed.
async fn fetch_whole(app: &TestApp, path: &str) -> (StatusCode, Option<Vec<u8>>) {
    let request = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(wharf::app::router(app.state.clone()), request)
        .await
        .expect("response");
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .ok()
        .map(|b| b.to_bytes().to_vec());
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_names_and_failures_are_asked_once_for_many_requests() {
    let script = Script::default();
    let served = Served::start(script.router()).await;
    let proxy = Arc::new(proxy_of(&served.url(), |_| {}).await);
    for _ in 0..20 {
        assert_eq!(
            proxy.get("/simple/no-such/").await.status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(served.asked("/simple/no-such/"), 1, "a 404 is remembered");
    let metrics = proxy.get("/metrics").await.text();
    assert!(
        metrics.contains("wharf_upstream_requests_total{what=\"page\",result=\"not_found\"} 1"),
        "{metrics}"
    );

    script.with(|s| s.page_status = Some(503));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let proxy = proxy.clone();
        tasks.push(tokio::spawn(
            async move { proxy.get("/simple/flaky/").await },
        ));
    }
    for task in tasks {
        let response = task.await.expect("task");
        assert_eq!(response.status, StatusCode::BAD_GATEWAY);
        assert!(response.message().contains("503"), "{}", response.message());
    }
    assert_eq!(
        served.asked("/simple/flaky/"),
        1,
        "those who waited share the failure"
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transient_file_failure_is_shared_briefly_and_is_not_a_refusal() {
    let script = Script::default();
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha(&bytes);
    script.add("flaky", "flaky-1.0.tar.gz", bytes.clone(), None);
    let served = Served::start(script.router()).await;
    let proxy = Arc::new(proxy_of(&served.url(), |_| {}).await);
    let path = first_file(&json_page(&proxy, "flaky").await);

    script.with(|s| s.file_mode = Mode::Unavailable);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (proxy, path) = (proxy.clone(), path.clone());
        tasks.push(tokio::spawn(async move { proxy.get(&path).await }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task").status, StatusCode::BAD_GATEWAY);
    }
    assert_eq!(served.asked("/f/"), 1, "one fetch for the fifty");
    assert_eq!(
        refusals(&proxy).await,
        0,
        "a 503 is not the upstream's fault in the file"
    );

    // A connection cut half way: not a whole file for the client, nothing kept, no refusal.
    tokio::time::sleep(wharf::proxy::FAILURE_FOR + Duration::from_millis(200)).await;
    script.with(|s| s.file_mode = Mode::Reset);
    let (_, body) = fetch_whole(&proxy, &path).await;
    assert!(
        body.is_none_or(|b| b != bytes),
        "a cut transfer must not arrive whole"
    );
    assert_eq!(stored_upstream_files(&proxy), Vec::<String>::new());
    assert_eq!(refusals(&proxy).await, 0);

    // Once the upstream is well again, the file is fetched (not refused for a TTL).
    tokio::time::sleep(wharf::proxy::FAILURE_FOR + Duration::from_millis(200)).await;
    script.with(|s| s.file_mode = Mode::Good);
    let (status, body) = fetch_whole(&proxy, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.map(|b| sha(&b)), Some(digest));
    assert_eq!(stored_upstream_files(&proxy).len(), 1);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_metadata_file_sent_wrong_is_fetched_once_and_refused_for_all() {
    let script = Script::default();
    script.add(
        "meta",
        "meta-1.0-py3-none-any.whl",
        b"wheel bytes".to_vec(),
        Some(b"Metadata-Version: 2.1\nName: meta\nVersion: 1.0\n".to_vec()),
    );
    script.with(|s| {
        s.dists.get_mut("meta").expect("dist")[0].metadata_served = Some(b"Name: evil\n".to_vec())
    });
    let served = Served::start(script.router()).await;
    let proxy = Arc::new(proxy_of(&served.url(), |_| {}).await);
    let path = format!("{}.metadata", first_file(&json_page(&proxy, "meta").await));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (proxy, path) = (proxy.clone(), path.clone());
        tasks.push(tokio::spawn(async move { proxy.get(&path).await }));
    }
    for task in tasks {
        let response = task.await.expect("task");
        assert_eq!(response.status, StatusCode::BAD_GATEWAY);
        assert!(
            response.message().contains("does not match"),
            "{}",
            response.message()
        );
    }
    assert_eq!(served.asked("/f/meta-1.0-py3-none-any.whl.metadata"), 1);
    assert_eq!(refusals(&proxy).await, 1);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_does_not_read_does_not_hold_up_the_fetch() {
    let script = Script::default();
    let bytes: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let digest = sha(&bytes);
    script.add("big", "big-1.0.tar.gz", bytes, None);
    let served = Served::start(script.router()).await;
    let proxy = proxy_of(&served.url(), |_| {}).await;
    let path = first_file(&json_page(&proxy, "big").await);
    let listening = Served::start(wharf::app::router(proxy.state.clone())).await;

    // The first client asks and then reads nothing for a while.
    let first = reqwest::get(format!("http://{}{path}", listening.addr))
        .await
        .expect("response");
    assert_eq!(first.status(), reqwest::StatusCode::OK);
    assert_eq!(served.asked("/f/"), 1);
    // The second waits for the fetch, which goes on without the first.
    let second = tokio::time::timeout(Duration::from_secs(30), async {
        reqwest::get(format!("http://{}{path}", listening.addr))
            .await
            .expect("response")
            .bytes()
            .await
            .expect("body")
    })
    .await
    .expect("the second client is served while the first does not read");
    assert_eq!(sha(&second), digest);
    assert_eq!(served.asked("/f/"), 1);
    // The first, far behind, still gets the whole file (the rest from storage).
    let late = tokio::time::timeout(Duration::from_secs(30), first.bytes())
        .await
        .expect("the first client's body")
        .expect("the whole file");
    assert_eq!(sha(&late), digest);
    listening.stop().await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kept_files_do_not_wait_for_a_hanging_upstream() {
    let script = Script::default();
    script.add("kept", "kept-1.0.tar.gz", b"kept bytes".to_vec(), None);
    let served = Served::start(script.router()).await;
    let proxy = proxy_of(&served.url(), |s| {
        s.upstream_ttl = Span(Duration::from_secs(1));
        s.upstream_timeout = Span(Duration::from_secs(20));
    })
    .await;
    let path = first_file(&json_page(&proxy, "kept").await);
    assert_eq!(proxy.get(&path).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    script.with(|s| s.page_hangs = true);
    let again = tokio::time::timeout(Duration::from_secs(5), proxy.get(&path))
        .await
        .expect("a kept file is served without waiting for the upstream's page");
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, b"kept bytes".to_vec());
    served.stop().await;
}

#[tokio::test]
async fn a_changed_metadata_file_is_fetched_again() {
    let script = Script::default();
    script.add(
        "changing",
        "changing-1.0-py3-none-any.whl",
        b"same wheel".to_vec(),
        Some(b"Name: changing\nSummary: first\n".to_vec()),
    );
    let served = Served::start(script.router()).await;
    let proxy = proxy_of(&served.url(), |s| {
        s.upstream_ttl = Span(Duration::from_secs(1))
    })
    .await;
    let path = format!(
        "{}.metadata",
        first_file(&json_page(&proxy, "changing").await)
    );
    assert!(proxy.get(&path).await.text().contains("first"));

    script.with(|s| {
        s.dists.get_mut("changing").expect("dist")[0].metadata =
            Some(b"Name: changing\nSummary: second\n".to_vec())
    });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    proxy.state.cache.invalidate_all();
    let path = format!(
        "{}.metadata",
        first_file(&json_page(&proxy, "changing").await)
    );
    let metadata = proxy.get(&path).await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert!(metadata.text().contains("second"), "{}", metadata.text());
    served.stop().await;
}

#[tokio::test]
async fn credentials_go_to_the_upstream_origin_only() {
    let files = Script::default();
    files.add("owned", "owned-1.0.tar.gz", b"owned bytes".to_vec(), None);
    let files_served = Served::start(files.router()).await;
    let pages = Script::default();
    pages.add("owned", "owned-1.0.tar.gz", b"owned bytes".to_vec(), None);
    // Same host, another port: another origin.
    pages.with(|s| {
        s.dists.get_mut("owned").expect("dist")[0].base = format!("http://{}", files_served.addr)
    });
    let pages_served = Served::start(pages.router()).await;
    // Not an upstream host at all unless allowed: another port may be another service.
    let unlisted = proxy_of(&pages_served.url(), |_| {}).await;
    let refused = unlisted
        .get(&first_file(&json_page(&unlisted, "owned").await))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    assert!(
        refused.message().contains("not an upstream host"),
        "{}",
        refused.message()
    );
    let files_host = format!("127.0.0.1:{}", files_served.addr.port());
    let proxy = proxy_of(&pages_served.url(), move |s| {
        s.upstream_token = Some("pypi-secret-upstream-token".to_owned());
        s.upstream_hosts = wharf::config::UpstreamHosts(vec![files_host]);
    })
    .await;
    let path = first_file(&json_page(&proxy, "owned").await);
    assert_eq!(proxy.get(&path).await.body, b"owned bytes".to_vec());
    let page_auth = pages.with(|s| s.authorizations.clone());
    // (The first proxy, without a token, asked first.)
    assert!(
        page_auth.last().is_some_and(|(_, a)| a.is_some()),
        "{page_auth:?}"
    );
    let file_auth = files.with(|s| s.authorizations.clone());
    assert_eq!(file_auth, vec![("/f/owned-1.0.tar.gz".to_owned(), None)]);
    pages_served.stop().await;
    files_served.stop().await;
}

#[tokio::test]
async fn a_name_once_hosted_never_becomes_the_upstreams() {
    let (_origin, served) = upstream().await;
    let proxy = proxy_of(&served.url(), |_| {}).await;
    let hosted = proxy
        .upload(Some(&proxy.token), &UploadForm::wheel("shared", "1.0"))
        .await;
    assert_eq!(hosted.status, StatusCode::OK, "{}", hosted.text());
    let meta = wharf::events::RequestMeta::default();
    let actor =
        wharf::admin::actions::AdminActor::command_line(&meta, proxy.state.clock.now_micros());
    wharf::admin::actions::delete_project((&proxy.state).into(), &actor, "shared")
        .await
        .expect("deleted");
    assert_eq!(
        proxy.get("/simple/shared/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        served.asked("/simple/shared/"),
        0,
        "the deleted name is not looked up upstream"
    );
    // It may be hosted again.
    let again = proxy
        .upload(Some(&proxy.token), &UploadForm::wheel("shared", "2.0"))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());

    // The mark is made in the transaction that creates a project, and refuses a name served
    // from the upstream meanwhile.
    json_page(&proxy, "demo").await;
    let mut conn = proxy.state.db.pool().acquire().await.expect("conn");
    let now = proxy.state.clock.now_micros();
    assert!(
        !wharf::proxy::store::mark_hosted(&mut conn, "demo", now, true)
            .await
            .expect("mark")
    );
    assert!(
        wharf::proxy::store::mark_hosted(&mut conn, "other", now, true)
            .await
            .expect("mark")
    );
    // Without the proxy, a name once served is simply hosted from now on.
    assert!(
        wharf::proxy::store::mark_hosted(&mut conn, "demo", now, false)
            .await
            .expect("mark")
    );
    let hosted: (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT hosted, page FROM upstream_projects WHERE normalized_name = 'demo'")
            .fetch_one(&mut *conn)
            .await
            .expect("row");
    assert_eq!(hosted, (Some(now), None));
    drop(conn);
    assert_eq!(
        proxy.get("/simple/other/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(served.asked("/simple/other/"), 0);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_head_fetches_nothing_and_a_fetch_nobody_wants_is_stopped() {
    let script = Script::default();
    let bytes: Vec<u8> = (0..20 * 64 * 1024u32).map(|i| (i % 241) as u8).collect();
    script.add("lazy", "lazy-1.0.tar.gz", bytes.clone(), None);
    let served = Served::start(script.router()).await;
    let proxy = proxy_of(&served.url(), |_| {}).await;
    let path = first_file(&json_page(&proxy, "lazy").await);
    let request = axum::http::Request::head(&path)
        .body(axum::body::Body::empty())
        .expect("request");
    let head = proxy.request(request).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(
        head.headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(served.asked("/f/"), 0, "a HEAD does not fetch");

    // A client that leaves a slow first download: the fetch stops, nothing is kept.
    script.with(|s| s.file_mode = Mode::Slow);
    let listening = Served::start(wharf::app::router(proxy.state.clone())).await;
    let response = reqwest::get(format!("http://{}{path}", listening.addr))
        .await
        .expect("response");
    drop(response);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(served.asked("/f/"), 1);
    assert_eq!(stored_upstream_files(&proxy), Vec::<String>::new());
    // Asked again, it is fetched (nothing was remembered against it).
    script.with(|s| s.file_mode = Mode::Good);
    let (status, body) = fetch_whole(&proxy, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Some(bytes));
    listening.stop().await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_project_gone_upstream_is_not_served_from_its_kept_page() {
    let script = Script::default();
    script.add(
        "vanish",
        "vanish-1.0.tar.gz",
        b"vanishing bytes".to_vec(),
        None,
    );
    let served = Served::start(script.router()).await;
    let proxy = proxy_of(&served.url(), |s| {
        s.upstream_ttl = Span(Duration::from_secs(1))
    })
    .await;
    let path = first_file(&json_page(&proxy, "vanish").await);
    assert_eq!(proxy.get(&path).await.status, StatusCode::OK);
    script.with(|s| s.dists.clear());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    proxy.state.cache.invalidate_all();
    assert_eq!(
        proxy.get("/simple/vanish/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(proxy.get(&path).await.status, StatusCode::NOT_FOUND);
    let page: Option<(Option<String>,)> =
        sqlx::query_as("SELECT page FROM upstream_projects WHERE normalized_name = 'vanish'")
            .fetch_optional(proxy.state.db.pool())
            .await
            .expect("row");
    assert_eq!(page, Some((None,)), "the row stays, its page goes");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_page_is_served_soon_when_the_upstream_hangs() {
    let script = Script::default();
    script.add(
        "patient",
        "patient-1.0.tar.gz",
        b"patient bytes".to_vec(),
        None,
    );
    let served = Served::start(script.router()).await;
    let proxy = proxy_of(&served.url(), |s| {
        s.upstream_ttl = Span(Duration::from_secs(1));
        s.upstream_timeout = Span(Duration::from_secs(20));
    })
    .await;
    let before = json_page(&proxy, "patient").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    script.with(|s| s.page_hangs = true);
    let after = tokio::time::timeout(Duration::from_secs(6), json_page(&proxy, "patient"))
        .await
        .expect("a kept page is served without waiting out the upstream's timeout");
    assert_eq!(after["files"], before["files"]);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_dripped_slower_than_the_file_timeout_is_cut_and_not_kept() {
    let script = Script::default();
    let bytes: Vec<u8> = (0..20 * 64 * 1024u32).map(|i| (i % 239) as u8).collect();
    script.add("drip", "drip-1.0.tar.gz", bytes.clone(), None);
    script.with(|s| s.file_mode = Mode::Slow);
    let served = Served::start(script.router()).await;
    let proxy = proxy_of(&served.url(), |s| {
        s.upstream_file_timeout = Span(Duration::from_secs(1))
    })
    .await;
    let path = first_file(&json_page(&proxy, "drip").await);
    let (_, body) = fetch_whole(&proxy, &path).await;
    assert!(
        body.is_none_or(|b| b != bytes),
        "a cut file must not arrive whole"
    );
    assert_eq!(stored_upstream_files(&proxy), Vec::<String>::new());
    let again = proxy.get(&path).await;
    assert_eq!(again.status, StatusCode::BAD_GATEWAY);
    assert!(again.message().contains("timed out"), "{}", again.message());
    assert_eq!(
        refusals(&proxy).await,
        0,
        "a slow upstream is not a wrong file"
    );
    served.stop().await;
}
