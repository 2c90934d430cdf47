//! The audit log's hash chain. Requests write events unsealed (no lock, no cost on the request
//! path); a sealer gives them their place (`seq`), the previous event's hash and their own hash,
//! in one transaction that only one process at a time may run (SQLite's write lock, a
//! PostgreSQL advisory lock), so concurrent writers from several processes still make one chain.
//! `verify` walks the chain and names the first event that was altered, removed or reordered.
//!
//! The hash is an HMAC under a key derived from the server key, so whoever can write to the
//! database but does not hold the key cannot recompute the chain after editing it. Removing the
//! newest events leaves a shorter chain that is still whole; the sealer therefore writes a signed
//! head (the newest place and hash) at an interval where the events' writers cannot reach: the
//! log output and a head file in the data directory, and a row for every process to see.
//! `verify` checks that the chain still reaches every head it is given or finds.

use std::path::Path;

use futures_util::TryStreamExt;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::EventRow;
use super::head::heads;
use crate::db::{Backend, Db};
use crate::signing::ServerKey;
// The signed head lives in `events::head`; callers reach the whole audit chain from here.
pub use super::head::{HEAD_FILE, Head, SignedHead, head_file, write_head};

type HmacSha256 = hmac::Hmac<Sha256>;

/// The hash before the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Any number will do, as long as only the sealer takes this PostgreSQL advisory lock.
const SEAL_LOCK: i64 = 0x7768_6172_6665_7631;
/// Events sealed per transaction: small, so the write lock (SQLite has one writer) is held for
/// a few milliseconds and requests never wait long behind the sealer.
const BATCH: i64 = 200;
/// The purposes of what the server key derives and signs here (never shared with other uses).
const CHAIN_PURPOSE: &str = "audit-chain";
const KEYED_PURPOSE: &str = "audit-keyed-from";

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

/// The fields, each length-prefixed so no two events can run together.
fn feed(c: &Content<'_>, mut update: impl FnMut(&[u8])) {
    let mut field = |bytes: &[u8]| {
        update(&(bytes.len() as u64).to_be_bytes());
        update(bytes);
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
}

/// Plain SHA-256 over the fields: the hash of events sealed before the chain was keyed (see
/// the migration `audit_keyed_chain`). Anyone can compute it; `verify` accepts it only up to
/// the signed place where the keyed chain begins.
pub fn unkeyed_hash(c: &Content<'_>) -> String {
    let mut sha = Sha256::new();
    feed(c, |bytes| sha.update(bytes));
    hex::encode(sha.finalize())
}

/// The chain's key: HMAC-SHA256 under a key the server key derives for this purpose only.
#[derive(Clone)]
pub struct ChainKey {
    mac: HmacSha256,
}

impl ChainKey {
    pub fn new(keys: &ServerKey) -> ChainKey {
        let mac = <HmacSha256 as KeyInit>::new_from_slice(&keys.derive(CHAIN_PURPOSE))
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        ChainKey { mac }
    }

    /// An event's hash. The keyed state is cloned, not rebuilt, so the key costs nothing per
    /// event (the sealer's and the verifier's speed stay those of plain SHA-256).
    pub fn hash(&self, c: &Content<'_>) -> String {
        let mut mac = self.mac.clone();
        feed(c, |bytes| mac.update(bytes));
        hex::encode(mac.finalize().into_bytes())
    }
}

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

/// Where the keyed chain begins: events up to `after_seq` were sealed before the chain was
/// keyed (see the migration `audit_keyed_chain`), and `hash` is the last one's, signed.
struct KeyedFrom {
    after_seq: i64,
    hash: Option<String>,
    signature: Option<String>,
}

async fn keyed_from(conn: &mut sqlx::AnyConnection) -> Result<Option<KeyedFrom>, sqlx::Error> {
    let row: Option<(i64, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT after_seq, hash, signature FROM audit_chain_keyed WHERE id = 1")
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(after_seq, hash, signature)| KeyedFrom {
        after_seq,
        hash,
        signature,
    }))
}

fn keyed_text(after_seq: i64, hash: &str) -> String {
    format!("{after_seq}:{hash}")
}

