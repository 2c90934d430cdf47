//! Password hashing: argon2id in PHC strings (`$argon2id$v=19$…`), the format passlib and
//! argon2-cffi also read.

use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};

/// How many argon2 computations this process has run: tests use it to prove that a path
/// (the token path) runs none.
static ARGON2_RUNS: AtomicU64 = AtomicU64::new(0);

pub fn argon2_runs() -> u64 {
    ARGON2_RUNS.load(Ordering::Relaxed)
}

pub fn hash_password(password: &str) -> String {
    ARGON2_RUNS.fetch_add(1, Ordering::Relaxed);
    // Only an OS random-number failure can make this fail; an empty hash then never verifies.
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h: PasswordHash| h.to_string())
        .unwrap_or_default()
}

/// Constant-time check; a malformed stored hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    ARGON2_RUNS.fetch_add(1, Ordering::Relaxed);
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_password("correct horse battery staple");
        let b = hash_password("correct horse battery staple");
        assert!(a.starts_with("$argon2id$v=19$"));
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse battery staple", &a));
        assert!(!verify_password("wrong", &a));
        assert!(!verify_password("x", "not a hash"));
    }
}
