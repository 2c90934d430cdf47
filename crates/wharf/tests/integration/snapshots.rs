//! Snapshots of what clients parse: the Simple API in HTML and JSON, the JSON API, and the
//! upload errors twine shows. A change to any of them shows up as a diff to review (`cargo insta
//! review`, or `INSTA_UPDATE=always` then `git diff`). Times, digests and content addresses
//! differ from run to run and are redacted; everything else is compared byte for byte.

use crate::util::{TestApp, UploadForm, wheel_bytes};

const JSON: &str = "application/vnd.pypi.simple.v1+json";

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?", "[time]");
    settings.add_filter(
        r"/files/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/",
        "/files/[address]/",
    );
    settings.add_filter(r"\b[0-9a-f]{64}\b", "[sha256-or-blake2]");
    settings.add_filter(r"\b[0-9a-f]{32}\b", "[md5]");
    settings.add_filter(r#""(upload_time|last_serial)": \d+"#, "\"$1\": [number]");
    settings.add_filter(r"http://[0-9.]+:\d+", "[base]");
    settings
}

async fn with_demo() -> TestApp {
    let app = TestApp::new().await;
    for form in [
        UploadForm::sdist("Demo_Pkg", "1.0"),
        UploadForm::wheel("Demo_Pkg", "1.0"),
        UploadForm::wheel("Demo_Pkg", "2.0rc1"),
    ] {
        let response = app.upload(Some(&app.token), &form).await;
        assert_eq!(response.status, 200, "{}", response.message());
    }
    app
}

fn pretty(json: serde_json::Value) -> String {
    serde_json::to_string_pretty(&json).expect("json")
}

#[tokio::test]
async fn simple_api_pages() {
    let app = with_demo().await;
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!("simple_index_html", app.get("/simple/").await.text());
    insta::assert_snapshot!(
        "simple_index_json",
        pretty(app.get_with("/simple/", &[("accept", JSON)]).await.json())
    );
    insta::assert_snapshot!(
        "simple_project_html",
        app.get("/simple/demo-pkg/").await.text()
    );
    insta::assert_snapshot!(
        "simple_project_json",
        pretty(
            app.get_with("/simple/demo-pkg/", &[("accept", JSON)])
                .await
                .json()
        )
    );
}

#[tokio::test]
async fn json_api_pages() {
    let app = with_demo().await;
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!(
        "json_project",
        pretty(app.get("/pypi/demo-pkg/json").await.json())
    );
    insta::assert_snapshot!(
        "json_release",
        pretty(app.get("/pypi/demo-pkg/2.0rc1/json").await.json())
    );
}

#[tokio::test]
async fn upload_errors() {
    let app = with_demo().await;
    let _guard = settings().bind_to_scope();
    let cases = [
        ("no token", None, UploadForm::wheel("other", "1.0")),
        (
            "bad version",
            Some(app.token.clone()),
            UploadForm::wheel("demo-pkg", "1.0").set("version", "not a version"),
        ),
        (
            "file exists",
            Some(app.token.clone()),
            UploadForm::new(
                "demo-pkg",
                "1.0",
                "demo_pkg-1.0-py3-none-any.whl",
                wheel_bytes("demo_pkg", "1.0", &[("demo_pkg/more.py", b"x = 1\n")]),
            ),
        ),
        (
            "bad name",
            Some(app.token.clone()),
            UploadForm::wheel("demo-pkg", "1.0").set("name", "-bad-"),
        ),
        (
            "wrong digest",
            Some(app.token.clone()),
            UploadForm::wheel("demo-pkg", "3.0").set("sha256_digest", &"0".repeat(64)),
        ),
        (
            "metadata differs",
            Some(app.token.clone()),
            UploadForm::wheel("demo-pkg", "3.0").set("requires_dist", "evil-package"),
        ),
    ];
    let mut answers = String::new();
    for (what, token, form) in cases {
        let response = app.upload(token.as_deref(), &form).await;
        answers.push_str(&format!(
            "{what}: {} {}\n",
            response.status.as_u16(),
            response.message()
        ));
    }
    insta::assert_snapshot!("upload_errors", answers);
}
