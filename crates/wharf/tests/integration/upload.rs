use axum::http::StatusCode;
use serde_json::Value;

use crate::util::{TestApp, UploadForm, sdist_bytes, wheel_bytes, zip_bytes};

async fn tags(app: &TestApp) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT tag FROM events ORDER BY id")
        .fetch_all(app.state.db.pool())
        .await
        .expect("events");
    rows.into_iter().map(|(t,)| t).collect()
}

#[tokio::test]
async fn first_upload_creates_the_project_with_the_uploader_as_owner() {
    let app = TestApp::new().await;
    let response = app
        .upload(Some(&app.token), &UploadForm::wheel("Demo.Pkg", "1.0"))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());

    let project = wharf::packaging::find_project(&app.state.db, "demo-pkg")
        .await
        .expect("db")
        .expect("created");
    assert_eq!(project.name, "Demo.Pkg");
    let role = wharf::packaging::role_of(&app.state.db, &project.id, &app.user.id)
        .await
        .expect("db");
    assert_eq!(role, Some(wharf::packaging::Role::Owner));
    let stored = app.stored_files();
    assert_eq!(stored.len(), 2, "the wheel and its .metadata: {stored:?}");
    assert!(
        stored
            .iter()
            .any(|p| p.ends_with("demo_pkg-1.0-py3-none-any.whl.metadata"))
    );
    let events = tags(&app).await;
    for tag in [
        "project:create",
        "project:role:add",
        "account:role:add",
        "project:release:add",
        "file:add",
    ] {
        assert!(
            events.iter().any(|t| t == tag),
            "{tag} missing from {events:?}"
        );
    }
    let (ip, ua): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT ip_address, user_agent FROM events WHERE tag = 'file:add'")
            .fetch_one(app.state.db.pool())
            .await
            .expect("file event");
    assert_eq!(ua.as_deref(), Some("twine/7.0.0 CPython/3.11.7"));
    assert_eq!(ip, None, "in-process requests have no peer address");
    let (last_used,): (Option<i64>,) =
        sqlx::query_as("SELECT last_used FROM macaroons WHERE description = 'test token'")
            .fetch_one(app.state.db.pool())
            .await
            .expect("token");
    assert!(
        last_used.is_some(),
        "a successful upload records the token's use"
    );
}

#[tokio::test]
async fn an_identical_reupload_succeeds_and_changes_nothing() {
    let app = TestApp::new().await;
    let form = UploadForm::wheel("demo", "1.0");
    assert_eq!(
        app.upload(Some(&app.token), &form).await.status,
        StatusCode::OK
    );
    let before = app.snapshot().await;
    let again = app.upload(Some(&app.token), &form).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_different_file_under_the_same_name_is_refused() {
    let app = TestApp::new().await;
    assert_eq!(
        app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
            .await
            .status,
        StatusCode::OK
    );
    let before = app.snapshot().await;
    let other = wheel_bytes("demo", "1.0", &[("demo/extra.py", b"x = 1")]);
    let form = UploadForm::new("demo", "1.0", "demo-1.0-py3-none-any.whl", other);
    let response = app.upload(Some(&app.token), &form).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response
            .message()
            .contains("File already exists ('demo-1.0-py3-none-any.whl'"),
        "{}",
        response.text()
    );
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_deleted_filename_can_never_come_back() {
    let app = TestApp::new().await;
    let form = UploadForm::wheel("demo", "1.0");
    assert_eq!(
        app.upload(Some(&app.token), &form).await.status,
        StatusCode::OK
    );
    sqlx::query("DELETE FROM files")
        .execute(app.state.db.pool())
        .await
        .expect("delete");
    let response = app.upload(Some(&app.token), &form).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response
            .message()
            .contains("previously used by a file that has since been deleted"),
        "{}",
        response.text()
    );
    assert_eq!(app.count("files").await, 0);
}

