//! Password hashing: argon2id in PHC strings (`$argon2id$v=19$…`), the format passlib and
//! argon2-cffi also read.
//!
//! Each computation takes tens of milliseconds of CPU, so it runs on tokio's blocking pool,
//! never on a runtime worker, and at most one per core at a time: parallel guesses queue
//! for a permit instead of stalling every other request.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use tokio::sync::Semaphore;

/// How many argon2 computations this process has run: tests use it to prove that a path
/// (the token path) runs none.
static ARGON2_RUNS: AtomicU64 = AtomicU64::new(0);
/// Computations running now, and the most that ever ran at once.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

static PERMITS: LazyLock<usize> = LazyLock::new(|| {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
});
static SEMAPHORE: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(*PERMITS));

pub fn argon2_runs() -> u64 {
    ARGON2_RUNS.load(Ordering::Relaxed)
}

/// How many computations may run at once (the number of cores).
pub fn argon2_permits() -> usize {
    *PERMITS
}

/// The most computations that ran at once in this process.
pub fn argon2_peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Runs one argon2 computation on the blocking pool, under a permit.
async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    // The semaphore is never closed, so acquiring only waits.
    let _permit = SEMAPHORE.acquire().await.expect("never closed");
    ARGON2_RUNS.fetch_add(1, Ordering::Relaxed);
    let running = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(running, Ordering::SeqCst);
    let result = tokio::task::spawn_blocking(work).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    match result {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

pub async fn hash_password(password: &str) -> String {
    let password = password.to_owned();
    // Only an OS random-number failure can make this fail; an empty hash then never verifies.
    run(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h: PasswordHash| h.to_string())
            .unwrap_or_default()
    })
    .await
}

/// Constant-time check; a malformed stored hash never matches.
pub async fn verify_password(password: &str, stored: &str) -> bool {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    run(move || {
        PasswordHash::new(&stored).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash_password("correct horse battery staple").await;
        let b = hash_password("correct horse battery staple").await;
        assert!(a.starts_with("$argon2id$v=19$"));
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse battery staple", &a).await);
        assert!(!verify_password("wrong", &a).await);
        assert!(!verify_password("x", "not a hash").await);
    }
}
