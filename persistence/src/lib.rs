//! The storage layer of EcomMesh: an append-only event journal partitioned into shards,
//! snapshots, a serde codec and the group-commit writer that makes acknowledgements durable.
//!
//! Invariants this crate keeps:
//! - Per entity, sequence numbers start at 1 and are gap-free; an append whose expected
//!   sequence number is stale is rejected and writes nothing.
//! - The events of one append become visible atomically, together with their shard offsets.
//! - Within a shard, offsets are gap-free and follow append order, so projections can read
//!   a shard from an offset and resume where they stopped.
//! - An append is durable only once [`GroupCommit`] has flushed it; callers acknowledge
//!   nothing before that.
//!
//! Nothing outside this crate names the storage engine (sled) or the codec (bincode): they
//! sit behind [`EventStore`] and [`Codec`] so either can be swapped.

pub mod codec;
pub mod envelope;
pub mod error;
pub mod group_commit;
pub mod journal;
pub mod memory;
pub mod replica;
mod sled_replica;
pub mod sled_store;
pub mod testing;
pub mod verify;

pub use codec::{Codec, DefaultCodec};
pub use envelope::{EventEnvelope, NewEvent, Snapshot};
pub use error::{CodecError, StoreError};
pub use group_commit::{FlushTicket, GroupCommit};
pub use journal::{EventStore, ShardEvent, ShardId, ShardPage};
pub use memory::MemoryStore;
pub use replica::{Append, AppendOutcome, ConsensusLog, ReplicatedStore};
pub use sled_store::{SledStore, StoreOptions};
pub use verify::{verify, Verification};

/// Opens the durable store of a data directory with the default engine. Code outside
/// this crate calls this rather than naming the engine, so the engine can be swapped.
pub fn open_store(opts: &StoreOptions) -> Result<std::sync::Arc<dyn EventStore>, StoreError> {
    Ok(std::sync::Arc::new(SledStore::open(opts)?))
}

/// A cluster node's store: its event journal, driven by consensus logs kept in the same
/// database, so that one flush makes both durable.
pub type Replicated = (
    std::sync::Arc<dyn ReplicatedStore>,
    std::sync::Arc<dyn ConsensusLog>,
);

/// Opens the durable store of a data directory for a cluster node.
pub fn open_replicated_store(opts: &StoreOptions) -> Result<Replicated, StoreError> {
    let store = std::sync::Arc::new(SledStore::open(opts)?);
    Ok((store.clone(), store))
}

/// Milliseconds since the Unix epoch, the timestamp unit of every stored envelope.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
