//! The actor of one shard: it hosts the live entities of one kind in that shard.
//!
//! Entities are state machines in a map, not actors of their own: the shard's mailbox is
//! their mailbox, so each entity still sees its commands one at a time and in order
//! (single writer), at ~100 B of runtime overhead instead of ~850 B for an idle actor.
//! While a command waits for group commit, the shard goes on with the next one; replies
//! are sent only once the events are on disk.
//!
//! Invariants:
//! - A live entity's `seq` equals its journal's last sequence number, because every
//!   append goes through this actor and a failed append evicts the entity.
//! - A panic in entity code, or a failed append, drops the entity's in-memory state; it
//!   is rebuilt from its journal on the next command, so nothing unwritten survives.
//! - A read of an entity with writes not yet flushed waits for that flush, so nothing is
//!   ever reported that a crash could take back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use ecommesh_persistence::{now_ms, EventStore, GroupCommit, NewEvent, ShardId, StoreError};
use tokio::sync::oneshot;

use crate::entity::{encode_event, Entity};
use crate::error::EntityError;
use crate::recovery;
use crate::supervisor::{guard, CrashLog, CrashPolicy};

/// The state of an entity after a command, and the sequence number it is at.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<S> {
    pub seq: u64,
    pub state: S,
}

/// The outcome of a command or read.
pub type Outcome<E> = Result<Reply<<E as Entity>::State>, EntityError<<E as Entity>::Rejection>>;

/// Where a shard sends an outcome. A reply that must wait for durability is handed to
/// the group-commit writer, which sends it straight to the caller after the flush: one
/// thread hop instead of waking the shard's thread again.
pub type ReplyTo<E> = oneshot::Sender<Outcome<E>>;

/// Runs a command against an entity. With `expected_seq`, the command is refused unless
/// the entity is exactly at that sequence number (optimistic concurrency).
pub struct Execute<E: Entity> {
    pub id: String,
    pub command: E::Command,
    pub expected_seq: Option<u64>,
    pub reply_to: ReplyTo<E>,
}

impl<E: Entity> Message for Execute<E> {
    type Result = ();
}

/// Reads an entity's current (durable) state.
pub struct Read<E: Entity> {
    pub id: String,
    pub reply_to: ReplyTo<E>,
}

impl<E: Entity> Message for Read<E> {
    type Result = ();
}

/// A change of one entity, told to the runtime's observer once its events are durable.
/// Changes of one entity arrive in order; `prev_seq` lets a listener prove it missed none.
#[derive(Debug, Clone)]
pub struct Committed<E: Entity> {
    pub id: Arc<str>,
    /// The entity's sequence number before the change.
    pub prev_seq: u64,
    pub seq: u64,
    pub events: Vec<E::Event>,
    /// The state after the change, shared so that observers keep it without a copy.
    pub state: Arc<E::State>,
    pub at_ms: u64,
}

/// Hears every durable change of one entity kind, before the command's caller is told:
/// whatever it updates already shows the change when the caller gets its answer. It runs
/// on the group-commit thread, so it must only hand the change on, never block.
pub type Observer<E> = Arc<dyn Fn(Committed<E>) + Send + Sync>;

/// When a reply may be sent.
enum Durable<E: Entity> {
    /// Everything it shows is on disk already.
    Now,
    /// It shows writes still waiting for group commit.
    AfterFlush,
    /// The command wrote events: wait for them, remember the batch on the entity, and
    /// then tell the observer, if there is one.
    AfterWrite(Option<Committed<E>>),
}

type Pending<E> =
    Result<(Reply<<E as Entity>::State>, Durable<E>), EntityError<<E as Entity>::Rejection>>;

/// Asks how many entities the shard hosts right now.
pub struct LiveCount;

impl Message for LiveCount {
    type Result = usize;
}

/// Per-shard settings, shared by every shard of a runtime.
#[derive(Debug, Clone, Copy)]
pub struct ShardSettings {
    pub snapshot_every: u32,
    pub idle_timeout: Duration,
    /// Most entities this shard hosts; past it the least recently used are passivated.
    pub max_live: usize,
    pub crash: CrashPolicy,
}

struct Slot<S> {
    state: S,
    seq: u64,
    /// The group-commit batch of the last write; durable once that batch is flushed.
    write_batch: u64,
    /// Milliseconds since the shard started, at the last command.
    last_used_ms: u64,
    since_snapshot: u32,
}

