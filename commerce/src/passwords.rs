//! Password hashing with argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes,
//! OWASP's recommended minimum). Hashing takes tens of milliseconds of CPU and 19 MiB of
//! memory: callers run it through a [`Hasher`], which runs at most a fixed number at once
//! off the async executor (200 concurrent failed logins had taken a node to 3.6 GB).

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// Why a password is not acceptable, if it is not.
pub fn weakness(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n < MIN_LEN {
        Some(format!("must be at least {MIN_LEN} characters"))
    } else if n > MAX_LEN {
        Some(format!("must be at most {MAX_LEN} characters"))
    } else {
        None
    }
}

/// The PHC string of an argon2id hash of `password` with a fresh salt.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// True when `password` matches `phc`. A malformed hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Runs password work, at most `concurrency` at once, each on a blocking thread.
pub struct Hasher {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
}

/// No hashing slot came free within the wait.
#[derive(Debug, thiserror::Error)]
#[error("password hashing is busy")]
pub struct Busy;

impl Hasher {
    pub fn new(concurrency: usize, wait: std::time::Duration) -> Self {
        Hasher {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
            wait,
        }
    }

    /// Runs `f` once a slot is free; [`Busy`] if none comes free within the wait.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        metrics::counter!("ecommesh_password_hashes_total").increment(1);
        let out = tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|_| Busy)?;
        Ok(out)
    }
}

/// A hash of a random password, verified against when the account does not exist, so
/// that a login for an unknown email takes as long as one with a wrong password.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(SaltString::generate(&mut OsRng).as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_argon2id_with_a_salt() {
        let h = hash("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsE", &h));
        assert_ne!(h, hash("correct horse"), "salted");
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn length_limits() {
        assert!(weakness("short").is_some());
        assert!(weakness(&"x".repeat(129)).is_some());
        assert!(weakness("long enough").is_none());
    }
}
