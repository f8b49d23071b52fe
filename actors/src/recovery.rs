//! Rebuilding an entity's state from its latest snapshot plus the events after it.

use ecommesh_persistence::{Codec, DefaultCodec, EventStore, ShardId, Snapshot, StoreError};

use crate::entity::{decode_event, Entity};

/// The state of an entity at `seq`, as rebuilt from storage.
#[derive(Debug)]
pub struct Recovered<S> {
    pub state: S,
    pub seq: u64,
    /// Events replayed on top of the snapshot (all of them when there was none).
    pub replayed: u64,
}

/// Loads the latest usable snapshot and replays the tail of the journal after it.
///
/// A snapshot is only a cache: one of another state version, one that does not decode,
/// or one ahead of the journal (possible only if a crash lost the journal's tail but not
/// the snapshot) is ignored and the state is rebuilt from the first event.
pub fn recover<E: Entity>(
    store: &dyn EventStore,
    shard: ShardId,
    key: &str,
) -> Result<Recovered<E::State>, StoreError> {
    let codec = DefaultCodec::default();
    let mut base: Option<(E::State, u64)> = None;
    if let Some(snap) = store.load_snapshot(shard, key)? {
        if snap.schema_version == E::STATE_VERSION {
            match codec.decode::<E::State>(&snap.payload) {
                Ok(state) => base = Some((state, snap.seq)),
                Err(e) => tracing::warn!(entity = key, error = %e, "ignoring undecodable snapshot"),
            }
        }
    }
    let (mut state, mut seq) = base.unwrap_or_default();
    let tail = store.read_entity(shard, key, seq)?;
    if seq > 0 && tail.is_empty() && store.last_seq(shard, key)? < seq {
        tracing::warn!(
            entity = key,
            snapshot_seq = seq,
            "snapshot is ahead of the journal; replaying all"
        );
        return replay_all::<E>(store, shard, key);
    }
    let replayed = tail.len() as u64;
    for env in &tail {
        if env.seq != seq + 1 {
            return Err(StoreError::Corrupt(format!(
                "{key}: expected seq {} but read {}",
                seq + 1,
                env.seq
            )));
        }
        E::apply(&mut state, &decode_event::<E>(env)?);
        seq = env.seq;
    }
    Ok(Recovered {
        state,
        seq,
        replayed,
    })
}

fn replay_all<E: Entity>(
    store: &dyn EventStore,
    shard: ShardId,
    key: &str,
) -> Result<Recovered<E::State>, StoreError> {
    let mut state = E::State::default();
    let events = store.read_entity(shard, key, 0)?;
    for env in &events {
        E::apply(&mut state, &decode_event::<E>(env)?);
    }
    Ok(Recovered {
        state,
        seq: events.last().map_or(0, |e| e.seq),
        replayed: events.len() as u64,
    })
}

/// Stores a snapshot of `state` at `seq`.
pub fn snapshot<E: Entity>(
    store: &dyn EventStore,
    shard: ShardId,
    key: &str,
    state: &E::State,
    seq: u64,
) -> Result<(), StoreError> {
    let payload = DefaultCodec::default().encode(state)?;
    store.save_snapshot(
        shard,
        key,
        &Snapshot {
            seq,
            schema_version: E::STATE_VERSION,
            payload,
        },
    )
}