/// The actor hosting the entities of kind `E` in one shard.
pub struct Shard<E: Entity> {
    id: ShardId,
    store: Arc<dyn EventStore>,
    commit: GroupCommit,
    settings: ShardSettings,
    queued: Arc<AtomicUsize>,
    entities: HashMap<Box<str>, Slot<E::State>>,
    crashes: CrashLog,
    started: Instant,
    observer: Option<Observer<E>>,
}

/// The journal key of an entity: its kind and id.
pub fn store_key<E: Entity>(id: &str) -> String {
    let mut k = String::with_capacity(E::KIND.len() + 1 + id.len());
    k.push_str(E::KIND);
    k.push('/');
    k.push_str(id);
    k
}

impl<E: Entity> Shard<E> {
    pub(crate) fn new(
        id: ShardId,
        store: Arc<dyn EventStore>,
        commit: GroupCommit,
        settings: ShardSettings,
        queued: Arc<AtomicUsize>,
        observer: Option<Observer<E>>,
    ) -> Self {
        Shard {
            id,
            store,
            commit,
            settings,
            queued,
            entities: HashMap::new(),
            crashes: CrashLog::default(),
            started: Instant::now(),
            observer,
        }
    }

    fn elapsed_ms(&self, now: Instant) -> u64 {
        now.duration_since(self.started).as_millis() as u64
    }

    /// Makes sure `id` is live, activating it from snapshot + tail if needed.
    fn activate(&mut self, id: &str, now: Instant) -> Result<(), EntityError<E::Rejection>> {
        if let Some(retry_after) = self.crashes.quarantined(id, now) {
            return Err(EntityError::Quarantined {
                entity: store_key::<E>(id),
                retry_after,
            });
        }
        if self.entities.contains_key(id) {
            return Ok(());
        }
        let key = store_key::<E>(id);
        let started = Instant::now();
        let (store, shard) = (&*self.store, self.id);
        match guard(|| recovery::recover::<E>(store, shard, &key)) {
            Ok(Ok(r)) => {
                metrics::counter!("ecommesh_entity_activations_total", "kind" => E::KIND)
                    .increment(1);
                metrics::histogram!("ecommesh_entity_activation_seconds", "kind" => E::KIND)
                    .record(started.elapsed().as_secs_f64());
                metrics::gauge!("ecommesh_entities_live", "kind" => E::KIND).increment(1.0);
                let slot = Slot {
                    state: r.state,
                    seq: r.seq,
                    write_batch: 0,
                    last_used_ms: self.elapsed_ms(now),
                    since_snapshot: r.replayed.min(u32::MAX as u64) as u32,
                };
                self.entities.insert(id.into(), slot);
                self.enforce_limit(id);
                Ok(())
            }
            Ok(Err(e)) => {
                if !e.is_expected() {
                    // An entity whose journal cannot be read is crashing, not overloaded.
                    self.crashed(id, &format!("recovery failed: {e}"), now);
                }
                Err(EntityError::Storage(e))
            }
            Err(panic) => {
                self.crashed(id, &format!("panic during recovery: {panic}"), now);
                Err(EntityError::Crashed { entity: key })
            }
        }
    }

    /// Drops the entity's state and counts a crash against it.
    fn crashed(&mut self, id: &str, reason: &str, now: Instant) {
        if self.entities.remove(id).is_some() {
            metrics::gauge!("ecommesh_entities_live", "kind" => E::KIND).decrement(1.0);
        }
        metrics::counter!("ecommesh_entity_restarts_total", "kind" => E::KIND).increment(1);
        let quarantined = self.crashes.crashed(id, &self.settings.crash, now);
        tracing::error!(
            kind = E::KIND,
            entity = id,
            shard = self.id,
            reason,
            quarantined,
            "entity crashed"
        );
        if quarantined {
            metrics::counter!("ecommesh_entity_quarantines_total", "kind" => E::KIND).increment(1);
        }
    }

