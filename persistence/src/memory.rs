//! An in-memory [`EventStore`]: the reference model for the shared test suite and a fast
//! store for tests of code above this crate. `flush` makes nothing durable: it is never
//! used by a running node.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;

use crate::envelope::{EventEnvelope, NewEvent, Snapshot};
use crate::error::StoreError;
use crate::event_store::{check_shard, EventStore, ShardEvent, ShardId};

#[derive(Default)]
struct Shard {
    journals: HashMap<String, Vec<EventEnvelope>>,
    /// offset - 1 -> (entity, seq)
    log: Vec<(String, u64)>,
    snapshots: HashMap<String, Snapshot>,
}

/// An [`EventStore`] that keeps everything in memory and loses it on exit.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    offsets: Mutex<BTreeMap<(String, ShardId), u64>>,
}

impl MemoryStore {
    pub fn new(shards: u32) -> Self {
        MemoryStore {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            offsets: Mutex::new(BTreeMap::new()),
        }
    }

    fn shard(&self, shard: ShardId) -> Result<&Mutex<Shard>, StoreError> {
        check_shard(shard, self.shard_count())?;
        Ok(&self.shards[shard as usize])
    }
}

impl EventStore for MemoryStore {
    fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    fn append(
        &self,
        shard: ShardId,
        entity: &str,
        expected_seq: u64,
        events: &[NewEvent],
    ) -> Result<u64, StoreError> {
        let mut s = self.shard(shard)?.lock();
        if events.is_empty() {
            return Err(StoreError::Invalid(
                "an append needs at least one event".into(),
            ));
        }
        let actual = s.journals.get(entity).map_or(0, |j| j.len() as u64);
        if actual != expected_seq {
            return Err(StoreError::Conflict {
                entity: entity.to_owned(),
                expected: expected_seq,
                actual,
            });
        }
        let mut seq = expected_seq;
        for ev in events {
            seq += 1;
            let env = EventEnvelope::new(entity, seq, ev);
            // Round-trip through the stored form so the model rejects what the real store would.
            env.encode()?;
            s.journals.entry(entity.to_owned()).or_default().push(env);
            s.log.push((entity.to_owned(), seq));
        }
        Ok(seq)
    }

    fn read_entity(
        &self,
        shard: ShardId,
        entity: &str,
        after_seq: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let s = self.shard(shard)?.lock();
        Ok(s.journals
            .get(entity)
            .map(|j| j.iter().filter(|e| e.seq > after_seq).cloned().collect())
            .unwrap_or_default())
    }

    fn last_seq(&self, shard: ShardId, entity: &str) -> Result<u64, StoreError> {
        let s = self.shard(shard)?.lock();
        Ok(s.journals.get(entity).map_or(0, |j| j.len() as u64))
    }

    fn save_snapshot(
        &self,
        shard: ShardId,
        entity: &str,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        self.shard(shard)?
            .lock()
            .snapshots
            .insert(entity.to_owned(), snapshot.clone());
        Ok(())
    }

    fn load_snapshot(&self, shard: ShardId, entity: &str) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.shard(shard)?.lock().snapshots.get(entity).cloned())
    }

    fn read_shard(
        &self,
        shard: ShardId,
        from_offset: u64,
        limit: usize,
    ) -> Result<Vec<ShardEvent>, StoreError> {
        let s = self.shard(shard)?.lock();
        let start = from_offset.max(1) as usize - 1;
        Ok(s.log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, (entity, seq))| ShardEvent {
                offset: i as u64 + 1,
                event: s.journals[entity][*seq as usize - 1].clone(),
            })
            .collect())
    }

    fn save_offset(&self, consumer: &str, shard: ShardId, offset: u64) -> Result<(), StoreError> {
        check_shard(shard, self.shard_count())?;
        self.offsets
            .lock()
            .insert((consumer.to_owned(), shard), offset);
        Ok(())
    }

    fn load_offset(&self, consumer: &str, shard: ShardId) -> Result<u64, StoreError> {
        check_shard(shard, self.shard_count())?;
        Ok(self
            .offsets
            .lock()
            .get(&(consumer.to_owned(), shard))
            .copied()
            .unwrap_or(0))
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn entities(&self, shard: ShardId) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = self.shard(shard)?.lock().journals.keys().cloned().collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn passes_the_shared_suite() {
        crate::testing::suite(|| Arc::new(MemoryStore::new(4)) as Arc<dyn EventStore>);
    }
}
