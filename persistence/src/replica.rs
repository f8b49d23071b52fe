//! What replication needs from storage: a shard that a consensus log drives (its state
//! machine), and the consensus log itself. Both say nothing of the consensus library;
//! entries and metadata are opaque bytes here.
//!
//! A replicated shard is written only through [`ReplicatedStore::apply_entry`]: one call
//! per committed log entry, applied atomically together with the marker that says which
//! entry it was. Every replica applies the same entries in the same order, so every
//! replica holds the same events at the same shard offsets, and a restart resumes from the
//! marker without applying anything twice.

use serde::{Deserialize, Serialize};

use crate::envelope::NewEvent;
use crate::error::StoreError;
use crate::event_store::{EventStore, ShardId};

/// One conditional append carried by a replicated log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Append {
    pub entity: String,
    /// The entity's last sequence number the append was decided on; a replica whose
    /// journal is elsewhere refuses it (every replica alike).
    pub expected_seq: u64,
    pub events: Vec<NewEvent>,
}

/// The outcome of one [`Append`]: the entity's new last sequence number, or why not.
pub type AppendOutcome = Result<u64, StoreError>;

/// An [`EventStore`] whose shards can be the state machines of a consensus log.
pub trait ReplicatedStore: EventStore {
    /// Applies the appends of one committed entry, in order, each only if its entity is
    /// at its expected sequence number, and records `marker` (which entry this was) in the
    /// same atomic write. Refused appends write nothing and do not stop the others.
    fn apply_entry(
        &self,
        shard: ShardId,
        appends: &[Append],
        marker: &[u8],
    ) -> Result<Vec<AppendOutcome>, StoreError>;

    /// The marker of the last entry applied to the shard, if any.
    fn applied_marker(&self, shard: ShardId) -> Result<Option<Vec<u8>>, StoreError>;

    /// Everything the shard holds (journal, shard log, marker), to send to a replica
    /// that is too far behind to catch up from the log.
    fn export_shard(&self, shard: ShardId) -> Result<Vec<u8>, StoreError>;

    /// Replaces everything the shard holds with an export of another replica.
    fn import_shard(&self, shard: ShardId, data: &[u8]) -> Result<(), StoreError>;
}

/// The consensus log of many replication groups, with a few named values per group
/// (vote, committed position, snapshot). Writes are durable only after [`EventStore::flush`]
/// of the same store (or [`ConsensusLog::flush`]).
pub trait ConsensusLog: Send + Sync + 'static {
    /// Stores entries by index, replacing any already at those indexes.
    fn append_entries(&self, group: u32, entries: &[(u64, Vec<u8>)]) -> Result<(), StoreError>;

    /// The entries with `from <= index < until`, in order.
    fn read_entries(&self, group: u32, from: u64, until: u64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The entry with the highest index, if any.
    fn last_entry(&self, group: u32) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes the entries with `from <= index < until`.
    fn remove_entries(&self, group: u32, from: u64, until: u64) -> Result<(), StoreError>;

    fn save_value(&self, group: u32, name: &str, value: &[u8]) -> Result<(), StoreError>;

    fn load_value(&self, group: u32, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Makes every write that returned before this call durable.
    fn flush(&self) -> Result<(), StoreError>;
}
