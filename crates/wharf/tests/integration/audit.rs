//! The audit log's integrity: sealing, verification, tampering (edited, deleted, swapped rows),
//! concurrent writers from several "processes", pruning behind a checkpoint, export.

use wharf::events::audit::{ExportFilter, export};
use wharf::events::chain;
use wharf::events::{self, EventTag, RequestMeta, Source};

use crate::util::{TestApp, UploadForm};

async fn activity(app: &TestApp) {
    for version in ["1.0", "1.1", "1.2"] {
        let response = app
            .upload(Some(&app.token), &UploadForm::wheel("demo", version))
            .await;
        assert_eq!(response.status, 200);
    }
}

async fn verify(app: &TestApp) -> chain::Report {
    chain::seal(&app.state.db, &app.state.keys)
        .await
        .expect("seal");
    chain::verify(&app.state.db, &app.state.keys)
        .await
        .expect("verify")
}

async fn exec(app: &TestApp, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(app.state.db.pool())
        .await
        .expect(sql);
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let app = TestApp::new().await;
    activity(&app).await;
    let report = verify(&app).await;
    assert_eq!(report.problem, None);
    assert_eq!(report.checked as i64, app.count("events").await);
    // New events are chained after the old ones.
    activity(&app).await;
    let report = verify(&app).await;
    assert_eq!(report.problem, None);
    assert_eq!(report.checked as i64, app.count("events").await);
}

#[tokio::test]
async fn an_edited_event_is_found() {
    let app = TestApp::new().await;
    activity(&app).await;
    verify(&app).await;
    exec(
        &app,
        "UPDATE events SET ip_address = '203.0.113.9' WHERE seq = 3",
    )
    .await;
    let report = verify(&app).await;
    let problem = report.problem.expect("tampering found");
    assert!(problem.starts_with("event 3 "), "{problem}");
    assert!(problem.contains("altered"), "{problem}");
    assert_eq!(report.checked, 2);
}

#[tokio::test]
async fn a_deleted_event_is_found() {
    let app = TestApp::new().await;
    activity(&app).await;
    verify(&app).await;
    exec(&app, "DELETE FROM events WHERE seq = 4").await;
    let problem = verify(&app).await.problem.expect("tampering found");
    assert!(problem.contains("event 4 is missing"), "{problem}");
    // Deleting the newest event cannot be told from a shorter log, but deleting and renumbering
    // breaks the links.
    let app = TestApp::new().await;
    activity(&app).await;
    verify(&app).await;
    exec(&app, "DELETE FROM events WHERE seq = 2").await;
    exec(&app, "UPDATE events SET seq = seq - 1 WHERE seq > 2").await;
    let problem = verify(&app).await.problem.expect("tampering found");
    assert!(
        problem.contains("event 2 ") && problem.contains("removed or reordered"),
        "{problem}"
    );
}

#[tokio::test]
async fn swapped_events_are_found() {
    let app = TestApp::new().await;
    activity(&app).await;
    verify(&app).await;
    // Exchange the places of two events, hashes and all.
    exec(&app, "UPDATE events SET seq = -1 WHERE seq = 2").await;
    exec(&app, "UPDATE events SET seq = 2 WHERE seq = 5").await;
    exec(&app, "UPDATE events SET seq = 5 WHERE seq = -1").await;
    let problem = verify(&app).await.problem.expect("tampering found");
    assert!(problem.starts_with("event 2 "), "{problem}");
}

#[tokio::test]
async fn concurrent_writers_in_several_processes_make_one_chain() {
    let app = TestApp::new().await;
    // A second "process": its own pool on the same database.
    let other = wharf::app::AppState::open((*app.state.settings).clone())
        .await
        .expect("second process");
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let state = if worker % 2 == 0 {
            app.state.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let mut tx = state.db.begin().await.expect("tx");
                events::record(
                    &mut tx,
                    Source::Anonymous,
                    EventTag::UploadAuthFailure,
                    &RequestMeta::default(),
                    state.clock.now_micros(),
                    serde_json::json!({"worker": worker, "i": i}),
                )
                .await
                .expect("record");
                tx.commit().await.expect("commit");
                if i % 5 == 0 {
                    chain::seal(&state.db, &state.keys).await.expect("seal");
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let report = verify(&app).await;
    assert_eq!(report.problem, None);
    assert_eq!(app.count("events").await, report.checked as i64);
    let (recorded,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM events WHERE tag = 'upload:auth:failure'")
            .fetch_one(app.state.db.pool())
            .await
            .expect("count");
    assert_eq!(recorded, 200);
}

#[tokio::test]
async fn pruning_keeps_the_rest_verifiable() {
    let app = TestApp::new().await;
    activity(&app).await;
    app.state.clock.advance(100 * 86_400);
    let recent = app.count("events").await;
    app.upload(Some(&app.token), &UploadForm::wheel("demo", "2.0"))
        .await;
    let added = app.count("events").await - recent;
    let pruned = wharf::events::audit::prune(&app.state, 90)
        .await
        .expect("prune");
    assert_eq!(pruned as i64, recent);
    assert_eq!(app.count("events").await, added);
    let report = verify(&app).await;
    assert_eq!(report.problem, None);
    assert_eq!(report.checked as i64, added);
    // A forged checkpoint is noticed.
    exec(&app, "UPDATE audit_checkpoints SET hash = 'forged'").await;
    assert!(
        verify(&app)
            .await
            .problem
            .expect("found")
            .contains("checkpoint")
    );
}

#[tokio::test]
async fn events_export_as_json_lines_with_filters() {
    let app = TestApp::new().await;
    activity(&app).await;
    chain::seal(&app.state.db, &app.state.keys)
        .await
        .expect("seal");
    let mut all = Vec::new();
    let count = export(&app.state, &ExportFilter::default(), &mut all)
        .await
        .expect("export");
    assert_eq!(count as i64, app.count("events").await);
    let lines: Vec<serde_json::Value> = String::from_utf8(all)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["hash"].is_string() && l["tag"].is_string())
    );
    let project = wharf::packaging::find_project(&app.state.db, "demo")
        .await
        .expect("db")
        .expect("project");
    let mut mine = Vec::new();
    let filter = ExportFilter {
        project_id: Some(&project.id),
        ..ExportFilter::default()
    };
    export(&app.state, &filter, &mut mine)
        .await
        .expect("export");
    let text = String::from_utf8(mine).expect("utf-8");
    assert!(text.lines().all(
        |l| l.contains("\"source_type\":\"project\"") || l.contains("\"source_type\":\"file\"")
    ));
    assert!(text.contains("file:add") && text.contains("project:create"));
    let mut none = Vec::new();
    let future = ExportFilter {
        since: Some(app.state.clock.now_micros() + 1_000_000),
        ..ExportFilter::default()
    };
    assert_eq!(
        export(&app.state, &future, &mut none)
            .await
            .expect("export"),
        0
    );
}