#[tokio::test]
async fn maintainers_may_upload_and_others_may_not() {
    let app = TestApp::new().await;
    assert_eq!(
        app.upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
            .await
            .status,
        StatusCode::OK
    );
    let project = wharf::packaging::find_project(&app.state.db, "demo")
        .await
        .expect("db")
        .expect("project");

    let (_, mallory_token) = app.create_user("mallory").await;
    let before = app.snapshot().await;
    let response = app
        .upload(Some(&mallory_token), &UploadForm::wheel("demo", "1.1"))
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert!(
        response
            .message()
            .contains("The user 'mallory' isn't allowed to upload to project 'demo'"),
        "{}",
        response.text()
    );
    assert_eq!(app.snapshot().await, before);

    let (bob, bob_token) = app.create_user("bob").await;
    sqlx::query("INSERT INTO roles (project_id, user_id, role_name, created) VALUES ($1, $2, 'Maintainer', 0)")
        .bind(&project.id)
        .bind(&bob.id)
        .execute(app.state.db.pool())
        .await
        .expect("role");
    let response = app
        .upload(Some(&bob_token), &UploadForm::wheel("demo", "1.1"))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
}

#[tokio::test]
async fn release_metadata_comes_from_the_first_upload_and_one_sdist_per_release() {
    let app = TestApp::new().await;
    let first = UploadForm::sdist("demo", "1.0").set("summary", "First summary");
    assert_eq!(
        app.upload(Some(&app.token), &first).await.status,
        StatusCode::OK
    );
    let wheel = UploadForm::wheel("demo", "1.0").set("summary", "Second summary");
    assert_eq!(
        app.upload(Some(&app.token), &wheel).await.status,
        StatusCode::OK
    );
    let body = app.get("/pypi/demo/json").await.json();
    assert_eq!(body["info"]["summary"], "First summary");
    assert_eq!(body["urls"].as_array().map(Vec::len), Some(2));

    let before = app.snapshot().await;
    let second_sdist = UploadForm::new(
        "demo",
        "1.0",
        "demo-1.0.zip",
        zip_bytes(&[("demo-1.0/PKG-INFO".into(), b"x".to_vec())]),
    );
    let response = app.upload(Some(&app.token), &second_sdist).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response
            .message()
            .contains("Only one sdist may be uploaded per release."),
        "{}",
        response.text()
    );
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_later_upload_may_respell_the_project_name() {
    let app = TestApp::new().await;
    assert_eq!(
        app.upload(Some(&app.token), &UploadForm::wheel("demo_pkg", "1.0"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.upload(Some(&app.token), &UploadForm::wheel("Demo-Pkg", "1.1"))
            .await
            .status,
        StatusCode::OK
    );
    let body = app.get("/pypi/demo-pkg/json").await.json();
    assert_eq!(body["info"]["name"], "Demo-Pkg");
}

/// Each refused upload answers 400 with the reason in the status line and in the JSON `code`,
/// and stores nothing.
#[tokio::test]
async fn bad_uploads_are_refused_and_change_nothing() {
    let app = TestApp::new().await;
    assert_eq!(
        app.upload(Some(&app.token), &UploadForm::sdist("demo", "1.0"))
            .await
            .status,
        StatusCode::OK
    );
    let not_a_zip = UploadForm::new(
        "demo",
        "2.0",
        "demo-2.0-py3-none-any.whl",
        b"just text, not a zip archive, long enough".to_vec(),
    );
    let no_metadata = UploadForm::new(
        "demo",
        "2.0",
        "demo-2.0-py3-none-any.whl",
        zip_bytes(&[(
            "demo-2.0.dist-info/WHEEL".into(),
            b"Wheel-Version: 1.0\n".to_vec(),
        )]),
    );
    let zeros = vec![0u8; 65 * 1024 * 1024];
    let bomb = UploadForm::new(
        "demo",
        "2.0",
        "demo-2.0-py3-none-any.whl",
        wheel_bytes("demo", "2.0", &[("demo/zeros.bin", &zeros)]),
    );
    let cases: Vec<(&str, UploadForm, &str)> = vec![
        (
            "wrong digest",
            UploadForm::wheel("demo", "2.0").set("sha256_digest", &"0".repeat(64)),
            "The digest supplied does not match",
        ),
        (
            "name mismatch",
            UploadForm::new(
                "demo",
                "2.0",
                "other-2.0-py3-none-any.whl",
                wheel_bytes("other", "2.0", &[]),
            ),
            "should contain the normalized project name 'demo', not 'other'",
        ),
        (
            "version mismatch",
            UploadForm::new(
                "demo",
                "2.0",
                "demo-3.0-py3-none-any.whl",
                wheel_bytes("demo", "3.0", &[]),
            ),
            "Version in filename should be '2.0' not '3.0'",
        ),
        (
            "sdist name",
            UploadForm::new(
                "demo",
                "2.0",
                "demo-2.0.0.tar.gz",
                sdist_bytes("demo-2.0.0", &[]),
            ),
            "Filename 'demo-2.0.0.tar.gz' is invalid, should be 'demo-2.0.tar.gz'",
        ),
        (
            "dot-dot",
            UploadForm::wheel("demo", "2.0").tap_filename("../demo-2.0-py3-none-any.whl"),
            "'/' or '\\'",
        ),
        (
            "slash",
            UploadForm::wheel("demo", "2.0").tap_filename("x/demo-2.0-py3-none-any.whl"),
            "'/' or '\\'",
        ),
        (
            "control character",
            UploadForm::wheel("demo", "2.0").tap_filename("demo-2.0-py3-none\tany.whl"),
            "non-printable characters",
        ),
        (
            "not a zip",
            not_a_zip,
            "Invalid distribution file. File is not a zipfile",
        ),
        (
            "no METADATA",
            no_metadata,
            "does not contain the required METADATA file",
        ),
        ("zip bomb", bomb, "File exceeds compression ratio of 50"),
        (
            "second sdist",
            UploadForm::sdist("demo", "1.0")
                .tap_content(sdist_bytes("demo-1.0", &[("demo-1.0/x", b"x")])),
            "File already exists",
        ),
        (
            "metadata version",
            UploadForm::wheel("demo", "2.0").set("metadata_version", "3.0"),
            "is an invalid value for Metadata-Version",
        ),
        (
            "local version",
            UploadForm::wheel("demo", "2.0").set("version", "2.0+local"),
            "The use of local versions in '2.0+local' is not allowed.",
        ),
        (
            "no file",
            UploadForm::wheel("demo", "2.0").tap_filename(""),
            "Invalid file extension",
        ),
        (
            "platform",
            UploadForm::new(
                "demo",
                "2.0",
                "demo-2.0-py3-none-linux_x86_64.whl",
                wheel_bytes("demo", "2.0", &[]),
            ),
            "unsupported platform tag 'linux_x86_64'",
        ),
        (
            "image",
            UploadForm::wheel("demo", "2.0").tap_content_type(Some("image/png")),
            "Invalid distribution file.",
        ),
        (
            "no digest",
            UploadForm::wheel("demo", "2.0").without("sha256_digest"),
            "Include at least one message digest.",
        ),
        (
            "stdlib name",
            UploadForm::wheel("asyncio", "1.0"),
            "isn't allowed (conflict with Python Standard Library module name)",
        ),
        (
            "confusable",
            UploadForm::wheel("dem0", "1.0"),
            "is too similar to an existing project",
        ),
    ];
    let before = app.snapshot().await;
    for (label, form, expected) in cases {
        let response = app.upload(Some(&app.token), &form).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{label}: {}",
            response.text()
        );
        let reason = response.message();
        assert!(
            reason.contains(expected),
            "{label}: expected {expected:?} in {reason}"
        );
        assert_eq!(app.snapshot().await, before, "{label} stored something");
    }
}

#[tokio::test]
async fn a_file_over_the_limit_is_refused_while_streaming() {
    let app = TestApp::with_settings(|s| s.max_upload_size = 1024 * 1024).await;
    let big = wheel_bytes(
        "demo",
        "1.0",
        &[("demo/data.bin", &rand_bytes(2 * 1024 * 1024))],
    );
    let before = app.snapshot().await;
    let response = app
        .upload(
            Some(&app.token),
            &UploadForm::new("demo", "1.0", "demo-1.0-py3-none-any.whl", big),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response
            .message()
            .contains("File too large. Limit for project 'demo' is 1 MB."),
        "{}",
        response.text()
    );
    assert_eq!(app.snapshot().await, before);
    let leftovers = std::fs::read_dir(app.dir.path().join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "the partial upload is removed");
}

fn rand_bytes(n: usize) -> Vec<u8> {
    // Incompressible enough for a size test: a simple xorshift stream.
    let mut x = 0x2545F4914F6CDD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn malformed_requests_get_clear_errors() {
    let app = TestApp::new().await;
    let before = app.snapshot().await;
    use axum::body::Body;
    use axum::http::Request;
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("__token__:{}", app.token));
    let truncated = Request::post("/legacy/")
        .header("content-type", "multipart/form-data; boundary=xyz")
        .header("authorization", format!("Basic {basic}"))
        .header("accept", "application/json")
        .body(Body::from(
            "--xyz\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ndemo",
        ))
        .expect("request");
    let response = app.request(truncated).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let json: Value = response.json();
    assert!(
        json["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("400 Malformed multipart/form-data request")),
        "{json}"
    );

    // A part whose headers never end, and a text field of 9 MiB: refused, not buffered.
    let endless = format!(
        "--xyz\r\nContent-Disposition: form-data; name=\"name\"\r\nX: {}",
        "a".repeat(3 << 20)
    );
    let huge = format!(
        "--xyz\r\nContent-Disposition: form-data; name=\"summary\"\r\n\r\n{}\r\n--xyz--\r\n",
        "a".repeat(9 << 20)
    );
    for (body, expected) in [
        (endless, "a part's headers run over 1048576 bytes"),
        (huge, "The upload form's fields are too large."),
    ] {
        let request = Request::post("/legacy/")
            .header("content-type", "multipart/form-data; boundary=xyz")
            .header("authorization", format!("Basic {basic}"))
            .body(Body::from(body))
            .expect("request");
        let response = app.request(request).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
        assert!(
            response.message().contains(expected),
            "{}",
            response.message()
        );
    }

    let not_multipart = Request::post("/legacy/")
        .header("content-type", "application/json")
        .header("authorization", format!("Basic {basic}"))
        .body(Body::from("{}"))
        .expect("request");
    let response = app.request(not_multipart).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response.message().contains("Invalid request"),
        "{}",
        response.text()
    );

    let doc_upload = UploadForm::wheel("demo", "1.0").set(":action", "doc_upload");
    let response = app.upload(Some(&app.token), &doc_upload).await;
    assert_eq!(response.status, StatusCode::GONE);
    let version = UploadForm::wheel("demo", "1.0").set("protocol_version", "2");
    let response = app.upload(Some(&app.token), &version).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(response.message().contains("Unknown protocol version."));
    assert_eq!(app.snapshot().await, before);
}

trait Tap {
    fn tap_filename(self, filename: &str) -> Self;
    fn tap_content(self, content: Vec<u8>) -> Self;
    fn tap_content_type(self, content_type: Option<&str>) -> Self;
}

impl Tap for UploadForm {
    fn tap_filename(mut self, filename: &str) -> Self {
        self.filename = filename.to_owned();
        self
    }

    fn tap_content(mut self, content: Vec<u8>) -> Self {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(&content));
        self.content = content;
        self.set("sha256_digest", &digest)
    }

    fn tap_content_type(mut self, content_type: Option<&str>) -> Self {
        self.content_type = content_type.map(str::to_owned);
        self
    }
}

