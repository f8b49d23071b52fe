//! The sled implementation of [`EventStore`].
//!
//! Layout: one sled tree per shard (`shard-NNNN`), holding
//! - `e | len u16 | entity | seq u64` -> envelope (the entity's journal, ordered by seq),
//! - `l | offset u64` -> the `e` key of the event at that offset (the shard's log),
//! - `s | len u16 | entity` -> the entity's latest snapshot;
//!
//! plus a `meta` tree (shard count) and an `offsets` tree (`consumer | 0 | shard u32` ->
//! offset). Integers are big-endian so that key order is numeric order.
//!
//! An append takes its shard's lock, checks the expected sequence number, and writes the
//! events and their log entries in one atomic batch, so a shard's offsets follow append
//! order and a reader never sees a hole. sled recovers to a consistent prefix of what was
//! written after a crash; only what was [`flush`](EventStore::flush)ed is promised.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::envelope::{encode_parts, EventEnvelope, NewEvent, Snapshot};
use crate::error::StoreError;
use crate::journal::{check_shard, EventStore, ShardEvent, ShardId};

const META_SHARDS: &[u8] = b"shard_count";

/// How to open a [`SledStore`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub path: PathBuf,
    /// Fixed per data directory: opening with another count fails.
    pub shards: u32,
    /// sled's page cache size, in bytes.
    pub cache_capacity: u64,
}

impl StoreOptions {
    pub fn new(path: impl Into<PathBuf>, shards: u32) -> Self {
        StoreOptions {
            path: path.into(),
            shards,
            cache_capacity: 256 * 1024 * 1024,
        }
    }
}

struct Shard {
    tree: sled::Tree,
    /// Serializes appends in this shard; holds the next free offset of its log.
    next_offset: Mutex<u64>,
}

/// An [`EventStore`] on a sled database in one directory.
pub struct SledStore {
    db: sled::Db,
    shards: Vec<Shard>,
    offsets: sled::Tree,
}

fn storage(e: sled::Error) -> StoreError {
    StoreError::Storage(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the store, checking the shard count recorded in it.
    pub fn open(opts: &StoreOptions) -> Result<Self, StoreError> {
        if opts.shards == 0 {
            return Err(StoreError::Invalid("shard count must be at least 1".into()));
        }
        let db = sled::Config::new()
            .path(&opts.path)
            .cache_capacity(opts.cache_capacity)
            .open()
            .map_err(|e| open_error(&opts.path, e))?;
        let meta = db.open_tree("meta").map_err(storage)?;
        match meta.get(META_SHARDS).map_err(storage)? {
            Some(raw) => {
                let stored = u32::from_be_bytes(
                    raw.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("shard count".into()))?,
                );
                if stored != opts.shards {
                    return Err(StoreError::ShardCountMismatch {
                        stored,
                        requested: opts.shards,
                    });
                }
            }
            None => {
                meta.insert(META_SHARDS, &opts.shards.to_be_bytes())
                    .map_err(storage)?;
                db.flush().map_err(storage)?;
            }
        }
        let mut shards = Vec::with_capacity(opts.shards as usize);
        for i in 0..opts.shards {
            let tree = db.open_tree(format!("shard-{i:04}")).map_err(storage)?;
            let next = match tree.scan_prefix(b"l").next_back() {
                Some(kv) => {
                    let (k, _) = kv.map_err(storage)?;
                    be_u64(&k[1..])? + 1
                }
                None => 1,
            };
            shards.push(Shard {
                tree,
                next_offset: Mutex::new(next),
            });
        }
        let offsets = db.open_tree("offsets").map_err(storage)?;
        Ok(SledStore {
            db,
            shards,
            offsets,
        })
    }

    fn shard(&self, shard: ShardId) -> Result<&Shard, StoreError> {
        check_shard(shard, self.shard_count())?;
        Ok(&self.shards[shard as usize])
    }

    /// Bytes on disk, for operators and benchmarks.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn open_error(path: &Path, e: sled::Error) -> StoreError {
    if let sled::Error::Io(io) = &e {
        if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") {
            return StoreError::Locked {
                path: path.display().to_string(),
            };
        }
    }
    StoreError::Storage(format!("cannot open {}: {e}", path.display()))
}

fn be_u64(b: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(b.try_into().map_err(|_| {
        StoreError::Corrupt(format!("bad u64 key part of {} bytes", b.len()))
    })?))
}

/// `tag | len u16 | entity`
fn entity_prefix(tag: u8, entity: &str) -> Result<Vec<u8>, StoreError> {
    let len = u16::try_from(entity.len()).map_err(|_| {
        StoreError::Invalid(format!("entity id of {} bytes is too long", entity.len()))
    })?;
    let mut k = Vec::with_capacity(3 + entity.len() + 8);
    k.push(tag);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(entity.as_bytes());
    Ok(k)
}

fn event_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn last_seq_in(tree: &sled::Tree, prefix: &[u8]) -> Result<u64, StoreError> {
    match tree.scan_prefix(prefix).next_back() {
        Some(kv) => {
            let (k, _) = kv.map_err(storage)?;
            be_u64(&k[prefix.len()..])
        }
        None => Ok(0),
    }
}