    fn execute(&mut self, msg: &Execute<E>) -> Pending<E> {
        let now = Instant::now();
        let wall_ms = now_ms();
        self.activate(&msg.id, now)?;
        let elapsed = self.elapsed_ms(now);
        let slot = self
            .entities
            .get_mut(msg.id.as_str())
            .expect("activated above");
        slot.last_used_ms = elapsed;
        if let Some(expected) = msg.expected_seq {
            if expected != slot.seq {
                return Err(EntityError::Conflict {
                    entity: store_key::<E>(&msg.id),
                    expected,
                    actual: slot.seq,
                });
            }
        }
        let decided = guard(|| -> Result<Vec<E::Event>, E::Rejection> {
            let events = E::handle(&slot.state, &msg.command, wall_ms)?;
            for event in &events {
                E::apply(&mut slot.state, event);
            }
            Ok(events)
        });
        let events = match decided {
            Ok(Ok(events)) => events,
            Ok(Err(rejection)) => return Err(EntityError::Rejected(rejection)),
            Err(panic) => {
                self.crashed(&msg.id, &format!("panic in command: {panic}"), now);
                return Err(EntityError::Crashed {
                    entity: store_key::<E>(&msg.id),
                });
            }
        };
        if events.is_empty() {
            let durable = if self.commit.is_durable(slot.write_batch) {
                Durable::Now
            } else {
                Durable::AfterFlush
            };
            return Ok((
                Reply {
                    seq: slot.seq,
                    state: slot.state.clone(),
                },
                durable,
            ));
        }
        let key = store_key::<E>(&msg.id);
        let appended = events
            .iter()
            .map(|e| encode_event::<E>(e, wall_ms))
            .collect::<Result<Vec<NewEvent>, _>>()
            .map_err(StoreError::from)
            .and_then(|new| self.store.append(self.id, &key, slot.seq, &new));
        let seq = match appended {
            Ok(seq) => seq,
            Err(e) => {
                // The state already holds the events: drop it so the journal is the truth.
                self.crashed(&msg.id, &format!("append failed: {e}"), now);
                return Err(match e {
                    StoreError::Conflict {
                        entity,
                        expected,
                        actual,
                    } => EntityError::Conflict {
                        entity,
                        expected,
                        actual,
                    },
                    e => EntityError::Storage(e),
                });
            }
        };
        let prev_seq = slot.seq;
        slot.seq = seq;
        slot.since_snapshot += events.len() as u32;
        if slot.since_snapshot >= self.settings.snapshot_every {
            match recovery::snapshot::<E>(&*self.store, self.id, &key, &slot.state, seq) {
                Ok(()) => slot.since_snapshot = 0,
                Err(e) => {
                    tracing::warn!(entity = key, error = %e, "snapshot failed; the journal still has everything")
                }
            }
        }
        metrics::counter!("ecommesh_journal_appends_total", "kind" => E::KIND).increment(1);
        metrics::counter!("ecommesh_journal_events_total", "kind" => E::KIND)
            .increment(events.len() as u64);
        let committed = self.observer.as_ref().map(|_| Committed {
            id: msg.id.as_str().into(),
            prev_seq,
            seq,
            events,
            state: Arc::new(slot.state.clone()),
            at_ms: wall_ms,
        });
        Ok((
            Reply {
                seq,
                state: slot.state.clone(),
            },
            Durable::AfterWrite(committed),
        ))
    }

    fn read(&mut self, id: &str) -> Pending<E> {
        let now = Instant::now();
        self.activate(id, now)?;
        let elapsed = self.elapsed_ms(now);
        let slot = self.entities.get_mut(id).expect("activated above");
        slot.last_used_ms = elapsed;
        let durable = if self.commit.is_durable(slot.write_batch) {
            Durable::Now
        } else {
            Durable::AfterFlush
        };
        Ok((
            Reply {
                seq: slot.seq,
                state: slot.state.clone(),
            },
            durable,
        ))
    }

    /// Runs a command's whole path (activation, entity code, storage) so that a panic
    /// anywhere in it, even in the storage engine, fails only this command and this
    /// entity instead of the arbiter thread and every shard on it. Entity code has its own
    /// finer guard; this one catches the rest.
    fn contained(&mut self, id: &str, f: impl FnOnce(&mut Self) -> Pending<E>) -> Pending<E> {
        match guard(|| f(self)) {
            Ok(pending) => pending,
            Err(panic) => {
                self.crashed(
                    id,
                    &format!("panic in the runtime: {panic}"),
                    Instant::now(),
                );
                Err(EntityError::Crashed {
                    entity: store_key::<E>(id),
                })
            }
        }
    }

