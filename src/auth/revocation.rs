//! Whether an access token's session still stands, checked on every use.
//!
//! An access token names its session (`fam`). Logging out, or presenting a refresh token
//! that was already used (reuse detection), revokes the session entity; from then on its
//! access tokens are refused, not only its refresh tokens (before, they kept working
//! until they expired).
//!
//! The session entity is the truth; [`SessionGate`] caches its verdicts so that a request
//! costs a map lookup, not a shard round trip:
//! - every durable change of a session on this node reaches [`SessionGate::learn`] (the
//!   runtime's observer) before the command's caller is answered, so after a logout's 204
//!   the next request with its token is refused: on a single node, and in a cluster on the
//!   node that leads the session's shard;
//! - any other node trusts a cached "active" verdict for `active_ttl` only (2 s in a
//!   cluster), then reads the session again: the longest a revocation takes to reach
//!   every node;
//! - a session not in the cache is read from its entity. Any entry may be dropped (to
//!   bound memory): a miss reads the truth again, so forgetting is always safe.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ecommesh_commerce::session::SessionState;
use parking_lot::RwLock;

/// The most sessions remembered; past it the cache starts over (a miss only costs a read).
const MAX_CACHED: usize = 1_000_000;

#[derive(Debug, Clone)]
enum Verdict {
    /// Stands for `customer`, as of `at`.
    Active {
        customer: Box<str>,
        at: Instant,
    },
    /// Never started: the token was minted with the signing secret by a tool (the
    /// benchmark), not issued by a sign-in, so there is nothing to revoke and it stands
    /// on its signature alone, as every token did before sessions were checked (whoever
    /// holds the secret can mint any token anyway).
    Minted,
    Revoked,
}

pub struct SessionGate {
    verdicts: RwLock<HashMap<Box<str>, Verdict>>,
    /// Sessions being read again in the background (one read each at a time).
    refreshing: parking_lot::Mutex<std::collections::HashSet<Box<str>>>,
    /// How long an "active" verdict is trusted without hearing of a change.
    active_ttl: Duration,
}

/// What the gate knows of a token's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    Revoked,
    /// Not known (or not fresh): read the session.
    Unknown,
}

impl SessionGate {
    pub fn new(active_ttl: Duration) -> Self {
        SessionGate {
            verdicts: RwLock::new(HashMap::new()),
            refreshing: Default::default(),
            active_ttl,
        }
    }

    /// The standing of session `fam` for a token of `customer`.
    pub fn check(&self, fam: &str, customer: &str, now: Instant) -> Standing {
        match self.verdicts.read().get(fam) {
            Some(Verdict::Revoked) => Standing::Revoked,
            Some(Verdict::Minted) => Standing::Active,
            Some(Verdict::Active { customer: c, at })
                if now.duration_since(*at) < self.active_ttl =>
            {
                if &**c == customer {
                    Standing::Active
                } else {
                    Standing::Revoked
                }
            }
            _ => Standing::Unknown,
        }
    }

    /// The standing of session `fam` for `customer` when its entity cannot be read now
    /// (its shard between leaders): an "active" verdict younger than `grace` still
    /// counts, so a leader election does not sign everyone out; anything else does not.
    pub fn check_stale(&self, fam: &str, customer: &str, now: Instant, grace: Duration) -> bool {
        matches!(
            self.verdicts.read().get(fam),
            Some(Verdict::Active { customer: c, at })
                if &**c == customer && now.duration_since(*at) < grace
        )
    }

    /// True if the caller should read `fam` again (no other read of it is under way);
    /// it then calls [`SessionGate::end_refresh`].
    pub fn begin_refresh(&self, fam: &str) -> bool {
        let mut refreshing = self.refreshing.lock();
        if refreshing.len() >= MAX_CACHED {
            return false;
        }
        refreshing.insert(fam.into())
    }

    pub fn end_refresh(&self, fam: &str) {
        self.refreshing.lock().remove(fam);
    }

    /// Remembers what `state` says of session `fam` (a read of it, or a durable change).
    pub fn learn(&self, fam: &str, state: &SessionState, now_ms: u64, now: Instant) -> Standing {
        let verdict = if !state.started {
            Verdict::Minted
        } else if state.revoked.is_none() && now_ms < state.expires_at_ms {
            Verdict::Active {
                customer: state.customer_id.as_str().into(),
                at: now,
            }
        } else {
            Verdict::Revoked
        };
        let standing = match verdict {
            Verdict::Active { .. } | Verdict::Minted => Standing::Active,
            Verdict::Revoked => Standing::Revoked,
        };
        let mut verdicts = self.verdicts.write();
        if verdicts.len() >= MAX_CACHED && !verdicts.contains_key(fam) {
            verdicts.clear();
        }
        verdicts.insert(fam.into(), verdict);
        standing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(revoked: bool) -> SessionState {
        SessionState {
            started: true,
            customer_id: "u1".into(),
            current_token: "t".into(),
            expires_at_ms: u64::MAX,
            revoked: revoked.then(|| "logout".to_owned()),
        }
    }

    #[test]
    fn a_revocation_is_seen_at_once_and_an_active_verdict_only_for_its_ttl() {
        let gate = SessionGate::new(Duration::from_secs(2));
        let t0 = Instant::now();
        assert_eq!(gate.check("f", "u1", t0), Standing::Unknown);
        gate.learn("f", &state(false), 0, t0);
        assert_eq!(gate.check("f", "u1", t0), Standing::Active);
        assert_eq!(
            gate.check("f", "u2", t0),
            Standing::Revoked,
            "a token of another customer never passes"
        );
        assert_eq!(
            gate.check("f", "u1", t0 + Duration::from_secs(3)),
            Standing::Unknown,
            "a stale verdict is read again"
        );
        gate.learn("f", &state(true), 0, t0);
        assert_eq!(gate.check("f", "u1", t0), Standing::Revoked);
        // A session that was never started: a token minted with the secret, not issued.
        let never_started = SessionState::default();
        gate.learn("g", &never_started, 0, t0);
        assert_eq!(gate.check("g", "anyone", t0), Standing::Active);
        // A stale active verdict counts only within the grace, and only for its customer.
        gate.learn("h", &state(false), 0, t0);
        let later = t0 + Duration::from_secs(10);
        assert!(gate.check_stale("h", "u1", later, Duration::from_secs(60)));
        assert!(!gate.check_stale("h", "u2", later, Duration::from_secs(60)));
        assert!(!gate.check_stale("h", "u1", later, Duration::from_secs(5)));
    }
}
