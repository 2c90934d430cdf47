//! The blobs behind file rows: which ones are live (`/files` serves only those), the queue of
//! deleted files' blobs, and garbage collection of blobs no row refers to.
//!
//! A deletion queues its blobs in its own transaction; they are removed from storage after it
//! commits (`purge_deleted`, run by every serving process and by `wharf gc`), so neither a crash
//! nor a failing store forgets one. `gc` also finds blobs that were stored by an upload that
//! never committed, and temporary upload files a crash left behind.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sqlx::AnyConnection;

use crate::db::Db;
use crate::storage::Storage;

/// Unreferenced blobs and temporary files younger than this are left alone: an upload stores
/// its blob before its row commits, and may still be on its way.
pub const GC_GRACE: Duration = Duration::from_secs(3600);

/// The project (normalised name) of the live file whose blob is named by `digest` (hex) and
/// `filename`, or `None` when there is no such file row.
pub async fn live_file_project(
    db: &Db,
    digest_hex: &str,
    filename: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT p.normalized_name FROM files f JOIN projects p ON p.id = f.project_id \
         WHERE f.blake2_256_digest = $1 AND f.filename = $2",
    )
    .bind(digest_hex)
    .bind(filename)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(name,)| name))
}

/// Queues a deleted file's blob and its `.metadata` for removal, in the deleting transaction.
pub async fn queue_deletion(
    conn: &mut AnyConnection,
    path: &str,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    for key in [path.to_owned(), format!("{path}.metadata")] {
        sqlx::query(
            "INSERT INTO blob_deletions (path, queued_at) VALUES ($1, $2) \
             ON CONFLICT (path) DO NOTHING",
        )
        .bind(key)
        .bind(now_micros)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Removes the queued blobs from storage; returns how many were removed. A blob that cannot be
/// removed now stays queued for the next run.
pub async fn purge_deleted(db: &Db, storage: &Storage) -> anyhow::Result<usize> {
    let mut removed = 0;
    loop {
        let batch: Vec<(String,)> =
            sqlx::query_as("SELECT path FROM blob_deletions ORDER BY path LIMIT 500")
                .fetch_all(db.pool())
                .await?;
        if batch.is_empty() {
            return Ok(removed);
        }
        let count = batch.len();
        for (path,) in batch {
            storage.delete(&path).await?;
            sqlx::query("DELETE FROM blob_deletions WHERE path = $1")
                .bind(&path)
                .execute(db.pool())
                .await?;
            removed += 1;
        }
        if count < 500 {
            return Ok(removed);
        }
    }
}

/// What `gc` found (and, unless it was a dry run, removed).
#[derive(Debug, Default)]
pub struct GcReport {
    /// Blobs of deleted files that were still queued.
    pub queued: Vec<String>,
    /// Blobs no file row refers to, older than the grace period.
    pub unreferenced: Vec<String>,
    /// Temporary upload files older than the grace period.
    pub leftovers: Vec<String>,
}

/// Finds the blobs nothing refers to and the crash leftovers in `tmp_dir`; removes them unless
/// `dry_run`. Storage is listed before the rows are read, so a blob whose upload commits in
/// between is seen as referenced; a blob younger than [`GC_GRACE`] is never touched.
pub async fn gc(
    db: &Db,
    storage: &Storage,
    tmp_dir: &Path,
    dry_run: bool,
) -> anyhow::Result<GcReport> {
    let mut report = GcReport::default();
    let queued: Vec<(String,)> = sqlx::query_as("SELECT path FROM blob_deletions ORDER BY path")
        .fetch_all(db.pool())
        .await?;
    report.queued = queued.into_iter().map(|(p,)| p).collect();
    if !dry_run {
        purge_deleted(db, storage).await?;
    }
    let cutoff = SystemTime::now() - GC_GRACE;
    let objects = storage.list().await?;
    let live: HashSet<String> = sqlx::query_as::<_, (String,)>("SELECT path FROM files")
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .map(|(p,)| p)
        .collect();
    let queued: HashSet<&str> = report.queued.iter().map(String::as_str).collect();
    for (key, modified) in objects {
        // The proxy's copies of upstream files have no file rows; they are kept.
        if key.starts_with("upstream/") {
            continue;
        }
        let file = key.strip_suffix(".metadata").unwrap_or(&key);
        if live.contains(file) || queued.contains(key.as_str()) || modified > cutoff {
            continue;
        }
        if !dry_run {
            storage.delete(&key).await?;
        }
        report.unreferenced.push(key);
    }
    report.unreferenced.sort();
    if let Ok(mut entries) = tokio::fs::read_dir(tmp_dir).await {
        while let Some(entry) = entries.next_entry().await? {
            let metadata = entry.metadata().await?;
            let old = metadata.modified().is_ok_and(|m| m < cutoff);
            if !metadata.is_file() || !old {
                continue;
            }
            if !dry_run {
                tokio::fs::remove_file(entry.path()).await?;
            }
            report.leftovers.push(entry.path().display().to_string());
        }
    }
    report.leftovers.sort();
    Ok(report)
}
