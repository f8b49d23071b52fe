//! One behavioural suite that every [`EventStore`] backend must pass, so that the
//! in-memory model and the sled store cannot drift apart.

use std::sync::Arc;

use crate::envelope::{NewEvent, Snapshot};
use crate::error::StoreError;
use crate::journal::EventStore;

/// A small event with a recognisable payload.
pub fn event(event_type: &'static str, marker: u8) -> NewEvent {
    NewEvent {
        event_type,
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

fn out_of_range_shard_is_an_error(s: Arc<dyn EventStore>) {
    let n = s.shard_count();
    assert!(matches!(
        s.append(n, "a", 0, &[event("x", 1)]),
        Err(StoreError::Invalid(_))
    ));
    assert!(s.read_shard(n, 1, 1).is_err());
    assert!(s.save_offset("c", n, 1).is_err());
}
