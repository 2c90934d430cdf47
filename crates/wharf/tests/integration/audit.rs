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
    verify_with(app, None).await
}

async fn verify_with(app: &TestApp, head: Option<&chain::Head>) -> chain::Report {
    chain::verify(
        &app.state.db,
        &app.state.keys,
        &app.state.settings.data_dir,
        head,
    )
    .await
    .expect("verify")
}

/// The newest sealed event's place and hash.
async fn newest(app: &TestApp) -> chain::Head {
    let (seq, hash): (i64, String) = sqlx::query_as(
        "SELECT seq, hash FROM events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(app.state.db.pool())
    .await
    .expect("newest event");
    chain::Head { seq, hash }
}

type Row = (
    i64,
    String,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<String>,
    String,
    String,
);

/// What an attacker with write access to the database but without the server key can do:
/// recompute every hash from event `from` on with plain SHA-256, as the chain used to be.
async fn recompute_without_the_key(app: &TestApp, from: i64) {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, source_type, source_id, tag, time, ip_address, user_agent, additional, hash \
         FROM events WHERE seq IS NOT NULL ORDER BY seq",
    )
    .fetch_all(app.state.db.pool())
    .await
    .expect("events");
    let mut prev = chain::GENESIS.to_owned();
    for (seq, source_type, source_id, tag, time, ip, ua, additional, stored) in rows {
        if seq < from {
            prev = stored;
            continue;
        }
        let hash = chain::unkeyed_hash(&chain::Content {
            seq,
            source_type: &source_type,
            source_id: source_id.as_deref(),
            tag: &tag,
            time,
            ip_address: ip.as_deref(),
            user_agent: ua.as_deref(),
            additional: &additional,
            prev_hash: &prev,
        });
        sqlx::query("UPDATE events SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(seq)
            .execute(app.state.db.pool())
            .await
            .expect("rewrite");
        prev = hash;
    }
}

async fn write_head(app: &TestApp) -> chain::SignedHead {
    chain::write_head(
        &app.state.db,
        &app.state.keys,
        &app.state.settings.data_dir,
        app.state.clock.now_micros(),
        None,
    )
    .await
    .expect("write head")
    .expect("a head")
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
    assert_eq!(report.first_bad, Some(3));
}

#[tokio::test]
async fn a_sealed_event_whose_hash_was_removed_is_found() {
    let app = TestApp::new().await;
    activity(&app).await;
    verify(&app).await;
    exec(&app, "UPDATE events SET hash = NULL WHERE seq = 3").await;
    let report = verify(&app).await;
    let problem = report.problem.expect("tampering found");
    assert!(problem.starts_with("event 3 "), "{problem}");
    assert!(problem.contains("hash was removed"), "{problem}");
    assert_eq!(report.checked, 2);
    assert_eq!(report.first_bad, Some(3));
}

#[tokio::test]
async fn an_edit_with_the_chain_recomputed_without_the_key_is_found() {
    let app = TestApp::new().await;
    activity(&app).await;
    assert_eq!(verify(&app).await.problem, None);
    exec(
        &app,
        "UPDATE events SET ip_address = '203.0.113.9' WHERE seq = 3",
    )
    .await;
    recompute_without_the_key(&app, 3).await;
    let report = verify(&app).await;
    let problem = report.problem.expect("tampering found");
    assert!(problem.starts_with("event 3 "), "{problem}");
    assert!(problem.contains("altered"), "{problem}");
    assert_eq!(report.first_bad, Some(3));
    assert_eq!(report.checked, 2);
}

#[tokio::test]
async fn removing_the_newest_events_is_found_through_the_signed_head() {
    let app = TestApp::new().await;
    activity(&app).await;
    verify(&app).await;
    let head = write_head(&app).await;
    let n = newest(&app).await;
    assert_eq!((head.seq, head.hash.clone()), (n.seq, n.hash));
    let file =
        std::fs::read_to_string(chain::head_file(&app.state.settings.data_dir)).expect("head file");
    assert_eq!(file.trim(), head.line());
    assert_eq!(verify(&app).await.problem, None);
    // The newest two events go; what is left is a whole, shorter chain.
    exec(
        &app,
        &format!("DELETE FROM events WHERE seq >= {}", head.seq - 1),
    )
    .await;
    let report = verify(&app).await;
    let problem = report.problem.expect("truncation found");
    let first = head.seq - 1;
    assert!(
        problem.starts_with(&format!("event {first} is missing"))
            && problem.contains(&format!("names event {}", head.seq)),
        "{problem}"
    );
    assert_eq!(report.first_bad, Some(first));
    // The head row is within the attacker's reach; the head file in the data directory is not.
    exec(&app, "DELETE FROM audit_heads").await;
    let report = verify(&app).await;
    assert!(
        report
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("head file")),
        "{report:?}"
    );
    assert_eq!(report.first_bad, Some(first));
    // Nor is the log output: a head from the log line, given by hand.
    std::fs::remove_file(chain::head_file(&app.state.settings.data_dir)).expect("remove");
    assert_eq!(verify(&app).await.problem, None);
    let given = chain::Head {
        seq: head.seq,
        hash: head.hash.clone(),
    };
    let report = verify_with(&app, Some(&given)).await;
    assert!(
        report
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("the head given")),
        "{report:?}"
    );
    assert_eq!(report.first_bad, Some(first));
}

