//! [`Entities`]: the entities of one kind wherever their shards are led. On a single node
//! it is the local [`Registry`]. In a cluster a [`Router`] (which the node's cluster
//! implements) says which node leads each shard and carries a call there: a command goes
//! to the local shard actor when this node leads the shard, and otherwise to the node that
//! leads it; while the shard has no leader the command waits up to
//! [`Router::leader_wait`], then fails with [`StoreError::Unavailable`].
//!
//! A forwarded command is retried on another node only when it certainly did not run:
//! it was not sent ([`ForwardError::NotSent`]), or the other node answered that it does
//! not lead the shard. A link that broke or timed out leaves the outcome unknown, and the
//! caller is told so; a read, having no effect, is simply asked again until the wait runs
//! out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecommesh_persistence::{Codec, DefaultCodec, ShardId, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::shard::CommandResult;
use crate::{Entity, EntityError, Registry};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A node of the cluster.
pub type NodeId = u64;

/// Why a forwarded call has no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    /// The call was certainly not delivered (no link to the node): it did not run.
    #[error("{0}")]
    NotSent(String),
    /// The call may have run: the link broke or the answer did not come in time.
    #[error("{0}")]
    Unknown(String),
}

/// What a cluster tells the runtime: which node leads each shard, and a way to call it.
pub trait Router: Send + Sync + 'static {
    /// How long a command waits for its shard to have a reachable leader.
    fn leader_wait(&self) -> Duration;
    /// Whether this node leads `shard` and has caught up with its log.
    fn serves(&self, shard: ShardId) -> bool;
    /// Whether this node still leads `shard`, confirmed by a quorum (for reads, which
    /// must not answer from a leader that was cut off and replaced).
    fn confirm_lead(&self, shard: ShardId) -> BoxFuture<'_, bool>;
    /// The node this one believes leads `shard`.
    fn leader(&self, shard: ShardId) -> Option<NodeId>;
    fn me(&self) -> NodeId;
    /// Sends a call for an entity of `kind` to `node`, to be answered by the handler
    /// [`Entities::handler`] made there; resolves with its answer.
    fn forward<'a>(
        &'a self,
        node: NodeId,
        kind: &'static str,
        call: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, ForwardError>>;
}

/// Answers the calls other nodes forward for one kind of entity: call in, answer out.
pub type ForwardedCalls = Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, Vec<u8>> + Send + Sync>;

/// How long a forwarded read may wait for its answer before it is asked again (of the
/// leader known then): a read has no effect, so a leader that stopped answering (paused,
/// cut off) holds it only until the shard has failed over.
const READ_FORWARD_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a forwarded write may take beyond the leader wait, the longest the leader
/// itself waits for it to commit.
const WRITE_FORWARD_SLACK: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
enum Call<C> {
    Execute {
        id: String,
        command: C,
        expected_seq: Option<u64>,
    },
    Read {
        id: String,
    },
}

impl<C> Call<C> {
    fn id(&self) -> &str {
        match self {
            Call::Execute { id, .. } | Call::Read { id } => id,
        }
    }
}

/// The answer to a forwarded call.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "CommandResult<E>: Serialize",
    deserialize = "CommandResult<E>: serde::de::DeserializeOwned"
))]
enum Forwarded<E: Entity> {
    Done(CommandResult<E>),
    /// This node does not lead the shard (any more): the command did not run.
    NotLeader,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    DefaultCodec::default()
        .encode(value)
        .expect("forwarded calls always encode")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ecommesh_persistence::CodecError> {
    DefaultCodec::default().decode(bytes)
}

/// The entities of kind `E`, wherever their shards are led.
pub struct Entities<E: Entity> {
    local: Registry<E>,
    router: Option<Arc<dyn Router>>,
}

impl<E: Entity> Clone for Entities<E> {
    fn clone(&self) -> Self {
        Entities {
            local: self.local.clone(),
            router: self.router.clone(),
        }
    }
}

fn unavailable<R>(shard: ShardId, reason: String) -> EntityError<R> {
    EntityError::Storage(StoreError::Unavailable { shard, reason })
}

impl<E: Entity> Entities<E> {
    /// The entities of `local`; in a cluster, `router` finds the leaders of the shards
    /// this node does not lead.
    pub fn new(local: Registry<E>, router: Option<Arc<dyn Router>>) -> Self {
        Entities { local, router }
    }

    /// The registry of this node's own shard actors.
    pub fn local(&self) -> &Registry<E> {
        &self.local
    }

    pub fn shard_of(&self, id: &str) -> ShardId {
        self.local.shard_of(id)
    }

    /// True when this node runs the entities of `shard` (always, on a single node).
    pub fn leads(&self, shard: ShardId) -> bool {
        self.router.as_ref().is_none_or(|r| r.serves(shard))
    }

    /// True when this node leads the shard of entity `id` and a quorum still says so
    /// (always, on a single node, where no shard is hashed for it): only then has it seen
    /// every change of the entity.
    pub async fn confirmed_lead_of(&self, id: &str) -> bool {
        match &self.router {
            None => true,
            Some(r) => {
                let shard = self.shard_of(id);
                r.serves(shard) && r.confirm_lead(shard).await
            }
        }
    }

    /// True when another node leads the shard of entity `id` (never, on a single node).
    pub fn led_elsewhere(&self, id: &str) -> bool {
        self.router
            .as_ref()
            .is_some_and(|r| !r.serves(self.shard_of(id)))
    }

