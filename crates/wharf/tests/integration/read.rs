use axum::http::StatusCode;
use sha2::Digest;

use crate::util::{TestApp, UploadForm};

const PIP_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

async fn with_demo() -> TestApp {
    let app = TestApp::new().await;
    for form in [
        UploadForm::sdist("Demo_Pkg", "1.0"),
        UploadForm::wheel("Demo_Pkg", "1.0"),
        UploadForm::wheel("Demo_Pkg", "2.0rc1"),
    ] {
        let response = app.upload(Some(&app.token), &form).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    app
}

#[tokio::test]
async fn the_index_lists_projects_in_html_and_json() {
    let app = with_demo().await;
    let html = app.get("/simple/").await;
    assert_eq!(html.status, StatusCode::OK);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(html.header("vary"), Some("Accept"));
    assert!(
        html.text().contains("<a href=\"demo-pkg/\">Demo_Pkg</a>"),
        "{}",
        html.text()
    );
    assert!(
        html.text()
            .contains("<meta name=\"pypi:repository-version\" content=\"1.4\">")
    );

    let json = app.get_with("/simple/", &[("accept", PIP_ACCEPT)]).await;
    assert_eq!(
        json.header("content-type"),
        Some("application/vnd.pypi.simple.v1+json")
    );
    let body = json.json();
    assert_eq!(body["meta"]["api-version"], "1.4");
    assert_eq!(body["projects"][0]["name"], "Demo_Pkg");
    let serial = json
        .header("x-pypi-last-serial")
        .expect("serial")
        .parse::<i64>()
        .expect("number");
    assert_eq!(body["meta"]["_last-serial"], serial);
    assert!(
        json.text().ends_with("}\n") && !json.text().contains(": "),
        "compact with a trailing newline"
    );
}

#[tokio::test]
async fn a_project_page_has_every_pep_field() {
    let app = with_demo().await;
    let response = app
        .get_with("/simple/demo-pkg/", &[("accept", PIP_ACCEPT)])
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    assert_eq!(body["name"], "demo-pkg");
    assert_eq!(body["versions"], serde_json::json!(["1.0", "2.0rc1"]));
    let files = body["files"].as_array().expect("files");
    let names: Vec<&str> = files
        .iter()
        .filter_map(|f| f["filename"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "demo_pkg-1.0-py3-none-any.whl",
            "demo_pkg-1.0.tar.gz",
            "demo_pkg-2.0rc1-py3-none-any.whl"
        ]
    );
    let wheel = &files[0];
    assert_eq!(wheel["requires-python"], ">=3.8");
    assert_eq!(wheel["yanked"], false);
    assert!(wheel["size"].as_i64().is_some_and(|s| s > 0));
    assert!(
        wheel["upload-time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 27),
        "{}",
        wheel["upload-time"]
    );
    assert_eq!(files[1]["core-metadata"], false, "sdists have no .metadata");
    let metadata_hash = wheel["core-metadata"]["sha256"]
        .as_str()
        .expect("core-metadata");
    assert_eq!(wheel["data-dist-info-metadata"]["sha256"], metadata_hash);

    // The file and its .metadata are served from the content address, with matching hashes.
    let url = wheel["url"]
        .as_str()
        .expect("url")
        .trim_start_matches("../..");
    let file = app.get(url).await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&file.body)),
        wheel["hashes"]["sha256"].as_str().expect("hash")
    );
    let metadata = app.get(&format!("{url}.metadata")).await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&metadata.body)),
        metadata_hash
    );
    assert!(
        metadata
            .text()
            .starts_with("Metadata-Version: 2.1\nName: demo_pkg")
    );

    let html = app.get("/simple/demo-pkg/").await.text();
    assert!(html.contains(&format!("data-core-metadata=\"sha256={metadata_hash}\"")));
    assert!(html.contains("data-requires-python=\"&gt;=3.8\""));
    assert!(html.contains("#sha256="));
}

#[tokio::test]
async fn yanked_releases_are_marked() {
    let app = with_demo().await;
    sqlx::query(
        "UPDATE releases SET yanked = 1, yanked_reason = 'broken build' WHERE version = '1.0'",
    )
    .execute(app.state.db.pool())
    .await
    .expect("yank");
    app.state.cache.invalidate_all();
    let body = app
        .get_with("/simple/demo-pkg/", &[("accept", PIP_ACCEPT)])
        .await
        .json();
    assert_eq!(body["files"][0]["yanked"], "broken build");
    assert_eq!(body["files"][2]["yanked"], false);
    assert!(
        app.get("/simple/demo-pkg/")
            .await
            .text()
            .contains("data-yanked=\"broken build\"")
    );
    // The JSON API's latest prefers a release that is not yanked, even a pre-release.
    let json = app.get("/pypi/demo-pkg/json").await.json();
    assert_eq!(json["info"]["version"], "2.0rc1");
}

