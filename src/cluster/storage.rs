//! openraft's storage traits on our persistence traits: [`GroupLog`] keeps a group's log
//! and vote in the node's [`ConsensusLog`], [`ShardMachine`] applies a shard group's
//! committed entries to the node's [`ReplicatedStore`] (the event journal entities are
//! rebuilt from and projections read).
//!
//! Durability: a log append is acknowledged to Raft only after the node's group-commit
//! writer has flushed it, so one fsync covers the appends of all 64 groups (and of
//! everything else written meanwhile). The state machine needs no fsync of its own: it
//! is rebuilt from the log, and [`ReplicatedStore::apply_entry`] stores each entry's
//! effects atomically with its position, so re-applying after a crash is harmless.

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use ecommesh_persistence::{
    Codec, ConsensusLog, DefaultCodec, GroupCommit, ReplicatedStore, StoreError,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftLogReader, RaftSnapshotBuilder, StorageIOError,
};
use serde::{de::DeserializeOwned, Serialize};

use super::types::{
    Applied, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote,
};

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(DefaultCodec::default().encode(value)?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(DefaultCodec::default().decode(bytes)?)
}

fn io_error(e: StoreError) -> std::io::Error {
    std::io::Error::other(e)
}

fn read_logs(e: StoreError) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_logs(e: StoreError) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

/// One group's Raft log and vote.
#[derive(Clone)]
pub struct GroupLog {
    group: u32,
    log: Arc<dyn ConsensusLog>,
    commit: GroupCommit,
}

impl GroupLog {
    pub fn new(group: u32, log: Arc<dyn ConsensusLog>, commit: GroupCommit) -> Self {
        GroupLog { group, log, commit }
    }

    fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.log.load_value(self.group, name)? {
            Some(raw) => Ok(Some(decode(&raw)?)),
            None => Ok(None),
        }
    }

    fn save<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        self.log.save_value(self.group, name, &encode(value)?)
    }
}

impl RaftLogReader<TypeConfig> for GroupLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let until = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        self.log
            .read_entries(self.group, from, until)
            .and_then(|raw| raw.iter().map(|e| decode(e)).collect())
            .map_err(read_logs)
    }
}

impl RaftLogStorage<TypeConfig> for GroupLog {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last = self
            .log
            .last_entry(self.group)
            .and_then(|e| e.map(|raw| decode::<Entry>(&raw)).transpose())
            .map_err(read_logs)?
            .map(|e| e.log_id);
        let purged: Option<LogId> = self.load("purged").map_err(read_logs)?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let write_vote = |e: StoreError| -> StorageError {
            StorageIOError::write_vote(AnyError::new(&e)).into()
        };
        self.save("vote", vote).map_err(write_vote)?;
        // A vote must be on disk before it is answered.
        self.commit.request().await.map_err(write_vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.load("vote")
            .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.save("committed", &committed).map_err(write_logs)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .load::<Option<LogId>>("committed")
            .map_err(read_logs)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, encode(&e)?)))
            .collect::<Result<Vec<_>, StoreError>>()
            .map_err(write_logs)?;
        self.log
            .append_entries(self.group, &encoded)
            .map_err(write_logs)?;
        self.commit
            .on_durable(move |flushed| callback.log_io_completed(flushed.map_err(io_error)));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.log
            .remove_entries(self.group, log_id.index, u64::MAX)
            .map_err(write_logs)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.save("purged", &Some(log_id)).map_err(write_logs)?;
        self.log
            .remove_entries(self.group, 0, log_id.index + 1)
            .map_err(write_logs)
    }
}

/// What a shard records with every applied entry: which entry it was and the membership
/// as of then.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone)]
struct Marker {
    applied: Option<LogId>,
    membership: StoredMembership,
}

/// A snapshot as kept on disk: its metadata and an export of the shard.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The state machine of one shard group: the shard of the node's event journal.
pub struct ShardMachine {
    shard: u32,
    store: Arc<dyn ReplicatedStore>,
    log: Arc<dyn ConsensusLog>,
    commit: GroupCommit,
    marker: Marker,
}

