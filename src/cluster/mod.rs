//! The cluster: every shard is a Raft group (openraft) replicated on up to
//! `replication_factor` nodes; the node that leads a shard hosts its live entities; any
//! node takes any request and forwards entity commands to the shard's leader.
//!
//! - [`types`]: what a group's entries carry and answer.
//! - [`storage`]: the group's log (in the node's consensus log) and state machine (the
//!   node's event journal shard), both on the node's one sled store.
//! - [`transport`] and [`network`]: one TCP link per pair of nodes for all groups.
//! - [`journal`]: the entity runtime's appends proposed to the shard's group.
//! - [`router`]: the cluster as the runtime's router (who leads each shard, and the
//!   link that carries an entity call there).
//!
//! Raft runs on its own tokio runtime (two threads), apart from the HTTP workers and the
//! shard actors, so that elections and heartbeats keep time when requests pile up.

pub mod cli;
pub mod handshake;
pub mod journal;
pub mod membership;
pub mod network;
pub mod ports;
pub mod router;
pub mod storage;
pub mod transport;
pub mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use ecommesh_persistence::{ConsensusLog, GroupCommit, ReplicatedStore};
use openraft::ServerState;
use serde::Serialize;

use self::network::{decode, encode, GroupNetwork, PeerRequest};
use self::storage::{GroupLog, ShardMachine};
use self::transport::Transport;
use self::types::{NodeAddr, NodeId, Raft};

/// How a node takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub node_id: NodeId,
    /// Where this node listens for its peers.
    pub rpc_listen: String,
    /// Every node of the initial cluster (this one included): id -> peer address.
    pub peers: BTreeMap<NodeId, String>,
    pub replication_factor: usize,
    pub heartbeat: Duration,
    /// Elections start after a random wait between this and twice this.
    pub election_timeout: Duration,
    /// How long a request waits for a shard without a leader before it gets 503.
    pub leader_wait: Duration,
    /// This node's HTTP address, as shown to operators.
    pub http: String,
    /// This node joins a running cluster: it never forms groups, it waits to be added.
    pub join: bool,
    /// A shard's group takes a snapshot (an export of the shard) every this many entries,
    /// and purges its log behind it.
    pub snapshot_every: u64,
    /// What every node of the cluster holds, and proves to the others before a link
    /// carries anything.
    pub secret: handshake::ClusterSecret,
    /// TEST ONLY: answer appends once proposed, before they commit (a deliberately
    /// broken build for the chaos suite).
    pub ack_before_commit: bool,
}

/// Answers requests that other nodes forward for entities this node leads.
pub type EntityHandler = Arc<
    dyn Fn(String, Vec<u8>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>>
        + Send
        + Sync,
>;

/// Takes changes other nodes made, for this node's live subscribers.
pub type ChangeListener = Arc<dyn Fn(Vec<u8>) + Send + Sync>;

/// Called when this node starts or stops leading a shard.
pub type LeadListener = Arc<dyn Fn(u32, bool) + Send + Sync>;

/// This node's part of the cluster.
pub struct Cluster {
    pub settings: ClusterSettings,
    pub rafts: Vec<Raft>,
    pub transport: Arc<Transport>,
    pub journal: Arc<journal::RaftJournal>,
    /// Per shard: this node leads it and its state machine has caught up, so its entity
    /// actors may serve.
    serving: Vec<AtomicBool>,
    /// Per shard: when a quorum last confirmed this node's lead (ms since `epoch`).
    confirmed: Vec<std::sync::atomic::AtomicU64>,
    /// One confirmation in flight per shard: concurrent readers wait for it.
    confirming: Vec<tokio::sync::Mutex<()>>,
    epoch: std::time::Instant,
    entities: Arc<OnceLock<EntityHandler>>,
    changes: Arc<OnceLock<ChangeListener>>,
    lead_listener: Arc<OnceLock<LeadListener>>,
    handle: tokio::runtime::Handle,
    /// The node-set change under way, if any, and the last one's outcome.
    job: parking_lot::Mutex<Option<String>>,
    last_job: parking_lot::Mutex<Option<String>>,
    /// Owned here; shut down in the background on drop (dropping a runtime from async
    /// code would panic).
    runtime: parking_lot::Mutex<Option<tokio::runtime::Runtime>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.lock().take() {
            rt.shutdown_background();
        }
    }
}

