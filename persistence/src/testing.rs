//! Test support for stores: one behavioural suite that every [`EventStore`] backend must
//! pass, so that the in-memory model and the sled store cannot drift apart, and
//! [`FaultStore`], which injects faults at the IO sites of any store.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::envelope::{EventEnvelope, NewEvent, Snapshot};
use crate::error::StoreError;
use crate::event_store::{EventStore, ShardEvent, ShardId};

/// A small event with a recognisable payload.
pub fn event(event_type: &'static str, marker: u8) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        schema_version: 1,
        timestamp_ms: 1_700_000_000_000 + marker as u64,
        payload: vec![marker; 3],
    }
}

/// Runs every check against fresh stores made by `make` (with at least 4 shards).
pub fn suite(make: impl Fn() -> Arc<dyn EventStore>) {
    appends_are_gap_free_and_readable(make());
    stale_expected_seq_is_rejected_and_writes_nothing(make());
    entities_with_prefix_ids_stay_apart(make());
    snapshots_replace_each_other(make());
    shard_log_is_ordered_and_resumable(make());
    offsets_are_per_consumer_and_shard(make());
    entities_are_listed_once_in_order(make());
    out_of_range_shard_is_an_error(make());
}

fn appends_are_gap_free_and_readable(s: Arc<dyn EventStore>) {
    assert_eq!(s.last_seq(0, "a").unwrap(), 0);
    assert_eq!(
        s.append(0, "a", 0, &[event("x", 1), event("y", 2)])
            .unwrap(),
        2
    );
    assert_eq!(s.append(0, "a", 2, &[event("z", 3)]).unwrap(), 3);
    s.flush().unwrap();
    let evs = s.read_entity(0, "a", 0).unwrap();
    assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(evs[1].event_type, "y");
    assert_eq!(evs[1].payload, vec![2; 3]);
    assert_eq!(evs[2].entity_id, "a");
    assert_eq!(evs[0].timestamp_ms, 1_700_000_000_001);
    assert_eq!(s.read_entity(0, "a", 2).unwrap().len(), 1);
    assert_eq!(s.last_seq(0, "a").unwrap(), 3);
}

fn stale_expected_seq_is_rejected_and_writes_nothing(s: Arc<dyn EventStore>) {
    s.append(1, "a", 0, &[event("x", 1)]).unwrap();
    let err = s
        .append(1, "a", 0, &[event("x", 2), event("x", 3)])
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Conflict {
            entity: "a".into(),
            expected: 0,
            actual: 1
        }
    );
    assert!(err.is_expected());
    assert!(
        s.append(1, "a", 5, &[event("x", 2)]).is_err(),
        "a future seq is rejected too"
    );
    assert_eq!(s.read_entity(1, "a", 0).unwrap().len(), 1);
    assert_eq!(s.read_shard(1, 1, 100).unwrap().len(), 1);
}

fn entities_with_prefix_ids_stay_apart(s: Arc<dyn EventStore>) {
    s.append(2, "ab", 0, &[event("x", 1)]).unwrap();
    s.append(2, "a", 0, &[event("x", 2), event("x", 3)])
        .unwrap();
    s.append(2, "abc", 0, &[event("x", 4)]).unwrap();
    assert_eq!(s.last_seq(2, "a").unwrap(), 2);
    assert_eq!(s.last_seq(2, "ab").unwrap(), 1);
    assert_eq!(s.read_entity(2, "ab", 0).unwrap()[0].payload, vec![1; 3]);
    assert_eq!(s.read_entity(2, "a", 0).unwrap().len(), 2);
    assert_eq!(s.last_seq(3, "a").unwrap(), 0, "shards are separate");
}

fn snapshots_replace_each_other(s: Arc<dyn EventStore>) {
    assert_eq!(s.load_snapshot(0, "a").unwrap(), None);
    let first = Snapshot {
        seq: 10,
        schema_version: 1,
        payload: vec![1],
    };
    let second = Snapshot {
        seq: 20,
        schema_version: 2,
        payload: vec![2, 2],
    };
    s.save_snapshot(0, "a", &first).unwrap();
    s.save_snapshot(0, "a", &second).unwrap();
    assert_eq!(s.load_snapshot(0, "a").unwrap(), Some(second));
    assert_eq!(s.load_snapshot(0, "ab").unwrap(), None);
}

