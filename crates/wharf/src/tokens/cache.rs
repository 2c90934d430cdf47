//! Token rows kept in memory, so authenticating an upload costs a parse, a hash-map lookup and
//! the HMAC chain, not a database round trip. Only what never changes about a token is kept
//! (its key, caveats, owner); a deleted token is dropped at once by the process that deletes
//! it, and by the others within `cache_refresh_ms` through the `token_revocations` log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use crate::accounts::User;
use crate::db::Db;

/// Enough for every token of a large index; past it, entries are dropped and reloaded.
const CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct TokenRow {
    pub user: User,
    pub description: String,
    pub key: Vec<u8>,
    pub stored_caveats: Vec<String>,
}

#[derive(Debug, Default)]
pub struct TokenCache {
    rows: RwLock<HashMap<String, Arc<TokenRow>>>,
    /// The newest revocation this process has applied.
    seen: AtomicI64,
}

impl TokenCache {
    pub fn get(&self, id: &str) -> Option<Arc<TokenRow>> {
        self.rows.read().ok()?.get(id).cloned()
    }

    pub fn insert(&self, id: &str, row: Arc<TokenRow>) {
        if let Ok(mut rows) = self.rows.write() {
            if rows.len() >= CAPACITY {
                rows.clear();
            }
            rows.insert(id.to_owned(), row);
        }
    }

    pub fn forget(&self, id: &str) {
        if let Ok(mut rows) = self.rows.write() {
            rows.remove(id);
        }
    }

    /// Applies the revocations logged since the last call (by any process).
    pub async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        let seen = self.seen.load(Ordering::Acquire);
        let revoked: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, macaroon_id FROM token_revocations WHERE id > $1 ORDER BY id",
        )
        .bind(seen)
        .fetch_all(db.pool())
        .await?;
        for (id, macaroon_id) in revoked {
            self.forget(&macaroon_id);
            self.seen.fetch_max(id, Ordering::AcqRel);
        }
        Ok(())
    }
}

/// Logs a deletion for the other processes (inside the deleting transaction).
pub async fn log_revocation(
    conn: &mut sqlx::AnyConnection,
    macaroon_id: &str,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO token_revocations (macaroon_id, at) VALUES ($1, $2)")
        .bind(macaroon_id)
        .bind(now_micros)
        .execute(conn)
        .await?;
    Ok(())
}
