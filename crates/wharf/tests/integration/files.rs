//! `/files` serves only live files: a deleted file (or every file of a deleted project) stops
//! answering at once, its blob is removed once the deletion has committed, and `gc` finds what
//! no row refers to. Files answer single byte ranges (pip resuming a download), and HEAD on
//! every read path says what GET would.

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
    assert_eq!(app.head_with(&two, &[]).await.status, 404);
    assert_eq!(
        app.get_with(&two, &[("range", "bytes=0-9")]).await.status,
        404
    );
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

/// The demo wheel's URL path and its bytes, as a full GET gives them.
async fn served_file(app: &TestApp) -> (String, Vec<u8>) {
    let form = UploadForm::wheel("demo", "1.0");
    let response = app.upload(Some(&app.token), &form).await;
    assert_eq!(response.status, 200, "{}", response.message());
    let path = file_path(app, "1.0").await;
    let whole = app.get(&path).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, form.content);
    (path, form.content)
}

#[tokio::test]
async fn every_file_answer_offers_ranges_and_validators() {
    let app = TestApp::new().await;
    let (path, _) = served_file(&app).await;
    let digest: String = path
        .trim_start_matches("/files/")
        .split('/')
        .take(3)
        .collect();
    assert_eq!(digest.len(), 64);
    let metadata = format!("{path}.metadata");
    for (uri, etag) in [
        (&path, format!("\"{digest}\"")),
        (&metadata, format!("\"{digest}.metadata\"")),
    ] {
        for response in [app.get(uri).await, app.head_with(uri, &[]).await] {
            assert_eq!(response.status, 200, "{uri}");
            assert_eq!(response.header("accept-ranges"), Some("bytes"), "{uri}");
            assert_eq!(response.header("etag"), Some(etag.as_str()), "{uri}");
            let modified = response.header("last-modified").expect("last-modified");
            httpdate::parse_http_date(modified).expect("an HTTP date");
            assert_eq!(response.header("content-range"), None);
        }
    }
}