#[tokio::test]
async fn names_and_slashes_are_redirected() {
    let app = with_demo().await;
    for (from, to) in [
        ("/simple/Demo_Pkg/", "/simple/demo-pkg/"),
        ("/simple/demo-pkg", "/simple/demo-pkg/"),
        ("/simple/Demo.Pkg", "/simple/demo-pkg/"),
        ("/simple", "/simple/"),
        ("/pypi/Demo_Pkg/json", "/pypi/demo-pkg/json"),
    ] {
        let response = app.get(from).await;
        assert!(
            response.status.is_redirection(),
            "{from}: {}",
            response.status
        );
        assert_eq!(
            response.status.as_u16(),
            if from == "/simple" { 308 } else { 301 },
            "{from}"
        );
        assert_eq!(response.header("location"), Some(to), "{from}");
    }
    assert_eq!(
        app.get("/simple/missing/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/pypi/missing/json").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/pypi/demo-pkg/9.9/json").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/files/../etc/passwd").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/files/aa/bb/cc/missing.whl").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn conditional_requests_get_304_and_changes_show_at_once() {
    let app = with_demo().await;
    let first = app.get("/simple/demo-pkg/").await;
    let etag = first.header("etag").expect("etag").to_owned();
    let again = app
        .get_with("/simple/demo-pkg/", &[("if-none-match", &etag)])
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    // JSON and HTML are different representations with different tags.
    let json = app
        .get_with(
            "/simple/demo-pkg/",
            &[("accept", PIP_ACCEPT), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(json.status, StatusCode::OK);

    let response = app
        .upload(Some(&app.token), &UploadForm::wheel("demo-pkg", "3.0"))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let after = app
        .get_with("/simple/demo-pkg/", &[("if-none-match", &etag)])
        .await;
    assert_eq!(
        after.status,
        StatusCode::OK,
        "the upload invalidated the cached page"
    );
    assert!(after.text().contains("demo_pkg-3.0-py3-none-any.whl"));
    let serial: i64 = after
        .header("x-pypi-last-serial")
        .expect("serial")
        .parse()
        .expect("number");
    let first_serial: i64 = first
        .header("x-pypi-last-serial")
        .expect("serial")
        .parse()
        .expect("number");
    assert!(serial > first_serial);
}

#[tokio::test]
async fn the_json_api_has_what_poetry_and_twine_read() {
    let app = with_demo().await;
    let response = app.get("/pypi/demo-pkg/json").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    let body = response.json();
    assert_eq!(body["info"]["name"], "Demo_Pkg");
    assert_eq!(
        body["info"]["version"], "1.0",
        "pre-releases are not latest"
    );
    assert_eq!(body["info"]["requires_python"], ">=3.8");
    assert_eq!(
        body["ownership"]["roles"][0],
        serde_json::json!({"role": "Owner", "user": "alice"})
    );
    let releases = body["releases"].as_object().expect("releases");
    assert_eq!(releases.len(), 2);
    let file = &body["urls"][0];
    for key in [
        "filename",
        "packagetype",
        "python_version",
        "md5_digest",
        "size",
        "upload_time",
        "upload_time_iso_8601",
        "url",
        "requires_python",
        "yanked",
    ] {
        assert!(file.get(key).is_some(), "{key} missing");
    }
    assert!(
        file["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://wharf.test/files/"))
    );
    assert_eq!(file["digests"]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(
        file["digests"]["blake2b_256"].as_str().map(str::len),
        Some(64)
    );

    let version = app.get("/pypi/demo-pkg/2.0rc1/json").await.json();
    assert_eq!(version["info"]["version"], "2.0rc1");
    assert!(version.get("releases").is_none());
    assert_eq!(
        app.get("/pypi/demo-pkg/1.0.0/json").await.json()["info"]["version"],
        "1.0",
        "canonical match"
    );
}

#[tokio::test]
async fn health_answers_when_ready() {
    let app = TestApp::new().await;
    let response = app.get("/_health").await;
    assert_eq!(response.status, StatusCode::OK);
}
