//! The audit log's export, pruning and signed heads, for `wharf audit …` (in `cli/audit.rs`)
//! and the sealer task of `serve` (in `tasks.rs`).

use std::io::Write;
use std::path::Path;

use futures_util::TryStreamExt;

use super::{EventRow, chain};
use crate::db::Db;
use crate::signing::ServerKey;

/// Which events to export (all when empty).
#[derive(Default)]
pub struct ExportFilter<'a> {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub user_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
}

/// Writes the events as JSON Lines, oldest first. Returns how many.
pub async fn export(
    db: &Db,
    filter: &ExportFilter<'_>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut rows = sqlx::query_as::<_, EventRow>(
        "SELECT id, seq, source_type, source_id, tag, time, ip_address, user_agent, additional, prev_hash, hash \
         FROM events \
         WHERE ($1 IS NULL OR time >= $1) AND ($2 IS NULL OR time < $2) \
           AND ($3 IS NULL OR (source_type = 'user' AND source_id = $3)) \
           AND ($4 IS NULL OR (source_type = 'project' AND source_id = $4) \
                OR (source_type = 'file' AND additional LIKE '%\"project_id\":\"' || $4 || '\"%')) \
         ORDER BY seq, id",
    )
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.user_id)
    .bind(filter.project_id)
    .fetch(db.pool());
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        let line = serde_json::json!({
            "id": row.id,
            "seq": row.seq,
            "source_type": row.source_type,
            "source_id": row.source_id,
            "tag": row.tag,
            "time": crate::clock::iso8601_micros(row.time),
            "ip_address": row.ip_address,
            "user_agent": row.user_agent,
            "additional": serde_json::from_str::<serde_json::Value>(&row.additional).unwrap_or_default(),
            "hash": row.hash,
        });
        writeln!(out, "{line}")?;
        count += 1;
    }
    Ok(count)
}

/// Deletes events older than `days` before `now_micros`, behind a signed checkpoint.
pub async fn prune(db: &Db, keys: &ServerKey, now_micros: i64, days: u32) -> anyhow::Result<u64> {
    let before = now_micros - i64::from(days) * 86_400 * 1_000_000;
    Ok(chain::prune(db, keys, before, now_micros).await?)
}

/// How often, at most, the sealer writes a signed head: removing events newer than the last
/// head cannot be told from a shorter log, so this is the window; a head costs a log line, a
/// small file and one row.
pub const HEAD_EVERY_SECS: i64 = 30;

/// When the sealer last wrote a head, and of which event.
#[derive(Debug, Default)]
pub struct HeadWriter {
    last_seq: Option<i64>,
    last_time: Option<i64>,
}

impl HeadWriter {
    /// Writes a head (a row, and a file in `data_dir`) when the last look is `HEAD_EVERY_SECS`
    /// old at `now_micros` and the chain has grown since the last head.
    pub async fn tick(
        &mut self,
        db: &Db,
        keys: &ServerKey,
        data_dir: &Path,
        now_micros: i64,
    ) -> Result<(), chain::ChainError> {
        if self
            .last_time
            .is_some_and(|last| now_micros - last < HEAD_EVERY_SECS * 1_000_000)
        {
            return Ok(());
        }
        if let Some(head) = chain::write_head(db, keys, data_dir, now_micros, self.last_seq).await?
        {
            self.last_seq = Some(head.seq);
        }
        // Looked at, grown or not: the next look is `HEAD_EVERY_SECS` on (the chain's newest
        // event is not read twice a second while nothing happens).
        self.last_time = Some(now_micros);
        Ok(())
    }
}
