//! What a command to an entity can end in, besides success.

use std::time::Duration;

use ecommesh_persistence::StoreError;
use thiserror::Error;

/// The failure of a command sent to an entity. `R` is the entity's domain rejection.
#[derive(Debug, Clone, Error, serde::Serialize, serde::Deserialize)]
pub enum EntityError<R> {
    /// The entity refused the command (out of stock, illegal transition, ...).
    #[error(transparent)]
    Rejected(R),
    /// The caller's expected sequence number is stale.
    #[error("entity {entity} is at sequence {actual}, the command expected {expected}")]
    Conflict {
        entity: String,
        expected: u64,
        actual: u64,
    },
    /// The entity panicked while handling this command. Nothing of it was written;
    /// the entity restarts from its journal on its next command.
    #[error(
        "entity {entity} crashed while handling the command; it will restart from its journal"
    )]
    Crashed { entity: String },
    /// The entity crashed too often and is refusing commands for a while.
    #[error("entity {entity} is quarantined after repeated crashes")]
    Quarantined {
        entity: String,
        retry_after: Duration,
    },
    /// The entity's shard has too many commands queued.
    #[error("shard {shard} is overloaded")]
    Overloaded { shard: u32, retry_after: Duration },
    /// The shard actor is gone (the node is shutting down).
    #[error("entity runtime is shutting down")]
    Unavailable,
    /// Storage failed; the write may or may not be durable.
    #[error(transparent)]
    Storage(StoreError),
}