    /// Sends the outcome now, or hands it to group commit to send once it is durable.
    fn respond(&mut self, id: &str, pending: Pending<E>, reply_to: ReplyTo<E>) {
        let (reply, durable) = match pending {
            Ok(p) => p,
            Err(e) => {
                let _ = reply_to.send(Err(e));
                return;
            }
        };
        if let Durable::Now = durable {
            let _ = reply_to.send(Ok(reply));
            return;
        }
        let wrote = matches!(durable, Durable::AfterWrite(_));
        let (observer, committed) = match durable {
            Durable::AfterWrite(Some(c)) => (self.observer.clone(), Some(c)),
            _ => (None, None),
        };
        let batch = self.commit.on_durable(move |flushed| {
            if let (true, Some(observer), Some(c)) = (flushed.is_ok(), observer, committed) {
                observer(c);
            }
            let _ = reply_to.send(flushed.map(|()| reply).map_err(EntityError::Storage));
        });
        if wrote {
            if let Some(slot) = self.entities.get_mut(id) {
                slot.write_batch = batch;
            }
        }
    }

    /// Stops hosting entities idle for longer than the idle timeout; they come back from
    /// snapshot + tail on their next command.
    fn passivate_idle(&mut self) {
        let now = Instant::now();
        let now_ms = self.elapsed_ms(now);
        let idle_ms = self.settings.idle_timeout.as_millis() as u64;
        self.passivate(|_, s| now_ms.saturating_sub(s.last_used_ms) >= idle_ms);
        self.crashes.prune(&self.settings.crash, now);
    }

    /// Keeps memory bounded whatever the traffic (reads of ever new ids included): past
    /// `max_live`, passivates the least recently used tenth, never `keep`.
    fn enforce_limit(&mut self, keep: &str) {
        if self.entities.len() <= self.settings.max_live {
            return;
        }
        let target = self.settings.max_live - self.settings.max_live / 10;
        let mut by_age: Vec<u64> = self.entities.values().map(|s| s.last_used_ms).collect();
        let excess = self.entities.len() - target;
        let (_, cutoff, _) = by_age.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        let mut left = excess;
        self.passivate(|id, s| {
            let go = left > 0 && s.last_used_ms <= cutoff && id != keep;
            left -= go as usize;
            go
        });
    }

    /// Stops hosting the entities `select` picks, except those with writes still waiting
    /// for group commit; they come back from snapshot + tail on their next command.
    fn passivate(&mut self, mut select: impl FnMut(&str, &Slot<E::State>) -> bool) {
        let before = self.entities.len();
        let commit = &self.commit;
        self.entities
            .retain(|id, s| !(select(id, s) && commit.is_durable(s.write_batch)));
        let passivated = before - self.entities.len();
        if passivated > 0 {
            metrics::counter!("ecommesh_entity_passivations_total", "kind" => E::KIND)
                .increment(passivated as u64);
            metrics::gauge!("ecommesh_entities_live", "kind" => E::KIND)
                .decrement(passivated as f64);
            if self.entities.capacity() > 4 * self.entities.len().max(64) {
                self.entities.shrink_to_fit();
            }
        }
    }
}

impl<E: Entity> Actor for Shard<E> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = (self.settings.idle_timeout / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(5));
        ctx.run_interval(every, |shard, _| shard.passivate_idle());
    }
}

impl<E: Entity> Handler<Execute<E>> for Shard<E> {
    type Result = ();

    fn handle(&mut self, msg: Execute<E>, _: &mut Self::Context) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        let pending = self.contained(&msg.id, |shard| shard.execute(&msg));
        self.respond(&msg.id, pending, msg.reply_to);
    }
}

impl<E: Entity> Handler<Read<E>> for Shard<E> {
    type Result = ();

    fn handle(&mut self, msg: Read<E>, _: &mut Self::Context) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        let pending = self.contained(&msg.id, |shard| shard.read(&msg.id));
        self.respond(&msg.id, pending, msg.reply_to);
    }
}

impl<E: Entity> Handler<LiveCount> for Shard<E> {
    type Result = usize;

    fn handle(&mut self, _: LiveCount, _: &mut Self::Context) -> usize {
        self.entities.len()
    }
}
