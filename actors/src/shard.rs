//! The actor of one shard: it hosts the live entities of one kind in that shard.
//!
//! Entities are state machines in a map, not actors of their own: the shard's mailbox is
//! their mailbox, so each entity still sees its commands one at a time and in order
//! (single writer), at ~100 B of runtime overhead instead of ~850 B for an idle actor.
//! While a command's events wait to become durable (group commit, or a majority of the
//! shard's replicas), the shard goes on with the next one; replies are sent only once the
//! events are durable.
//!
//! Invariants:
//! - A live entity's `seq` equals its journal's last sequence number once its pending
//!   appends settle, because every append goes through this actor and a failed append
//!   evicts the entity.
//! - A panic in entity code, or a failed append, drops the entity's in-memory state; it
//!   is rebuilt from its journal on the next command, so nothing unwritten survives.
//!   Appends are conditional on the sequence number, so an append decided on state that
//!   turned out stale is refused by the journal, never written twice or out of order.
//! - A read of an entity with appends not yet durable waits for them, and so does a
//!   rejection or conflict decided on that state, so nothing is ever reported that a
//!   crash could take back. The one exception is asked for: an unsynced command or read
//!   (a saga's step) answers once written, and its caller syncs before acting outside.
//! - Snapshots are written only for durable states.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use ecommesh_persistence::{now_ms, EventStore, NewEvent, ShardId, StoreError};
use tokio::sync::oneshot;

use crate::entity::{encode_event, Entity};
use crate::error::EntityError;
use crate::journal::{Journal, Ticket};
use crate::recovery;
use crate::supervisor::{guard, CrashLog, CrashPolicy};

/// The state of an entity after a command, and the sequence number it is at.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reply<S> {
    pub seq: u64,
    pub state: S,
}

/// The outcome of a command or read.
pub type CommandResult<E> =
    Result<Reply<Arc<<E as Entity>::State>>, EntityError<<E as Entity>::Rejection>>;

/// Where a shard sends an outcome. A reply that must wait for durability is handed to
/// the journal, which sends it straight to the caller once durable: one thread hop
/// instead of waking the shard's thread again.
pub type ReplyTo<E> = oneshot::Sender<CommandResult<E>>;

/// Runs a command against an entity. With `expected_seq`, the command is refused unless
/// the entity is exactly at that sequence number (optimistic concurrency).
pub struct Execute<E: Entity> {
    pub id: String,
    pub command: E::Command,
    pub expected_seq: Option<u64>,
    /// Reply once the events are written, before they are durable ([`Registry::execute_unsynced`](crate::Registry::execute_unsynced)).
    pub unsynced: bool,
    pub reply_to: ReplyTo<E>,
}

impl<E: Entity> Message for Execute<E> {
    type Result = ();
}

/// Reads an entity's current (durable) state.
pub struct Read<E: Entity> {
    pub id: String,
    /// Reply at once, even with appends not yet durable.
    pub unsynced: bool,
    pub reply_to: ReplyTo<E>,
}

impl<E: Entity> Message for Read<E> {
    type Result = ();
}

/// A change of one entity, told to the runtime's observer once its events are durable.
/// Changes of one entity arrive in order; `prev_seq` lets a listener prove it missed none.
/// Serializable, so that a cluster can tell the other nodes' listeners.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
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
/// on the journal's thread, so it must only hand the change on, never block.
pub type Observer<E> = Arc<dyn Fn(Committed<E>) + Send + Sync>;

/// When a reply may be sent.
enum Durable<E: Entity> {
    /// Everything it shows is durable already.
    Now,
    /// It shows appends that are not durable yet.
    AfterFlush,
    /// The command decided events: append them, and reply once they are durable.
    AfterWrite(Write<E>),
}

/// The append a command decided, and what to do once it is durable.
struct Write<E: Entity> {
    expected_seq: u64,
    events: Vec<NewEvent>,
    /// For the observer, if there is one.
    committed: Option<Committed<E>>,
    /// A snapshot to save once durable, when one is due.
    snapshot: Option<Arc<E::State>>,
}

type Pending<E> =
    Result<(Reply<Arc<<E as Entity>::State>>, Durable<E>), EntityError<<E as Entity>::Rejection>>;

/// Asks how many entities the shard hosts right now.
pub struct LiveCount;

impl Message for LiveCount {
    type Result = usize;
}

