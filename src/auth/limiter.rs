//! Slows down password guessing without handing the attacker a way to lock the owner out.
//!
//! - [`LoginLimiter`]: per (account, client address), the first `free_attempts` attempts
//!   pass, then each further one must wait twice as long as the last (1 s, 2 s, 4 s, ...
//!   up to `max_backoff`). An attempt is counted *before* its password is hashed, under
//!   one lock, so concurrent guesses cannot all slip past the check; a success clears its
//!   key. The owner signs in from their own address, whose count the attacker's guesses
//!   do not touch (the old per-account lockout let five wrong passwords lock the real
//!   admin out for 15 minutes).
//! - [`AddressBuckets`]: a token bucket per client address over every `/auth/*` request
//!   (429), so one address cannot spray guesses over many accounts or hash at will.
//!
//! Both are per node and in memory, bounded in size: past their capacity, entries that no
//! longer hold anything back are dropped first, then the stalest.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The most keys each table tracks at once.
const MAX_TRACKED: usize = 100_000;

/// Keeps `map` under [`MAX_TRACKED`] before a new key goes in: first drops what `idle`
/// says holds nothing back, then, if still full, the half least recently seen.
fn make_room<K: Eq + Hash + Clone, V>(
    map: &mut HashMap<K, V>,
    idle: impl Fn(&V) -> bool,
    seen: impl Fn(&V) -> Instant,
) {
    if map.len() < MAX_TRACKED {
        return;
    }
    map.retain(|_, v| !idle(v));
    if map.len() >= MAX_TRACKED {
        let mut ages: Vec<Instant> = map.values().map(&seen).collect();
        ages.sort_unstable();
        let cut = ages[ages.len() / 2];
        map.retain(|_, v| seen(v) > cut);
    }
}

struct Attempts {
    count: u32,
    /// No attempt of this key is taken before this.
    next: Instant,
    last: Instant,
}

pub struct LoginLimiter {
    free_attempts: u32,
    max_backoff: Duration,
    attempts: Mutex<HashMap<(String, IpAddr), Attempts>>,
}

impl LoginLimiter {
    pub fn new(free_attempts: u32, max_backoff: Duration) -> Self {
        LoginLimiter {
            free_attempts,
            max_backoff,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    fn backoff(&self, count: u32) -> Duration {
        match count.checked_sub(self.free_attempts) {
            None => Duration::ZERO,
            Some(over) => Duration::from_secs(1u64 << over.min(30)).min(self.max_backoff),
        }
    }

    /// Counts an attempt of `account` from `ip`, as a failure until [`Self::succeeded`]
    /// says otherwise; `Err(retry_after)` if this key must wait first.
    pub fn attempt(&self, account: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut map = self.attempts.lock();
        let key = (account.to_owned(), ip);
        if !map.contains_key(&key) {
            let max_backoff = self.max_backoff;
            make_room(
                &mut map,
                |a| now.duration_since(a.last) >= max_backoff && a.next <= now,
                |a| a.last,
            );
        }
        let a = map.entry(key).or_insert(Attempts {
            count: 0,
            next: now,
            last: now,
        });
        if a.next > now {
            return Err(a.next - now);
        }
        // A key quiet for the longest backoff starts again.
        if now.duration_since(a.last) >= self.max_backoff {
            a.count = 0;
        }
        a.count += 1;
        a.last = now;
        a.next = now + self.backoff(a.count);
        Ok(())
    }

    /// The attempt could not be checked (no hashing slot came free): it does not count.
    pub fn uncount(&self, account: &str, ip: IpAddr) {
        if let Some(a) = self.attempts.lock().get_mut(&(account.to_owned(), ip)) {
            a.count = a.count.saturating_sub(1);
            a.next = a.last + self.backoff(a.count);
        }
    }

    /// The attempt was right: this key starts again from nothing.
    pub fn succeeded(&self, account: &str, ip: IpAddr) {
        self.attempts.lock().remove(&(account.to_owned(), ip));
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per client address: `burst` requests at once, refilled at `per_minute`.
pub struct AddressBuckets {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AddressBuckets {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        AddressBuckets {
            per_minute: per_minute as f64,
            burst: burst as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request's token for `ip`; `Err(retry_after)` when there is none.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let (rate, burst) = (self.per_minute / 60.0, self.burst);
        let mut map = self.buckets.lock();
        if !map.contains_key(&ip) {
            let full =
                |b: &Bucket| b.tokens + now.duration_since(b.at).as_secs_f64() * rate >= burst;
            make_room(&mut map, full, |b| b.at);
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn guesses_back_off_per_address_and_the_owner_is_not_locked_out() {
        let l = LoginLimiter::new(3, Duration::from_secs(900));
        let (attacker, owner) = (ip("203.0.113.7"), ip("198.51.100.2"));
        let t0 = Instant::now();
        // Three attempts at once pass (counted before hashing), the fourth waits.
        for _ in 0..3 {
            assert!(l.attempt("admin", attacker, t0).is_ok());
        }
        assert_eq!(
            l.attempt("admin", attacker, t0),
            Err(Duration::from_secs(1))
        );
        // Each further failure doubles the wait.
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.attempt("admin", attacker, t1).is_ok());
        assert_eq!(
            l.attempt("admin", attacker, t1),
            Err(Duration::from_secs(2))
        );
        // The owner, from their own address, is not held back.
        assert!(l.attempt("admin", owner, t1).is_ok());
        l.succeeded("admin", owner);
        // A success clears its key.
        l.succeeded("admin", attacker);
        assert!(l.attempt("admin", attacker, t1).is_ok());
    }

    #[test]
    fn the_backoff_is_capped() {
        let l = LoginLimiter::new(1, Duration::from_secs(60));
        let mut t = Instant::now();
        for _ in 0..40 {
            match l.attempt("a", ip("192.0.2.1"), t) {
                Ok(()) => {}
                Err(wait) => {
                    assert!(wait <= Duration::from_secs(60));
                    t += wait;
                }
            }
        }
    }

    #[test]
    fn an_address_gets_its_burst_then_its_rate() {
        let b = AddressBuckets::new(60, 3);
        let (a, other) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take(a, t0).is_ok());
        }
        let wait = b.take(a, t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(
            b.take(other, t0).is_ok(),
            "other addresses are not affected"
        );
        assert!(
            b.take(a, t0 + Duration::from_secs(1)).is_ok(),
            "refilled at 1/s"
        );
    }
}
