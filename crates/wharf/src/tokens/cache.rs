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
    /// Bumped by every `forget`, under the `rows` lock.
    forgotten: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    pub fn get(&self, id: &str) -> Option<Arc<TokenRow>> {
        self.rows.read().ok()?.get(id).cloned()
    }

    /// How many tokens this process has forgotten: read before a token's row is looked up,
    /// so a row read before a revocation is never cached after it (see `insert`).
    pub fn epoch(&self) -> u64 {
        self.forgotten.load(Ordering::SeqCst)
    }

    /// Caches a token's row read from the database when the lookup began at `epoch`, unless a
    /// token was forgotten since (the row may predate a deletion or a disabled account).
    /// The `rows` lock is released before the read passes are touched: `remember_read` takes
    /// the two locks in the other order.
    pub fn insert(&self, id: &str, row: Arc<TokenRow>, epoch: u64) {
        let (cleared, replaced) = match self.rows.write() {
            Ok(mut rows) => {
                if self.forgotten.load(Ordering::SeqCst) != epoch {
                    return;
                }
                let cleared = rows.len() >= CAPACITY;
                if cleared {
                    rows.clear();
                }
                (cleared, rows.insert(id.to_owned(), row).is_some())
            }
            Err(_) => return,
        };
        if cleared {
            self.drop_reads(|_| true);
        } else if replaced {
            self.drop_reads(|pass| &*pass.token_id == id);
        }
    }

    pub fn forget(&self, id: &str) {
        if let Ok(mut rows) = self.rows.write() {
            rows.remove(id);
            self.forgotten.fetch_add(1, Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Arc<TokenRow> {
        Arc::new(TokenRow {
            user: User {
                id: "u".into(),
                username: "alice".into(),
                is_admin: false,
                is_active: true,
            },
            description: "t".into(),
            key: vec![0; 32],
            stored_caveats: Vec::new(),
            read_only: false,
        })
    }

    #[test]
    fn a_row_read_before_a_revocation_is_not_cached_after_it() {
        let cache = TokenCache::default();
        let epoch = cache.epoch();
        cache.insert("a", row(), epoch);
        assert!(cache.get("a").is_some());
        // A lookup of "b" began, then some token was forgotten (a disabled account's, say):
        // the row it read may be stale, so it is not kept.
        let before = cache.epoch();
        cache.forget("a");
        cache.insert("b", row(), before);
        assert!(cache.get("b").is_none());
        cache.insert("b", row(), cache.epoch());
        assert!(cache.get("b").is_some());
    }

    #[test]
    fn replacing_a_row_drops_its_read_passes_without_deadlock() {
        let cache = Arc::new(TokenCache::default());
        let window = ReadWindow {
            not_before: i64::MIN,
            expires_at: i64::MAX,
        };
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let r = row();
                        cache.insert("a", r.clone(), cache.epoch());
                        if i % 2 == 0 {
                            cache.remember_read("pypi-x", "a", r, window);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic, no deadlock");
        }
    }
}
