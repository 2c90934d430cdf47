//! Rate limits held in the database, so they hold across every process of a deployment.
//! A moving window, as warehouse's `limits`: each counted attempt is a row, and a key is
//! limited while its window holds `max` rows. Only failures and costly requests are counted
//! (`spec/warehouse-security.md` §6). An attempt is reserved before its work is done
//! (`Limit::reserve`), so parallel requests cannot all pass a check made before any counted.

use crate::db::{Backend, Db};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub bucket: &'static str,
    pub max: i64,
    pub window_secs: i64,
}

/// Failed sign-ins per account.
pub const LOGIN_USER: Limit = Limit {
    bucket: "login.user",
    max: 10,
    window_secs: 300,
};
/// Failed sign-ins per IP address.
pub const LOGIN_IP: Limit = Limit {
    bucket: "login.ip",
    max: 10,
    window_secs: 300,
};
/// Password-reset e-mails per account.
pub const PASSWORD_RESET: Limit = Limit {
    bucket: "password.reset",
    max: 5,
    window_secs: 86_400,
};
/// Verification e-mails per account (registration and re-sends).
pub const EMAIL_VERIFY: Limit = Limit {
    bucket: "email.verify",
    max: 3,
    window_secs: 6 * 3600,
};
/// Addresses added per IP address.
pub const EMAIL_ADD: Limit = Limit {
    bucket: "email.add",
    max: 2,
    window_secs: 86_400,
};
/// Accounts registered per IP address (warehouse uses a captcha; we count).
pub const REGISTER_IP: Limit = Limit {
    bucket: "register.ip",
    max: 10,
    window_secs: 3600,
};
/// Failed trusted publishing exchanges (`/_/oidc/mint-token`) per IP address: each may cost a
/// fetch of an issuer's keys and a few queries. CI runners share addresses, so it is generous.
pub const OIDC_MINT_IP: Limit = Limit {
    bucket: "oidc.mint.ip",
    max: 60,
    window_secs: 600,
};

/// Refusals of anonymous visitors, logged once per IP address per 10 minutes with the count
/// of the others (a locked-out script would otherwise write an event per request).
pub const ANONYMOUS_REFUSALS: Coalesce = Coalesce {
    logged: Limit {
        bucket: "refused.anonymous.logged",
        max: 1,
        window_secs: 600,
    },
    suppressed: Limit {
        bucket: "refused.anonymous.suppressed",
        max: i64::MAX,
        window_secs: 86_400 * 30,
    },
};

/// A refusal: the key may try again after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: i64,
}

/// One attempt counted in a window before its work was done. It stays counted (a failure)
/// unless `release`d (a success, where only failures count).
#[must_use = "a reservation stays counted unless it is released"]
#[derive(Debug)]
pub struct Reservation {
    id: i64,
}

impl Reservation {
    /// Uncounts the attempt.
    pub async fn release(self, db: &Db) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM rate_limit_hits WHERE id = $1")
            .bind(self.id)
            .execute(db.pool())
            .await?;
        Ok(())
    }
}

impl Limit {
    /// Counts one attempt for `key` at `now_secs` unless its window is full, in
    /// one transaction that no other reservation of the same key can interleave with: the
    /// hit row is inserted, the window counted, and the row removed again when it is over the
    /// limit. So of any number of parallel attempts at most `max` get a reservation, and only
    /// those should do the work (argon2, a TOTP check) the limit protects.
    pub async fn reserve(
        &self,
        db: &Db,
        key: &str,
        now_secs: i64,
    ) -> Result<Result<Reservation, Limited>, sqlx::Error> {
        let since = (now_secs - self.window_secs) * 1_000_000;
        // SQLite: `begin` is BEGIN IMMEDIATE, the database's write lock, so reservations queue.
        let mut tx = db.begin().await?;
        if db.backend() == Backend::Postgres {
            // PostgreSQL: a lock per (bucket, key) until commit; under READ COMMITTED each
            // later statement sees the rows of the reservations that held it before.
            sqlx::query(
                "SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))) AS l",
            )
            .bind(self.bucket)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        }
        // This key's attempts that left the window are forgotten.
        sqlx::query("DELETE FROM rate_limit_hits WHERE bucket = $1 AND key = $2 AND at <= $3")
            .bind(self.bucket)
            .bind(key)
            .bind(since)
            .execute(&mut *tx)
            .await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO rate_limit_hits (bucket, key, at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(self.bucket)
        .bind(key)
        .bind(now_secs * 1_000_000)
        .fetch_one(&mut *tx)
        .await?;
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(at) FROM rate_limit_hits WHERE bucket = $1 AND key = $2 AND at > $3",
        )
        .bind(self.bucket)
        .bind(key)
        .bind(since)
        .fetch_one(&mut *tx)
        .await?;
        if count <= self.max {
            tx.commit().await?;
            return Ok(Ok(Reservation { id }));
        }
        sqlx::query("DELETE FROM rate_limit_hits WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // The window frees a slot when its oldest hit leaves it.
        let oldest_secs = oldest.unwrap_or(now_secs * 1_000_000).div_euclid(1_000_000);
        Ok(Err(Limited {
            retry_after_secs: (oldest_secs + self.window_secs - now_secs).max(1),
        }))
    }

    /// Counts one attempt whose work is already done (nothing to protect, only to count).
    pub async fn hit(&self, db: &Db, key: &str, now_secs: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM rate_limit_hits WHERE bucket = $1 AND key = $2 AND at <= $3")
            .bind(self.bucket)
            .bind(key)
            .bind((now_secs - self.window_secs) * 1_000_000)
            .execute(db.pool())
            .await?;
        sqlx::query("INSERT INTO rate_limit_hits (bucket, key, at) VALUES ($1, $2, $3)")
            .bind(self.bucket)
            .bind(key)
            .bind(now_secs * 1_000_000)
            .execute(db.pool())
            .await?;
        Ok(())
    }

    /// How many hits the key has in the window, forgetting them.
    pub async fn take_count(&self, db: &Db, key: &str, now_secs: i64) -> Result<i64, sqlx::Error> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM rate_limit_hits WHERE bucket = $1 AND key = $2 AND at > $3",
        )
        .bind(self.bucket)
        .bind(key)
        .bind((now_secs - self.window_secs) * 1_000_000)
        .fetch_one(db.pool())
        .await?;
        self.clear(db, key).await?;
        Ok(count)
    }

    /// Forgets the key's attempts (a successful sign-in clears its failures).
    pub async fn clear(&self, db: &Db, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM rate_limit_hits WHERE bucket = $1 AND key = $2")
            .bind(self.bucket)
            .bind(key)
            .execute(db.pool())
            .await?;
        Ok(())
    }
}

