//! Authentication and roles: accounts (the `Customer` entity), argon2id password hashes,
//! HS256 JWT access tokens, rotating refresh tokens with reuse detection (the `Session`
//! entity), login throttling, and the extractors that guard routes.

pub mod extract;
pub mod limiter;
pub mod passwords;
pub mod revocation;
pub mod routes;
pub mod tokens;

use sha2::{Digest, Sha256};

/// What the auth routes share.
pub struct Auth {
    pub tokens: tokens::Tokens,
    /// Attempts per (account, client address), counted before hashing.
    pub limiter: limiter::LoginLimiter,
    /// Every `/auth/*` request of one client address.
    pub buckets: limiter::AddressBuckets,
    pub hasher: passwords::Hasher,
    /// Whether an access token's session still stands.
    pub sessions: std::sync::Arc<revocation::SessionGate>,
}

/// The customer id of an email address. Deriving it makes the customer entity itself the
/// single writer that keeps emails unique: two registrations of one email meet in one
/// entity, and the second is refused. Emails are compared case-insensitively.
pub fn customer_id(email: &str) -> String {
    let digest = Sha256::digest(format!(
        "ecommesh-customer:{}",
        email.trim().to_ascii_lowercase()
    ));
    format!("u_{}", &hex::encode(digest)[..24])
}

#[cfg(test)]
mod tests {
    #[test]
    fn customer_ids_ignore_case_and_surrounding_space() {
        assert_eq!(
            super::customer_id("Ada@Example.com "),
            super::customer_id("ada@example.com")
        );
        assert_ne!(
            super::customer_id("ada@example.com"),
            super::customer_id("bob@example.com")
        );
        assert_eq!(super::customer_id("a@b.io").len(), 26);
    }
}
