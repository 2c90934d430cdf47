//! `/files` serves only live files: a deleted file (or every file of a deleted project) stops
//! answering at once, its blob is removed once the deletion has committed, and `gc` finds what
//! no row refers to.

use std::time::{Duration, SystemTime};

use crate::browser::Browser;
use crate::util::{TestApp, UploadForm};
use wharf::packaging::blobs;

async fn upload(app: &TestApp, version: &str) {
    let response = app
        .upload(Some(&app.token), &UploadForm::wheel("demo", version))
        .await;
    assert_eq!(response.status, 200, "{}", response.message());
}

/// The file's URL path (`/files/…`), from the JSON API.
async fn file_path(app: &TestApp, version: &str) -> String {
    let json = app.get(&format!("/pypi/demo/{version}/json")).await.json();
    let url = json["urls"][0]["url"].as_str().expect("url").to_owned();
    url[url.find("/files/").expect("a /files/ URL")..].to_owned()
}

async fn queued(app: &TestApp) -> i64 {
    app.count("blob_deletions").await
}

#[tokio::test]
async fn a_deleted_file_stops_answering_and_its_blob_goes() {
    let app = TestApp::new().await;
    upload(&app, "1.0").await;
    upload(&app, "2.0").await;
    let one = file_path(&app, "1.0").await;
    let two = file_path(&app, "2.0").await;
    // Served, so the process now remembers both as live.
    for path in [&one, &two] {
        assert_eq!(app.get(path).await.status, 200, "{path}");
        assert_eq!(app.get(&format!("{path}.metadata")).await.status, 200);
    }
    // Malformed addresses (wrong part lengths, odd hex) are 404s, never a panic.
    let hex60 = "a".repeat(60);
    for bad in [
        format!("/files/abc/cd/{hex60}/demo-1.0-py3-none-any.whl"),
        format!("/files/ab/cd/{hex60}a/demo-1.0-py3-none-any.whl"),
        format!("/files/ab/c/{hex60}/demo-1.0-py3-none-any.whl"),
    ] {
        assert_eq!(app.get(&bad).await.status, 404, "{bad}");
    }
    // A file name that is not the row's, under a live digest, is not served.
    let renamed = format!(
        "{}/other-2.0-py3-none-any.whl",
        &two[..two.rfind('/').unwrap()]
    );
    assert_eq!(app.get(&renamed).await.status, 404);

    let mut browser = Browser::signed_in(&app, "alice").await;
    let deleted = browser
        .post(
            "/manage/project/demo/release/2.0/file/delete",
            &[
                ("filename", "demo-2.0-py3-none-any.whl"),
                ("confirm_filename", "demo-2.0-py3-none-any.whl"),
            ],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.text());
    // Gone at once, although the blob is still in storage until the purge.
    assert_eq!(app.get(&two).await.status, 404);
    assert_eq!(app.get(&format!("{two}.metadata")).await.status, 404);
    assert_eq!(app.get(&one).await.status, 200);
    let blob = two.trim_start_matches("/files/").to_owned();
    assert!(app.stored_files().contains(&blob));
    assert_eq!(queued(&app).await, 2);

    let removed = blobs::purge_deleted(&app.state.db, &app.state.storage)
        .await
        .expect("purge");
    assert_eq!(removed, 2);
    let stored = app.stored_files();
    assert!(!stored.iter().any(|p| p.starts_with(&blob)), "{stored:?}");
    assert!(stored.contains(&one.trim_start_matches("/files/").to_owned()));
    assert_eq!(queued(&app).await, 0);
}

#[tokio::test]
async fn a_deleted_project_takes_all_its_files() {
    let app = TestApp::new().await;
    upload(&app, "1.0").await;
    upload(&app, "2.0").await;
    let paths = [file_path(&app, "1.0").await, file_path(&app, "2.0").await];
    for path in &paths {
        assert_eq!(app.get(path).await.status, 200);
    }
    let mut browser = Browser::signed_in(&app, "alice").await;
    let deleted = browser
        .post(
            "/manage/project/demo/delete",
            &[("confirm_project_name", "demo")],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.text());
    for path in &paths {
        assert_eq!(app.get(path).await.status, 404, "{path}");
    }
    assert_eq!(queued(&app).await, 4);
    blobs::purge_deleted(&app.state.db, &app.state.storage)
        .await
        .expect("purge");
    assert_eq!(app.stored_files(), Vec::<String>::new());
}

fn age(path: &std::path::Path) {
    let old = SystemTime::now() - blobs::GC_GRACE - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(old)
        .expect("set mtime");
}

#[tokio::test]
async fn gc_removes_only_old_unreferenced_blobs_and_leftovers() {
    let app = TestApp::new().await;
    upload(&app, "1.0").await;
    let live = file_path(&app, "1.0").await;
    let live_blob = live.trim_start_matches("/files/").to_owned();
    // Live blobs older than the grace period are kept, of course.
    age(&app.dir.path().join("files").join(&live_blob));
    let orphan = format!("ab/cd/{}/orphan-1.0.tar.gz", "e".repeat(60));
    let fresh = format!("ab/cd/{}/fresh-1.0.tar.gz", "f".repeat(60));
    for key in [&orphan, &fresh] {
        app.state
            .storage
            .put_bytes(key, b"bytes".to_vec())
            .await
            .expect("put");
    }
    age(&app.dir.path().join("files").join(&orphan));
    let tmp_dir = app.state.settings.tmp_dir();
    std::fs::create_dir_all(&tmp_dir).unwrap();
    let leftover = tmp_dir.join("upload-crashed");
    std::fs::write(&leftover, b"half an upload").unwrap();
    age(&leftover);
    let in_progress = tmp_dir.join("upload-now");
    std::fs::write(&in_progress, b"on its way").unwrap();

    let dry = blobs::gc(&app.state.db, &app.state.storage, &tmp_dir, true)
        .await
        .expect("gc");
    assert_eq!(dry.unreferenced, vec![orphan.clone()]);
    assert_eq!(dry.leftovers, vec![leftover.display().to_string()]);
    assert!(
        app.stored_files().contains(&orphan),
        "a dry run removes nothing"
    );
    assert!(leftover.exists());

    let report = blobs::gc(&app.state.db, &app.state.storage, &tmp_dir, false)
        .await
        .expect("gc");
    assert_eq!(report.unreferenced, vec![orphan.clone()]);
    let stored = app.stored_files();
    assert!(!stored.contains(&orphan));
    assert!(stored.contains(&fresh), "younger than the grace period");
    assert!(stored.contains(&live_blob));
    assert!(!leftover.exists() && in_progress.exists());
    assert_eq!(app.get(&live).await.status, 200);
}
