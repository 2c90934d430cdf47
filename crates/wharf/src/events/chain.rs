//! The audit log's hash chain. Requests write events unsealed (no lock, no cost on the request
//! path); a sealer gives them their place (`seq`), the previous event's hash and their own hash,
//! in one transaction that only one process at a time may run (SQLite's write lock, a
//! PostgreSQL advisory lock), so concurrent writers from several processes still make one chain.
//! `verify` walks the chain and names the first event that was altered, removed or reordered.

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};

use crate::db::{Backend, Db};
use crate::signing::ServerKey;

/// The hash before the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Any number will do, as long as only the sealer takes this PostgreSQL advisory lock.
const SEAL_LOCK: i64 = 0x7768_6172_6665_7631;
/// Events sealed per transaction: small, so the write lock (SQLite has one writer) is held for
/// a few milliseconds and requests never wait long behind the sealer.
const BATCH: i64 = 200;

/// The fields of an event that its hash covers. Its place is `seq`; its row id is only a
/// storage key (an event may be written before it has one).
pub struct Content<'a> {
    pub seq: i64,
    pub source_type: &'a str,
    pub source_id: Option<&'a str>,
    pub tag: &'a str,
    pub time: i64,
    pub ip_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub additional: &'a str,
    pub prev_hash: &'a str,
}

/// SHA-256 over the fields, each length-prefixed so no two events can run together.
pub fn hash(c: &Content<'_>) -> String {
    let mut sha = Sha256::new();
    let mut field = |bytes: &[u8]| {
        sha.update((bytes.len() as u64).to_be_bytes());
        sha.update(bytes);
    };
    field(&c.seq.to_be_bytes());
    field(c.source_type.as_bytes());
    field(c.source_id.unwrap_or("\u{0}").as_bytes());
    field(c.tag.as_bytes());
    field(&c.time.to_be_bytes());
    field(c.ip_address.unwrap_or("\u{0}").as_bytes());
    field(c.user_agent.unwrap_or("\u{0}").as_bytes());
    field(c.additional.as_bytes());
    field(c.prev_hash.as_bytes());
    hex::encode(sha.finalize())
}

type EventRow = (
    i64,
    String,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<String>,
    String,
);

/// Where the chain starts: after the newest checkpoint, or at the beginning. Reads on the
/// caller's connection: the sealer holds the write lock and must not wait for another one.
async fn start(
    conn: &mut sqlx::AnyConnection,
    keys: &ServerKey,
) -> Result<(i64, String), ChainError> {
    let row: Option<(i64, String, i64, String)> = sqlx::query_as(
        "SELECT seq, hash, pruned_before, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    match row {
        None => Ok((0, GENESIS.to_owned())),
        Some((seq, hash, pruned_before, signature)) => {
            if !keys.check_tag(
                CHECKPOINT_PURPOSE,
                &checkpoint_text(seq, &hash, pruned_before),
                &signature,
            ) {
                return Err(ChainError::Broken(format!(
                    "the checkpoint at event {seq} is not signed by this server's key: it was altered"
                )));
            }
            Ok((seq, hash))
        }
    }
}

const CHECKPOINT_PURPOSE: &str = "audit-checkpoint";

