//! [`Journal`]: how a shard makes an entity's events durable. On a single node that is an
//! append to the local store plus group commit; in a cluster it is a proposal to the
//! shard's consensus group, durable once a majority has it. The shard actor does not know
//! which: it appends, goes on with the next command, and replies when told.

use std::sync::Arc;

use ecommesh_persistence::{EventStore, GroupCommit, NewEvent, ShardId, StoreError};

/// Told once an append is durable (with the entity's new last sequence number) or failed.
/// A failure may leave the append's fate unknown (see [`StoreError::Unavailable`]).
pub type AppendDone = Box<dyn FnOnce(Result<u64, StoreError>) + Send>;

/// Told once everything appended before it is durable, or that it failed.
pub type Flushed = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Orders the appends of one shard: a larger ticket was appended later.
pub type Ticket = u64;

/// Where a shard's appends go to become durable.
pub trait Journal: Send + Sync + 'static {
    /// Starts appending `events` to `entity`, expected to be at `expected_seq`. `done` is
    /// called exactly once: at once for an error known at once, otherwise from another
    /// thread. Appends of one shard become durable in the order they were made.
    fn append(
        &self,
        shard: ShardId,
        entity: &str,
        expected_seq: u64,
        events: Vec<NewEvent>,
        done: AppendDone,
    ) -> Ticket;

    /// True once the append of `ticket`, and every one before it in the shard, is settled.
    fn is_durable(&self, shard: ShardId, ticket: Ticket) -> bool;

    /// The ticket of the latest append made in `shard`: a state read from the store now
    /// may show it, so it is shown only once this ticket is durable.
    fn last_ticket(&self, shard: ShardId) -> Ticket;

    /// Calls `then` once every append made so far in `shard` is settled. On a journal that
    /// [keeps write order](Journal::keeps_write_order) that covers every shard.
    fn after_pending(&self, shard: ShardId, then: Flushed);

    /// True when appends of every shard become durable in the order they were made and a
    /// crash keeps only a prefix of them (a single node's log file). Then a caller may go
    /// on from an append that is written but not yet durable, as long as it waits for
    /// [`Journal::after_pending`] before anything it decided leaves the node: whatever
    /// survives a crash is still a prefix of what it did. A consensus journal cannot offer
    /// this: an append is not even final until a majority has it.
    fn keeps_write_order(&self) -> bool {
        false
    }
}

/// The single-node journal: the local store, made durable by group commit.
pub struct LocalJournal {
    store: Arc<dyn EventStore>,
    commit: GroupCommit,
}

impl LocalJournal {
    pub fn new(store: Arc<dyn EventStore>, commit: GroupCommit) -> Self {
        LocalJournal { store, commit }
    }
}

impl Journal for LocalJournal {
    fn append(
        &self,
        shard: ShardId,
        entity: &str,
        expected_seq: u64,
        events: Vec<NewEvent>,
        done: AppendDone,
    ) -> Ticket {
        match self.store.append(shard, entity, expected_seq, &events) {
            Ok(seq) => self
                .commit
                .on_durable(move |flushed| done(flushed.map(|()| seq))),
            Err(e) => {
                done(Err(e));
                0
            }
        }
    }

    fn is_durable(&self, _shard: ShardId, ticket: Ticket) -> bool {
        self.commit.is_durable(ticket)
    }

    fn last_ticket(&self, _shard: ShardId) -> Ticket {
        self.commit.last_batch()
    }

    fn after_pending(&self, _shard: ShardId, then: Flushed) {
        self.commit.on_durable(then);
    }

    fn keeps_write_order(&self) -> bool {
        self.store.keeps_write_order()
    }
}
