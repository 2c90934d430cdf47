//! `wharf backup` / `restore` and `wharf import`, on the library functions the commands call.

use std::path::Path;

use axum::http::StatusCode;
use wharf::backup;
use wharf::import::{self, Source};

use crate::util::{TestApp, UploadForm, sdist_bytes, wheel_bytes};

fn on_postgres() -> bool {
    std::env::var("WHARF_TEST_DATABASE_URL").is_ok()
}

async fn upload_two(app: &TestApp) {
    for form in [
        UploadForm::wheel("alpha", "1.0"),
        UploadForm::sdist("demo", "1.0"),
    ] {
        let response = app.upload(Some(&app.token), &form).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.message());
    }
}

async fn file_rows(state: &wharf::app::AppState) -> Vec<(String, String, i64)> {
    sqlx::query_as("SELECT filename, sha256_digest, upload_time FROM files ORDER BY filename")
        .fetch_all(state.db.pool())
        .await
        .expect("files")
}

async fn event_tags(state: &wharf::app::AppState, tag: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE tag = $1")
        .bind(tag)
        .fetch_one(state.db.pool())
        .await
        .expect("events");
    n
}

fn first_blob(backup: &Path) -> std::path::PathBuf {
    let mut stack = vec![backup.join("files")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                return entry.path();
            }
        }
    }
    panic!("no blob in the backup");
}

/// SQLite only: on PostgreSQL the database part is a `pg_dump` of the whole database, which
/// the schema-per-test setup cannot restore in isolation.
#[tokio::test]
async fn backup_verify_detects_a_tampered_part_and_restore_refuses_a_non_empty_dir() {
    if on_postgres() {
        return;
    }
    let app = TestApp::new().await;
    upload_two(&app).await;
    let settings = (*app.state.settings).clone();
    let out = tempfile::tempdir().expect("tempdir");
    let good = out.path().join("good");
    let manifest = backup::create(&settings, &good).await.expect("backup");
    assert_eq!(manifest.counts.projects, 2);
    assert_eq!(manifest.counts.files, 2);
    assert_eq!(manifest.counts.users, 1);
    assert!(manifest.schema_version > 20260000000000);
    // wheel, its METADATA, sdist, database, key.
    assert_eq!(manifest.parts.len(), 5, "{:?}", manifest.parts.keys());
    assert!(
        backup::verify(&good)
            .await
            .expect("verify")
            .problems
            .is_empty()
    );
    // A second backup into a directory that holds one is refused.
    let again = backup::create(&settings, &good)
        .await
        .expect_err("not empty");
    assert!(again.to_string().contains("not empty"), "{again}");

    // Restoring into a directory with anything in it needs --force.
    let busy = tempfile::tempdir().expect("tempdir");
    std::fs::write(busy.path().join("wharf.db"), b"something").expect("write");
    let target = wharf::config::Settings {
        data_dir: busy.path().to_owned(),
        ..wharf::config::Settings::default()
    };
    let refused = backup::restore(target.clone(), &good, false)
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("is not empty"), "{refused}");
    assert_eq!(
        std::fs::read(busy.path().join("wharf.db")).expect("read"),
        b"something"
    );
    let restored = backup::restore(target, &good, true).await.expect("forced");
    assert_eq!(restored.counts.files, 2);
    assert_eq!(restored.blobs, 3);

    // One byte of one blob changed: --verify names it, restore refuses the backup.
    let tampered = out.path().join("tampered");
    backup::create(&settings, &tampered).await.expect("backup");
    let blob = first_blob(&tampered);
    let mut bytes = std::fs::read(&blob).expect("read");
    bytes[0] ^= 1;
    std::fs::write(&blob, bytes).expect("write");
    let problems = backup::verify(&tampered).await.expect("verify").problems;
    let name = blob
        .strip_prefix(&tampered)
        .expect("prefix")
        .display()
        .to_string();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with(&name), "{problems:?}");
    let fresh = tempfile::tempdir().expect("tempdir");
    let target = wharf::config::Settings {
        data_dir: fresh.path().join("data"),
        ..wharf::config::Settings::default()
    };
    let damaged = backup::restore(target, &tampered, false)
        .await
        .err()
        .expect("damaged");
    assert!(damaged.to_string().contains("damaged"), "{damaged}");
    assert!(!fresh.path().join("data").exists(), "nothing restored");

    // A removed part and an added file are both named.
    std::fs::remove_file(tampered.join("secret.key")).expect("remove");
    std::fs::write(tampered.join("stray"), b"x").expect("write");
    let problems = backup::verify(&tampered).await.expect("verify").problems;
    assert!(
        problems.iter().any(|p| p == "secret.key: missing"),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p == "stray: not in the manifest"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn restore_brings_back_every_project_file_and_event() {
    if on_postgres() {
        return;
    }
    let app = TestApp::new().await;
    upload_two(&app).await;
    let out = tempfile::tempdir().expect("tempdir");
    let path = out.path().join("backup");
    backup::create(&app.state.settings, &path)
        .await
        .expect("backup");
    let fresh = tempfile::tempdir().expect("tempdir");
    let target = wharf::config::Settings {
        data_dir: fresh.path().to_owned(),
        base_url: Some("http://wharf.test".to_owned()),
        ..wharf::config::Settings::default()
    };
    let restored = backup::restore(target.clone(), &path, false)
        .await
        .expect("restore");
    assert!(restored.events_checked > 0);
    let state = wharf::app::AppState::open(target).await.expect("open");
    assert_eq!(file_rows(&state).await, file_rows(&app.state).await);
    let events = |s: &wharf::app::AppState| {
        let pool = s.db.pool().clone();
        async move {
            let rows: Vec<(String, i64, String)> =
                sqlx::query_as("SELECT tag, time, additional FROM events ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .expect("events");
            rows
        }
    };
    assert_eq!(events(&state).await, events(&app.state).await);
    // Every file is served by the restored index.
    for (path,) in sqlx::query_as::<_, (String,)>("SELECT path FROM files")
        .fetch_all(state.db.pool())
        .await
        .expect("paths")
    {
        assert!(
            state.storage.get(&path).await.expect("get").is_some(),
            "{path}"
        );
    }
}

fn set_mtime(path: &Path, unix_secs: u64) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs))
        .expect("mtime");
}