/// About 1 MiB of .tar.gz holding one GNU long-name member of 1 GiB: a reader that buffers
/// long names whole takes gigabytes of memory for it.
fn long_name_sdist(top: &str) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let size = 1u64 << 30;
    let mut header = tar::Header::new_gnu();
    header.set_path("././@LongLink").expect("path");
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    gz.write_all(header.as_bytes()).expect("header");
    let chunk = vec![0u8; 1024 * 1024];
    for _ in 0..size / chunk.len() as u64 {
        gz.write_all(&chunk).expect("data");
    }
    let mut tar = tar::Builder::new(gz);
    let pkg_info = crate::util::METADATA.as_bytes();
    let mut header = tar::Header::new_gnu();
    header.set_size(pkg_info.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, format!("{top}/PKG-INFO"), pkg_info)
        .expect("append");
    tar.into_inner().expect("tar").finish().expect("gz")
}

#[tokio::test]
async fn a_gigabyte_long_name_in_an_sdist_is_refused() {
    let app = TestApp::new().await;
    let content = long_name_sdist("demo-1.0");
    assert!(content.len() < 2 * 1024 * 1024, "{} bytes", content.len());
    let before = app.snapshot().await;
    let form = UploadForm::new("demo", "1.0", "demo-1.0.tar.gz", content);
    let response = app.upload(Some(&app.token), &form).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.text()
    );
    assert!(
        response.message().contains(
            "Invalid distribution file. Tar long name, long link or PAX header member of 1073741824 bytes"
        ),
        "{}",
        response.message()
    );
    assert_eq!(app.snapshot().await, before);
}

