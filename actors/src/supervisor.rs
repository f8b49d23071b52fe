//! Failure isolation for hosted entities.
//!
//! actix does not isolate panics: a panic inside a handler takes down its arbiter thread
//! and every actor on it, and `Supervised` only restarts actors that stop themselves. So
//! the shard catches the unwind around each entity's own code ([`guard`]), drops that
//! entity's in-memory state (it restarts from its journal on the next command), and
//! counts the crash here. An entity that crashes `limit` times within `window` is
//! quarantined for `quarantine`: its commands fail fast instead of restarting forever.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Runs entity code, turning a panic into `Err(message)`.
pub fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into())
    })
}

/// When to quarantine an entity.
#[derive(Debug, Clone, Copy)]
pub struct CrashPolicy {
    pub limit: u32,
    pub window: Duration,
    pub quarantine: Duration,
}

#[derive(Default)]
struct Record {
    recent: VecDeque<Instant>,
    quarantined_until: Option<Instant>,
}

/// The crash history of the entities of one shard. Only crashed entities have an entry.
#[derive(Default)]
pub struct CrashLog {
    records: HashMap<Box<str>, Record>,
}

impl CrashLog {
    /// Records a crash; returns true when it puts the entity into quarantine.
    pub fn crashed(&mut self, id: &str, policy: &CrashPolicy, now: Instant) -> bool {
        let r = self.records.entry(id.into()).or_default();
        r.recent.push_back(now);
        while r
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            r.recent.pop_front();
        }
        if r.recent.len() as u32 >= policy.limit {
            r.recent.clear();
            r.quarantined_until = Some(now + policy.quarantine);
            true
        } else {
            false
        }
    }

    /// How long the entity stays quarantined, if it is.
    pub fn quarantined(&self, id: &str, now: Instant) -> Option<Duration> {
        let until = self.records.get(id)?.quarantined_until?;
        (until > now).then(|| until - now)
    }

    /// Forgets records with no recent crash and no running quarantine.
    pub fn prune(&mut self, policy: &CrashPolicy, now: Instant) {
        self.records.retain(|_, r| {
            r.quarantined_until.is_some_and(|u| u > now)
                || r.recent
                    .back()
                    .is_some_and(|t| now.duration_since(*t) <= policy.window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: CrashPolicy = CrashPolicy {
        limit: 3,
        window: Duration::from_secs(10),
        quarantine: Duration::from_secs(30),
    };

    #[test]
    fn quarantines_after_limit_crashes_within_the_window() {
        let mut log = CrashLog::default();
        let t0 = Instant::now();
        assert!(!log.crashed("a", &POLICY, t0));
        assert!(!log.crashed("a", &POLICY, t0 + Duration::from_secs(1)));
        assert!(log.quarantined("a", t0).is_none());
        assert!(log.crashed("a", &POLICY, t0 + Duration::from_secs(2)));
        let left = log.quarantined("a", t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(left, Duration::from_secs(30));
        assert!(log.quarantined("a", t0 + Duration::from_secs(33)).is_none());
        assert!(log.quarantined("b", t0).is_none());
    }

    #[test]
    fn crashes_outside_the_window_do_not_add_up() {
        let mut log = CrashLog::default();
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(!log.crashed("a", &POLICY, t0 + Duration::from_secs(11 * i)));
        }
        log.prune(&POLICY, t0 + Duration::from_secs(200));
        assert!(log.records.is_empty());
    }

    #[test]
    fn guard_reports_the_panic_message() {
        assert_eq!(guard(|| 5), Ok(5));
        assert_eq!(
            guard(|| -> u8 { panic!("boom {}", 1) }),
            Err("boom 1".to_string())
        );
    }
}
