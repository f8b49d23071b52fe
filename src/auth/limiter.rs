//! Slows down password guessing: after `max_failures` failed logins for one account
//! within `lockout`, further attempts are refused (429) until `lockout` has passed since
//! the last failure. Kept in memory per node, bounded in size.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The most accounts tracked at once; beyond it the stalest entries are dropped.
const MAX_TRACKED: usize = 100_000;

struct Failures {
    count: u32,
    last: Instant,
}

pub struct LoginLimiter {
    max_failures: u32,
    lockout: Duration,
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        LoginLimiter {
            max_failures,
            lockout,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(retry_after)` while the account is locked.
    pub fn locked(&self, account: &str, now: Instant) -> Option<Duration> {
        let map = self.failures.lock();
        let f = map.get(account)?;
        let until = f.last + self.lockout;
        (f.count >= self.max_failures && until > now).then(|| until - now)
    }

    pub fn failed(&self, account: &str, now: Instant) {
        let mut map = self.failures.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(account) {
            let lockout = self.lockout;
            map.retain(|_, f| now.duration_since(f.last) < lockout);
        }
        let f = map.entry(account.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(f.last) >= self.lockout {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
    }

    pub fn succeeded(&self, account: &str) {
        self.failures.lock().remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_unlocks_after_the_lockout() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l.locked("a", t0).is_none(), "locked after {i}");
            l.failed("a", t0);
        }
        assert!(l.locked("a", t0 + Duration::from_secs(1)).is_some());
        assert!(
            l.locked("b", t0).is_none(),
            "other accounts are not affected"
        );
        assert!(l.locked("a", t0 + Duration::from_secs(61)).is_none());
        l.succeeded("a");
        assert!(l.locked("a", t0 + Duration::from_secs(1)).is_none());
    }
}