fn read_sm(e: StoreError) -> StorageError {
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

fn write_sm(e: StoreError) -> StorageError {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

impl ShardMachine {
    pub fn open(
        shard: u32,
        store: Arc<dyn ReplicatedStore>,
        log: Arc<dyn ConsensusLog>,
        commit: GroupCommit,
    ) -> Result<Self, StoreError> {
        let marker = match store.applied_marker(shard)? {
            Some(raw) => decode(&raw)?,
            None => Marker::default(),
        };
        Ok(ShardMachine {
            shard,
            store,
            log,
            commit,
            marker,
        })
    }

    fn save_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), StoreError> {
        self.log
            .save_value(self.shard, "snapshot", &encode(snapshot)?)
    }
}

/// A snapshot taken on the state machine's task, so that it is one consistent point; the
/// builder only stores and hands it over.
pub struct ShardSnapshot {
    snapshot: Option<StoredSnapshot>,
    error: Option<StoreError>,
    shard: u32,
    log: Arc<dyn ConsensusLog>,
    commit: GroupCommit,
}

impl RaftSnapshotBuilder<TypeConfig> for ShardSnapshot {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        if let Some(e) = self.error.take() {
            return Err(read_sm(e));
        }
        let snapshot = self
            .snapshot
            .take()
            .ok_or_else(|| read_sm(StoreError::Invalid("snapshot already built".into())))?;
        let write = |e: StoreError| -> StorageError {
            StorageIOError::write_snapshot(Some(snapshot.meta.signature()), AnyError::new(&e))
                .into()
        };
        self.log
            .save_value(self.shard, "snapshot", &encode(&snapshot).map_err(write)?)
            .map_err(write)?;
        // The log is purged up to a snapshot: it must be on disk first, and so must the
        // state it was taken of.
        self.commit.request().await.map_err(write)?;
        metrics::counter!("ecommesh_cluster_snapshots_built_total").increment(1);
        Ok(Snapshot {
            meta: snapshot.meta,
            snapshot: Box::new(Cursor::new(snapshot.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for ShardMachine {
    type SnapshotBuilder = ShardSnapshot;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.marker.applied, self.marker.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            self.marker.applied = Some(entry.log_id);
            let appends = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(proposal) => proposal.appends,
                EntryPayload::Membership(m) => {
                    self.marker.membership = StoredMembership::new(Some(entry.log_id), m);
                    Vec::new()
                }
            };
            let marker = encode(&self.marker).map_err(write_sm)?;
            let outcomes = self
                .store
                .apply_entry(self.shard, &appends, &marker)
                .map_err(|e| -> StorageError {
                    StorageIOError::apply(entry.log_id, AnyError::new(&e)).into()
                })?;
            replies.push(Applied { outcomes });
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let taken = self.store.export_shard(self.shard).map(|data| {
            let applied = self.marker.applied;
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: applied,
                    last_membership: self.marker.membership.clone(),
                    snapshot_id: format!(
                        "{}-{}",
                        applied.map_or(0, |l| l.index),
                        ecommesh_persistence::now_ms()
                    ),
                },
                data,
            }
        });
        let (snapshot, error) = match taken {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        ShardSnapshot {
            snapshot,
            error,
            shard: self.shard,
            log: self.log.clone(),
            commit: self.commit.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let write = |e: StoreError| -> StorageError {
            StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)).into()
        };
        self.store.import_shard(self.shard, &data).map_err(write)?;
        metrics::counter!("ecommesh_cluster_snapshots_installed_total").increment(1);
        self.marker = Marker {
            applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.save_snapshot(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .map_err(write)?;
        self.commit.request().await.map_err(write)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(raw) = self
            .log
            .load_value(self.shard, "snapshot")
            .map_err(read_sm)?
        else {
            return Ok(None);
        };
        let stored: StoredSnapshot = decode(&raw).map_err(read_sm)?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}