/// The voters of `shard`: `replication_factor` consecutive nodes (by id), starting at an
/// offset that moves with the shard, so that replicas and first leaders spread evenly.
pub fn placement(shard: u32, nodes: &[NodeId], replication_factor: usize) -> BTreeSet<NodeId> {
    let n = nodes.len().max(1);
    (0..replication_factor.clamp(1, n))
        .map(|k| nodes[(shard as usize + k) % n])
        .collect()
}

impl Cluster {
    /// Opens every shard's group on this node, links to the peers, and (on the node with
    /// the lowest id, the first time) forms the groups.
    pub fn start(
        settings: ClusterSettings,
        shards: u32,
        store: Arc<dyn ReplicatedStore>,
        log: Arc<dyn ConsensusLog>,
        commit: GroupCommit,
    ) -> anyhow::Result<Arc<Self>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("raft")
            .enable_all()
            .build()?;
        let config = Arc::new(
            openraft::Config {
                cluster_name: "ecommesh".into(),
                heartbeat_interval: settings.heartbeat.as_millis() as u64,
                election_timeout_min: settings.election_timeout.as_millis() as u64,
                election_timeout_max: 2 * settings.election_timeout.as_millis() as u64,
                // Shard snapshots are whole-shard exports: take them rarely, and keep a
                // tenth of that much log behind them for followers that fall behind.
                snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
                max_in_snapshot_log_to_keep: settings.snapshot_every / 10,
                max_payload_entries: 256,
                ..Default::default()
            }
            .validate()
            .context("invalid raft timing")?,
        );
        let entities: Arc<OnceLock<EntityHandler>> = Arc::default();
        let changes: Arc<OnceLock<ChangeListener>> = Arc::default();
        let rafts_cell: Arc<OnceLock<Vec<Raft>>> = Arc::default();
        let handler: transport::Handler = {
            let (rafts, entities, changes) =
                (rafts_cell.clone(), entities.clone(), changes.clone());
            Arc::new(move |from, payload: Bytes| {
                let (rafts, entities, changes) = (rafts.clone(), entities.clone(), changes.clone());
                Box::pin(async move { answer(from, &payload, rafts, entities, changes).await })
            })
        };
        let me = settings.node_id;
        let (transport, rafts) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(&settings.rpc_listen)
                .await
                .with_context(|| format!("cannot listen for peers on {}", settings.rpc_listen))?;
            let transport = Transport::start(
                me,
                listener,
                settings
                    .peers
                    .iter()
                    .map(|(id, a)| (*id, a.clone()))
                    .collect::<HashMap<_, _>>(),
                handler,
                settings.secret.clone(),
            );
            let mut rafts = Vec::with_capacity(shards as usize);
            for shard in 0..shards {
                let network = GroupNetwork {
                    group: shard,
                    transport: transport.clone(),
                };
                let group_log = GroupLog::new(shard, log.clone(), commit.clone());
                let machine =
                    ShardMachine::open(shard, store.clone(), log.clone(), commit.clone())?;
                let raft = Raft::new(me, config.clone(), network, group_log, machine)
                    .await
                    .with_context(|| format!("cannot start the raft group of shard {shard}"))?;
                rafts.push(raft);
            }
            anyhow::Ok((transport, rafts))
        })?;
        let _ = rafts_cell.set(rafts.clone());
        let journal = {
            let _guard = runtime.enter();
            if settings.ack_before_commit {
                tracing::error!("TEST ONLY: test_ack_before_commit is set: this node acknowledges writes before they commit and WILL lose acknowledged writes");
            }
            Arc::new(journal::RaftJournal::start(
                &rafts,
                settings.leader_wait.max(Duration::from_secs(1)),
                settings.ack_before_commit,
            ))
        };
        runtime.block_on(async {
            // Give the links a moment, so that the first elections find their peers.
            tokio::time::sleep(Duration::from_millis(100)).await;
        });
        let cluster = Arc::new(Cluster {
            serving: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            confirmed: (0..shards).map(|_| Default::default()).collect(),
            confirming: (0..shards).map(|_| Default::default()).collect(),
            epoch: std::time::Instant::now(),
            settings,
            rafts,
            transport,
            journal,
            entities,
            changes,
            lead_listener: Arc::default(),
            handle: runtime.handle().clone(),
            job: parking_lot::Mutex::new(None),
            last_job: parking_lot::Mutex::new(None),
            runtime: parking_lot::Mutex::new(None),
        });
        if !cluster.settings.join {
            runtime.block_on(cluster.form(true))?;
        }
        runtime.spawn(cluster.clone().follow_nodes());
        if !cluster.settings.join && cluster.settings.peers.keys().next() == Some(&cluster.me()) {
            let c = cluster.clone();
            runtime.spawn(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if let Err(e) = c.form(false).await {
                    tracing::error!(error = %e, "cannot form the remaining shard groups");
                }
            });
        }
        for shard in 0..shards {
            let c = cluster.clone();
            runtime.spawn(async move { c.follow_lead(shard).await });
        }
        *cluster.runtime.lock() = Some(runtime);
        Ok(cluster)
    }

    /// Forms the groups that have never been formed. Each node forms the groups whose
    /// placement it heads (it becomes their first leader, which spreads leaders evenly);
    /// the node with the lowest id forms, a few seconds later, any that are still not
    /// formed (their first node did not come). Forming is idempotent: every node forms a
    /// group with the same initial membership, so two that do it agree.
    async fn form(self: &Arc<Self>, only_mine: bool) -> anyhow::Result<()> {
        let nodes: Vec<NodeId> = self.settings.peers.keys().copied().collect();
        let mut formed = 0;
        for (shard, raft) in self.rafts.iter().enumerate() {
            let voters = placement(shard as u32, &nodes, self.settings.replication_factor);
            let first = nodes[shard % nodes.len()];
            if (only_mine && first != self.me()) || raft.is_initialized().await? {
                continue;
            }
            let voters: BTreeMap<NodeId, NodeAddr> = voters
                .into_iter()
                .map(|id| (id, self.addr_of(id)))
                .collect();
            let learners: Vec<NodeId> = nodes
                .iter()
                .copied()
                .filter(|n| !voters.contains_key(n))
                .collect();
            match raft.initialize(voters).await {
                Ok(()) => {
                    formed += 1;
                    // Every other node follows the shard as a learner (complete read
                    // models everywhere), added by its leader once there is one.
                    let c = self.clone();
                    self.handle.spawn(async move {
                        for id in learners {
                            let addr = c.addr_of(id);
                            if let Err(e) = c
                                .on_leader(shard as u32, membership::Step::AddLearner { id, addr })
                                .await
                            {
                                tracing::warn!(shard, node = id, error = %e, "cannot add a learner");
                            }
                        }
                    });
                }
                Err(openraft::error::RaftError::APIError(
                    openraft::error::InitializeError::NotAllowed(_),
                )) => {} // formed meanwhile, through a peer
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "cannot form the group of shard {shard}: {e}"
                    ))
                }
            }
        }
        if formed > 0 {
            tracing::info!(formed, "formed shard groups");
        }
        Ok(())
    }

    fn addr_of(&self, id: NodeId) -> NodeAddr {
        NodeAddr {
            rpc: self.settings.peers.get(&id).cloned().unwrap_or_default(),
            http: if id == self.settings.node_id {
                self.settings.http.clone()
            } else {
                String::new()
            },
        }
    }

    /// Keeps `serving` and the lead listener up to date for one shard.
    async fn follow_lead(self: Arc<Self>, shard: u32) {
        let raft = &self.rafts[shard as usize];
        let mut metrics = raft.metrics();
        let mut leading_term: Option<u64> = None;
        loop {
            let (leads, term) = {
                let m = metrics.borrow_and_update();
                (
                    m.state == ServerState::Leader && m.current_leader == Some(m.id),
                    m.current_term,
                )
            };
            let now = leads.then_some(term);
            if now != leading_term {
                self.serving[shard as usize].store(false, Ordering::Release);
                if let Some(listener) = self.lead_listener.get() {
                    listener(shard, leads);
                }
                if leads {
                    tracing::info!(shard, term, "leading the shard");
                    metrics::counter!("ecommesh_cluster_leader_changes_total").increment(1);
                    // Serve only once everything committed before this term is applied.
                    let caught_up = raft.ensure_linearizable().await.is_ok();
                    let still = {
                        let m = raft.metrics().borrow().clone();
                        m.state == ServerState::Leader && m.current_term == term
                    };
                    self.serving[shard as usize].store(caught_up && still, Ordering::Release);
                    if !(caught_up && still) {
                        leading_term = None;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
                leading_term = now;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// Tells `listener` whenever this node starts or stops leading a shard.
    pub fn on_lead_change(&self, listener: LeadListener) {
        let _ = self.lead_listener.set(listener);
    }

    /// Sets who answers forwarded entity requests; until then they are refused.
    pub fn serve_entities(&self, handler: EntityHandler) {
        let _ = self.entities.set(handler);
    }

    /// Hands changes other nodes tell this one to `listener`.
    pub fn on_changes(&self, listener: ChangeListener) {
        let _ = self.changes.set(listener);
    }

    /// Tells every other node of changes made here (one-way, in order per link).
    pub fn tell_changes(&self, payload: Vec<u8>) {
        let message = encode(&PeerRequest::Changes { payload });
        for peer in self.transport.peers() {
            if let Err(e) = self.transport.tell(peer, &message) {
                tracing::debug!(peer, error = %e, "a live change did not reach a peer");
            }
        }
    }

    /// True when this node leads `shard` and may serve its entities.
    pub fn serves(&self, shard: u32) -> bool {
        self.serving
            .get(shard as usize)
            .is_some_and(|s| s.load(Ordering::Acquire))
    }

    /// Confirms, before a local read, that this node still leads `shard`: a leader cut off
    /// from its followers may not know yet that another was elected, and must not serve
    /// what may be stale. A quorum's confirmation counts for one election timeout: a
    /// follower that heard from this leader waits its lease (twice the election timeout)
    /// and then at least one election timeout before it campaigns, so no other leader
    /// can exist sooner. Busy shards pay one round trip per lease, not per read, and
    /// concurrent readers share one confirmation.
    pub async fn confirm_lead(&self, shard: u32) -> bool {
        let Some(raft) = self.rafts.get(shard as usize) else {
            return false;
        };
        let lease = self.settings.election_timeout.as_millis() as u64;
        let now = || self.epoch.elapsed().as_millis() as u64 + 1;
        let confirmed_at = &self.confirmed[shard as usize];
        let fresh = |at: u64| at.saturating_sub(confirmed_at.load(Ordering::Acquire)) < lease;
        if fresh(now()) {
            return self.serves(shard);
        }
        let _single = self.confirming[shard as usize].lock().await;
        let started = now();
        if fresh(started) {
            return self.serves(shard);
        }
        let confirmed = self.handle.spawn({
            let raft = raft.clone();
            async move { raft.ensure_linearizable().await.is_ok() }
        });
        if matches!(confirmed.await, Ok(true)) {
            self.confirmed[shard as usize].fetch_max(started, Ordering::AcqRel);
            self.serves(shard)
        } else {
            false
        }
    }

    /// The shard's leader as this node knows it.
    pub fn leader(&self, shard: u32) -> Option<NodeId> {
        self.rafts
            .get(shard as usize)
            .and_then(|r| r.metrics().borrow().current_leader)
    }

    pub fn me(&self) -> NodeId {
        self.settings.node_id
    }

    /// Stops every group of this node (the others elect new leaders for the shards it
    /// led); what it acknowledged is already on a majority's disks.
    pub async fn shutdown(&self) {
        let rafts = self.rafts.clone();
        let stopped = self.handle.spawn(async move {
            for raft in rafts {
                let _ = raft.shutdown().await;
            }
        });
        let _ = stopped.await;
    }

    /// What `ecommesh cluster status` and `GET /api/v1/admin/cluster` show.
    pub fn status(&self) -> ClusterStatus {
        let mut shards = Vec::with_capacity(self.rafts.len());
        let mut leaders: BTreeMap<NodeId, usize> = BTreeMap::new();
        for (i, raft) in self.rafts.iter().enumerate() {
            let m = raft.metrics().borrow().clone();
            if let Some(l) = m.current_leader {
                *leaders.entry(l).or_default() += 1;
            }
            let membership = m.membership_config.membership();
            let replication = m.replication.as_ref().map(|r| {
                r.iter()
                    .map(|(id, matched)| {
                        let behind = m
                            .last_log_index
                            .unwrap_or(0)
                            .saturating_sub(matched.map_or(0, |l| l.index));
                        (*id, behind)
                    })
                    .collect::<BTreeMap<_, _>>()
            });
            shards.push(ShardStatus {
                shard: i as u32,
                leader: m.current_leader,
                term: m.current_term,
                state: format!("{:?}", m.state),
                voters: membership.voter_ids().collect(),
                learners: membership.learner_ids().collect(),
                last_log_index: m.last_log_index.unwrap_or(0),
                last_applied: m.last_applied.map_or(0, |l| l.index),
                lag: replication,
                serving: self.serves(i as u32),
            });
        }
        let nodes = self
            .nodes()
            .iter()
            .map(|(id, rpc)| NodeStatus {
                id: *id,
                rpc: rpc.clone(),
                http: (*id == self.me()).then(|| self.settings.http.clone()),
                connected: *id == self.me() || self.transport.is_connected(*id),
                leads: leaders.get(id).copied().unwrap_or(0),
            })
            .collect();
        ClusterStatus {
            node_id: self.me(),
            replication_factor: self.settings.replication_factor,
            nodes,
            shards,
            change: self.job.lock().clone(),
            last_change: self.last_job.lock().clone(),
        }
    }
}

/// A node as one node sees it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NodeStatus {
    pub id: NodeId,
    pub rpc: String,
    /// Known for the node answering only.
    pub http: Option<String>,
    /// Whether the link to it is up.
    pub connected: bool,
    /// How many shards it leads, as far as this node knows.
    pub leads: usize,
}

/// A shard's group as one node sees it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ShardStatus {
    pub shard: u32,
    pub leader: Option<NodeId>,
    pub term: u64,
    /// This node's role in the group: Leader, Follower, Candidate or Learner.
    pub state: String,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub last_log_index: u64,
    pub last_applied: u64,
    /// On the leader only: how many entries each replica is behind.
    pub lag: Option<BTreeMap<NodeId, u64>>,
    /// Whether this node serves the shard's entities now.
    pub serving: bool,
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    pub node_id: NodeId,
    pub replication_factor: usize,
    pub nodes: Vec<NodeStatus>,
    pub shards: Vec<ShardStatus>,
    /// The node-set change this node is carrying out, with its progress.
    pub change: Option<String>,
    /// How the last one this node carried out ended.
    pub last_change: Option<String>,
}

/// Answers one request from a peer.
async fn answer(
    from: NodeId,
    payload: &[u8],
    rafts: Arc<OnceLock<Vec<Raft>>>,
    entities: Arc<OnceLock<EntityHandler>>,
    changes: Arc<OnceLock<ChangeListener>>,
) -> Bytes {
    let request: PeerRequest = match decode(payload) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(from, error = %e, "undecodable request from a peer");
            return Bytes::new();
        }
    };
    let group = |g: u32| rafts.get().and_then(|r| r.get(g as usize)).cloned();
    let answer = match request {
        PeerRequest::Append { group: g, rpc } => match group(g) {
            Some(raft) => encode(&raft.append_entries(rpc).await),
            None => Vec::new(),
        },
        PeerRequest::Vote { group: g, rpc } => match group(g) {
            Some(raft) => encode(&raft.vote(rpc).await),
            None => Vec::new(),
        },
        PeerRequest::Snapshot { group: g, rpc } => match group(g) {
            Some(raft) => encode(&raft.install_snapshot(rpc).await),
            None => Vec::new(),
        },
        PeerRequest::Entity { kind, payload } => match entities.get() {
            Some(handler) => handler(kind, payload).await,
            None => Vec::new(),
        },
        PeerRequest::Place { group: g, step } => match group(g) {
            Some(raft) => encode(&membership::run_step(&raft, step).await),
            None => encode(&membership::StepOutcome::Failed(format!("no shard {g}"))),
        },
        PeerRequest::Changes { payload } => {
            if let Some(listener) = changes.get() {
                listener(payload);
            }
            Vec::new()
        }
    };
    Bytes::from(answer)
}
