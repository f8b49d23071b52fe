//! The shard registry: the one place that decides where an entity lives, and the runtime
//! that owns the store, the group-commit writer and the arbiters the shards run on.
//!
//! `shard = fnv1a64("{kind}/{id}") % shards`. The hash is written out here, not taken from
//! `std`, because it must never change: the shard count and the hash together decide where
//! an entity's journal is, for the life of a data directory.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use ecommesh_persistence::{EventStore, GroupCommit, ShardId, StoreError};

use crate::entity::Entity;
use crate::error::EntityError;
use crate::journal::{Journal, LocalJournal};
use crate::shard::{
    CommandResult, Execute, LiveCount, Observer, Read, ReplyTo, Reset, Shard, ShardSettings,
};
use crate::supervisor::CrashPolicy;

/// How many times a command without a precondition is decided again after its append
/// met a newer journal ([`Registry::execute`]).
pub const CONFLICT_RETRIES: u32 = 2;

/// The FNV-1a 64-bit hash of `kind/id`, stable across builds and platforms.
pub fn stable_hash(kind: &str, id: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    kind.bytes()
        .chain(std::iter::once(b'/'))
        .chain(id.bytes())
        .fold(OFFSET, |h, b| (h ^ b as u64).wrapping_mul(PRIME))
}

/// The shard that owns entity `id` of kind `kind`.
pub fn shard_for(kind: &str, id: &str, shards: u32) -> ShardId {
    (stable_hash(kind, id) % shards as u64) as ShardId
}

/// Settings of the entity runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Snapshot an entity every this many events.
    pub snapshot_every: u32,
    /// Passivate an entity after this long without commands.
    pub idle_timeout: Duration,
    /// Most live entities of one kind on this node; past it the least recently used are
    /// passivated early.
    pub max_live_entities: usize,
    /// Commands that may wait in one shard's mailbox before callers get `Overloaded`.
    pub mailbox_capacity: usize,
    /// Quarantine an entity after this many crashes within `crash_window`.
    pub crash_limit: u32,
    pub crash_window: Duration,
    pub quarantine: Duration,
    /// Threads the shard actors run on.
    pub arbiters: usize,
    /// Under load, how long a flush may wait for its batch to fill (0: never).
    pub commit_delay: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            snapshot_every: 100,
            idle_timeout: Duration::from_secs(300),
            max_live_entities: 1_000_000,
            mailbox_capacity: 1024,
            crash_limit: 3,
            crash_window: Duration::from_secs(60),
            quarantine: Duration::from_secs(60),
            arbiters: 2,
            commit_delay: Duration::from_micros(300),
        }
    }
}

/// The entity runtime of one node. Must be started inside an actix `System`.
pub struct Runtime {
    store: Arc<dyn EventStore>,
    commit: GroupCommit,
    journal: Arc<dyn Journal>,
    config: RuntimeConfig,
    arbiters: Vec<Arbiter>,
    next_arbiter: AtomicUsize,
}

impl Runtime {
    /// A single node's runtime: appends go to `store`, made durable by group commit.
    pub fn start(store: Arc<dyn EventStore>, config: RuntimeConfig) -> Self {
        let commit = GroupCommit::with_delay(store.clone(), config.commit_delay);
        let journal = Arc::new(LocalJournal::new(store.clone(), commit.clone()));
        Self::with_journal(store, commit, journal, config)
    }