fn shard_log_is_ordered_and_resumable(s: Arc<dyn EventStore>) {
    s.append(3, "a", 0, &[event("x", 1)]).unwrap();
    s.append(3, "b", 0, &[event("x", 2), event("x", 3)])
        .unwrap();
    s.append(3, "a", 1, &[event("x", 4)]).unwrap();
    let all = s.read_shard(3, 0, 100).unwrap();
    let seen: Vec<(u64, &str, u64)> = all
        .iter()
        .map(|e| (e.offset, e.event.entity_id.as_str(), e.event.seq))
        .collect();
    assert_eq!(
        seen,
        vec![(1, "a", 1), (2, "b", 1), (3, "b", 2), (4, "a", 2)]
    );
    let page = s.read_shard(3, 2, 2).unwrap();
    assert_eq!(
        page.iter().map(|e| e.offset).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(s.read_shard(3, 5, 10).unwrap().is_empty());
    assert!(s.read_shard(0, 1, 10).unwrap().is_empty());

    // One kind's events, paged: the others' offsets are looked at and skipped.
    let b = s.read_shard_of(3, 1, 100, "b").unwrap();
    assert_eq!(
        (
            b.events.iter().map(|e| e.offset).collect::<Vec<_>>(),
            b.last_offset,
            b.looked_at
        ),
        (vec![2, 3], 4, 4)
    );
    let tail = s.read_shard_of(3, 4, 100, "a").unwrap();
    assert_eq!(tail.events.len(), 1);
    assert_eq!((tail.events[0].offset, tail.last_offset), (4, 4));
    let none = s.read_shard_of(3, 5, 100, "a").unwrap();
    assert_eq!((none.events.len(), none.looked_at), (0, 0));

    // Kinds as the runtime names them (`kind/id`): a kind is not another that starts
    // with the same letters.
    for (entity, expected) in [
        ("order/1", 0),
        ("orders/1", 0),
        ("product/1", 0),
        ("order/2", 0),
    ] {
        s.append(2, entity, expected, &[event("x", 1)]).unwrap();
    }
    let orders = s.read_shard_of(2, 1, 100, "order/").unwrap();
    assert_eq!(
        (
            orders
                .events
                .iter()
                .map(|e| (e.offset, e.event.entity_id.as_str()))
                .collect::<Vec<_>>(),
            orders.last_offset,
            orders.looked_at
        ),
        (vec![(1, "order/1"), (4, "order/2")], 4, 4)
    );
    let one = s.read_shard_of(2, 1, 100, "orders/").unwrap();
    assert_eq!(one.events.len(), 1);
}

fn offsets_are_per_consumer_and_shard(s: Arc<dyn EventStore>) {
    assert_eq!(s.load_offset("catalog", 1).unwrap(), 0);
    s.save_offset("catalog", 1, 42).unwrap();
    s.save_offset("orders", 1, 7).unwrap();
    s.save_offset("catalog", 1, 43).unwrap();
    assert_eq!(s.load_offset("catalog", 1).unwrap(), 43);
    assert_eq!(s.load_offset("orders", 1).unwrap(), 7);
    assert_eq!(s.load_offset("catalog", 2).unwrap(), 0);
}

fn entities_are_listed_once_in_order(s: Arc<dyn EventStore>) {
    assert!(s.entities(1).unwrap().is_empty());
    s.append(1, "b", 0, &[event("x", 1)]).unwrap();
    s.append(1, "a", 0, &[event("x", 2), event("x", 3)])
        .unwrap();
    s.append(1, "a", 2, &[event("x", 4)]).unwrap();
    s.append(1, "ab", 0, &[event("x", 5)]).unwrap();
    let mut listed = s.entities(1).unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    listed.sort();
    assert_eq!(listed, vec!["a", "ab", "b"]);
    assert!(s.entities(2).unwrap().is_empty());
}

fn out_of_range_shard_is_an_error(s: Arc<dyn EventStore>) {
    let n = s.shard_count();
    assert!(matches!(
        s.append(n, "a", 0, &[event("x", 1)]),
        Err(StoreError::Invalid(_))
    ));
    assert!(s.read_shard(n, 1, 1).is_err());
    assert!(s.save_offset("c", n, 1).is_err());
}

/// Wraps a store and injects faults at its IO sites: failing, slow or held flushes, and a
/// panic inside `append` for one entity (as a storage engine bug would). Counts flushes.
pub struct FaultStore {
    inner: Arc<dyn EventStore>,
    fail_flush: AtomicBool,
    flush_delay_us: AtomicU64,
    flushes: AtomicUsize,
    panic_on_append: Mutex<Option<String>>,
    held: Mutex<bool>,
    released: Condvar,
}

impl FaultStore {
    pub fn new(inner: Arc<dyn EventStore>) -> Self {
        FaultStore {
            inner,
            fail_flush: AtomicBool::new(false),
            flush_delay_us: AtomicU64::new(0),
            flushes: AtomicUsize::new(0),
            panic_on_append: Mutex::new(None),
            held: Mutex::new(false),
            released: Condvar::new(),
        }
    }

    /// From now on every flush fails (or succeeds again).
    pub fn fail_flushes(&self, fail: bool) {
        self.fail_flush.store(fail, Ordering::SeqCst);
    }

    /// Every flush takes at least this long, like a slow disk.
    pub fn set_flush_delay(&self, delay: Duration) {
        self.flush_delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// Appends to this entity panic (`None`: no more panics).
    pub fn panic_on_append_to(&self, entity: Option<&str>) {
        *self.panic_on_append.lock() = entity.map(str::to_owned);
    }

    /// While held, every flush waits (a stalled disk): what is written stays undurable.
    pub fn hold_flushes(&self, hold: bool) {
        *self.held.lock() = hold;
        self.released.notify_all();
    }

    pub fn flushes(&self) -> usize {
        self.flushes.load(Ordering::SeqCst)
    }
}

impl EventStore for FaultStore {
    fn shard_count(&self) -> u32 {
        self.inner.shard_count()
    }
    fn append(
        &self,
        shard: ShardId,
        entity: &str,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<u64, StoreError> {
        if self.panic_on_append.lock().as_deref() == Some(entity) {
            panic!("injected storage panic appending to {entity}");
        }
        self.inner.append(shard, entity, expected, events)
    }
    fn read_entity(
        &self,
        shard: ShardId,
        entity: &str,
        after: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner.read_entity(shard, entity, after)
    }
    fn last_seq(&self, shard: ShardId, entity: &str) -> Result<u64, StoreError> {
        self.inner.last_seq(shard, entity)
    }
    fn save_snapshot(
        &self,
        shard: ShardId,
        entity: &str,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        self.inner.save_snapshot(shard, entity, snapshot)
    }
    fn load_snapshot(&self, shard: ShardId, entity: &str) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(shard, entity)
    }
    fn read_shard(
        &self,
        shard: ShardId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<ShardEvent>, StoreError> {
        self.inner.read_shard(shard, from, limit)
    }
    fn save_offset(&self, consumer: &str, shard: ShardId, offset: u64) -> Result<(), StoreError> {
        self.inner.save_offset(consumer, shard, offset)
    }
    fn load_offset(&self, consumer: &str, shard: ShardId) -> Result<u64, StoreError> {
        self.inner.load_offset(consumer, shard)
    }
    fn entities(&self, shard: ShardId) -> Result<Vec<String>, StoreError> {
        self.inner.entities(shard)
    }
    fn keeps_write_order(&self) -> bool {
        self.inner.keeps_write_order()
    }
    fn flush(&self) -> Result<(), StoreError> {
        let mut held = self.held.lock();
        while *held {
            self.released.wait(&mut held);
        }
        drop(held);
        let delay = self.flush_delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        self.flushes.fetch_add(1, Ordering::SeqCst);
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(StoreError::Storage("injected flush failure".into()));
        }
        self.inner.flush()
    }
}
