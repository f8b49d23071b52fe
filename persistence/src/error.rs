//! Errors of the storage layer. Expected outcomes (a stale sequence number) are kept apart
//! from fatal ones (the disk went away) so that callers can answer each correctly.

use thiserror::Error;

/// Failure to encode or decode a value with a [`crate::Codec`].
#[derive(Debug, Clone, Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[error("codec: {0}")]
pub struct CodecError(pub String);

/// Errors returned by an [`crate::EventStore`]. Serializable: in a cluster an append's
/// outcome travels back from the node that committed it.
#[derive(Debug, Clone, Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The append expected the entity to be at `expected`, but it is at `actual`.
    #[error("sequence conflict on {entity}: expected {expected}, journal is at {actual}")]
    Conflict {
        entity: String,
        expected: u64,
        actual: u64,
    },
    /// The data directory was created with another shard count.
    #[error(
        "data directory was created with {stored} shards but {requested} were requested; \
         the shard count is fixed per data directory"
    )]
    ShardCountMismatch { stored: u32, requested: u32 },
    /// Another process holds the data directory.
    #[error("data directory {path} is in use by another process")]
    Locked { path: String },
    /// A stored record could not be read back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The storage engine failed (disk full, I/O error): fatal for the node.
    #[error("storage: {0}")]
    Storage(String),
    /// The group-commit writer has stopped; nothing more can be made durable.
    #[error("group commit has shut down")]
    ShutDown,
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The shard cannot commit writes here and now (no leader, lost leadership, no
    /// quorum). A write that got this may or may not have been committed.
    #[error("shard {shard} is unavailable: {reason}")]
    Unavailable { shard: u32, reason: String },
}

impl StoreError {
    /// True when the error says nothing about the health of the store.
    pub fn is_expected(&self) -> bool {
        matches!(self, StoreError::Conflict { .. } | StoreError::Invalid(_))
    }
}
