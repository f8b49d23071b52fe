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
//! Nothing outside this crate names a storage engine or the codec (bincode): they sit
//! behind [`EventStore`] and [`Codec`] so either can be swapped. A single node keeps its
//! journal in [`LogStore`] (one append-only file); a cluster node in [`SledStore`], next
//! to its consensus logs.

use std::path::{Path, PathBuf};

pub mod codec;
pub mod envelope;
pub mod error;
pub mod event_store;
pub mod group_commit;
pub mod log_store;
pub mod memory;
pub mod replica;
mod sled_replica;
pub mod sled_store;
pub mod testing;
pub mod verify;

pub use codec::{Codec, DefaultCodec};
pub use envelope::{EventEnvelope, NewEvent, Snapshot};
pub use error::{CodecError, StoreError};
pub use event_store::{EventStore, ShardEvent, ShardId, ShardPage};
pub use group_commit::{FlushTicket, GroupCommit};
pub use log_store::LogStore;
pub use memory::MemoryStore;
pub use replica::{Append, AppendOutcome, ConsensusLog, ReplicatedStore};
pub use sled_store::SledStore;
pub use verify::{verify, Verification};

/// The storage engines a journal directory can be in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// [`LogStore`]: one append-only file indexed in memory.
    #[default]
    Log,
    /// [`SledStore`]: a sled database.
    Sled,
}

impl Engine {
    /// The engine of the journal already in `dir`, if there is one.
    pub fn found_in(dir: &Path) -> Option<Engine> {
        if dir.join(log_store::LOG_FILE).exists() {
            Some(Engine::Log)
        } else if dir.join("conf").exists() || dir.join("db").exists() {
            Some(Engine::Sled)
        } else {
            None
        }
    }
}

/// How to open a journal directory.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub path: PathBuf,
    /// Fixed per data directory: opening with another count fails.
    pub shards: u32,
    /// The engine of a new single-node journal; an existing one stays in its engine.
    pub engine: Engine,
    /// sled's page cache size, in bytes (sled only).
    pub cache_capacity: u64,
    /// Zero-filled space the log-file journal keeps written ahead of its end, in bytes
    /// (log engine only; 0: none). See [`log_store`]'s "Reserve".
    pub reserve: u64,
}

impl StoreOptions {
    pub fn new(path: impl Into<PathBuf>, shards: u32) -> Self {
        StoreOptions {
            path: path.into(),
            shards,
            engine: Engine::default(),
            cache_capacity: 256 * 1024 * 1024,
            reserve: log_store::DEFAULT_RESERVE,
        }
    }
}

/// Opens a single node's journal: in the engine its directory already holds, or in
/// `opts.engine` when it is new. Code outside this crate calls this rather than naming
/// the engine.
pub fn open_store(opts: &StoreOptions) -> Result<std::sync::Arc<dyn EventStore>, StoreError> {
    let engine = Engine::found_in(&opts.path).unwrap_or(opts.engine);
    if engine != opts.engine {
        tracing::info!(dir = %opts.path.display(), ?engine, "the journal stays in the engine it was created in");
    }
    Ok(match engine {
        Engine::Log => std::sync::Arc::new(LogStore::open(opts)?),
        Engine::Sled => std::sync::Arc::new(SledStore::open(opts)?),
    })
}

/// A cluster node's store: its event journal, driven by consensus logs kept in the same
/// database, so that one flush makes both durable.
pub type Replicated = (
    std::sync::Arc<dyn ReplicatedStore>,
    std::sync::Arc<dyn ConsensusLog>,
);

/// Opens the durable store of a data directory for a cluster node.
pub fn open_replicated_store(opts: &StoreOptions) -> Result<Replicated, StoreError> {
    if Engine::found_in(&opts.path) == Some(Engine::Log) {
        return Err(StoreError::Invalid(format!(
            "{} holds a single node's journal; a cluster node keeps its journal with its \
             consensus logs and needs a data directory of its own",
            opts.path.display()
        )));
    }
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
