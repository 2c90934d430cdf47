//! Token rows kept in memory, so authenticating an upload costs a parse, a hash-map lookup and
//! the HMAC chain, not a database round trip. Only what never changes about a token is kept
//! (its key, caveats, owner); a deleted token is dropped at once by the process that deletes
//! it, and by the others within `cache_refresh_ms` through the `token_revocations` log.
//!
//! Reads of a private index (`read_access = "users"`) go one step further: a token string that
//! passed the read check is remembered with the window its caveats allow ([`ReadPass`]), so
//! each later read costs one hash-map lookup. Passes go with their token's row.

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
    pub read_only: bool,
}

/// When a token's caveats let it be used: `not_before <= now < expires_at` (unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadWindow {
    pub not_before: i64,
    pub expires_at: i64,
}

/// A token string that passed the read check.
#[derive(Debug)]
pub struct ReadPass {
    pub token_id: Box<str>,
    pub row: Arc<TokenRow>,
    pub window: ReadWindow,
    /// When this process last wrote the token's `last_used` for a read (unix seconds).
    last_marked_secs: AtomicI64,
}

/// A token's `last_used` is written for reads at most this often (per process).
const MARK_USED_EVERY_SECS: i64 = 60;

impl ReadPass {
    pub fn is_valid_at(&self, now_secs: i64) -> bool {
        self.row.user.is_active
            && self.window.not_before <= now_secs
            && now_secs < self.window.expires_at
    }

    /// Whether this read should write `last_used`: the first one, then once a minute.
    pub fn claim_mark_used(&self, now_secs: i64) -> bool {
        let last = self.last_marked_secs.load(Ordering::Relaxed);
        now_secs.saturating_sub(last) >= MARK_USED_EVERY_SECS
            && self
                .last_marked_secs
                .compare_exchange(last, now_secs, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}

#[derive(Debug, Default)]
pub struct TokenCache {
    rows: RwLock<HashMap<String, Arc<TokenRow>>>,
    /// Token strings that passed the read check, by the string itself.
    reads: RwLock<HashMap<Box<str>, Arc<ReadPass>>>,
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
                self.drop_reads(|_| true);
            }
            if rows.insert(id.to_owned(), row).is_some() {
                self.drop_reads(|pass| &*pass.token_id == id);
            }
        }
    }

    pub fn forget(&self, id: &str) {
        if let Ok(mut rows) = self.rows.write() {
            rows.remove(id);
        }
        self.drop_reads(|pass| &*pass.token_id == id);
    }

    /// The pass of a token string that passed the read check, while its row is cached.
    pub fn read_pass(&self, token: &str) -> Option<Arc<ReadPass>> {
        self.reads.read().ok()?.get(token).cloned()
    }

    /// Remembers that `token` passed the read check against `row` (the cached row of its id).
    pub fn remember_read(
        &self,
        token: &str,
        token_id: &str,
        row: Arc<TokenRow>,
        window: ReadWindow,
    ) {
        if let Ok(mut reads) = self.reads.write() {
            // Only while the row is still the cached one, checked under the lock that
            // `forget` takes after dropping the row: a token deleted meanwhile stays out.
            if !self.get(token_id).is_some_and(|r| Arc::ptr_eq(&r, &row)) {
                return;
            }
            if reads.len() >= CAPACITY {
                reads.clear();
            }
            reads.insert(
                token.into(),
                Arc::new(ReadPass {
                    token_id: token_id.into(),
                    row,
                    window,
                    last_marked_secs: AtomicI64::new(i64::MIN),
                }),
            );
        }
    }

    fn drop_reads(&self, dropped: impl Fn(&ReadPass) -> bool) {
        if let Ok(mut reads) = self.reads.write() {
            reads.retain(|_, pass| !dropped(pass));
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