/// Uploads `forms` all at once from a multi-threaded runtime, answers in the forms' order.
async fn upload_in_parallel(
    app: &std::sync::Arc<TestApp>,
    forms: Vec<UploadForm>,
) -> Vec<crate::util::TestResponse> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(forms.len()));
    let tasks: Vec<_> = forms
        .into_iter()
        .map(|form| {
            let (app, start) = (app.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                app.upload(Some(&app.token), &form).await
            })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.expect("upload task"));
    }
    responses
}

/// Ten wheels of one version, differing in their Python tag (a CI matrix publishing).
fn matrix(name: &str, version: &str) -> Vec<UploadForm> {
    (0..10)
        .map(|i| {
            let tag = format!("cp3{i}");
            let content = wheel_bytes(name, version, &[("demo/tag.txt", tag.as_bytes())]);
            let filename = format!("{name}-{version}-{tag}-none-any.whl");
            UploadForm::new(name, version, &filename, content).set("pyversion", &tag)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_first_uploads_of_a_new_project_all_succeed() {
    let app = std::sync::Arc::new(TestApp::new().await);
    for (i, response) in upload_in_parallel(&app, matrix("demo", "1.0"))
        .await
        .iter()
        .enumerate()
    {
        assert_eq!(response.status, StatusCode::OK, "upload {i}: {response:?}");
    }
    assert_eq!(app.count("projects").await, 1);
    assert_eq!(app.count("releases").await, 1);
    assert_eq!(app.count("files").await, 10);
    assert_eq!(app.count("roles").await, 1);

    // A new version of the existing project, in parallel: one release, ten files.
    for (i, response) in upload_in_parallel(&app, matrix("demo", "2.0"))
        .await
        .iter()
        .enumerate()
    {
        assert_eq!(response.status, StatusCode::OK, "upload {i}: {response:?}");
    }
    assert_eq!(app.count("releases").await, 2);
    assert_eq!(app.count("files").await, 20);

    // One filename with different contents: one is stored, the others already exist.
    let same_name: Vec<UploadForm> = (0..5)
        .map(|i| {
            let content = wheel_bytes("demo", "3.0", &[("demo/n.txt", format!("{i}").as_bytes())]);
            UploadForm::new("demo", "3.0", "demo-3.0-py3-none-any.whl", content)
        })
        .collect();
    let responses = upload_in_parallel(&app, same_name).await;
    let stored = responses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(stored, 1, "{responses:?}");
    for response in responses.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
        assert!(
            response
                .message()
                .contains("File already exists ('demo-3.0-py3-none-any.whl'"),
            "{}",
            response.message()
        );
    }
    assert_eq!(app.count("files").await, 21);
}

/// A wheel of `demo` 1.0 whose METADATA is `metadata`.
fn wheel_with_metadata(metadata: &str) -> UploadForm {
    let content = zip_bytes(&[
        ("demo/__init__.py".into(), b"".to_vec()),
        (
            "demo-1.0.dist-info/METADATA".into(),
            metadata.as_bytes().to_vec(),
        ),
        (
            "demo-1.0.dist-info/WHEEL".into(),
            b"Wheel-Version: 1.0\nTag: py3-none-any\n".to_vec(),
        ),
    ]);
    UploadForm::new("demo", "1.0", "demo-1.0-py3-none-any.whl", content)
}

/// An sdist of `demo` 1.0 whose PKG-INFO is `pkg_info`.
fn sdist_with_pkg_info(pkg_info: &str) -> UploadForm {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(pkg_info.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "demo-1.0/PKG-INFO", pkg_info.as_bytes())
        .expect("append");
    let content = tar.into_inner().expect("tar").finish().expect("gz");
    UploadForm::new("demo", "1.0", "demo-1.0.tar.gz", content)
}

#[tokio::test]
async fn a_file_whose_metadata_differs_from_the_form_is_refused() {
    let app = TestApp::new().await;
    let head = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Python: >=3.8\n";
    let cases = [
        (
            "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\nRequires-Python: >=3.8\n".to_owned(),
            "Name in the distribution's METADATA does not match the upload form: 'evil' in the file, 'demo' in the form.",
        ),
        (
            head.replace("Version: 1.0", "Version: 6.6.6"),
            "Version in the distribution's METADATA does not match",
        ),
        (
            format!("{head}Requires-Dist: evil-package\n"),
            "Requires-Dist in the distribution's METADATA does not match the upload form: 'evil-package' in the file, 'requests' in the form.",
        ),
        (
            format!("{head}Requires-Dist: requests\nRequires-Dist: evil-package\n"),
            "Requires-Dist in the distribution's METADATA",
        ),
        (
            format!(
                "{}Requires-Dist: requests\n",
                head.replace(">=3.8", ">=2.7")
            ),
            "Requires-Python in the distribution's METADATA does not match the upload form: '>=2.7' in the file, '>=3.8' in the form.",
        ),
        (
            format!("{head}Requires-Dist: requests\nProvides-Extra: evil\n"),
            "Provides-Extra in the distribution's METADATA does not match the upload form: 'evil' in the file, none in the form.",
        ),
    ];
    let before = app.snapshot().await;
    for (metadata, expected) in cases {
        let form = wheel_with_metadata(&metadata).set("requires_dist", "requests");
        let response = app.upload(Some(&app.token), &form).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{metadata}");
        assert!(
            response
                .message()
                .contains(&format!("Invalid distribution file. {expected}")),
            "{metadata}: {}",
            response.message()
        );
        assert_eq!(app.snapshot().await, before, "{metadata} stored something");
    }

    // An sdist's PKG-INFO is held to the form from metadata 2.2 on.
    let pkg_info = "Metadata-Version: 2.2\nName: demo\nVersion: 1.0\nRequires-Python: >=3.8\nRequires-Dist: evil-package\n";
    let response = app
        .upload(Some(&app.token), &sdist_with_pkg_info(pkg_info))
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response
            .message()
            .contains("Requires-Dist in the distribution's PKG-INFO does not match the upload form: 'evil-package' in the file, none in the form."),
        "{}",
        response.message()
    );
    assert_eq!(app.snapshot().await, before);

    // The same metadata, written differently, is accepted; what the API shows is what the
    // file says.
    let metadata = format!("{head}Requires-Dist: Requests >= 2 ; python_version >= '3.8'\n");
    let form =
        wheel_with_metadata(&metadata).set("requires_dist", "requests>=2; python_version>=\"3.8\"");
    let response = app.upload(Some(&app.token), &form).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.message());
    let sdist = sdist_with_pkg_info(&format!(
        "{}Requires-Dist: requests>=2; python_version >= \"3.8\"\n",
        head.replace("2.1", "2.2")
    ))
    .set("requires_dist", "requests>=2; python_version>=\"3.8\"");
    let response = app.upload(Some(&app.token), &sdist).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.message());
    let body = app.get("/pypi/demo/json").await.json();
    assert_eq!(
        body["info"]["requires_dist"],
        serde_json::json!(["requests>=2; python_version>=\"3.8\""])
    );
}

#[tokio::test]
async fn the_urls_hatch_and_flit_print_after_an_upload_lead_to_the_project_page() {
    let app = TestApp::new().await;
    let response = app
        .upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    for (printed, page) in [
        ("/legacy/demo/1.0/", "/project/demo/1.0/"),
        ("/legacy/Demo/", "/project/Demo/"),
    ] {
        let response = app.get(printed).await;
        assert_eq!(response.status, StatusCode::PERMANENT_REDIRECT, "{printed}");
        assert_eq!(response.header("location"), Some(page));
    }
    let followed = app.get("/project/demo/1.0/").await;
    assert_eq!(followed.status, StatusCode::OK);
}
