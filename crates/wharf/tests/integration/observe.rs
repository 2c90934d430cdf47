//! What the operator sees: request ids, `/_ready` (and the starting router), and this
//! process's request figures on `/metrics`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::util::{TestApp, UploadForm};

#[tokio::test]
async fn ready_answers_503_while_draining_and_the_starting_router_answers_503() {
    let app = TestApp::new().await;
    let ready = app.get("/_ready").await;
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (StatusCode::OK, "ready")
    );
    assert_eq!(ready.header("cache-control"), Some("no-store"));
    app.state.lifecycle.start_draining();
    let draining = app.get("/_ready").await;
    assert_eq!(
        (draining.status, draining.text().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    );
    assert_eq!(
        app.get("/_health").await.status,
        StatusCode::OK,
        "still alive"
    );

    for (path, status) in [
        ("/_health", StatusCode::SERVICE_UNAVAILABLE),
        ("/_ready", StatusCode::SERVICE_UNAVAILABLE),
        ("/simple/", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let response = wharf::router::starting()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), status, "{path}");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(response.headers()["retry-after"], "5");
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            assert!(String::from_utf8_lossy(&body).contains("migrating the database"));
        }
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = TestApp::new().await;
    let mut seen = std::collections::HashSet::new();
    for path in ["/simple/", "/no/such/page/", "/account/login/", "/_health"] {
        let response = app.get(path).await;
        let id = response
            .header("x-request-id")
            .expect("request id")
            .to_owned();
        assert_eq!(id.len(), 20, "{id}");
        assert!(seen.insert(id), "ids are unique");
    }
    // Without a trusted proxy in front, a client's id is not taken over.
    let forged = app
        .get_with("/simple/", &[("x-request-id", "forged")])
        .await;
    assert_ne!(forged.header("x-request-id"), Some("forged"));
}

#[tokio::test]
async fn metrics_count_requests_latency_files_bytes_refusals_and_the_pool() {
    let app = TestApp::new().await;
    let upload = app
        .upload(Some(&app.token), &UploadForm::wheel("counted", "1.0"))
        .await;
    assert_eq!(upload.status, StatusCode::OK);
    let refused = app
        .upload(Some("pypi-nonsense"), &UploadForm::wheel("counted", "2.0"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    for _ in 0..3 {
        assert_eq!(app.get("/simple/counted/").await.status, StatusCode::OK);
    }
    assert_eq!(
        app.get("/simple/missing/").await.status,
        StatusCode::NOT_FOUND
    );
    let page = app
        .get_with(
            "/simple/counted/",
            &[("accept", "application/vnd.pypi.simple.v1+json")],
        )
        .await;
    let url = page.json()["files"][0]["url"]
        .as_str()
        .expect("url")
        .trim_start_matches("../..")
        .to_owned();
    assert_eq!(app.get(&url).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&format!("{url}.metadata")).await.status,
        StatusCode::OK
    );

    let metrics = app.get("/metrics").await.text();
    for line in [
        "wharf_http_requests_total{route=\"/simple/{project}/\",method=\"GET\",status=\"200\"} 4",
        "wharf_http_requests_total{route=\"/simple/{project}/\",method=\"GET\",status=\"404\"} 1",
        "wharf_http_requests_total{route=\"/legacy/\",method=\"POST\",status=\"200\"} 1",
        "wharf_http_requests_total{route=\"/legacy/\",method=\"POST\",status=\"403\"} 1",
        "wharf_http_request_duration_seconds_count{route=\"/simple/{project}/\"} 5",
        "wharf_upload_refusals_total{reason=\"forbidden\"} 1",
        "wharf_files_served_total{kind=\"wheel\"} 1",
        "wharf_files_served_total{kind=\"metadata\"} 1",
        "wharf_page_cache_requests_total{result=\"hit\"} ",
        "wharf_db_connections{state=\"idle\"} ",
        "wharf_events_unsealed ",
        "wharf_build_info{version=\"",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let uploaded: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("wharf_bytes_uploaded_total "))
        .expect("uploaded")
        .parse()
        .expect("number");
    assert!(uploaded > 0);
    let hits: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("wharf_page_cache_requests_total{result=\"hit\"} "))
        .expect("hits")
        .parse()
        .expect("number");
    assert!(
        hits >= 2,
        "the project page was cached after the first read: {hits}"
    );
}

#[tokio::test]
async fn a_download_is_in_flight_until_its_body_is_gone() {
    let app = TestApp::new().await;
    let form = UploadForm::wheel("demo", "1.0");
    assert_eq!(
        app.upload(Some(&app.token), &form).await.status,
        StatusCode::OK
    );
    let page = app
        .get_with(
            "/simple/demo/",
            &[("accept", "application/vnd.pypi.simple.v1+json")],
        )
        .await
        .json();
    let path = format!(
        "/{}",
        page["files"][0]["url"]
            .as_str()
            .expect("url")
            .trim_start_matches("../../")
    );
    let router = wharf::app::router(app.state.clone());
    let request = axum::http::Request::get(&path)
        .body(axum::body::Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(router, request)
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    // The head is out, the bytes are not: still in flight.
    assert_eq!(app.state.lifecycle.in_flight(), 1);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body");
    assert!(!body.to_bytes().is_empty());
    assert_eq!(app.state.lifecycle.in_flight(), 0);
}