fn checkpoint_text(seq: i64, hash: &str, pruned_before: i64) -> String {
    format!("{seq}:{hash}:{pruned_before}")
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{0}")]
    Broken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Seals every unsealed event, in id order. Returns how many it sealed.
pub async fn seal(db: &Db, keys: &ServerKey) -> Result<u64, ChainError> {
    let mut total = 0;
    loop {
        let sealed = seal_batch(db, keys).await?;
        total += sealed;
        if sealed < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// A write transaction in which no other process seals or prunes.
async fn sealing_transaction(db: &Db) -> Result<crate::db::Tx, sqlx::Error> {
    let mut tx = db.begin().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SEAL_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

async fn seal_batch(db: &Db, keys: &ServerKey) -> Result<u64, ChainError> {
    let mut tx = sealing_transaction(db).await?;
    let last: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, hash FROM events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (mut seq, mut prev) = match last {
        Some(last) => last,
        None => start(&mut tx, keys).await?,
    };
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, source_type, source_id, tag, time, ip_address, user_agent, additional \
         FROM events WHERE seq IS NULL ORDER BY id LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let count = rows.len() as u64;
    let mut sealed = Vec::with_capacity(rows.len());
    for (id, source_type, source_id, tag, time, ip, ua, additional) in rows {
        seq += 1;
        let hash = hash(&Content {
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
        sealed.push((id, seq, std::mem::replace(&mut prev, hash.clone()), hash));
    }
    if !sealed.is_empty() {
        // One statement for the batch: the write lock is held for as short a time as can be.
        let values: Vec<String> = (0..sealed.len())
            .map(|i| {
                format!(
                    "(${}, ${}, ${}, ${})",
                    4 * i + 1,
                    4 * i + 2,
                    4 * i + 3,
                    4 * i + 4
                )
            })
            .collect();
        let sql = format!(
            "WITH v(id, seq, prev_hash, hash) AS (VALUES {}) \
             UPDATE events SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash \
             FROM v WHERE events.id = v.id",
            values.join(", ")
        );
        // Not kept as a prepared statement: batches come in every size, and a cache of them
        // (per connection) grows to tens of megabytes.
        let mut update = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (id, seq, prev_hash, hash) in sealed {
            update = update.bind(id).bind(seq).bind(prev_hash).bind(hash);
        }
        update.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(count)
}

/// What `verify` found.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub checked: u64,
    /// The first problem, if any.
    pub problem: Option<String>,
}

/// Walks the sealed chain from its start and reports the first event that was altered,
/// removed or reordered.
pub async fn verify(db: &Db, keys: &ServerKey) -> Result<Report, ChainError> {
    let mut conn = db.pool().acquire().await?;
    let started = start(&mut conn, keys).await;
    drop(conn);
    let (start_seq, start_hash) = match started {
        Ok(start) => start,
        Err(ChainError::Broken(problem)) => {
            return Ok(Report {
                checked: 0,
                problem: Some(problem),
            });
        }
        Err(e) => return Err(e),
    };
    let mut rows = sqlx::query_as::<_, (i64, i64, String, Option<String>, String, i64, Option<String>, Option<String>, String, String, String)>(
        "SELECT seq, id, source_type, source_id, tag, time, ip_address, user_agent, additional, prev_hash, hash \
         FROM events WHERE seq IS NOT NULL ORDER BY seq",
    )
    .fetch(db.pool());
    let mut expected_seq = start_seq + 1;
    let mut prev = start_hash;
    let mut checked = 0;
    while let Some((
        seq,
        id,
        source_type,
        source_id,
        tag,
        time,
        ip,
        ua,
        additional,
        prev_hash,
        stored,
    )) = rows.try_next().await?
    {
        if seq < expected_seq {
            // Before the checkpoint: pruning left it behind; it is not part of the chain.
            continue;
        }
        let problem = if seq > expected_seq {
            Some(format!(
                "event {expected_seq} is missing: it was removed (the chain goes on at event {seq}, id {id})"
            ))
        } else if prev_hash != prev {
            Some(format!(
                "event {seq} (id {id}) does not follow event {}: events were removed or reordered",
                seq - 1
            ))
        } else {
            let computed = hash(&Content {
                seq,
                source_type: &source_type,
                source_id: source_id.as_deref(),
                tag: &tag,
                time,
                ip_address: ip.as_deref(),
                user_agent: ua.as_deref(),
                additional: &additional,
                prev_hash: &prev_hash,
            });
            (computed != stored).then(|| {
                format!(
                    "event {seq} (id {id}, {tag}) was altered: its content does not match its hash"
                )
            })
        };
        if problem.is_some() {
            return Ok(Report { checked, problem });
        }
        checked += 1;
        expected_seq += 1;
        prev = stored;
    }
    Ok(Report {
        checked,
        problem: None,
    })
}

/// Deletes sealed events older than `before` (micros), leaving a signed checkpoint of the last
/// one deleted so the chain stays verifiable. Returns how many were deleted.
pub async fn prune(db: &Db, keys: &ServerKey, before: i64, now: i64) -> Result<u64, ChainError> {
    seal(db, keys).await?;
    let mut tx = sealing_transaction(db).await?;
    // The chain is cut after the last event old enough whose predecessors all are too.
    let cut: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, hash FROM events WHERE seq IS NOT NULL AND seq < \
           COALESCE((SELECT MIN(seq) FROM events WHERE seq IS NOT NULL AND time >= $1), \
                    (SELECT MAX(seq) + 1 FROM events WHERE seq IS NOT NULL)) \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(before)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((seq, hash)) = cut else {
        return Ok(0);
    };
    let signature = keys.tag(CHECKPOINT_PURPOSE, &checkpoint_text(seq, &hash, before));
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, hash, pruned_before, created, signature) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(seq)
    .bind(&hash)
    .bind(before)
    .bind(now)
    .bind(signature)
    .execute(&mut *tx)
    .await?;
    let deleted = sqlx::query("DELETE FROM events WHERE seq IS NOT NULL AND seq <= $1")
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected())
}
