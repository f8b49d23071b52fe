//! Authentication and roles: accounts (the `Customer` entity), argon2id password hashes,
//! HS256 JWT access tokens, rotating refresh tokens with reuse detection (the `Session`
//! entity), login throttling, and the extractors that guard routes.

pub mod extract;
pub mod limiter;
pub mod revocation;
pub mod tokens;

/// What the auth routes share.
pub struct Auth {
    pub tokens: tokens::Tokens,
    /// Attempts per (account, client address), counted before hashing.
    pub limiter: limiter::LoginLimiter,
    /// Every `/auth/*` request of one client address.
    pub buckets: limiter::AddressBuckets,
    pub hasher: ecommesh_commerce::passwords::Hasher,
    /// Whether an access token's session still stands.
    pub sessions: std::sync::Arc<revocation::SessionGate>,
}
