//! A consistency check of a whole store, for operators (`ecommesh check`) and crash tests:
//! every shard's log has offsets 1..=n without a gap and every entry points at an event;
//! every entity's journal has sequence numbers 1..=m without a gap; and the log and the
//! journals hold exactly the same events.

use std::collections::BTreeSet;

use crate::error::StoreError;
use crate::event_store::EventStore;

/// What a check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verification {
    pub shards: u32,
    pub entities: u64,
    pub events: u64,
    /// Every inconsistency, in words; empty when the store is sound.
    pub problems: Vec<String>,
}

/// Reads the whole store and checks it. IO errors abort; inconsistencies are collected.
pub fn verify(store: &dyn EventStore) -> Result<Verification, StoreError> {
    let mut v = Verification {
        shards: store.shard_count(),
        ..Verification::default()
    };
    for shard in 0..store.shard_count() {
        let mut logged = BTreeSet::new();
        let mut expected_offset = 1;
        for e in store.read_shard(shard, 1, usize::MAX)? {
            if e.offset != expected_offset {
                v.problems.push(format!(
                    "shard {shard}: offset {} follows {}",
                    e.offset,
                    expected_offset - 1
                ));
            }
            expected_offset = e.offset + 1;
            if !logged.insert((e.event.entity_id.clone(), e.event.seq)) {
                v.problems.push(format!(
                    "shard {shard}: {} seq {} logged twice",
                    e.event.entity_id, e.event.seq
                ));
            }
        }
        let mut journaled = 0;
        for entity in store.entities(shard)? {
            v.entities += 1;
            for (i, e) in store.read_entity(shard, &entity, 0)?.iter().enumerate() {
                journaled += 1;
                if e.seq != i as u64 + 1 {
                    v.problems.push(format!(
                        "shard {shard}: {entity} has seq {} where {} belongs",
                        e.seq,
                        i + 1
                    ));
                }
                if !logged.contains(&(entity.clone(), e.seq)) {
                    v.problems.push(format!(
                        "shard {shard}: {entity} seq {} is missing from the shard log",
                        e.seq
                    ));
                }
            }
        }
        if journaled != logged.len() {
            v.problems.push(format!(
                "shard {shard}: the log holds {} events but the journals {journaled}",
                logged.len()
            ));
        }
        v.events += journaled as u64;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::testing::event;

    #[test]
    fn a_sound_store_has_no_problems() {
        let s = MemoryStore::new(2);
        s.append(0, "a", 0, &[event("x", 1), event("x", 2)])
            .unwrap();
        s.append(1, "b", 0, &[event("x", 3)]).unwrap();
        let v = verify(&s).unwrap();
        assert_eq!((v.shards, v.entities, v.events), (2, 2, 3));
        assert!(v.problems.is_empty(), "{:?}", v.problems);
    }
}