#[tokio::test]
async fn a_single_range_gets_just_those_bytes() {
    let app = TestApp::new().await;
    let (path, content) = served_file(&app).await;
    let size = content.len();
    assert!(size > 100, "{size}");
    let beyond = format!("bytes=50-{}", size + 1000);
    let cases: [(&str, std::ops::Range<usize>); 6] = [
        ("bytes=0-9", 0..10),
        ("bytes=10-", 10..size),
        ("bytes=-5", size - 5..size),
        ("bytes=0-0", 0..1),
        // Past the end: up to the end; a suffix longer than the file: the whole file.
        (&beyond, 50..size),
        ("bytes=-100000", 0..size),
    ];
    for (range, expected) in cases {
        let response = app.get_with(&path, &[("range", range)]).await;
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(response.body, &content[expected.clone()], "{range}");
        let content_range = format!("bytes {}-{}/{size}", expected.start, expected.end - 1);
        assert_eq!(
            response.header("content-range"),
            Some(content_range.as_str()),
            "{range}"
        );
        let length = expected.len().to_string();
        assert_eq!(response.header("content-length"), Some(length.as_str()));
        assert_eq!(
            response.header("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(response.header("accept-ranges"), Some("bytes"));
    }
    // `.metadata` the same way.
    let metadata = format!("{path}.metadata");
    let whole = app.get(&metadata).await.body;
    let response = app.get_with(&metadata, &[("range", "bytes=2-5")]).await;
    assert_eq!(response.status, 206);
    assert_eq!(response.body, &whole[2..6]);
    let content_range = format!("bytes 2-5/{}", whole.len());
    assert_eq!(
        response.header("content-range"),
        Some(content_range.as_str())
    );
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[tokio::test]
async fn a_range_past_the_end_is_not_satisfiable() {
    let app = TestApp::new().await;
    let (path, content) = served_file(&app).await;
    let size = content.len();
    let total = format!("bytes */{size}");
    for range in [
        format!("bytes={size}-"),
        format!("bytes={size}-{}", size + 10),
        format!("bytes={}-", size * 10),
        "bytes=-0".to_owned(),
    ] {
        let response = app.get_with(&path, &[("range", &range)]).await;
        assert_eq!(response.status, 416, "{range}");
        assert_eq!(response.header("content-range"), Some(total.as_str()));
        assert!(response.body.is_empty());
        // Not the file's year-long `immutable`.
        assert_eq!(response.header("cache-control"), None);
    }
    let metadata = format!("{path}.metadata");
    let response = app
        .get_with(&metadata, &[("range", "bytes=1000000-")])
        .await;
    assert_eq!(response.status, 416);
}

#[tokio::test]
async fn a_malformed_or_multiple_range_gets_the_whole_file() {
    let app = TestApp::new().await;
    let (path, content) = served_file(&app).await;
    for range in [
        "bytes=0-1,5-6",
        "bytes=5-3",
        "bytes=x-",
        "bytes=-",
        "lines=0-1",
        "0-1",
        "bytes=99999999999999999999999-",
    ] {
        let response = app.get_with(&path, &[("range", range)]).await;
        assert_eq!(response.status, 200, "{range}");
        assert_eq!(response.body, content, "{range}");
        assert_eq!(response.header("content-range"), None, "{range}");
    }
}

#[tokio::test]
async fn if_range_honours_the_range_only_for_the_same_file() {
    let app = TestApp::new().await;
    let (path, content) = served_file(&app).await;
    let first = app.get(&path).await;
    let etag = first.header("etag").expect("etag").to_owned();
    let modified = first.header("last-modified").expect("last-modified");
    let a_year_ago = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(86400 * 365));
    let weak = format!("W/{etag}");
    let partial = |status: u16| (status, &content[10..]);
    let whole = |status: u16| (status, &content[..]);
    let cases = [
        (etag.as_str(), partial(206)),
        (modified, partial(206)),
        ("\"0123\"", whole(200)),
        // Strong comparison: a weak tag never matches.
        (weak.as_str(), whole(200)),
        (a_year_ago.as_str(), whole(200)),
        ("not a date", whole(200)),
    ];
    for (if_range, (status, body)) in cases {
        let response = app
            .get_with(&path, &[("range", "bytes=10-"), ("if-range", if_range)])
            .await;
        assert_eq!(response.status, status, "{if_range}");
        assert_eq!(response.body, body, "{if_range}");
    }
    // A stale copy is replaced whole, even when the range would not be satisfiable.
    let past_end = format!("bytes={}-", content.len());
    for if_range in ["\"0123\"", a_year_ago.as_str()] {
        let response = app
            .get_with(&path, &[("range", &past_end), ("if-range", if_range)])
            .await;
        assert_eq!(response.status, 200, "{if_range}");
        assert_eq!(response.body, content);
    }
    let response = app
        .get_with(&path, &[("range", &past_end), ("if-range", &etag)])
        .await;
    assert_eq!(response.status, 416);
}

#[tokio::test]
async fn head_says_what_get_would_on_every_read_path() {
    const PIP_ACCEPT: &str = "application/vnd.pypi.simple.v1+json";
    let app = TestApp::new().await;
    let (path, _) = served_file(&app).await;
    let metadata = format!("{path}.metadata");
    let cases: [(&str, &[(&str, &str)]); 8] = [
        ("/simple/", &[]),
        ("/simple/", &[("accept", PIP_ACCEPT)]),
        ("/simple/demo/", &[]),
        ("/simple/demo/", &[("accept", PIP_ACCEPT)]),
        ("/pypi/demo/json", &[]),
        ("/pypi/demo/1.0/json", &[]),
        (&path, &[]),
        (&metadata, &[]),
    ];
    for (uri, headers) in cases {
        let get = app.get_with(uri, headers).await;
        let head = app.head_with(uri, headers).await;
        assert_eq!(get.status, 200, "{uri}");
        assert!(!get.body.is_empty(), "{uri}");
        assert_eq!(head.status, get.status, "{uri}");
        for name in ["content-type", "content-length", "etag"] {
            assert_eq!(head.header(name), get.header(name), "{uri} {name}");
        }
        let length = get.body.len().to_string();
        assert_eq!(
            head.header("content-length"),
            Some(length.as_str()),
            "{uri}"
        );
        assert!(head.body.is_empty(), "{uri}");
    }
    // HEAD has no ranges (RFC 9110 §14.2): it describes the whole file.
    let whole = app.head_with(&path, &[]).await;
    let ranged = app.head_with(&path, &[("range", "bytes=0-9")]).await;
    assert_eq!(ranged.status, 200);
    assert_eq!(
        ranged.header("content-length"),
        whole.header("content-length")
    );
    assert_eq!(ranged.header("content-range"), None);
    // And what GET would not find, HEAD does not either.
    let missing = format!("{path}x");
    assert_eq!(app.head_with(&missing, &[]).await.status, 404);
    assert_eq!(app.head_with("/pypi/nothing/json", &[]).await.status, 404);
}
