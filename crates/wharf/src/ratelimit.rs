//! Rate limits held in the database, so they hold across every process of a deployment.
//! A moving window, as warehouse's `limits`: each counted attempt is a row, and a key is
//! limited while its window holds `max` rows. Only failures and costly requests are counted
//! (`spec/warehouse-security.md` §6).

use crate::db::Db;

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

/// A refusal: the key may try again after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: i64,
}

impl Limit {
    /// `Err` when the key has used up its window at `now` (unix seconds).
    pub async fn check(
        &self,
        db: &Db,
        key: &str,
        now: i64,
    ) -> Result<Result<(), Limited>, sqlx::Error> {
        let since = (now - self.window_secs) * 1_000_000;
        let row: (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(at) FROM rate_limit_hits WHERE bucket = $1 AND key = $2 AND at > $3",
        )
        .bind(self.bucket)
        .bind(key)
        .bind(since)
        .fetch_one(db.pool())
        .await?;
        let (count, oldest) = row;
        if count < self.max {
            return Ok(Ok(()));
        }
        // The window frees a slot when its oldest hit leaves it.
        let oldest_secs = oldest.unwrap_or(now * 1_000_000).div_euclid(1_000_000);
        Ok(Err(Limited {
            retry_after_secs: (oldest_secs + self.window_secs - now).max(1),
        }))
    }

    /// Counts one attempt, and forgets this key's attempts that left the window.
    pub async fn hit(&self, db: &Db, key: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM rate_limit_hits WHERE bucket = $1 AND key = $2 AND at <= $3")
            .bind(self.bucket)
            .bind(key)
            .bind((now - self.window_secs) * 1_000_000)
            .execute(db.pool())
            .await?;
        sqlx::query("INSERT INTO rate_limit_hits (bucket, key, at) VALUES ($1, $2, $3)")
            .bind(self.bucket)
            .bind(key)
            .bind(now * 1_000_000)
            .execute(db.pool())
            .await?;
        Ok(())
    }

    /// How many hits the key has in the window, forgetting them.
    pub async fn take_count(&self, db: &Db, key: &str, now: i64) -> Result<i64, sqlx::Error> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM rate_limit_hits WHERE bucket = $1 AND key = $2 AND at > $3",
        )
        .bind(self.bucket)
        .bind(key)
        .bind((now - self.window_secs) * 1_000_000)
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