#[tokio::test]
async fn a_forged_head_is_refused() {
    let app = TestApp::new().await;
    activity(&app).await;
    verify(&app).await;
    let head = write_head(&app).await;
    // Moving the head back (to hide a truncation) breaks its signature.
    exec(
        &app,
        &format!("UPDATE audit_heads SET seq = {}", head.seq - 1),
    )
    .await;
    let problem = verify(&app).await.problem.expect("forgery found");
    assert!(
        problem.contains("signed head in the database") && problem.contains("not signed"),
        "{problem}"
    );
}

#[tokio::test]
async fn audit_verify_takes_a_head_on_the_command_line() {
    use clap::Parser;
    let app = TestApp::new().await;
    activity(&app).await;
    verify(&app).await;
    let head = newest(&app).await;
    let run = |args: Vec<String>| {
        let state = app.state.clone();
        async move {
            let cli = wharf::cli::Cli::try_parse_from(args).expect("arguments");
            let wharf::cli::Command::Audit { command } = cli.command else {
                panic!("not an audit command");
            };
            wharf::cli::audit::run(&state, command).await
        }
    };
    let verify_args = |head: &str| {
        ["wharf", "audit", "verify", "--head", head]
            .map(str::to_owned)
            .to_vec()
    };
    let given = format!("{}:{}", head.seq, head.hash);
    run(verify_args(&given)).await.expect("intact");
    let invalid = run(verify_args("12:nothex")).await.expect_err("refused");
    assert!(
        invalid.to_string().starts_with("invalid --head"),
        "{invalid}"
    );
    // No head was written (no sealer ran), so only the given one shows the truncation.
    exec(
        &app,
        &format!("DELETE FROM events WHERE seq = {}", head.seq),
    )
    .await;
    assert_eq!(verify(&app).await.problem, None);
    let error = run(verify_args(&given))
        .await
        .expect_err("truncation found");
    assert!(
        error
            .to_string()
            .contains(&format!("event {} is missing", head.seq)),
        "{error}"
    );
}

#[tokio::test]
async fn the_sealer_writes_a_head_at_an_interval() {
    let app = TestApp::new().await;
    let mut writer = events::audit::HeadWriter::default();
    activity(&app).await;
    chain::seal(&app.state.db, &app.state.keys)
        .await
        .expect("seal");
    writer
        .tick(
            &app.state.db,
            &app.state.keys,
            &app.state.settings.data_dir,
            app.state.clock.now_micros(),
        )
        .await
        .expect("head");
    let stored = || async {
        let (seq,): (i64,) = sqlx::query_as("SELECT seq FROM audit_heads")
            .fetch_one(app.state.db.pool())
            .await
            .expect("head row");
        seq
    };
    let first = newest(&app).await.seq;
    assert_eq!(stored().await, first);
    activity(&app).await;
    chain::seal(&app.state.db, &app.state.keys)
        .await
        .expect("seal");
    writer
        .tick(
            &app.state.db,
            &app.state.keys,
            &app.state.settings.data_dir,
            app.state.clock.now_micros(),
        )
        .await
        .expect("head");
    assert_eq!(stored().await, first, "throttled");
    app.state.clock.advance(events::audit::HEAD_EVERY_SECS);
    writer
        .tick(
            &app.state.db,
            &app.state.keys,
            &app.state.settings.data_dir,
            app.state.clock.now_micros(),
        )
        .await
        .expect("head");
    assert_eq!(stored().await, newest(&app).await.seq);
}

