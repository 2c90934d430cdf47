//! What `serve` runs beside the requests: the cache refresher, token expiry notices, the
//! audit sealer and the blob purger. Each loops for the life of the process.

use std::time::Duration;

use crate::events::audit;
use crate::events::chain;
use crate::packaging::{self, blobs};
use crate::state::AppState;

/// Starts every background task of `serve`.
pub fn spawn_all(state: &AppState) {
    spawn_cache_refresher(state.clone());
    spawn_expiry_notices(state.clone());
    spawn_sealer(state.clone());
    spawn_purger(state.clone());
    let probing = state.clone();
    tokio::spawn(async move { probing.sso.probe(probing.clock.now_secs()).await });
}

/// Keeps this process's caches in step with writes made by other processes: polls the
/// journal's newest serial and drops the pages of the projects that changed.
pub fn spawn_cache_refresher(state: AppState) {
    let period = Duration::from_millis(state.settings.cache_refresh_ms.max(50));
    tokio::spawn(async move {
        match packaging::last_serial(&state.db).await {
            Ok(serial) => state.cache.set_seen_serial(serial),
            Err(e) => tracing::warn!(error = %e, "cannot read the journal"),
        }
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            if let Err(e) = state.token_cache.refresh(&state.db).await {
                tracing::warn!(error = %e, "cannot read the token revocations");
            }
            let seen = state.cache.seen_serial();
            let newest = match packaging::last_serial(&state.db).await {
                Ok(serial) => serial,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the journal");
                    continue;
                }
            };
            if newest <= seen {
                continue;
            }
            match packaging::changed_since(&state.db, seen).await {
                Ok(names) => {
                    for name in names {
                        let normalized = wharf_packaging::name::normalize(&name);
                        state.cache.invalidate_project(&normalized);
                        // A name that has become hosted is no longer the upstream's.
                        if let Some(proxy) = &state.proxy {
                            proxy.forget(&normalized);
                        }
                    }
                    state.cache.set_seen_serial(newest);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the journal"),
            }
        }
    });
}

/// Looks for expiring tokens every hour, in every process (a conditional update makes sure
/// each notice is sent once), and sweeps trusted publishing's used token ids.
pub fn spawn_expiry_notices(state: AppState) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(3600));
        loop {
            ticker.tick().await;
            if let Err(e) = crate::tokens::notify_expiring(&state).await {
                tracing::warn!(error = %e, "cannot send token expiry notices");
            }
            // Invitations past their 7 days: one `registration:invitation:expired` each.
            if let Err(e) =
                crate::accounts::invitations::expire_due(&state.db, state.clock.now_micros()).await
            {
                tracing::warn!(error = %e, "cannot expire invitations");
            }
            // Trusted publishing: used ID token ids past their expiry, expired upload tokens.
            if let Err(e) = crate::oidc::replay::sweep(&state.db, state.clock.now_micros()).await {
                tracing::warn!(error = %e, "cannot sweep trusted publishing's used token ids");
            }
        }
    });
}

/// Seals new events twice a second, writes a signed head now and then, and prunes once a day
/// when a retention is set.
pub fn spawn_sealer(state: AppState) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        let mut ticks: u64 = 0;
        let mut heads = audit::HeadWriter::default();
        loop {
            ticker.tick().await;
            match chain::seal(&state.db, &state.keys).await {
                Ok(_) => {
                    if let Err(e) = heads
                        .tick(
                            &state.db,
                            &state.keys,
                            &state.settings.data_dir,
                            state.clock.now_micros(),
                        )
                        .await
                    {
                        tracing::warn!(error = %e, "cannot write the audit head");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot seal audit events"),
            }
            ticks += 1;
            if let Some(days) = state.settings.audit_retention_days
                && ticks % (2 * 86_400) == 1
                && let Err(e) =
                    audit::prune(&state.db, &state.keys, state.clock.now_micros(), days).await
            {
                tracing::warn!(error = %e, "cannot prune audit events");
            }
        }
    });
}

/// Removes deleted files' blobs every few seconds, in every serving process.
pub fn spawn_purger(state: AppState) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticker.tick().await;
            if let Err(e) = blobs::purge_deleted(&state.db, &state.storage).await {
                tracing::warn!(error = %format!("{e:#}"), "cannot remove deleted files' blobs");
            }
        }
    });
}