/// Drops every live entity of the shard: another node may have written to them (this
/// node lost, or has just gained, the lead of the shard). They come back from the journal.
pub struct Reset;

impl Message for Reset {
    type Result = ();
}

/// Drops an entity whose append at `seq` failed, unless it was rebuilt since.
struct Evict {
    id: Box<str>,
    seq: u64,
}

impl Message for Evict {
    type Result = ();
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
    /// Shared with replies, observers and snapshots, so none of them copies it; a command
    /// copies it only while one of them still holds the previous version.
    state: Arc<S>,
    seq: u64,
    /// The journal ticket of the last append.
    ticket: Ticket,
    /// Milliseconds since the shard started, at the last command.
    last_used_ms: u64,
    since_snapshot: u32,
}

/// The actor hosting the entities of kind `E` in one shard.
pub struct Shard<E: Entity> {
    id: ShardId,
    store: Arc<dyn EventStore>,
    journal: Arc<dyn Journal>,
    settings: ShardSettings,
    queued: Arc<AtomicUsize>,
    entities: HashMap<Box<str>, Slot<E::State>>,
    crashes: CrashLog,
    started: Instant,
    observer: Option<Observer<E>>,
    metrics: Arc<KindMetrics>,
}

/// The metrics of an entity kind, looked up once: a lookup by name and labels hashes the
/// key on every call, which was ~2% of a checkout's CPU when done for every command.
struct KindMetrics {
    activations: metrics::Counter,
    activation_seconds: metrics::Histogram,
    live: metrics::Gauge,
    appends: metrics::Counter,
    events: metrics::Counter,
}