/// Coalesces a flood of like events: the first per key and window is logged, the others
/// are only counted and reported with the next one logged (warehouse#6447), so that no one
/// can fill a log by repeating a failure.
#[derive(Clone, Copy, Debug)]
pub struct Coalesce {
    /// At most one logged event per key in this window.
    pub logged: Limit,
    /// The events not logged, counted until the next one is.
    pub suppressed: Limit,
}

/// This process's first level of coalescing: for each (bucket, key) whose logged event is
/// known to be recent, until when, and how many like events it has counted since without
/// writing them. They are added to the count reported with the next event this process
/// logs for the key (a flood from one client costs one write per window, not one per
/// request; like events another process logs next are reported without this one's count).
#[derive(Debug, Default)]
pub struct Coalesced {
    keys: std::sync::Mutex<std::collections::HashMap<CoalescedKey, CoalescedState>>,
}

/// (bucket, key).
type CoalescedKey = (&'static str, String);
/// (recent until, in unix seconds; like events counted in memory since).
type CoalescedState = (i64, i64);

/// Keys remembered by a process before it starts afresh (each forgotten count is at most
/// one window's worth of events that were not logged anyway).
const COALESCED_MAX: usize = 10_000;

impl Coalesced {
    /// Counts the event in memory when its key's logged event is recent; false otherwise.
    fn count(&self, bucket: &'static str, key: &str, now_secs: i64) -> bool {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match keys.get_mut(&(bucket, key.to_owned())) {
            Some((until, pending)) if now_secs < *until => {
                *pending += 1;
                true
            }
            _ => false,
        }
    }

    fn add(&self, bucket: &'static str, key: &str, events: i64) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, pending)) = keys.get_mut(&(bucket, key.to_owned())) {
            *pending += events;
        }
    }

    /// Remembers that the key's logged event is recent until `until`; returns the events
    /// counted in memory before.
    fn settle(&self, bucket: &'static str, key: &str, until: i64) -> i64 {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= COALESCED_MAX {
            keys.clear();
        }
        keys.insert((bucket, key.to_owned()), (until, 0))
            .map_or(0, |(_, pending)| pending)
    }
}

impl Coalesce {
    /// `Some(n)` when this event is to be logged, `n` like ones having been left out since
    /// the last; `None` when it was only counted.
    pub async fn admit(
        &self,
        db: &Db,
        key: &str,
        now_secs: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let bucket = self.logged.bucket;
        if db.coalesced.count(bucket, key, now_secs) {
            return Ok(None);
        }
        match self.logged.reserve(db, key, now_secs).await? {
            Ok(_logged) => {
                let written = self.suppressed.take_count(db, key, now_secs).await?;
                let until = now_secs + self.logged.window_secs;
                Ok(Some(written + db.coalesced.settle(bucket, key, until)))
            }
            Err(limited) => {
                // Another process logged it: this one counts in memory until that window
                // ends, keeping what it counted before for the next event it logs.
                self.suppressed.hit(db, key, now_secs).await?;
                let until = now_secs + limited.retry_after_secs;
                let pending = db.coalesced.settle(bucket, key, until);
                db.coalesced.add(bucket, key, pending);
                Ok(None)
            }
        }
    }
}

/// "5 minutes", "1 hour", "3 hours": how long a person must wait.
pub fn humanize(secs: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs < 60 {
        plural(secs.max(1), "second")
    } else if secs < 3600 {
        plural((secs + 59) / 60, "minute")
    } else {
        plural((secs + 3599) / 3600, "hour")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizes_waits() {
        assert_eq!(humanize(1), "1 second");
        assert_eq!(humanize(61), "2 minutes");
        assert_eq!(humanize(300), "5 minutes");
        assert_eq!(humanize(3600), "1 hour");
        assert_eq!(humanize(7201), "3 hours");
    }
}
