//! The cluster's [`Journal`]: a shard's appends become entries of the shard's Raft group,
//! and are durable once the group has committed and applied them.
//!
//! Per group, one proposer task takes everything the shard actors appended since its
//! last turn and proposes it as one entry (group commit across the network), without
//! waiting for earlier entries to commit; one completer task waits for the entries'
//! outcomes in proposal order and tells every append's caller. Tickets are numbered per
//! group in append order, and settle in that order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ecommesh_actors::{AppendDone, Flushed, Journal, Ticket};
use ecommesh_persistence::{Append, NewEvent, ShardId, StoreError};
use openraft::error::ClientWriteError;
use openraft::raft::responder::Responder;
use tokio::sync::mpsc;

use super::types::{Proposal, Raft, TypeConfig};

/// Most appends in one entry.
const MAX_APPENDS_PER_ENTRY: usize = 1024;

enum Item {
    Append {
        append: Append,
        done: AppendDone,
        ticket: Ticket,
    },
    /// Answered once every append queued before it has settled.
    Barrier(Flushed),
}

type Receiver = <openraft::impls::OneshotResponder<TypeConfig> as Responder<TypeConfig>>::Receiver;

/// An entry on its way, or barriers with nothing to wait for but what is ahead of them.
struct InFlight {
    answer: Result<Option<Receiver>, StoreError>,
    /// Past this, the entry counts as failed with an unknown outcome (a leader cut off
    /// from its followers never commits, and must not hold its callers forever).
    deadline: tokio::time::Instant,
    dones: Vec<AppendDone>,
    barriers: Vec<Flushed>,
    last_ticket: Ticket,
}

struct Group {
    queue: mpsc::UnboundedSender<Item>,
    next: AtomicU64,
    settled: Arc<AtomicU64>,
}

/// Appends proposed to the shards' Raft groups.
pub struct RaftJournal {
    groups: Vec<Group>,
}

impl RaftJournal {
    /// Starts the proposer and completer of every group on the current tokio runtime.
    /// `ack_before_commit` is the chaos suite's deliberately broken build: appends are
    /// answered as soon as they are proposed.
    pub fn start(
        rafts: &[Raft],
        commit_timeout: std::time::Duration,
        ack_before_commit: bool,
    ) -> Self {
        let groups = rafts
            .iter()
            .enumerate()
            .map(|(shard, raft)| {
                let (queue, rx) = mpsc::unbounded_channel();
                let (flight_tx, flight_rx) = mpsc::unbounded_channel();
                let settled = Arc::new(AtomicU64::new(0));
                tokio::spawn(propose(
                    shard as u32,
                    raft.clone(),
                    rx,
                    flight_tx,
                    commit_timeout,
                    ack_before_commit,
                ));
                tokio::spawn(complete(shard as u32, flight_rx, settled.clone()));
                Group {
                    queue,
                    next: AtomicU64::new(0),
                    settled,
                }
            })
            .collect();
        RaftJournal { groups }
    }
}

fn unavailable(shard: u32, reason: impl Into<String>) -> StoreError {
    StoreError::Unavailable {
        shard,
        reason: reason.into(),
    }
}

impl Journal for RaftJournal {
    fn append(
        &self,
        shard: ShardId,
        entity: &str,
        expected_seq: u64,
        events: Vec<NewEvent>,
        done: AppendDone,
    ) -> Ticket {
        let Some(group) = self.groups.get(shard as usize) else {
            done(Err(StoreError::Invalid(format!("no shard {shard}"))));
            return 0;
        };
        let ticket = group.next.fetch_add(1, Ordering::AcqRel) + 1;
        let item = Item::Append {
            append: Append {
                entity: entity.to_owned(),
                expected_seq,
                events,
            },
            done,
            ticket,
        };
        if let Err(mpsc::error::SendError(Item::Append { done, .. })) = group.queue.send(item) {
            done(Err(unavailable(shard, "the node is shutting down")));
        }
        ticket
    }

    fn is_durable(&self, shard: ShardId, ticket: Ticket) -> bool {
        self.groups
            .get(shard as usize)
            .is_none_or(|g| g.settled.load(Ordering::Acquire) >= ticket)
    }

    fn last_ticket(&self, shard: ShardId) -> Ticket {
        self.groups
            .get(shard as usize)
            .map_or(0, |g| g.next.load(Ordering::Acquire))
    }

