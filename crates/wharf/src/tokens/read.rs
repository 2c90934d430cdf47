//! Reading a private index with a token (`read_access = "users"`): the read check, which
//! returns the window a pass may be remembered for, and the throttled `last_used` write.

use wharf_macaroon::{Caveat, Context};

use super::cache::ReadWindow;
use super::{PresentedToken, Rejection};
use crate::db::Db;

impl PresentedToken {
    /// Checks the token for a read of the index at `now_secs`: the signature chain, the
    /// expiry and user caveats (presented and stored). Project caveats do not limit reads:
    /// every account may read the whole index, and PyPI's project scopes are about uploads.
    /// Returns the window the token is valid in, so the check need not be repeated inside it.
    pub fn verify_read(&self, now_secs: i64) -> Result<ReadWindow, Rejection> {
        self.check_signature()?;
        let mut window = ReadWindow {
            not_before: i64::MIN,
            expires_at: i64::MAX,
        };
        let context = Context {
            now: now_secs,
            user_id: &self.row.user.id,
            project: None,
            publisher: None,
        };
        let presented = self.macaroon.caveats().iter().map(|c| c.as_slice());
        let stored = self.row.stored_caveats.iter().map(|c| c.as_bytes());
        for raw in presented.chain(stored) {
            let checked = match Caveat::parse(raw).map_err(Rejection::Invalid)? {
                Caveat::ProjectName(_) | Caveat::ProjectId(_) => Ok(()),
                Caveat::Expiration {
                    expires_at,
                    not_before,
                } => {
                    window.not_before = window.not_before.max(not_before);
                    window.expires_at = window.expires_at.min(expires_at);
                    Caveat::Expiration {
                        expires_at,
                        not_before,
                    }
                    .check(&context)
                }
                caveat => caveat.check(&context),
            };
            checked.map_err(Rejection::Invalid)?;
        }
        Ok(window)
    }
}

/// Records that a token was used for reading: its `last_used`, nothing else (reads record no
/// event; the caller writes this at most once a minute per token).
pub async fn mark_used(db: &Db, token_id: &str, now_micros: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE macaroons SET last_used = $1 WHERE id = $2 AND (last_used IS NULL OR last_used < $1)")
        .bind(now_micros)
        .bind(token_id)
        .execute(db.pool())
        .await?;
    Ok(())
}