    /// Runs `command` on entity `id`; resolves once its events are durable (committed by
    /// the shard's group, in a cluster).
    pub async fn execute(
        &self,
        id: impl Into<String>,
        command: E::Command,
        expected_seq: Option<u64>,
    ) -> CommandResult<E> {
        self.call(Call::Execute {
            id: id.into(),
            command,
            expected_seq,
        })
        .await
    }

    /// Reads entity `id` on the node that leads its shard; shows only what is durable.
    pub async fn read(&self, id: impl Into<String>) -> CommandResult<E> {
        self.call(Call::Read { id: id.into() }).await
    }

    /// [`Registry::execute_unsynced`] on a single node; in a cluster, where nothing is
    /// final before a majority has it, [`Entities::execute`].
    pub async fn execute_unsynced(
        &self,
        id: impl Into<String>,
        command: E::Command,
        expected_seq: Option<u64>,
    ) -> CommandResult<E> {
        match self.router {
            None => self.local.execute_unsynced(id, command, expected_seq).await,
            Some(_) => self.execute(id, command, expected_seq).await,
        }
    }

    /// [`Registry::read_unsynced`] on a single node; [`Entities::read`] in a cluster.
    pub async fn read_unsynced(&self, id: impl Into<String>) -> CommandResult<E> {
        match self.router {
            None => self.local.read_unsynced(id).await,
            Some(_) => self.read(id).await,
        }
    }

    /// Waits until every unsynced step so far is durable ([`Registry::sync`]).
    pub async fn sync(&self) -> Result<(), StoreError> {
        match self.router {
            None => self.local.sync().await,
            Some(_) => Ok(()),
        }
    }

    pub async fn live_entities(&self) -> usize {
        self.local.live_entities().await
    }

    async fn run_here(local: &Registry<E>, call: Call<E::Command>) -> CommandResult<E> {
        match call {
            Call::Execute {
                id,
                command,
                expected_seq,
            } => local.execute(id, command, expected_seq).await,
            Call::Read { id } => local.read(id).await,
        }
    }

    async fn call(&self, call: Call<E::Command>) -> CommandResult<E> {
        let Some(router) = &self.router else {
            return Self::run_here(&self.local, call).await;
        };
        let shard = self.shard_of(call.id());
        let deadline = Instant::now() + router.leader_wait();
        let mut encoded: Option<Vec<u8>> = None;
        loop {
            // Writes need no lease: a leader cut off from its quorum cannot commit them.
            let here = match &call {
                Call::Read { .. } => router.serves(shard) && router.confirm_lead(shard).await,
                Call::Execute { .. } => router.serves(shard),
            };
            if here {
                return Self::run_here(&self.local, call).await;
            }
            let leader = router.leader(shard).filter(|l| *l != router.me());
            if let Some(leader) = leader {
                let bytes = encoded.get_or_insert_with(|| encode(&call)).clone();
                metrics::counter!("ecommesh_cluster_forwarded_total", "kind" => E::KIND)
                    .increment(1);
                let timeout = match &call {
                    Call::Read { .. } => READ_FORWARD_TIMEOUT,
                    Call::Execute { .. } => router.leader_wait() + WRITE_FORWARD_SLACK,
                };
                match router.forward(leader, E::KIND, bytes, timeout).await {
                    // Nothing: the node is still starting and answers no commands yet.
                    Ok(answer) if answer.is_empty() => {}
                    Ok(answer) => match decode::<Forwarded<E>>(&answer) {
                        Ok(Forwarded::Done(outcome)) => return outcome,
                        Ok(Forwarded::NotLeader) => {}
                        Err(e) => {
                            return Err(unavailable(
                                shard,
                                format!("node {leader} answered something unreadable: {e}"),
                            ))
                        }
                    },
                    Err(ForwardError::NotSent(_)) => {}
                    // A read changed nothing, whatever became of it: ask again.
                    Err(_) if matches!(call, Call::Read { .. }) => {}
                    Err(e) => {
                        return Err(unavailable(
                            shard,
                            format!("{e}; the command may or may not have run"),
                        ))
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(unavailable(
                    shard,
                    match router.leader(shard) {
                        Some(l) => format!("its leader, node {l}, cannot be reached"),
                        None => "it has no leader (an election is under way, or too few of its replicas are up)".into(),
                    },
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Answers calls other nodes forward for this kind: runs them only if this node leads
    /// the entity's shard.
    pub fn handler(&self) -> (&'static str, ForwardedCalls) {
        let this = self.clone();
        let handler: ForwardedCalls = Arc::new(move |payload| {
            let this = this.clone();
            Box::pin(async move {
                let call: Call<E::Command> = match decode(&payload) {
                    Ok(c) => c,
                    Err(e) => {
                        let shard = 0;
                        return encode(&Forwarded::<E>::Done(Err(unavailable(
                            shard,
                            format!("cannot read the forwarded command: {e}"),
                        ))));
                    }
                };
                let shard = this.shard_of(call.id());
                let serves = match (&this.router, &call) {
                    (None, _) => false,
                    (Some(r), Call::Read { .. }) => r.serves(shard) && r.confirm_lead(shard).await,
                    (Some(r), Call::Execute { .. }) => r.serves(shard),
                };
                if !serves {
                    return encode(&Forwarded::<E>::NotLeader);
                }
                encode(&Forwarded::<E>::Done(
                    Self::run_here(&this.local, call).await,
                ))
            })
        });
        (E::KIND, handler)
    }
}