#[tokio::test]
async fn a_chain_sealed_before_it_was_keyed_stays_verifiable() {
    let app = TestApp::new().await;
    // An old log, as the unkeyed chain sealed it, and the row the migration leaves behind.
    exec(&app, "DELETE FROM events").await;
    let mut prev = chain::GENESIS.to_owned();
    for seq in 1..=5_i64 {
        let additional = format!("{{\"n\":{seq}}}");
        let hash = chain::unkeyed_hash(&chain::Content {
            seq,
            source_type: "anonymous",
            source_id: None,
            tag: "upload:auth:failure",
            time: seq,
            ip_address: Some("192.0.2.1"),
            user_agent: None,
            additional: &additional,
            prev_hash: &prev,
        });
        sqlx::query(
            "INSERT INTO events (source_type, tag, time, ip_address, additional, seq, prev_hash, hash) \
             VALUES ('anonymous', 'upload:auth:failure', $1, '192.0.2.1', $2, $1, $3, $4)",
        )
        .bind(seq)
        .bind(&additional)
        .bind(&prev)
        .bind(&hash)
        .execute(app.state.db.pool())
        .await
        .expect("old event");
        prev = hash;
    }
    exec(
        &app,
        "UPDATE audit_chain_keyed SET after_seq = 5, hash = NULL, signature = NULL",
    )
    .await;
    // New events are keyed after the old ones; the first seal signs where the old part ends.
    activity(&app).await;
    let report = verify(&app).await;
    assert_eq!(report.problem, None);
    assert_eq!(report.checked as i64, app.count("events").await);
    // Rewriting the old part, even recomputed, no longer ends in the signed hash.
    exec(
        &app,
        "UPDATE events SET ip_address = '203.0.113.9' WHERE seq = 2",
    )
    .await;
    recompute_without_the_key(&app, 2).await;
    let report = verify(&app).await;
    let problem = report.problem.expect("tampering found");
    // Found where the unkeyed part ends: hashes there need no key, so the edited event itself
    // cannot be told, only that the part up to event 5 is not what was signed.
    assert!(problem.starts_with("event 5 "), "{problem}");
    assert_eq!(report.first_bad, Some(5));
}

#[tokio::test]
async fn declaring_a_keyed_chain_unkeyed_is_found() {
    let app = TestApp::new().await;
    activity(&app).await;
    verify(&app).await;
    let end = newest(&app).await.seq;
    // Moving where the unkeyed part ends takes a signature the attacker cannot make.
    exec(
        &app,
        &format!(
            "UPDATE audit_chain_keyed SET after_seq = {}, hash = NULL, signature = NULL",
            end - 1
        ),
    )
    .await;
    let report = verify(&app).await;
    let problem = report.problem.expect("tampering found");
    assert!(
        problem.contains("unkeyed part") && problem.contains("not signed"),
        "{problem}"
    );
    assert_eq!(report.first_bad, Some(end - 1));
    // Declared at the very end, with every hash recomputed, the row looks like a fresh
    // migration and the sealer signs it; the head written before (outside the database) has the
    // keyed hash, so the rewrite still shows.
    let app = TestApp::new().await;
    activity(&app).await;
    verify(&app).await;
    let head = write_head(&app).await;
    exec(
        &app,
        &format!(
            "UPDATE audit_chain_keyed SET after_seq = {}, hash = NULL, signature = NULL",
            head.seq
        ),
    )
    .await;
    exec(&app, "DELETE FROM audit_heads").await;
    recompute_without_the_key(&app, 1).await;
    let report = verify(&app).await;
    let problem = report.problem.expect("tampering found");
    assert!(
        problem.starts_with(&format!("event {} ", head.seq)) && problem.contains("head file"),
        "{problem}"
    );
    assert_eq!(report.first_bad, Some(head.seq));
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
    let report = verify(&app).await;
    let problem = report.problem.expect("tampering found");
    assert!(
        problem.contains("event 2 ") && problem.contains("removed or reordered"),
        "{problem}"
    );
    assert_eq!(report.first_bad, Some(2));
    // Recomputing the links after renumbering takes the key.
    recompute_without_the_key(&app, 2).await;
    let report = verify(&app).await;
    let problem = report.problem.expect("tampering found");
    assert!(
        problem.starts_with("event 2 ") && problem.contains("altered"),
        "{problem}"
    );
    assert_eq!(report.first_bad, Some(2));
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
    let pruned = wharf::events::audit::prune(
        &app.state.db,
        &app.state.keys,
        app.state.clock.now_micros(),
        90,
    )
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
    let count = export(&app.state.db, &ExportFilter::default(), &mut all)
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
    export(&app.state.db, &filter, &mut mine)
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
        export(&app.state.db, &future, &mut none)
            .await
            .expect("export"),
        0
    );
}