impl EventStore for SledStore {
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
        let s = self.shard(shard)?;
        let prefix = entity_prefix(b'e', entity)?;
        let mut next_offset = s.next_offset.lock();
        let actual = last_seq_in(&s.tree, &prefix)?;
        if actual != expected_seq {
            return Err(StoreError::Conflict {
                entity: entity.to_owned(),
                expected: expected_seq,
                actual,
            });
        }
        let mut batch = sled::Batch::default();
        let mut seq = expected_seq;
        let mut offset = *next_offset;
        for ev in events {
            seq += 1;
            let key = event_key(&prefix, seq);
            let value = encode_parts(
                entity,
                seq,
                ev.schema_version,
                ev.event_type,
                ev.timestamp_ms,
                &ev.payload,
            )?;
            let mut log_key = [0u8; 9];
            log_key[0] = b'l';
            log_key[1..].copy_from_slice(&offset.to_be_bytes());
            batch.insert(&log_key[..], key.as_slice());
            batch.insert(key, value);
            offset += 1;
        }
        s.tree.apply_batch(batch).map_err(storage)?;
        *next_offset = offset;
        Ok(seq)
    }

    fn read_entity(
        &self,
        shard: ShardId,
        entity: &str,
        after_seq: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let s = self.shard(shard)?;
        let prefix = entity_prefix(b'e', entity)?;
        let start = event_key(&prefix, after_seq.saturating_add(1));
        let end = event_key(&prefix, u64::MAX);
        let mut out = Vec::new();
        for kv in s.tree.range(start..=end) {
            let (_, v) = kv.map_err(storage)?;
            out.push(EventEnvelope::decode(&v)?);
        }
        Ok(out)
    }

    fn last_seq(&self, shard: ShardId, entity: &str) -> Result<u64, StoreError> {
        let s = self.shard(shard)?;
        last_seq_in(&s.tree, &entity_prefix(b'e', entity)?)
    }

    fn save_snapshot(
        &self,
        shard: ShardId,
        entity: &str,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let s = self.shard(shard)?;
        s.tree
            .insert(entity_prefix(b's', entity)?, snapshot.encode())
            .map_err(storage)?;
        Ok(())
    }

    fn load_snapshot(&self, shard: ShardId, entity: &str) -> Result<Option<Snapshot>, StoreError> {
        let s = self.shard(shard)?;
        match s.tree.get(entity_prefix(b's', entity)?).map_err(storage)? {
            Some(v) => Ok(Some(Snapshot::decode(&v)?)),
            None => Ok(None),
        }
    }

    fn read_shard(
        &self,
        shard: ShardId,
        from_offset: u64,
        limit: usize,
    ) -> Result<Vec<ShardEvent>, StoreError> {
        let s = self.shard(shard)?;
        let mut start = [0u8; 9];
        start[0] = b'l';
        start[1..].copy_from_slice(&from_offset.max(1).to_be_bytes());
        let mut end = [0xffu8; 9];
        end[0] = b'l';
        let mut out = Vec::new();
        for kv in s.tree.range(start..=end).take(limit) {
            let (k, event_key) = kv.map_err(storage)?;
            let offset = be_u64(&k[1..])?;
            let raw = s.tree.get(&event_key).map_err(storage)?.ok_or_else(|| {
                StoreError::Corrupt(format!("shard {shard} offset {offset} points at no event"))
            })?;
            out.push(ShardEvent {
                offset,
                event: EventEnvelope::decode(&raw)?,
            });
        }
        Ok(out)
    }

    fn save_offset(&self, consumer: &str, shard: ShardId, offset: u64) -> Result<(), StoreError> {
        check_shard(shard, self.shard_count())?;
        self.offsets
            .insert(offset_key(consumer, shard), &offset.to_be_bytes())
            .map_err(storage)?;
        Ok(())
    }

    fn load_offset(&self, consumer: &str, shard: ShardId) -> Result<u64, StoreError> {
        check_shard(shard, self.shard_count())?;
        match self
            .offsets
            .get(offset_key(consumer, shard))
            .map_err(storage)?
        {
            Some(v) => be_u64(&v),
            None => Ok(0),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(storage)
    }
}

fn offset_key(consumer: &str, shard: ShardId) -> Vec<u8> {
    let mut k = Vec::with_capacity(consumer.len() + 5);
    k.extend_from_slice(consumer.as_bytes());
    k.push(0);
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn passes_the_shared_suite() {
        crate::testing::suite(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = SledStore::open(&StoreOptions::new(dir.path().join("db"), 4)).unwrap();
            // Keep the directory alive as long as the store.
            std::mem::forget(dir);
            Arc::new(store) as Arc<dyn EventStore>
        });
    }

    #[test]
    fn shard_count_is_fixed_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(SledStore::open(&StoreOptions::new(&path, 8)).unwrap());
        let err = SledStore::open(&StoreOptions::new(&path, 16))
            .err()
            .unwrap();
        assert_eq!(
            err,
            StoreError::ShardCountMismatch {
                stored: 8,
                requested: 16
            }
        );
        // The mismatch overwrote nothing: the original count still opens.
        SledStore::open(&StoreOptions::new(&path, 8)).unwrap();
    }

    #[test]
    fn events_and_offsets_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions::new(dir.path().join("db"), 2);
        {
            let s = SledStore::open(&opts).unwrap();
            s.append(1, "a", 0, &[crate::testing::event("x", 1)])
                .unwrap();
            s.append(1, "b", 0, &[crate::testing::event("y", 2)])
                .unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(&opts).unwrap();
        assert_eq!(s.last_seq(1, "a").unwrap(), 1);
        // The log continues at offset 3 after a reopen, without a gap or overwrite.
        s.append(1, "a", 1, &[crate::testing::event("z", 3)])
            .unwrap();
        let log: Vec<u64> = s
            .read_shard(1, 1, 10)
            .unwrap()
            .iter()
            .map(|e| e.offset)
            .collect();
        assert_eq!(log, vec![1, 2, 3]);
    }
}