#[tokio::test]
async fn import_of_a_directory_checks_each_file_as_an_upload_and_a_rerun_skips() {
    let app = TestApp::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("alpha");
    std::fs::create_dir_all(&nested).expect("mkdir");
    let wheel = nested.join("alpha-1.0-py3-none-any.whl");
    std::fs::write(&wheel, wheel_bytes("alpha", "1.0", &[])).expect("write");
    set_mtime(&wheel, 1_600_000_000);
    std::fs::write(
        dir.path().join("demo-1.0.tar.gz"),
        sdist_bytes("demo-1.0", &[]),
    )
    .expect("write");
    // Refused by the upload path's own checks: a standard-library name, and no zip at all.
    std::fs::write(
        dir.path().join("os-1.0-py3-none-any.whl"),
        wheel_bytes("os", "1.0", &[]),
    )
    .expect("write");
    std::fs::write(dir.path().join("broken-1.0-py3-none-any.whl"), b"not a zip").expect("write");
    std::fs::write(dir.path().join("notes.txt"), b"hello").expect("write");
    let source = Source::Directory(dir.path().to_owned());

    let report = import::import(&app.state, &source, "alice", 2, false)
        .await
        .expect("import");
    let mut imported = report.imported.clone();
    imported.sort();
    assert_eq!(imported, ["alpha-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]);
    let refused: Vec<(&str, &str)> = report
        .refused
        .iter()
        .map(|r| (r.filename.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert_eq!(refused[0].0, "broken-1.0-py3-none-any.whl");
    assert!(refused[0].1.contains("not a zipfile"), "{refused:?}");
    assert_eq!(refused[1].0, "notes.txt");
    assert!(refused[1].1.contains("not a wheel"), "{refused:?}");
    assert_eq!(refused[2].0, "os-1.0-py3-none-any.whl");
    assert!(
        refused[2].1.starts_with("400 The name 'os' isn't allowed"),
        "{refused:?}"
    );

    // Stored whole, with the source's time and an import event; the refused left nothing.
    let rows = file_rows(&app.state).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "alpha-1.0-py3-none-any.whl");
    assert_eq!(rows[0].2, 1_600_000_000 * 1_000_000);
    assert_eq!(event_tags(&app.state, "file:import").await, 2);
    assert_eq!(event_tags(&app.state, "file:add").await, 2);
    assert_eq!(app.count("projects").await, 2);
    // wheel, its METADATA, sdist.
    assert_eq!(app.stored_files().len(), 3);
    let json = app.get("/pypi/alpha/json").await.json();
    assert_eq!(json["urls"][0]["upload_time"], "2020-09-13T12:26:40");
    // The import's token is gone.
    assert_eq!(app.count("macaroons").await, 1);

    let again = import::import(&app.state, &source, "alice", 2, false)
        .await
        .expect("rerun");
    assert!(again.imported.is_empty(), "{:?}", again.imported);
    assert_eq!(again.skipped.len(), 2);
    assert_eq!(again.refused.len(), 3);
    assert_eq!(file_rows(&app.state).await, rows);
    assert_eq!(event_tags(&app.state, "file:import").await, 2);

    let unknown = import::import(&app.state, &source, "nobody", 2, false)
        .await
        .expect_err("no such owner");
    assert!(unknown.to_string().contains("no user named 'nobody'"));
}

/// A devpi index, as its JSON API answers (`devpi-server` docs, "JSON API").
async fn devpi_server(wheel: Vec<u8>, sha256: String) -> std::net::SocketAddr {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let index = serde_json::json!({
        "type": "indexconfig",
        "result": {"type": "stage", "bases": ["root/pypi"], "volatile": true, "projects": ["alpha"]}
    });
    let project = serde_json::json!({
        "type": "projectconfig",
        "result": {"1.0": {
            "name": "alpha", "version": "1.0",
            "+links": [
                {"rel": "releasefile", "href": format!("{base}/root/dev/+f/abc/def/alpha-1.0-py3-none-any.whl"),
                 "hash_spec": format!("sha256={sha256}"),
                 "log": [{"what": "upload", "who": "root", "when": [2021, 3, 4, 5, 6, 7], "dst": "root/dev"}]},
                {"rel": "doczip", "href": format!("{base}/root/dev/+f/abc/def/alpha-1.0.doc.zip")}
            ]
        }}
    });
    let router = axum::Router::new()
        .route("/root/dev", get(move || async move { axum::Json(index) }))
        .route(
            "/root/dev/alpha",
            get(move || async move { axum::Json(project) }),
        )
        .route(
            "/root/dev/+f/abc/def/alpha-1.0-py3-none-any.whl",
            get(move || async move { wheel }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test]
async fn import_from_devpi_keeps_the_upload_time() {
    use sha2::Digest;
    let app = TestApp::new().await;
    let wheel = wheel_bytes("alpha", "1.0", &[]);
    let sha256 = hex::encode(sha2::Sha256::digest(&wheel));
    let addr = devpi_server(wheel, sha256.clone()).await;
    let source =
        Source::from_args(None, None, Some(format!("http://{addr}/root/dev"))).expect("source");
    let report = import::import(&app.state, &source, "alice", 2, false)
        .await
        .expect("import");
    assert_eq!(report.imported, ["alpha-1.0-py3-none-any.whl"]);
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    let rows = file_rows(&app.state).await;
    assert_eq!(
        rows,
        [(
            "alpha-1.0-py3-none-any.whl".to_owned(),
            sha256,
            1_614_834_367 * 1_000_000
        )]
    );
    let again = import::import(&app.state, &source, "alice", 2, false)
        .await
        .expect("rerun");
    assert_eq!(again.skipped, ["alpha-1.0-py3-none-any.whl"]);
}
