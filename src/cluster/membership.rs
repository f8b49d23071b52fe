//! Joining and removing nodes. The placement of a shard is its group's own membership
//! (voters hold replicas that count for commits; every other node follows as a learner,
//! so that each node builds complete read models). openraft replicates and persists it
//! with the shard, so no separate metadata store can disagree with it.
//!
//! A change of the node set is carried out one shard at a time by the node that was asked
//! (bounded rate: a shard's new replica must have caught up before the next shard
//! starts), each step run by the shard's leader:
//! - join: add the node as a learner (it catches up from the log or a snapshot), then
//!   set the shard's voters to its placement over the new node set;
//! - leave: set the voters to the placement without the node, then drop the node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::network::{decode, encode, PeerRequest};
use super::types::{NodeAddr, NodeId, Raft};
pub use super::types::{Step, StepOutcome};
use super::{placement, Cluster};

/// A change of the node set.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum NodeChange {
    /// Add node `id`, reachable by its peers at `rpc`.
    Join { id: NodeId, rpc: String },
    /// Take node `id` out of every shard.
    Leave { id: NodeId },
}

/// How long a step may take: adding a learner waits until it has caught up.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `step` on this node's group of `shard`, if it leads it.
pub async fn run_step(raft: &Raft, step: Step) -> StepOutcome {
    use openraft::error::{ClientWriteError, RaftError};
    let result = match step {
        Step::AddLearner { id, addr } => raft.add_learner(id, addr, true).await.map(|_| ()),
        Step::SetVoters { voters } => {
            let now: BTreeSet<NodeId> = raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect();
            if now == voters {
                Ok(())
            } else {
                raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), true)
                    .await
                    .map(|_| ())
            }
        }
        Step::RemoveNode { id } => {
            let present = raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .get_node(&id)
                .is_some();
            if present {
                raft.change_membership(ChangeMembers::RemoveNodes([id].into()), false)
                    .await
                    .map(|_| ())
            } else {
                Ok(())
            }
        }
    };
    match result {
        Ok(()) => StepOutcome::Done,
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => StepOutcome::NotLeader,
        Err(e) => StepOutcome::Failed(e.to_string()),
    }
}

impl Cluster {
    /// Every node in any shard's membership, with its address (the configured peers
    /// until the groups have formed).
    pub fn nodes(&self) -> BTreeMap<NodeId, String> {
        let mut out = BTreeMap::new();
        for raft in &self.rafts {
            let m = raft.metrics().borrow().membership_config.clone();
            for (id, addr) in m.membership().nodes() {
                out.entry(*id).or_insert_with(|| addr.rpc.clone());
            }
        }
        if out.is_empty() {
            return self.settings.peers.clone();
        }
        out
    }

