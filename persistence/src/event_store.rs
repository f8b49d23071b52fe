//! The [`EventStore`] trait: what the entity runtime needs from storage, and nothing of
//! how it is stored.

use crate::envelope::{EventEnvelope, NewEvent, Snapshot};
use crate::error::StoreError;

/// Index of a shard, `0..shard_count`.
pub type ShardId = u32;

/// An event read from a shard's ordered log, with its offset in that log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardEvent {
    pub offset: u64,
    pub event: EventEnvelope,
}

/// A page of a shard's log read for one kind of entity ([`EventStore::read_shard_of`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardPage {
    /// The events of the entities asked for, in log order.
    pub events: Vec<ShardEvent>,
    /// The last offset looked at, whether its event was kept or not (0 when none was):
    /// the next page starts after it.
    pub last_offset: u64,
    /// How many offsets were looked at; fewer than the limit means the log's end.
    pub looked_at: usize,
}

/// An append-only event journal partitioned into a fixed number of shards.
///
/// Writes become visible at once but durable only after [`EventStore::flush`]; use
/// [`crate::GroupCommit`] to share one flush among many writers.
pub trait EventStore: Send + Sync + 'static {
    /// The fixed number of shards of this store.
    fn shard_count(&self) -> u32;

    /// Appends `events` to `entity` if its last sequence number is `expected_seq`
    /// (0 for a new entity), atomically: all of them or none. Returns the new last
    /// sequence number.
    fn append(
        &self,
        shard: ShardId,
        entity: &str,
        expected_seq: u64,
        events: &[NewEvent],
    ) -> Result<u64, StoreError>;

    /// Events of `entity` with a sequence number greater than `after_seq`, in order.
    fn read_entity(
        &self,
        shard: ShardId,
        entity: &str,
        after_seq: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError>;

    /// The last sequence number of `entity`, 0 when it has no events.
    fn last_seq(&self, shard: ShardId, entity: &str) -> Result<u64, StoreError>;

    /// Replaces the snapshot of `entity`. A snapshot is a cache of the journal, never the
    /// only copy of anything.
    fn save_snapshot(
        &self,
        shard: ShardId,
        entity: &str,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError>;

    fn load_snapshot(&self, shard: ShardId, entity: &str) -> Result<Option<Snapshot>, StoreError>;

    /// Up to `limit` events of the shard's log with offset >= `from_offset`, in append
    /// order. Offsets start at 1 and have no gaps.
    fn read_shard(
        &self,
        shard: ShardId,
        from_offset: u64,
        limit: usize,
    ) -> Result<Vec<ShardEvent>, StoreError>;

    /// Like [`EventStore::read_shard`], but keeps only the events of entities whose id
    /// starts with `entity_prefix`. Looks at about `limit` offsets (whole appends). A
    /// projection of one kind reads every shard's log, which it shares with the other
    /// kinds; a store can skip their events without decoding them.
    fn read_shard_of(
        &self,
        shard: ShardId,
        from_offset: u64,
        limit: usize,
        entity_prefix: &str,
    ) -> Result<ShardPage, StoreError> {
        let events = self.read_shard(shard, from_offset, limit)?;
        Ok(ShardPage {
            last_offset: events.last().map_or(0, |e| e.offset),
            looked_at: events.len(),
            events: events
                .into_iter()
                .filter(|e| e.event.entity_id.starts_with(entity_prefix))
                .collect(),
        })
    }

    /// Records that `consumer` has processed the shard's log up to and including `offset`.
    fn save_offset(&self, consumer: &str, shard: ShardId, offset: u64) -> Result<(), StoreError>;

    /// The last offset `consumer` recorded for the shard, 0 if none.
    fn load_offset(&self, consumer: &str, shard: ShardId) -> Result<u64, StoreError>;

    /// Makes every write that returned before this call durable. Returns when it is on disk.
    fn flush(&self) -> Result<(), StoreError>;

    /// True when writes of every shard become durable in the order they returned and a
    /// crash keeps a prefix of them: one file, cut at open at its first torn record. Then
    /// a flush also covers every write that returned before any write it covers, and no
    /// write survives a crash that an earlier one did not.
    fn keeps_write_order(&self) -> bool {
        false
    }

    /// Every entity with at least one event in the shard, in key order. A full scan: for
    /// checks and rebuilds, not for serving requests.
    fn entities(&self, shard: ShardId) -> Result<Vec<String>, StoreError>;
}

/// Checks a shard index against the store's shard count.
pub(crate) fn check_shard(shard: ShardId, count: u32) -> Result<(), StoreError> {
    if shard < count {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "shard {shard} out of range 0..{count}"
        )))
    }
}
