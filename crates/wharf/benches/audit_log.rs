//! What the audit log costs. (1) 10,000+ events written by concurrent uploads and sign-ins,
//! with the sealer running, next to the same run with recording off: target within 10%.
//! (2) `wharf audit verify` over a million events: target under a minute.
//!
//! Run: `cargo bench -p wharf --bench audit_log` (prints Markdown tables).

#[allow(dead_code)]
#[path = "../tests/integration/util.rs"]
mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use util::{TestApp, UploadForm};
use wharf::events::{self, chain};

const UPLOADS: usize = 1800;
const SIGN_INS: usize = 300;
const CONCURRENCY: usize = 8;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut on = Vec::new();
    let mut off = Vec::new();
    for round in 0..2 {
        for recording in [true, false] {
            events::set_recording(recording);
            let figures = paths(round).await?;
            if recording {
                on.push(figures);
            } else {
                off.push(figures);
            }
        }
    }
    events::set_recording(true);
    let best = |runs: &[(f64, f64, i64)], i: usize| {
        runs.iter()
            .map(|r| if i == 0 { r.0 } else { r.1 })
            .fold(0.0, f64::max)
    };
    let events_written = on.iter().map(|r| r.2).max().unwrap_or(0);
    println!("| path | recording on (req/s) | recording off (req/s) | on / off |");
    println!("|---|---|---|---|");
    for (i, name) in [
        "upload (`POST /legacy/`)",
        "sign-in (`POST /account/login/`)",
    ]
    .iter()
    .enumerate()
    {
        let (a, b) = (best(&on, i), best(&off, i));
        println!("| {name} | {a:.0} | {b:.0} | {:.2} |", a / b);
    }
    println!();
    println!(
        "{events_written} events written per run with recording on (best of 2 runs each, {CONCURRENCY} concurrent clients)."
    );
    println!();
    verify_a_million().await
}

/// Upload and sign-in throughput (req/s) and the events written.
async fn paths(round: usize) -> anyhow::Result<(f64, f64, i64)> {
    let app = Arc::new(TestApp::new().await);
    let sealer = {
        let state = app.state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = chain::seal(&state.db, &state.keys).await;
            }
        })
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..UPLOADS).step_by(CONCURRENCY) {
                let form = UploadForm::wheel(&format!("bench-{round}-{i}"), "1.0");
                let response = app.upload(Some(&app.token), &form).await;
                assert_eq!(response.status, 200, "{}", response.message());
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let uploads = UPLOADS as f64 / start.elapsed().as_secs_f64();

    let cookie = "wharf_csrf=benchbenchbenchbenchbenchbenchbenchbench";
    let token = app
        .state
        .keys
        .tag("csrf", "benchbenchbenchbenchbenchbenchbenchbench");
    let body = format!("csrf_token={token}&username=alice&password=correct+horse+battery");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let app = app.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for _ in (worker..SIGN_INS).step_by(CONCURRENCY) {
                let request = Request::post("/account/login/")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("cookie", cookie)
                    .header("user-agent", "Mozilla/5.0 Chrome/156.0")
                    .body(Body::from(body.clone()))
                    .expect("request");
                let response = app.request(request).await;
                assert_eq!(response.status, 303);
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let sign_ins = SIGN_INS as f64 / start.elapsed().as_secs_f64();
    sealer.abort();
    let events = app.count("events").await;
    Ok((uploads, sign_ins, events))
}

async fn verify_a_million() -> anyhow::Result<()> {
    const EVENTS: i64 = 1_000_000;
    let app = TestApp::new().await;
    let start = Instant::now();
    let mut tx = app.state.db.begin().await?;
    for chunk in 0..(EVENTS / 500) {
        let mut sql = String::from(
            "INSERT INTO events (source_type, source_id, tag, time, ip_address, user_agent, additional) VALUES ",
        );
        for i in 0..500 {
            let n = chunk * 500 + i;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('user', 'u{}', 'account:login:success', {n}, '192.0.2.{}', 'Mozilla/5.0', '{{\"two_factor_method\":\"totp\",\"n\":{n}}}')",
                n % 1000,
                n % 250
            ));
        }
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let inserted = start.elapsed();
    let start = Instant::now();
    chain::seal(&app.state.db, &app.state.keys).await?;
    let sealed = start.elapsed();
    let start = Instant::now();
    let report = chain::verify(
        &app.state.db,
        &app.state.keys,
        &app.state.settings.data_dir,
        None,
    )
    .await?;
    let verified = start.elapsed();
    assert_eq!(report.problem, None);
    println!("| step, {} events (SQLite) | time |", report.checked);
    println!("|---|---|");
    println!("| insert (bench setup) | {:.1} s |", inserted.as_secs_f64());
    println!(
        "| seal (done in the background as events arrive) | {:.1} s |",
        sealed.as_secs_f64()
    );
    println!(
        "| `wharf audit verify` walk | {:.1} s (target < 60 s) |",
        verified.as_secs_f64()
    );
    Ok(())
}