    /// Keeps the links in step with the memberships: dials nodes that joined, drops
    /// nodes that left.
    pub(super) async fn follow_nodes(self: Arc<Self>) {
        let mut silenced: BTreeSet<usize> = BTreeSet::new();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            // A leader that lost its voter place (its replica moved away) keeps leading in
            // openraft 0.9, which has no leadership transfer: it stops heartbeating, so
            // the voters elect one of their own and it steps down.
            let (mut led, mut leaderless, mut max_lag) = (0u64, 0u64, 0u64);
            for (i, raft) in self.rafts.iter().enumerate() {
                let (leads, voter) = {
                    let m = raft.metrics().borrow().clone();
                    leaderless += m.current_leader.is_none() as u64;
                    if let Some(r) = &m.replication {
                        let last = m.last_log_index.unwrap_or(0);
                        for matched in r.values() {
                            let at = matched.map_or(0, |l| l.index);
                            max_lag = max_lag.max(last.saturating_sub(at));
                        }
                    }
                    (
                        m.state == openraft::ServerState::Leader,
                        m.membership_config
                            .membership()
                            .voter_ids()
                            .any(|v| v == self.me()),
                    )
                };
                led += leads as u64;
                if leads && !voter && silenced.insert(i) {
                    tracing::info!(
                        shard = i,
                        "leading a shard without a voter place: handing it over"
                    );
                    raft.runtime_config().heartbeat(false);
                } else if !leads && silenced.remove(&i) {
                    raft.runtime_config().heartbeat(true);
                }
            }
            metrics::gauge!("ecommesh_cluster_shards_led").set(led as f64);
            metrics::gauge!("ecommesh_cluster_shards_without_leader").set(leaderless as f64);
            metrics::gauge!("ecommesh_cluster_max_replication_lag_entries").set(max_lag as f64);
            let nodes = self.nodes();
            metrics::gauge!("ecommesh_cluster_nodes").set(nodes.len() as f64);
            for (id, rpc) in &nodes {
                if !rpc.is_empty() {
                    self.transport.add_peer(*id, rpc.clone());
                }
            }
            for id in self.transport.peers() {
                if !nodes.contains_key(&id) {
                    tracing::info!(node = id, "node left the cluster; dropping its link");
                    self.transport.remove_peer(id);
                }
            }
        }
    }

    /// Starts changing the node set in the background; refused while another change runs.
    pub fn change_nodes(self: &Arc<Self>, change: NodeChange) -> Result<(), String> {
        {
            let mut job = self.job.lock();
            if let Some(running) = job.as_ref() {
                return Err(format!("another change is under way: {running}"));
            }
            *job = Some(format!("{change:?}: starting"));
        }
        let cluster = self.clone();
        self.handle.spawn(async move {
            let outcome = cluster.carry_out(&change).await;
            match &outcome {
                Ok(()) => tracing::info!(?change, "node change done"),
                Err(e) => tracing::error!(?change, error = %e, "node change stopped"),
            }
            *cluster.job.lock() = None;
            *cluster.last_job.lock() = Some(match outcome {
                Ok(()) => format!("{change:?}: done"),
                Err(e) => format!("{change:?}: failed: {e}"),
            });
        });
        Ok(())
    }

    async fn carry_out(&self, change: &NodeChange) -> Result<(), String> {
        let mut nodes = self.nodes();
        match change {
            NodeChange::Join { id, rpc } => {
                if nodes.contains_key(id) {
                    return Err(format!("node {id} is already in the cluster"));
                }
                self.transport.add_peer(*id, rpc.clone());
                nodes.insert(*id, rpc.clone());
            }
            NodeChange::Leave { id } => {
                if nodes.remove(id).is_none() {
                    return Err(format!("node {id} is not in the cluster"));
                }
                if nodes.is_empty() {
                    return Err("the last node cannot leave".into());
                }
            }
        }
        let ids: Vec<NodeId> = nodes.keys().copied().collect();
        let shards = self.rafts.len() as u32;
        for shard in 0..shards {
            *self.job.lock() = Some(format!("{change:?}: shard {shard} of {shards}"));
            let voters = placement(shard, &ids, self.settings.replication_factor);
            match change {
                NodeChange::Join { id, rpc } => {
                    let addr = NodeAddr {
                        rpc: rpc.clone(),
                        http: String::new(),
                    };
                    self.on_leader(shard, Step::AddLearner { id: *id, addr })
                        .await?;
                    self.on_leader(shard, Step::SetVoters { voters }).await?;
                }
                NodeChange::Leave { id } => {
                    self.on_leader(shard, Step::SetVoters { voters }).await?;
                    self.on_leader(shard, Step::RemoveNode { id: *id }).await?;
                }
            }
            metrics::counter!("ecommesh_cluster_placement_steps_total").increment(1);
        }
        Ok(())
    }

    /// Runs `step` on the leader of `shard`, wherever it is, waiting for one if needed.
    pub(super) async fn on_leader(&self, shard: u32, step: Step) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let outcome = match self.leader(shard) {
                Some(l) if l == self.me() => {
                    run_step(&self.rafts[shard as usize], step.clone()).await
                }
                Some(l) => {
                    let request = encode(&PeerRequest::Place {
                        group: shard,
                        step: step.clone(),
                    });
                    match self.transport.call(l, &request, STEP_TIMEOUT).await {
                        Ok(answer) => decode(&answer).unwrap_or(StepOutcome::NotLeader),
                        Err(_) => StepOutcome::NotLeader,
                    }
                }
                None => StepOutcome::NotLeader,
            };
            match outcome {
                StepOutcome::Done => return Ok(()),
                StepOutcome::Failed(e) => {
                    return Err(format!("shard {shard}: {step:?} failed: {e}"))
                }
                StepOutcome::NotLeader => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("shard {shard}: no leader took {step:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
