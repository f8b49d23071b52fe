//! [`ReplicatedStore`] and [`ConsensusLog`] on the sled store.
//!
//! A committed entry is applied as one sled `Batch` on the shard's tree: its events, their
//! shard-log entries and the applied marker (key `a`) land together or not at all. (Plain
//! appends avoid batches for speed; a replicated entry usually carries many appends, so
//! one batch per entry is cheap, and atomicity is what makes re-applying after a crash
//! safe.)
//!
//! The consensus log lives in two trees shared by all groups: `raft-log`
//! (`group u32 | index u64` -> entry) and `raft-meta` (`group u32 | name` -> value).

use std::collections::HashMap;

use crate::error::StoreError;
use crate::event_store::{EventStore, ShardId};
use crate::replica::{Append, AppendOutcome, ConsensusLog, ReplicatedStore};
use crate::sled_store::{encode_append, entity_prefix, log_key, repair_tail, storage, SledStore};

const MARKER: &[u8] = b"a";

impl ReplicatedStore for SledStore {
    fn apply_entry(
        &self,
        shard: ShardId,
        appends: &[Append],
        marker: &[u8],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let s = self.shard(shard)?;
        let mut head = s.head.lock();
        let mut offset = head.next_offset;
        let mut batch = sled::Batch::default();
        // Entities this entry already appended to (by event-key prefix): their journal is
        // ahead of the tree.
        let mut seqs: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut outcomes = Vec::with_capacity(appends.len());
        for a in appends {
            if a.events.is_empty() {
                outcomes.push(Err(StoreError::Invalid(
                    "an append needs at least one event".into(),
                )));
                continue;
            }
            let prefix = match entity_prefix(b'e', &a.entity) {
                Ok(p) => p,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            let actual = match seqs.get(&prefix) {
                Some(&seq) => seq,
                None => head.last_seq(&s.tree, &prefix)?,
            };
            if actual != a.expected_seq {
                outcomes.push(Err(StoreError::Conflict {
                    entity: a.entity.clone(),
                    expected: a.expected_seq,
                    actual,
                }));
                continue;
            }
            let (key, record) = match encode_append(&prefix, &a.entity, a.expected_seq, &a.events) {
                Ok(kr) => kr,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            let seq = a.expected_seq + a.events.len() as u64;
            let last_offset = offset + a.events.len() as u64 - 1;
            batch.insert(&log_key(last_offset)[..], key.as_slice());
            batch.insert(key, record);
            offset = last_offset + 1;
            seqs.insert(prefix, seq);
            outcomes.push(Ok(seq));
        }
        batch.insert(MARKER, marker);
        if let Err(e) = s.tree.apply_batch(batch) {
            for prefix in seqs.keys() {
                head.forget(prefix);
            }
            return Err(storage(e));
        }
        head.next_offset = offset;
        for (prefix, seq) in &seqs {
            head.wrote(prefix, *seq);
        }
        Ok(outcomes)
    }

    fn applied_marker(&self, shard: ShardId) -> Result<Option<Vec<u8>>, StoreError> {
        let s = self.shard(shard)?;
        Ok(s.tree.get(MARKER).map_err(storage)?.map(|v| v.to_vec()))
    }

    fn export_shard(&self, shard: ShardId) -> Result<Vec<u8>, StoreError> {
        let s = self.shard(shard)?;
        // Appends hold this lock: the export is one consistent point of the shard.
        let _appends = s.head.lock();
        let mut out = Vec::new();
        for kv in s.tree.iter() {
            let (k, v) = kv.map_err(storage)?;
            for part in [&k[..], &v[..]] {
                out.extend_from_slice(&(part.len() as u32).to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        Ok(out)
    }

    fn import_shard(&self, shard: ShardId, data: &[u8]) -> Result<(), StoreError> {
        let s = self.shard(shard)?;
        let mut head = s.head.lock();
        let mut batch = sled::Batch::default();
        for kv in s.tree.iter() {
            batch.remove(kv.map_err(storage)?.0);
        }
        let mut rest = data;
        while !rest.is_empty() {
            let k = take_part(&mut rest)?;
            let v = take_part(&mut rest)?;
            batch.insert(k, v);
        }
        // Every entity's journal may have changed, whether or not the batch landed.
        head.forget_all();
        s.tree.apply_batch(batch).map_err(storage)?;
        head.next_offset = repair_tail(&s.tree, shard)? + 1;
        Ok(())
    }
}

/// Takes one `[len u32][bytes]` part off the front of an export.
fn take_part<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], StoreError> {
    let torn = || StoreError::Corrupt("shard export truncated".into());
    let len =
        u32::from_be_bytes(rest.get(..4).ok_or_else(torn)?.try_into().expect("4 bytes")) as usize;
    let part = rest.get(4..4 + len).ok_or_else(torn)?;
    *rest = &rest[4 + len..];
    Ok(part)
}

fn entry_key(group: u32, index: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&group.to_be_bytes());
    k[4..].copy_from_slice(&index.to_be_bytes());
    k
}

fn value_key(group: u32, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + name.len());
    k.extend_from_slice(&group.to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

impl ConsensusLog for SledStore {
    fn append_entries(&self, group: u32, entries: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        for (index, entry) in entries {
            self.raft_log
                .insert(entry_key(group, *index), entry.as_slice())
                .map_err(storage)?;
        }
        Ok(())
    }

    fn read_entries(&self, group: u32, from: u64, until: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        if from >= until {
            return Ok(Vec::new());
        }
        self.raft_log
            .range(entry_key(group, from)..entry_key(group, until))
            .map(|kv| kv.map(|(_, v)| v.to_vec()).map_err(storage))
            .collect()
    }

    fn last_entry(&self, group: u32) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .raft_log
            .range(entry_key(group, 0)..=entry_key(group, u64::MAX))
            .next_back()
        {
            Some(kv) => Ok(Some(kv.map_err(storage)?.1.to_vec())),
            None => Ok(None),
        }
    }

    fn remove_entries(&self, group: u32, from: u64, until: u64) -> Result<(), StoreError> {
        if from >= until {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for kv in self
            .raft_log
            .range(entry_key(group, from)..entry_key(group, until))
        {
            let (k, _) = kv.map_err(storage)?;
            batch.remove(k);
        }
        self.raft_log.apply_batch(batch).map_err(storage)
    }

    fn save_value(&self, group: u32, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.raft_meta
            .insert(value_key(group, name), value)
            .map_err(storage)?;
        Ok(())
    }

    fn load_value(&self, group: u32, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .raft_meta
            .get(value_key(group, name))
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    fn flush(&self) -> Result<(), StoreError> {
        EventStore::flush(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::event;
    use crate::StoreOptions;

    fn append(entity: &str, expected_seq: u64, n: u8) -> Append {
        Append {
            entity: entity.into(),
            expected_seq,
            events: (0..n).map(|i| event("Added", i)).collect(),
        }
    }

    #[test]
    fn an_entry_applies_its_appends_in_order_and_refuses_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&StoreOptions::new(dir.path().join("db"), 2)).unwrap();
        let out = store
            .apply_entry(
                1,
                &[
                    append("c/1", 0, 2),
                    append("c/1", 2, 1),
                    append("c/1", 2, 1),
                    append("c/2", 0, 1),
                ],
                b"m1",
            )
            .unwrap();
        assert_eq!(out[0], Ok(2));
        assert_eq!(out[1], Ok(3));
        assert!(matches!(
            out[2],
            Err(StoreError::Conflict {
                expected: 2,
                actual: 3,
                ..
            })
        ));
        assert_eq!(out[3], Ok(1));
        assert_eq!(store.last_seq(1, "c/1").unwrap(), 3);
        let log = store.read_shard(1, 1, 100).unwrap();
        assert_eq!(
            log.iter().map(|e| e.offset).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            store.applied_marker(1).unwrap().as_deref(),
            Some(&b"m1"[..])
        );
        // Re-applying the same entry (a restart that lost the marker) changes nothing.
        let again = store.apply_entry(1, &[append("c/1", 0, 2)], b"m1").unwrap();
        assert!(again[0].is_err());
        assert_eq!(store.read_shard(1, 1, 100).unwrap().len(), 4);
    }

    #[test]
    fn an_export_imported_elsewhere_is_the_same_shard() {
        let dir = tempfile::tempdir().unwrap();
        let a = SledStore::open(&StoreOptions::new(dir.path().join("a"), 2)).unwrap();
        let b = SledStore::open(&StoreOptions::new(dir.path().join("b"), 2)).unwrap();
        a.apply_entry(0, &[append("c/1", 0, 3), append("c/9", 0, 1)], b"m7")
            .unwrap();
        b.apply_entry(0, &[append("c/old", 0, 5), append("c/1", 0, 7)], b"m1")
            .unwrap();
        b.import_shard(0, &a.export_shard(0).unwrap()).unwrap();

        assert_eq!(b.entities(0).unwrap(), vec!["c/1", "c/9"]);
        assert_eq!(
            b.read_shard(0, 1, 100).unwrap(),
            a.read_shard(0, 1, 100).unwrap()
        );
        assert_eq!(b.applied_marker(0).unwrap().as_deref(), Some(&b"m7"[..]));
        // Appends continue at the next offset.
        b.apply_entry(0, &[append("c/1", 3, 1)], b"m8").unwrap();
        assert_eq!(b.read_shard(0, 5, 10).unwrap()[0].offset, 5);
        // What b remembered of its own journals went with them.
        assert_eq!(b.last_seq(0, "c/old").unwrap(), 0);
        let stale = b.apply_entry(0, &[append("c/1", 7, 1)], b"m9").unwrap();
        assert!(matches!(
            stale[0],
            Err(StoreError::Conflict {
                expected: 7,
                actual: 4,
                ..
            })
        ));
    }

    #[test]
    fn the_consensus_log_keeps_groups_apart() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(&StoreOptions::new(dir.path().join("db"), 1)).unwrap();
        s.append_entries(
            1,
            &[(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())],
        )
        .unwrap();
        s.append_entries(2, &[(1, b"x".to_vec())]).unwrap();
        assert_eq!(
            s.read_entries(1, 2, 10).unwrap(),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(s.last_entry(1).unwrap(), Some(b"c".to_vec()));
        assert_eq!(s.last_entry(3).unwrap(), None);
        s.remove_entries(1, 3, u64::MAX).unwrap();
        s.remove_entries(1, 0, 2).unwrap();
        assert_eq!(s.read_entries(1, 0, u64::MAX).unwrap(), vec![b"b".to_vec()]);
        assert_eq!(s.last_entry(2).unwrap(), Some(b"x".to_vec()));
        s.save_value(1, "vote", b"v").unwrap();
        assert_eq!(s.load_value(1, "vote").unwrap(), Some(b"v".to_vec()));
        assert_eq!(s.load_value(2, "vote").unwrap(), None);
    }
}