impl KindMetrics {
    fn of(kind: &'static str) -> Self {
        KindMetrics {
            activations: metrics::counter!("ecommesh_entity_activations_total", "kind" => kind),
            activation_seconds: metrics::histogram!("ecommesh_entity_activation_seconds", "kind" => kind),
            live: metrics::gauge!("ecommesh_entities_live", "kind" => kind),
            appends: metrics::counter!("ecommesh_journal_appends_total", "kind" => kind),
            events: metrics::counter!("ecommesh_journal_events_total", "kind" => kind),
        }
    }
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
        journal: Arc<dyn Journal>,
        settings: ShardSettings,
        queued: Arc<AtomicUsize>,
        observer: Option<Observer<E>>,
    ) -> Self {
        Shard {
            id,
            store,
            journal,
            settings,
            queued,
            entities: HashMap::new(),
            crashes: CrashLog::default(),
            started: Instant::now(),
            observer,
            metrics: Arc::new(KindMetrics::of(E::KIND)),
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
        // The store may show appends that are not durable yet (a failed flush's, on a
        // single node): what is read now is shown once the latest append is durable.
        let ticket = self.journal.last_ticket(self.id);
        let (store, shard) = (&*self.store, self.id);
        match guard(|| recovery::recover::<E>(store, shard, &key)) {
            Ok(Ok(r)) => {
                self.metrics.activations.increment(1);
                self.metrics
                    .activation_seconds
                    .record(started.elapsed().as_secs_f64());
                self.metrics.live.increment(1.0);
                let slot = Slot {
                    state: Arc::new(r.state),
                    seq: r.seq,
                    // An entity with no events shows nothing a crash could take back: a
                    // new order need not wait for everyone else's flush to be read.
                    ticket: if r.seq == 0 { 0 } else { ticket },
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
            self.metrics.live.decrement(1.0);
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
            if !events.is_empty() {
                let state = Arc::make_mut(&mut slot.state);
                for event in &events {
                    E::apply(state, event);
                }
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
            let durable = if self.journal.is_durable(self.id, slot.ticket) {
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
        let encoded = events
            .iter()
            .map(|e| encode_event::<E>(e, wall_ms))
            .collect::<Result<Vec<NewEvent>, _>>();
        let encoded = match encoded {
            Ok(new) => new,
            Err(e) => {
                // The state already holds the events: drop it so the journal is the truth.
                self.crashed(&msg.id, &format!("cannot encode events: {e}"), now);
                return Err(EntityError::Storage(e.into()));
            }
        };
        let prev_seq = slot.seq;
        let seq = prev_seq + events.len() as u64;
        slot.seq = seq;
        slot.since_snapshot += events.len() as u32;
        let snapshot = (slot.since_snapshot >= self.settings.snapshot_every).then(|| {
            slot.since_snapshot = 0;
            slot.state.clone()
        });
        let committed = self.observer.as_ref().map(|_| Committed {
            id: msg.id.as_str().into(),
            prev_seq,
            seq,
            events,
            state: slot.state.clone(),
            at_ms: wall_ms,
        });
        Ok((
            Reply {
                seq,
                state: slot.state.clone(),
            },
            Durable::AfterWrite(Write {
                expected_seq: prev_seq,
                events: encoded,
                committed,
                snapshot,
            }),
        ))
    }

    fn read(&mut self, id: &str) -> Pending<E> {
        let now = Instant::now();
        self.activate(id, now)?;
        let elapsed = self.elapsed_ms(now);
        let slot = self.entities.get_mut(id).expect("activated above");
        slot.last_used_ms = elapsed;
        let durable = if self.journal.is_durable(self.id, slot.ticket) {
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

    /// Sends the outcome now, or hands it to the journal to send once it is durable.
    /// `unsynced`: send it as soon as it is written (the caller syncs before acting on it).
    fn respond(
        &mut self,
        id: &str,
        pending: Pending<E>,
        unsynced: bool,
        reply_to: ReplyTo<E>,
        me: Addr<Self>,
    ) {
        let (reply, durable) = match pending {
            Ok(p) => p,
            Err(e) => {
                // A rejection or conflict was decided on the entity's state: like a read,
                // it is told only once that state is durable (a crash could take back the
                // write that left a product out of stock).
                let on_state = matches!(e, EntityError::Rejected(_) | EntityError::Conflict { .. });
                let settled = self
                    .entities
                    .get(id)
                    .is_none_or(|s| self.journal.is_durable(self.id, s.ticket));
                if on_state && !settled && !unsynced {
                    self.journal.after_pending(
                        self.id,
                        Box::new(move |flushed| {
                            let _ =
                                reply_to.send(flushed.map_err(EntityError::Storage).and(Err(e)));
                        }),
                    );
                } else {
                    let _ = reply_to.send(Err(e));
                }
                return;
            }
        };
        let write = match durable {
            Durable::Now => {
                let _ = reply_to.send(Ok(reply));
                return;
            }
            Durable::AfterFlush if unsynced => {
                let _ = reply_to.send(Ok(reply));
                return;
            }
            Durable::AfterFlush => {
                self.journal.after_pending(
                    self.id,
                    Box::new(move |flushed| {
                        let _ =
                            reply_to.send(flushed.map(|()| reply).map_err(EntityError::Storage));
                    }),
                );
                return;
            }
            Durable::AfterWrite(write) => write,
        };
        let key = store_key::<E>(id);
        let (observer, store, shard) = (self.observer.clone(), self.store.clone(), self.id);
        let counts = self.metrics.clone();
        let Write {
            expected_seq,
            events,
            committed,
            snapshot,
        } = write;
        let seq = reply.seq;
        let evict_id: Box<str> = id.into();
        let snapshot_key = key.clone();
        let (answer, early) = Answer::<E>::new(reply_to, key.clone(), unsynced);
        let early = early.map(|tx| (reply.clone(), tx));
        let done = Box::new(move |appended: Result<u64, StoreError>| {
            match appended {
                Ok(_) => {
                    counts.appends.increment(1);
                    counts.events.increment(seq - expected_seq);
                    if let Some(state) = snapshot {
                        if let Err(e) =
                            recovery::snapshot::<E>(&*store, shard, &snapshot_key, &state, seq)
                        {
                            tracing::warn!(entity = snapshot_key, error = %e, "snapshot failed; the journal still has everything");
                        }
                    }
                    if let (Some(observer), Some(c)) = (observer, committed) {
                        observer(c);
                    }
                    answer.send(Ok(reply));
                }
                Err(e) => {
                    // The live state holds events the journal may not: rebuild it.
                    me.do_send(Evict { id: evict_id, seq });
                    answer.send(Err(entity_error(e)));
                }
            }
        });
        let journal = &*self.journal;
        match guard(|| journal.append(shard, &key, expected_seq, events, done)) {
            Ok(ticket) => {
                if let Some(slot) = self.entities.get_mut(id) {
                    slot.ticket = ticket;
                }
                // Written: unless `done` has answered already (an error known at once),
                // the caller goes on now; a failed flush reaches it through its sync.
                if let Some((reply, tx)) = early {
                    if let Some(tx) = tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        let _ = tx.send(Ok(reply));
                    }
                }
            }
            // `done` was dropped unanswered: its caller is told the entity crashed.
            Err(panic) => self.crashed(
                id,
                &format!("panic in the journal: {panic}"),
                Instant::now(),
            ),
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
        let (journal, shard) = (&self.journal, self.id);
        self.entities
            .retain(|id, s| !(select(id, s) && journal.is_durable(shard, s.ticket)));
        let passivated = before - self.entities.len();
        if passivated > 0 {
            metrics::counter!("ecommesh_entity_passivations_total", "kind" => E::KIND)
                .increment(passivated as u64);
            self.metrics.live.decrement(passivated as f64);
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

    fn handle(&mut self, msg: Execute<E>, ctx: &mut Self::Context) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        let pending = self.contained(&msg.id, |shard| shard.execute(&msg));
        self.respond(&msg.id, pending, msg.unsynced, msg.reply_to, ctx.address());
    }
}

impl<E: Entity> Handler<Read<E>> for Shard<E> {
    type Result = ();

    fn handle(&mut self, msg: Read<E>, ctx: &mut Self::Context) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        let pending = self.contained(&msg.id, |shard| shard.read(&msg.id));
        self.respond(&msg.id, pending, msg.unsynced, msg.reply_to, ctx.address());
    }
}

impl<E: Entity> Handler<LiveCount> for Shard<E> {
    type Result = usize;

    fn handle(&mut self, _: LiveCount, _: &mut Self::Context) -> usize {
        self.entities.len()
    }
}

impl<E: Entity> Handler<Reset> for Shard<E> {
    type Result = ();

    fn handle(&mut self, _: Reset, _: &mut Self::Context) {
        let dropped = self.entities.len();
        self.entities.clear();
        self.entities.shrink_to_fit();
        self.metrics.live.decrement(dropped as f64);
    }
}

impl<E: Entity> Handler<Evict> for Shard<E> {
    type Result = ();

    fn handle(&mut self, msg: Evict, _: &mut Self::Context) {
        if self.entities.get(&msg.id).is_some_and(|s| s.seq >= msg.seq) {
            self.entities.remove(&msg.id);
            self.metrics.live.decrement(1.0);
        }
    }
}

/// The caller's view of a failed append.
fn entity_error<R>(e: StoreError) -> EntityError<R> {
    match e {
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
    }
}

/// The caller of a write, answered exactly once: if the journal drops the write without
/// answering (it panicked), the caller learns that the entity crashed. Shared with the
/// shard only for an unsynced write, which the shard answers as soon as it is written.
struct Answer<E: Entity> {
    reply_to: ReplySlot<E>,
    entity: String,
}

type SharedReply<E> = Arc<Mutex<Option<ReplyTo<E>>>>;

enum ReplySlot<E: Entity> {
    Own(Option<ReplyTo<E>>),
    Shared(SharedReply<E>),
}

impl<E: Entity> Answer<E> {
    /// The answer, and for an unsynced write the shard's share of it.
    fn new(reply_to: ReplyTo<E>, entity: String, unsynced: bool) -> (Self, Option<SharedReply<E>>) {
        let (slot, shared) = if unsynced {
            let shared = Arc::new(Mutex::new(Some(reply_to)));
            (ReplySlot::Shared(shared.clone()), Some(shared))
        } else {
            (ReplySlot::Own(Some(reply_to)), None)
        };
        let answer = Answer {
            reply_to: slot,
            entity,
        };
        (answer, shared)
    }

    fn take(&mut self) -> Option<ReplyTo<E>> {
        match &mut self.reply_to {
            ReplySlot::Own(tx) => tx.take(),
            ReplySlot::Shared(tx) => tx.lock().unwrap_or_else(|p| p.into_inner()).take(),
        }
    }

    fn send(mut self, outcome: CommandResult<E>) {
        if let Some(tx) = self.take() {
            let _ = tx.send(outcome);
        }
    }
}

impl<E: Entity> Drop for Answer<E> {
    fn drop(&mut self) {
        if let Some(tx) = self.take() {
            let _ = tx.send(Err(EntityError::Crashed {
                entity: std::mem::take(&mut self.entity),
            }));
        }
    }
}