/// The first seal after the migration signs where the unkeyed part of the chain ends (the
/// chain's last event then). Only while nothing has been sealed after that place: a row that
/// someone with write access puts there later, to pass off a rewritten chain as unkeyed, is
/// never signed (and a rewrite that moved the place to the end would no longer reach the
/// heads written since, which hold keyed hashes).
async fn sign_keyed_from(
    conn: &mut sqlx::AnyConnection,
    keys: &ServerKey,
    last_seq: i64,
    last_hash: &str,
) -> Result<(), sqlx::Error> {
    let Some(keyed) = keyed_from(conn).await? else {
        return Ok(());
    };
    if keyed.signature.is_some() || keyed.after_seq != last_seq {
        return Ok(());
    }
    let signature = keys.tag(KEYED_PURPOSE, &keyed_text(last_seq, last_hash));
    sqlx::query("UPDATE audit_chain_keyed SET hash = $1, signature = $2 WHERE id = 1")
        .bind(last_hash)
        .bind(signature)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{0}")]
    Broken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// How many events wait for the sealer (`/metrics` shows it as the sealer's lag).
pub async fn unsealed_count(db: &Db) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE seq IS NULL")
        .fetch_one(db.pool())
        .await?;
    Ok(n)
}

/// Seals every unsealed event, in id order. Returns how many it sealed.
pub async fn seal(db: &Db, keys: &ServerKey) -> Result<u64, ChainError> {
    // Derived only when there is something to seal: the sealer looks twice a second, and
    // mostly finds nothing.
    let mut key = None;
    let mut total = 0;
    loop {
        let sealed = seal_batch(db, keys, &mut key).await?;
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

async fn seal_batch(
    db: &Db,
    keys: &ServerKey,
    key: &mut Option<ChainKey>,
) -> Result<u64, ChainError> {
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
    sign_keyed_from(&mut tx, keys, seq, &prev).await?;
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, seq, source_type, source_id, tag, time, ip_address, user_agent, additional, prev_hash, hash \
         FROM events WHERE seq IS NULL ORDER BY id LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let count = rows.len() as u64;
    let mut sealed = Vec::with_capacity(rows.len());
    for row in rows {
        let key = key.get_or_insert_with(|| ChainKey::new(keys));
        seq += 1;
        let hash = key.hash(&Content {
            seq,
            source_type: &row.source_type,
            source_id: row.source_id.as_deref(),
            tag: &row.tag,
            time: row.time,
            ip_address: row.ip_address.as_deref(),
            user_agent: row.user_agent.as_deref(),
            additional: &row.additional,
            prev_hash: &prev,
        });
        sealed.push((
            row.id,
            seq,
            std::mem::replace(&mut prev, hash.clone()),
            hash,
        ));
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
    /// The place of the first event that was altered, removed or reordered, when known.
    pub first_bad: Option<i64>,
}

impl Report {
    fn broken(checked: u64, first_bad: Option<i64>, problem: String) -> Report {
        Report {
            checked,
            problem: Some(problem),
            first_bad,
        }
    }
}

/// Walks the sealed chain from its start and reports the first event that was altered,
/// removed or reordered, and a missing tail: a chain that no longer reaches a head (the signed
/// head row, the head file in `data_dir`, or `given`, e.g. from the log output).
pub async fn verify(
    db: &Db,
    keys: &ServerKey,
    data_dir: &Path,
    given: Option<&Head>,
) -> Result<Report, ChainError> {
    let key = ChainKey::new(keys);
    let mut conn = db.pool().acquire().await?;
    let started = start(&mut conn, keys).await;
    let keyed = keyed_from(&mut conn).await?;
    drop(conn);
    let (start_seq, start_hash) = match started {
        Ok(start) => start,
        Err(ChainError::Broken(problem)) => return Ok(Report::broken(0, None, problem)),
        Err(e) => return Err(e),
    };
    // Events up to `unkeyed_end` carry plain SHA-256 hashes, and the last of them the signed
    // hash. Without the row (it is made by the migration) every event must be keyed.
    let (unkeyed_end, unkeyed_hash_at_end) = match keyed {
        Some(k) if k.after_seq > 0 => match (k.hash, k.signature) {
            (Some(hash), Some(signature))
                if keys.check_tag(KEYED_PURPOSE, &keyed_text(k.after_seq, &hash), &signature) =>
            {
                (k.after_seq, hash)
            }
            _ => {
                return Ok(Report::broken(
                    0,
                    Some(k.after_seq),
                    format!(
                        "the end of the chain's unkeyed part (event {}) is not signed by this server's key: it was altered",
                        k.after_seq
                    ),
                ));
            }
        },
        _ => (0, GENESIS.to_owned()),
    };
    let mut heads = match heads(db, keys, data_dir, given).await? {
        Ok(heads) => heads,
        Err(problem) => return Ok(Report::broken(0, None, problem)),
    };
    // A head at or before the start is checked against the checkpoint; pruning removed the rest.
    if let Some(expected) = heads.remove(&start_seq)
        && start_seq > 0
        && let Some((_, source)) = expected.iter().find(|(hash, _)| *hash != start_hash)
    {
        return Ok(Report::broken(
            0,
            Some(start_seq),
            format!(
                "the checkpoint at event {start_seq} does not match {source}: the log was rewritten"
            ),
        ));
    }
    heads.retain(|&seq, _| seq > start_seq);
    if unkeyed_end > 0 && unkeyed_end == start_seq && start_hash != unkeyed_hash_at_end {
        return Ok(Report::broken(
            0,
            Some(start_seq),
            format!(
                "the checkpoint at event {start_seq} does not match the signed end of the chain's unkeyed part: the log was rewritten"
            ),
        ));
    }
    let mut rows = sqlx::query_as::<_, EventRow>(
        "SELECT id, seq, source_type, source_id, tag, time, ip_address, user_agent, additional, prev_hash, hash \
         FROM events WHERE seq IS NOT NULL ORDER BY seq",
    )
    .fetch(db.pool());
    let mut expected_seq = start_seq + 1;
    let mut prev = start_hash;
    let mut checked = 0;
    while let Some(row) = rows.try_next().await? {
        let EventRow {
            id,
            seq: Some(seq),
            source_type,
            source_id,
            tag,
            time,
            ip_address: ip,
            user_agent: ua,
            additional,
            prev_hash,
            hash: stored,
        } = row
        else {
            continue; // Selected with `seq IS NOT NULL`.
        };
        if seq < expected_seq {
            // Before the checkpoint: pruning left it behind; it is not part of the chain.
            continue;
        }
        // A sealed event always has both hashes; one that lost either was altered.
        let (Some(prev_hash), Some(stored)) = (prev_hash, stored) else {
            return Ok(Report::broken(
                checked,
                Some(seq),
                format!("event {seq} (id {id}) was altered: its hash was removed"),
            ));
        };
        let problem = if seq > expected_seq {
            Some((
                expected_seq,
                format!(
                    "event {expected_seq} is missing: it was removed (the chain goes on at event {seq}, id {id})"
                ),
            ))
        } else if prev_hash != prev {
            Some((
                seq,
                format!(
                    "event {seq} (id {id}) does not follow event {}: events were removed or reordered",
                    seq - 1
                ),
            ))
        } else {
            let content = Content {
                seq,
                source_type: &source_type,
                source_id: source_id.as_deref(),
                tag: &tag,
                time,
                ip_address: ip.as_deref(),
                user_agent: ua.as_deref(),
                additional: &additional,
                prev_hash: &prev_hash,
            };
            let computed = if seq <= unkeyed_end {
                unkeyed_hash(&content)
            } else {
                key.hash(&content)
            };
            if computed != stored {
                Some((
                    seq,
                    format!(
                        "event {seq} (id {id}, {tag}) was altered: its content does not match its hash"
                    ),
                ))
            } else if seq == unkeyed_end && stored != unkeyed_hash_at_end {
                Some((
                    seq,
                    format!(
                        "event {seq} (id {id}) is not the signed end of the chain's unkeyed part: events up to it were rewritten"
                    ),
                ))
            } else {
                heads.remove(&seq).and_then(|expected| {
                    expected
                        .into_iter()
                        .find(|(hash, _)| *hash != stored)
                        .map(|(_, source)| {
                            (
                                seq,
                                format!(
                                    "event {seq} (id {id}) is not the one {source} names: the log was rewritten at or before event {seq}"
                                ),
                            )
                        })
                })
            }
        };
        if let Some((first_bad, problem)) = problem {
            return Ok(Report::broken(checked, Some(first_bad), problem));
        }
        checked += 1;
        expected_seq += 1;
        prev = stored;
    }
    // A head beyond the chain's end: its newest events were removed.
    if let Some((&seq, expected)) = heads.last_key_value() {
        let last = expected_seq - 1;
        let source = &expected[0].1;
        let removed = if seq == expected_seq {
            format!("event {seq} was removed")
        } else {
            format!("events {expected_seq} to {seq} were removed")
        };
        return Ok(Report::broken(
            checked,
            Some(expected_seq),
            format!(
                "event {expected_seq} is missing: the chain ends at event {last}, but {source} names event {seq} ({removed})"
            ),
        ));
    }
    Ok(Report {
        checked,
        problem: None,
        first_bad: None,
    })
}

/// Deletes sealed events older than `before` (micros), leaving a signed checkpoint of the last
/// one deleted so the chain stays verifiable. Returns how many were deleted.
pub async fn prune(
    db: &Db,
    keys: &ServerKey,
    before: i64,
    now_micros: i64,
) -> Result<u64, ChainError> {
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
    .bind(now_micros)
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