    fn after_pending(&self, shard: ShardId, then: Flushed) {
        let Some(group) = self.groups.get(shard as usize) else {
            return then(Ok(()));
        };
        if let Err(mpsc::error::SendError(Item::Barrier(then))) =
            group.queue.send(Item::Barrier(then))
        {
            then(Err(unavailable(shard, "the node is shutting down")));
        }
    }
}

async fn propose(
    shard: u32,
    raft: Raft,
    mut queue: mpsc::UnboundedReceiver<Item>,
    flights: mpsc::UnboundedSender<InFlight>,
    commit_timeout: std::time::Duration,
    ack_before_commit: bool,
) {
    while let Some(first) = queue.recv().await {
        let mut items = vec![first];
        while items.len() < MAX_APPENDS_PER_ENTRY {
            match queue.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        let mut appends = Vec::new();
        let mut dones = Vec::new();
        let mut barriers = Vec::new();
        let mut last_ticket = 0;
        for item in items {
            match item {
                Item::Append {
                    append,
                    done,
                    ticket,
                } => {
                    appends.push(append);
                    dones.push(done);
                    last_ticket = ticket;
                }
                Item::Barrier(b) => barriers.push(b),
            }
        }
        let mut appends_seq: Vec<u64> = Vec::new();
        let answer = if appends.is_empty() {
            Ok(None)
        } else {
            metrics::histogram!("ecommesh_cluster_appends_per_entry").record(appends.len() as f64);
            appends_seq = appends
                .iter()
                .map(|a| a.expected_seq + a.events.len() as u64)
                .collect();
            raft.client_write_ff(Proposal { appends })
                .await
                .map(Some)
                .map_err(|fatal| unavailable(shard, format!("raft stopped: {fatal}")))
        };
        if ack_before_commit && answer.is_ok() {
            // Broken on purpose: tell every caller its append is durable now.
            for (done, append) in std::mem::take(&mut dones).into_iter().zip(&appends_seq) {
                done(Ok(*append));
            }
        }
        let flight = InFlight {
            answer,
            deadline: tokio::time::Instant::now() + commit_timeout,
            dones,
            barriers,
            last_ticket,
        };
        if flights.send(flight).is_err() {
            return;
        }
    }
}

async fn complete(
    shard: u32,
    mut flights: mpsc::UnboundedReceiver<InFlight>,
    settled: Arc<AtomicU64>,
) {
    // Set when an append failed since the last barrier: a read waiting on a barrier must
    // not show a state that holds the failed append's events.
    let mut failed_since_barrier = false;
    while let Some(flight) = flights.recv().await {
        let outcomes: Result<Vec<_>, StoreError> = match flight.answer {
            Err(e) => Err(e),
            Ok(None) => Ok(Vec::new()),
            Ok(Some(rx)) => match tokio::time::timeout_at(flight.deadline, rx).await {
                Err(_elapsed) => Err(unavailable(
                    shard,
                    "the write was not committed in time (no quorum reachable); it may or may not be later",
                )),
                Ok(answer) => match answer {
                Ok(Ok(response)) => Ok(response.data.outcomes),
                Ok(Err(ClientWriteError::ForwardToLeader(f))) => Err(unavailable(
                    shard,
                    match f.leader_id {
                        Some(l) => format!("leadership moved to node {l} before the write was committed; it may or may not have been"),
                        None => "the shard lost its leader before the write was committed; it may or may not have been".to_owned(),
                    },
                )),
                Ok(Err(e)) => Err(unavailable(shard, e.to_string())),
                Err(_) => Err(unavailable(shard, "raft dropped the write; it may or may not have been committed")),
                },
            },
        };
        match outcomes {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for done in flight.dones {
                    let outcome = outcomes.next().unwrap_or_else(|| {
                        Err(StoreError::Corrupt(
                            "an applied entry answered fewer appends than it carried".into(),
                        ))
                    });
                    failed_since_barrier |= outcome.is_err();
                    done(outcome);
                }
            }
            Err(e) => {
                failed_since_barrier |= !flight.dones.is_empty();
                for done in flight.dones {
                    done(Err(e.clone()));
                }
            }
        }
        if flight.last_ticket > 0 {
            settled.fetch_max(flight.last_ticket, Ordering::AcqRel);
        }
        if !flight.barriers.is_empty() {
            for barrier in flight.barriers {
                barrier(if failed_since_barrier {
                    Err(unavailable(
                        shard,
                        "a write this read waited for failed; read again",
                    ))
                } else {
                    Ok(())
                });
            }
            failed_since_barrier = false;
        }
    }
}
