//! Model-based test: random appends (right and stale expected sequence numbers, one or
//! many events) and reads against each durable store (the log file and sled) and the
//! in-memory model in lockstep, with reopens of the durable store in the middle. Tiny shard counts make collisions of
//! entities within a shard, and multi-event appends crossing read boundaries, common.

use ecommesh_persistence::testing::event;
use ecommesh_persistence::{
    EventStore, LogStore, MemoryStore, SledStore, StoreError, StoreOptions,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        shard: u32,
        entity: u8,
        stale: bool,
        events: u8,
    },
    ReadEntity {
        shard: u32,
        entity: u8,
        after: u64,
    },
    ReadShard {
        shard: u32,
        from: u64,
        limit: usize,
    },
    /// Pages through one entity's events of the shard log with `read_shard_of`.
    ReadShardOf {
        shard: u32,
        entity: u8,
        limit: usize,
    },
    Reopen,
}

/// Every event of entities whose id starts with `prefix`, read page by page.
fn all_of(
    store: &dyn EventStore,
    shard: u32,
    prefix: &str,
    limit: usize,
) -> Vec<(u64, String, u64)> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_shard_of(shard, from, limit, prefix).unwrap();
        out.extend(
            page.events
                .iter()
                .map(|e| (e.offset, e.event.entity_id.clone(), e.event.seq)),
        );
        if page.looked_at < limit {
            return out;
        }
        from = page.last_offset + 1;
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u32..2, 0u8..4, prop::bool::weighted(0.2), 1u8..4)
            .prop_map(|(shard, entity, stale, events)| Op::Append { shard, entity, stale, events }),
        2 => (0u32..2, 0u8..4, 0u64..8).prop_map(|(shard, entity, after)| Op::ReadEntity { shard, entity, after }),
        2 => (0u32..2, 0u64..20, 1usize..6).prop_map(|(shard, from, limit)| Op::ReadShard { shard, from, limit }),
        1 => (0u32..2, 0u8..4, 1usize..6).prop_map(|(shard, entity, limit)| Op::ReadShardOf { shard, entity, limit }),
        1 => Just(Op::Reopen),
    ]
}

/// Runs `ops` against a store opened by `open` and the model; reopens on `Op::Reopen`.
fn matches_the_model<S: EventStore>(
    ops: Vec<Op>,
    open: impl Fn(&StoreOptions) -> Result<S, StoreError>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    // A reserve of a few records: appends outrun it, fill it and land in it, and
    // reopens find it (the log engine only).
    let opts = StoreOptions {
        reserve: 512,
        ..StoreOptions::new(dir.path().join("db"), 2)
    };
    let mut real = open(&opts).unwrap();
    let model = MemoryStore::new(2);
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append {
                shard,
                entity,
                stale,
                events,
            } => {
                let id = format!("e{entity}");
                let last = model.last_seq(shard, &id).unwrap();
                let expected = if stale { last.wrapping_sub(1) } else { last };
                let evs: Vec<_> = (0..events)
                    .map(|k| event("x", (i as u8).wrapping_add(k)))
                    .collect();
                prop_assert_eq!(
                    real.append(shard, &id, expected, &evs),
                    model.append(shard, &id, expected, &evs)
                );
            }
            Op::ReadEntity {
                shard,
                entity,
                after,
            } => {
                let id = format!("e{entity}");
                prop_assert_eq!(
                    real.read_entity(shard, &id, after).unwrap(),
                    model.read_entity(shard, &id, after).unwrap()
                );
                prop_assert_eq!(
                    real.last_seq(shard, &id).unwrap(),
                    model.last_seq(shard, &id).unwrap()
                );
            }
            Op::ReadShard { shard, from, limit } => {
                prop_assert_eq!(
                    real.read_shard(shard, from, limit).unwrap(),
                    model.read_shard(shard, from, limit).unwrap()
                );
            }
            Op::ReadShardOf {
                shard,
                entity,
                limit,
            } => {
                let prefix = format!("e{entity}");
                let real = all_of(&real, shard, &prefix, limit);
                let mut expected = all_of(&model, shard, "", 1);
                expected.retain(|(_, id, _)| id.starts_with(&prefix));
                prop_assert_eq!(real, expected);
            }
            Op::Reopen => {
                real.flush().unwrap();
                drop(real);
                real = open(&opts).unwrap();
            }
        }
    }
    let check = ecommesh_persistence::verify(&real).unwrap();
    prop_assert!(check.problems.is_empty(), "{:?}", check.problems);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_store_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        matches_the_model(ops, LogStore::open)?;
    }

    #[test]
    fn sled_store_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        matches_the_model(ops, SledStore::open)?;
    }
}