    /// A runtime whose appends go to `journal` (a cluster's consensus groups); `store` is
    /// where they land once durable, and what entities are rebuilt from.
    pub fn with_journal(
        store: Arc<dyn EventStore>,
        commit: GroupCommit,
        journal: Arc<dyn Journal>,
        config: RuntimeConfig,
    ) -> Self {
        let arbiters = (0..config.arbiters.max(1))
            .map(|_| Arbiter::new())
            .collect();
        Runtime {
            store,
            commit,
            journal,
            config,
            arbiters,
            next_arbiter: AtomicUsize::new(0),
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn group_commit(&self) -> &GroupCommit {
        &self.commit
    }

    /// Starts one shard actor per shard for entity kind `E`, spread over the arbiters.
    /// Call once per kind; the registry is cheap to clone.
    pub fn registry<E: Entity>(&self) -> Registry<E> {
        self.observed_registry(None)
    }

    /// Like [`Runtime::registry`], and `observer` hears every durable change of kind `E`.
    pub fn observed_registry<E: Entity>(&self, observer: Option<Observer<E>>) -> Registry<E> {
        let settings = ShardSettings {
            snapshot_every: self.config.snapshot_every.max(1),
            idle_timeout: self.config.idle_timeout,
            max_live: self
                .config
                .max_live_entities
                .div_ceil(self.store.shard_count() as usize)
                .max(1),
            crash: CrashPolicy {
                limit: self.config.crash_limit.max(1),
                window: self.config.crash_window,
                quarantine: self.config.quarantine,
            },
        };
        let capacity = self.config.mailbox_capacity.max(1);
        let shards = (0..self.store.shard_count())
            .map(|id| {
                let arbiter = &self.arbiters
                    [self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len()];
                let queued = Arc::new(AtomicUsize::new(0));
                let (store, journal, q) =
                    (self.store.clone(), self.journal.clone(), queued.clone());
                let observer = observer.clone();
                let addr = Shard::<E>::start_in_arbiter(&arbiter.handle(), move |ctx| {
                    // Our own counter refuses work first; actix's limit is only a backstop.
                    ctx.set_mailbox_capacity(capacity + 64);
                    Shard::new(id, store, journal, settings, q, observer)
                });
                ShardHandle { addr, queued }
            })
            .collect();
        Registry {
            shards: Arc::new(shards),
            capacity,
            journal: self.journal.clone(),
            _entity: PhantomData,
        }
    }

    /// Stops the shard actors, flushes what is pending and stops the group-commit writer.
    pub fn shutdown(self) -> Result<(), StoreError> {
        for a in &self.arbiters {
            a.stop();
        }
        for a in self.arbiters {
            let _ = a.join();
        }
        self.commit.shutdown();
        self.store.flush()
    }
}

struct ShardHandle<E: Entity> {
    addr: Addr<Shard<E>>,
    queued: Arc<AtomicUsize>,
}

/// Routes commands for entities of kind `E` to their shards.
pub struct Registry<E: Entity> {
    shards: Arc<Vec<ShardHandle<E>>>,
    capacity: usize,
    journal: Arc<dyn Journal>,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> Clone for Registry<E> {
    fn clone(&self) -> Self {
        Registry {
            shards: self.shards.clone(),
            capacity: self.capacity,
            journal: self.journal.clone(),
            _entity: PhantomData,
        }
    }
}

impl<E: Entity> Registry<E> {
    pub fn shard_of(&self, id: &str) -> ShardId {
        shard_for(E::KIND, id, self.shards.len() as u32)
    }

    /// Runs `command` on entity `id`; resolves once its events are durable.
    ///
    /// A command without `expected_seq` whose append met a journal ahead of the entity's
    /// state here (in a cluster: an earlier attempt whose answer was lost, or an earlier
    /// leader's write, applied after the state was read) did not happen; the shard reloads
    /// the entity and the command is decided again on what the journal now holds, up to
    /// [`CONFLICT_RETRIES`] times. The caller asked for no particular version, so a
    /// conflict would tell it nothing it could act on. (Found by the chaos suite's packet
    /// loss: such commands answered 409.)
    pub async fn execute(
        &self,
        id: impl Into<String>,
        command: E::Command,
        expected_seq: Option<u64>,
    ) -> CommandResult<E> {
        self.run(id.into(), command, expected_seq, false).await
    }

    /// Like [`Registry::execute`], but on a journal that
    /// [keeps write order](Journal::keeps_write_order) it resolves once the events are
    /// written, before they are durable; elsewhere it is `execute`. For a multi-step
    /// operation (checkout) that pays one flush wait for many steps: the caller must
    /// [`Registry::sync`] before anything it decided leaves the node (a payment, an
    /// answer), and a crash before that keeps only a prefix of its steps, as if it had
    /// stopped there. Everyone else still sees only what is durable.
    pub async fn execute_unsynced(
        &self,
        id: impl Into<String>,
        command: E::Command,
        expected_seq: Option<u64>,
    ) -> CommandResult<E> {
        let unsynced = self.journal.keeps_write_order();
        self.run(id.into(), command, expected_seq, unsynced).await
    }

    /// Like [`Registry::read`], but answers at once with what may not be durable yet, on a
    /// journal that keeps write order (see [`Registry::execute_unsynced`]).
    pub async fn read_unsynced(&self, id: impl Into<String>) -> CommandResult<E> {
        let id = id.into();
        let shard = self.shard_of(&id);
        let unsynced = self.journal.keeps_write_order();
        self.send(shard, |reply_to| Read {
            id,
            unsynced,
            reply_to,
        })
        .await
    }

    /// Resolves once everything written so far, by every registry of this runtime, is
    /// durable: what an unsynced step showed can now be acted on.
    pub async fn sync(&self) -> Result<(), StoreError> {
        if !self.journal.keeps_write_order() {
            // Every answer given was durable already.
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.journal.after_pending(
            0,
            Box::new(move |flushed| {
                let _ = tx.send(flushed);
            }),
        );
        rx.await.unwrap_or(Err(StoreError::ShutDown))
    }

    async fn run(
        &self,
        id: String,
        command: E::Command,
        expected_seq: Option<u64>,
        unsynced: bool,
    ) -> CommandResult<E> {
        let shard = self.shard_of(&id);
        let mut retries = if expected_seq.is_none() {
            CONFLICT_RETRIES
        } else {
            0
        };
        loop {
            let (id, command) = (id.clone(), command.clone());
            let outcome = self
                .send(shard, move |reply_to| Execute {
                    id,
                    command,
                    expected_seq,
                    unsynced,
                    reply_to,
                })
                .await;
            match outcome {
                Err(EntityError::Conflict { .. }) if retries > 0 => {
                    retries -= 1;
                    metrics::counter!("ecommesh_entity_conflicts_retried_total", "kind" => E::KIND)
                        .increment(1);
                }
                other => return other,
            }
        }
    }

    /// Reads entity `id` (activating it if needed); shows only what is durable.
    pub async fn read(&self, id: impl Into<String>) -> CommandResult<E> {
        let id = id.into();
        let shard = self.shard_of(&id);
        self.send(shard, |reply_to| Read {
            id,
            unsynced: false,
            reply_to,
        })
        .await
    }

    async fn send<M>(
        &self,
        shard: ShardId,
        message: impl FnOnce(ReplyTo<E>) -> M,
    ) -> CommandResult<E>
    where
        M: Message<Result = ()> + Send + 'static,
        Shard<E>: Handler<M>,
        <Shard<E> as Actor>::Context: actix::dev::ToEnvelope<Shard<E>, M>,
    {
        let handle = &self.shards[shard as usize];
        if handle.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            handle.queued.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("ecommesh_shard_overloads_total", "kind" => E::KIND).increment(1);
            return Err(EntityError::Overloaded {
                shard,
                retry_after: Duration::from_secs(1),
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Our counter bounds the mailbox, so actix's own bound is never reached here.
        handle.addr.do_send(message(tx));
        // A dropped sender means the shard is gone (shutdown).
        rx.await.unwrap_or(Err(EntityError::Unavailable))
    }

    /// Drops the live entities of `shard`: its lead moved, so another node may have
    /// written to them. Commands sent after this see the journal's state.
    pub fn reset(&self, shard: ShardId) {
        if let Some(h) = self.shards.get(shard as usize) {
            h.addr.do_send(Reset);
        }
    }

    /// The number of live entities of this kind, over all shards.
    pub async fn live_entities(&self) -> usize {
        let mut total = 0;
        for s in self.shards.iter() {
            total += s.addr.send(LiveCount).await.unwrap_or(0);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_never_changes() {
        // These values pin the placement of every entity ever written: if this test
        // fails, existing data directories would route entities to the wrong shard.
        // (Reference values computed with an independent FNV-1a implementation.)
        assert_eq!(stable_hash("cart", "c-1"), 0x3f83_37cd_41fd_c8b7);
        assert_eq!(stable_hash("", ""), 0xaf63_a24c_8601_89fe);
        assert_eq!(stable_hash("product", "p-42"), 0x2fe2_0688_7153_3780);
        assert_eq!(
            shard_for("cart", "c-1", 64),
            (0x3f83_37cd_41fd_c8b7u64 % 64) as u32
        );
    }

    #[test]
    fn shards_spread_evenly() {
        let mut counts = [0u32; 64];
        for i in 0..64_000 {
            counts[shard_for("cart", &format!("c-{i}"), 64) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 800 && *max < 1200, "uneven spread: {min}..{max}");
    }
}
